// The C++ client library against a node's WebSocket edge over loopback: pub/sub with per-pattern
// handlers, unicast, broadcast, request/reply with typed failures, queue groups, smart batching,
// heartbeats, reconnect with re-registration and re-subscription, and a draining server stop.
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/reasons.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;


TEST_SUITE("client") {
  TEST_CASE("pub/sub: per-pattern handlers, wildcards, typed refusals, unsubscribe") {
    edge e;
    transport::client sub(client_opts(e.port(), "sub"));
    REQUIRE(sub.connect() == errc::ok);
    inbox status, tail;
    REQUIRE(sub.subscribe("agent.*.status", status.handler()).get() == errc::ok);
    REQUIRE(sub.subscribe("alerts.>", tail.handler()).get() == errc::ok);
    CHECK(sub.subscribe("bad..pattern").get() == errc::invalid_pattern);

    transport::client pub(client_opts(e.port(), "pub"));
    REQUIRE(pub.connect() == errc::ok);
    CHECK(pub.publish("agent.*.status", "x") == errc::invalid_topic); // no wildcards when publishing
    REQUIRE(pub.publish("agent.worker.status", "s1") == errc::ok);
    REQUIRE(pub.publish("agent.worker.7.status", "not for *") == errc::ok);
    REQUIRE(pub.publish("alerts.disk.full", "a1") == errc::ok);
    REQUIRE(pub.publish("agent.worker.status", "s2") == errc::ok);
    REQUIRE(eventually([&] { return status.size() == 2 && tail.size() == 1; }));
    CHECK(status.all() == std::vector<std::string>{"s1", "s2"});
    CHECK(tail.all() == std::vector<std::string>{"a1"});

    REQUIRE(sub.unsubscribe("alerts.>").get() == errc::ok);
    CHECK(sub.unsubscribe("never.subscribed").get() == errc::not_subscribed);
    REQUIRE(pub.publish("alerts.disk.full", "a2") == errc::ok);
    REQUIRE(pub.publish("agent.worker.status", "s3") == errc::ok);
    REQUIRE(eventually([&] { return status.size() == 3; }));
    CHECK(tail.size() == 1);
  }

  TEST_CASE("a forwarded message keeps its sender's timestamp (its age end to end)") {
    edge e;
    raw_peer pub(e.port()), sub(e.port());
    sub.join("ts-sub", {"ts.>"});
    pub.join("ts-pub");
    constexpr std::uint64_t sent_at = 1'700'000'000'123'456'789;
    pub.send_publish("ts.one", "aged", sent_at);
    auto f = sub.next();
    REQUIRE(f);
    CHECK(f->payload == "aged");
    CHECK(f->source == "ts-pub");
    CHECK(f->timestamp_ns == sent_at);
    // an in-process agent's message is stamped when it is sent
    auto local = e.node.connect({"ts-local", "test"}).value();
    const std::uint64_t before = codec::wall_clock_ns();
    REQUIRE(local->publish("ts.two", "fresh").delivered == 1);
    f = sub.next();
    REQUIRE(f);
    CHECK(f->payload == "fresh");
    CHECK(f->timestamp_ns >= before);
    CHECK(f->timestamp_ns <= codec::wall_clock_ns());
  }

  TEST_CASE("application headers reach every recipient: a topic, a capability, and past the stack's room") {
    edge e;
    std::mutex m;
    std::vector<std::string> seen; // "<payload> <trace-id> <tenant>" as each recipient saw it
    auto record = [&](const transport::incoming& in) {
      std::lock_guard<std::mutex> g(m);
      seen.push_back(std::string(in.payload) + " " + std::string(in.header("trace-id")) + " " +
                     std::string(in.header("tenant")));
    };
    transport::client sub(client_opts(e.port(), "hdr-sub", {"hdr.>"}));
    sub.on_message(record);
    REQUIRE(sub.connect() == errc::ok);
    auto wo = client_opts(e.port(), "hdr-worker");
    wo.capabilities = {"summarise"};
    transport::client worker(wo);
    worker.on_message(record);
    REQUIRE(worker.connect() == errc::ok);
    transport::client pub(client_opts(e.port(), "hdr-pub"));
    REQUIRE(pub.connect() == errc::ok);

    std::vector<codec::repeated_entry> h{{codec::field::header, "trace-id", "4bf92f35"},
                                         {codec::field::header, "tenant", "acme"}};
    actors::send_options o;
    o.headers = codec::repeated_fields(h.data(), h.size());
    REQUIRE(pub.publish("hdr.one", "topic", o) == errc::ok);
    REQUIRE(pub.send(actors::destination::capability("summarise"), "capability", o) == errc::ok);
    std::vector<codec::repeated_entry> many; // more than the client keeps on its stack
    std::vector<std::string> keys;
    for (int i = 0; i < 20; ++i)
      keys.push_back("k" + std::to_string(i));
    for (int i = 0; i < 20; ++i)
      many.push_back({codec::field::header, keys[static_cast<std::size_t>(i)], "v"});
    many.push_back({codec::field::header, "trace-id", "last"});
    o.headers = codec::repeated_fields(many.data(), many.size());
    REQUIRE(pub.publish("hdr.two", "many", o) == errc::ok);
    REQUIRE(pub.publish("hdr.three", "none") == errc::ok);
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> g(m);
      return seen.size() == 4;
    }));
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::string>{"capability 4bf92f35 acme", "many last ", "none  ", "topic 4bf92f35 acme"});
  }

  TEST_CASE("a full send queue blocks a sender up to max_block, then refuses; draining lets it go on") {
    edge e;
    inbox got;
    transport::client sub(client_opts(e.port(), "mb-sub", {"mb.>"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    auto o = client_opts(e.port(), "mb-pub");
    o.max_queued = 8;
    o.max_block = 150ms;
    transport::client pub(o);
    // not connected yet: nothing drains the queue
    for (int i = 0; i < 8; ++i)
      REQUIRE(pub.publish("mb.x", std::to_string(i)) == errc::ok);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(pub.publish("mb.x", "refused") == errc::mailbox_full);
    CHECK(std::chrono::steady_clock::now() - t0 >= 140ms);
    CHECK(pub.stats().blocked_sends == 1);
    // a sender blocked on the full queue goes on once the connection drains it
    std::thread later([&] {
      std::this_thread::sleep_for(50ms);
      REQUIRE(pub.connect() == errc::ok);
    });
    errc e9 = pub.publish("mb.x", "8");
    for (int tries = 0; e9 == errc::mailbox_full && tries < 40; ++tries) // (a slow connect under a sanitizer)
      e9 = pub.publish("mb.x", "8");
    later.join();
    CHECK(e9 == errc::ok);
    CHECK(pub.stats().blocked_sends >= 2);
    REQUIRE(eventually([&] { return got.size() == 9; }));
    CHECK(got.all().back() == "8");
  }

  TEST_CASE("send_buffer bounds the queue in bytes: full, a send is refused; connected, everything accepted arrives") {
    edge e;
    inbox got;
    transport::client sub(client_opts(e.port(), "sb-sub", {"sb.>"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    auto o = client_opts(e.port(), "sb-pub");
    o.max_message = 4096;
    o.send_buffer = 1000; // rounded up to twice a max_message record: 16 KiB
    transport::client pub(o);
    // not connected yet: nothing drains the queue. 1 000-byte payloads: about 15 fit
    const std::string big(1000, 'b');
    int accepted = 0;
    while (pub.publish("sb.x", std::to_string(accepted) + ":" + big) == errc::ok)
      ++accepted;
    CHECK(accepted >= 12);
    CHECK(accepted <= 16);
    int small = 0; // what is left of the ring takes a few small ones (< 1 000 bytes)
    while (pub.publish("sb.x", "s" + std::to_string(small)) == errc::ok)
      ++small;
    CHECK(small < 1000 / 24);
    CHECK(pub.publish("sb.x", std::string(5000, 'x')) == errc::too_large);
    const auto n = static_cast<std::size_t>(accepted + small);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(eventually([&] { return got.size() == n; }));
    const auto all = got.all();
    for (int i = 0; i < accepted; ++i)
      CHECK(all[static_cast<std::size_t>(i)] == std::to_string(i) + ":" + big);
    for (int i = 0; i < small; ++i)
      CHECK(all[static_cast<std::size_t>(accepted + i)] == "s" + std::to_string(i));
    // drained: room again
    CHECK(pub.publish("sb.x", "after") == errc::ok);
    REQUIRE(eventually([&] { return got.size() == n + 1; }));
  }

  TEST_CASE("threads sending through one client at once, through a small ring that fills and wraps: each thread's "
            "messages once, in its order; close() right after writes every accepted one") {
    edge e({}, lossless_node());
    inbox got;
    transport::client sub(client_opts(e.port(), "mt-sub", {"mt.>"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    auto o = client_opts(e.port(), "mt-pub");
    o.max_message = 4096;
    o.send_buffer = 16 * 1024;
    o.max_block = 10s; // a full ring makes senders wait, never refuses them here
    o.direct_write_gap = 0ms; // and senders write themselves whenever the connection is idle
    transport::client pub(o);
    REQUIRE(pub.connect() == errc::ok);
#ifdef FLOWBUS_SANITIZED
    constexpr int per = 1500;
#else
    constexpr int per = 10000;
#endif
    constexpr int threads = 4;
    std::atomic<int> refused{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        for (int i = 0; i < per; ++i) // lengths that move the end of the ring around: 2..~300 bytes
          if (pub.publish("mt.x", std::string(1, static_cast<char>('a' + t)) + std::to_string(i) + "|" +
                                      std::string(static_cast<std::size_t>(i * 7 % 293), 'x')) != errc::ok)
            refused.fetch_add(1);
      });
    for (auto& t : ts)
      t.join();
    pub.close(); // at once: what was accepted is written before GOODBYE
    CHECK(refused.load() == 0);
    CHECK(pub.stats().unsent == 0);
    const bool all_in = eventually([&] { return got.size() == std::size_t{threads} * per; }, 30s);
    INFO("received " << got.size() << " of " << threads * per << "; sent " << pub.stats().sent << ", blocked "
                     << pub.stats().blocked_sends << ", direct " << pub.stats().direct_writes);
    REQUIRE(all_in);
    std::vector<int> next(threads, 0);
    int bad = 0;
    for (const std::string& m : got.all()) {
      const int t = m[0] - 'a';
      const auto bar = m.find('|');
      if (t < 0 || t >= threads || bar == std::string::npos) {
        ++bad;
        continue;
      }
      const int i = std::stoi(m.substr(1, bar - 1));
      if (i != next[static_cast<std::size_t>(t)] || m.size() != bar + 1 + static_cast<std::size_t>(i * 7 % 293)) ++bad;
      next[static_cast<std::size_t>(t)] = i + 1;
    }
    CHECK(bad == 0);
    for (int t = 0; t < threads; ++t)
      CHECK(next[static_cast<std::size_t>(t)] == per);
    const auto ss = e.server.stats();
    CHECK(ss.sequence_gaps == 0);
    CHECK(ss.sequence_repeats == 0);
  }

  TEST_CASE("unicast, broadcast, and an in-process agent talking to a remote one") {
    edge e;
    inbox a_in, b_in;
    transport::client a(client_opts(e.port(), "a")), b(client_opts(e.port(), "b"));
    a.on_message(a_in.handler());
    b.on_message(b_in.handler());
    REQUIRE(a.connect() == errc::ok);
    REQUIRE(b.connect() == errc::ok);
    REQUIRE(a.send(actors::destination::agent("b"), "to b") == errc::ok);
    REQUIRE(eventually([&] { return b_in.size() == 1; }));
    CHECK(b_in.all()[0] == "to b");

    auto local = e.node.connect({"local", "test"}).value();
    REQUIRE(local->send_to("a", "from inside").delivered == 1);
    REQUIRE(b.broadcast("to everyone") == errc::ok);
    REQUIRE(eventually([&] { return a_in.size() == 2; }));
    CHECK(a_in.all() == std::vector<std::string>{"from inside", "to everyone"});
    auto m = local->receive(3s);
    REQUIRE(m);
    CHECK(m->msg.payload == "to everyone");
    CHECK(b_in.size() == 1); // a broadcast skips its sender
  }

  TEST_CASE("request/reply: a remote responder, an in-process one, typed timeout and no responders") {
    edge e;
    transport::client svc(client_opts(e.port(), "svc"));
    REQUIRE(svc.connect() == errc::ok);
    REQUIRE(svc.subscribe("svc.echo", [&](const transport::incoming& req) {
                 REQUIRE(req.type == codec::msg_type::request);
                 svc.respond(req, "echo:" + std::string(req.payload));
               }).get() == errc::ok);
    REQUIRE(svc.subscribe("svc.silent", [](const transport::incoming&) {}).get() == errc::ok);
    actors::agent_spec upper{"upper", "svc"};
    upper.capabilities = {"upper"};
    REQUIRE(e.node.spawn(upper, [](actors::agent_context& ctx, const actors::delivery& d) {
      std::string s(d.payload);
      for (char& c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      ctx.respond(d, s);
    }));

    transport::client req(client_opts(e.port(), "req"));
    REQUIRE(req.connect() == errc::ok);
    auto r1 = req.request(actors::destination::topic("svc.echo"), "hi", 2s).get();
    CHECK(r1.code == errc::ok);
    CHECK(r1.payload == "echo:hi");
    CHECK(r1.source == "svc");
    auto r2 = req.request(actors::destination::capability("upper"), "shout", 2s).get();
    CHECK(r2.code == errc::ok);
    CHECK(r2.payload == "SHOUT");
    const auto t0 = std::chrono::steady_clock::now();
    auto r3 = req.request(actors::destination::topic("svc.silent"), "anyone?", 200ms).get();
    CHECK(r3.code == errc::timeout);
    CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
    auto r4 = req.request(actors::destination::topic("svc.nobody"), "hello?", 2s).get();
    CHECK(r4.code == errc::no_responders);
    auto r5 = req.request(actors::destination::agent("ghost"), "boo", 2s).get();
    CHECK(r5.code == errc::agent_unavailable);

    // many in flight at once, each answered to its own caller
    std::vector<std::future<transport::reply_result>> many;
    for (int i = 0; i < 200; ++i)
      many.push_back(req.request(actors::destination::topic("svc.echo"), std::to_string(i), 5s));
    for (int i = 0; i < 200; ++i) {
      auto r = many[static_cast<std::size_t>(i)].get();
      REQUIRE(r.code == errc::ok);
      CHECK(r.payload == "echo:" + std::to_string(i));
    }
  }

  TEST_CASE("queue group over WebSocket: each message to one member, round-robin even") {
    edge e;
    constexpr int members = 3, per = 100;
    std::vector<std::unique_ptr<transport::client>> workers;
    std::vector<std::unique_ptr<inbox>> boxes;
    for (int i = 0; i < members; ++i) {
      workers.push_back(std::make_unique<transport::client>(client_opts(e.port(), "w" + std::to_string(i))));
      boxes.push_back(std::make_unique<inbox>());
      REQUIRE(workers.back()->connect() == errc::ok);
      REQUIRE(workers.back()->subscribe("jobs", boxes.back()->handler(), "workers").get() == errc::ok);
    }
    inbox all;
    transport::client watcher(client_opts(e.port(), "watcher"));
    REQUIRE(watcher.connect() == errc::ok);
    REQUIRE(watcher.subscribe("jobs", all.handler()).get() == errc::ok);

    transport::client boss(client_opts(e.port(), "boss"));
    REQUIRE(boss.connect() == errc::ok);
    for (int i = 0; i < members * per; ++i)
      REQUIRE(boss.publish("jobs", std::to_string(i)) == errc::ok);
    REQUIRE(eventually([&] { return all.size() == members * per; }));
    std::size_t sum = 0;
    for (auto& b : boxes) {
      REQUIRE(eventually([&] { return b->size() == per; }));
      sum += b->size();
    }
    CHECK(sum == members * per);
  }

  TEST_CASE("smart batching: a burst goes out in few writes, in order, nothing lost") {
    edge e({}, lossless_node()); // 20 000 at once: the subscriber falls behind and must hold us, not shed
    inbox got;
    transport::client sub(client_opts(e.port(), "sub", {"burst"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    transport::client pub(client_opts(e.port(), "pub"));
    REQUIRE(pub.connect() == errc::ok);
    constexpr int n = 20000;
    for (int i = 0; i < n; ++i)
      REQUIRE(pub.publish("burst", std::to_string(i)) == errc::ok);
    const bool all_in = eventually([&] { return got.size() == n; }, 20s);
    INFO("received " << got.size() << ", holds " << e.server.stats().holds << ", paused " << e.server.stats().paused
                     << ", frames in " << e.server.stats().frames_in << ", out " << e.server.stats().frames_out
                     << ", window waits " << e.server.stats().window_waits << ", published " << pub.stats().sent
                     << ", subscriber holds " << sub.stats().holds);
    REQUIRE(all_in);
    const auto all = got.all();
    for (int i = 0; i < n; ++i)
      REQUIRE(all[static_cast<std::size_t>(i)] == std::to_string(i));
    const auto ps = pub.stats();
    CHECK(ps.sent >= n);
    CHECK(ps.batches > 0);
    CHECK(ps.writes < ps.sent); // gathered while writes were in flight
    const auto ss = e.server.stats();
    CHECK(ss.batches > 0);
    CHECK(ss.writes < ss.frames_out);
    CHECK(ss.sequence_gaps == 0);
    CHECK(ss.sequence_repeats == 0);
  }

  TEST_CASE("sparse messages are written by the sending thread, a burst by the I/O thread: in order, nothing lost") {
    edge e;
    inbox got;
    transport::client sub(client_opts(e.port(), "sub", {"mixed.>"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    auto o = client_opts(e.port(), "pub");
    // a gap no sender's loop takes between two messages, however slow the build (sanitizers)
    o.direct_write_gap = 5ms;
    // the I/O thread's own frames (HEARTBEAT every 250 ms; the burst takes seconds under the
    // sanitizers) interleave with the senders'. A shorter interval is a deadline the node misses
    // under ThreadSanitizer with another suite beside it (3 intervals: 60 ms at 20, and CI's run
    // missed 300 ms at 100): the agent is taken down and what its write carried is lost — at
    // most once, as documented — which is not what this test is about
    o.heartbeat = 500ms;
    transport::client pub(o);
    REQUIRE(pub.connect() == errc::ok);
    // sparse: the sending thread writes each itself
    constexpr int sparse = 20;
    for (int i = 0; i < sparse; ++i) {
      REQUIRE(pub.publish("mixed.a", "s" + std::to_string(i)) == errc::ok);
      std::this_thread::sleep_for(10ms);
    }
    // CRITICAL ones too (their own queue, ahead of the rest)
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    const auto before_crit = pub.stats().direct_writes;
    for (int i = sparse; i < sparse + 10; ++i) {
      REQUIRE(pub.publish("mixed.a", "s" + std::to_string(i), crit) == errc::ok);
      std::this_thread::sleep_for(10ms);
    }
    CHECK(pub.stats().direct_writes - before_crit >= 5);
    const auto after_sparse = pub.stats();
    CHECK(after_sparse.direct_writes >= sparse / 2); // (the I/O thread may be writing a HEARTBEAT meanwhile)
    // a burst: within a few messages the gaps average below direct_write_gap and the I/O thread gathers
    constexpr int burst = 2000;
    for (int i = 0; i < burst; ++i)
      REQUIRE(pub.publish("mixed.a", "b" + std::to_string(i)) == errc::ok);
    CHECK(pub.stats().direct_writes - after_sparse.direct_writes <= 10);
    // two senders at once on a client that writes directly whenever the connection is idle
    // (gap 0), while HEARTBEATs go out: sending threads' writes and the I/O thread's interleave
    o.id = "pub2";
    o.direct_write_gap = 0ms;
    transport::client pub2(o);
    REQUIRE(pub2.connect() == errc::ok);
    std::thread sparse_sender([&] {
      for (int i = 0; i < sparse; ++i) {
        REQUIRE(pub2.publish("mixed.b", "t" + std::to_string(i)) == errc::ok);
        std::this_thread::sleep_for(2ms);
      }
    });
    for (int i = 0; i < burst; ++i) {
      REQUIRE(pub2.publish("mixed.b", "c" + std::to_string(i)) == errc::ok);
      if (i % 100 == 0) std::this_thread::sleep_for(1ms);
    }
    sparse_sender.join();
    const std::size_t total = 2 * sparse + 10 + 2 * burst;
    const bool all = eventually([&] { return got.size() == total; }, 20s);
    INFO("got " << got.size() << " of " << total << "; pub sent " << pub.stats().sent << " direct "
                << pub.stats().direct_writes << ", pub2 sent " << pub2.stats().sent << " direct "
                << pub2.stats().direct_writes << "; node in " << e.server.stats().frames_in << " out "
                << e.server.stats().frames_out << ", dead letters " << e.node.dead().take().size()
                << "; node writes " << e.server.stats().writes << " window waits " << e.server.stats().window_waits
                << " holds " << e.server.stats().holds << " pauses " << e.server.stats().paused << "; sub received "
                << sub.stats().received << " sent " << sub.stats().sent << " writes " << sub.stats().writes
                << "; gaps " << e.server.stats().sequence_gaps << " repeats " << e.server.stats().sequence_repeats
                << " pub connects " << pub.stats().connects << " writes " << pub.stats().writes << " batches "
                << pub.stats().batches << " unsent " << pub.stats().unsent << " held " << pub.held() << "; by kind "
                << [&] {
                     std::map<char, std::size_t> k;
                     for (const auto& p : got.all()) ++k[p.empty() ? '?' : p[0]];
                     std::string r;
                     for (const auto& [c, n] : k) r += std::string(1, c) + "=" + std::to_string(n) + " ";
                     return r;
                   }());
    REQUIRE(all);
    const auto ps = pub.stats(), ps2 = pub2.stats();
    CHECK(ps.writes < ps.sent); // the burst was gathered
    CHECK(ps2.direct_writes > 0);
    CHECK(ps.connects == 1);    // no frame out of sequence or torn: the node never dropped us
    CHECK(ps2.connects == 1);
    const auto ss = e.server.stats();
    CHECK(ss.sequence_gaps == 0);
    CHECK(ss.sequence_repeats == 0);
    // each sender's messages in its order
    std::map<char, int> next;
    for (const std::string& m : got.all()) {
      const int n = std::stoi(m.substr(1));
      CHECK(n == next[m[0]]);
      next[m[0]] = n + 1;
    }
    CHECK(next['s'] == sparse + 10);
    CHECK(next['b'] == burst);
    CHECK(next['c'] == burst);
    CHECK(next['t'] == sparse);
  }

  TEST_CASE("heartbeats keep a quiet client alive; a silent raw peer is taken down with a reason") {
    actors::node_config c = small_node();
    c.missed_heartbeats = 3;
    edge e({}, c);
    auto o = client_opts(e.port(), "quiet");
    o.heartbeat = 60ms;
    transport::client quiet(o);
    REQUIRE(quiet.connect() == errc::ok);
    raw_peer silent(e.port());
    silent.send_register("silent", {}, 40);
    REQUIRE(silent.next()->type == codec::msg_type::welcome);
    const auto seen = silent.until_closed(3s);
    REQUIRE(silent.closed());
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back().error_code == transport::code_of(transport::reason::agent_down));
    std::this_thread::sleep_for(300ms);
    CHECK(quiet.connected());
    auto local = e.node.connect({"local", "test"}).value();
    CHECK(local->send_to("quiet", "still there?").delivered == 1);
    CHECK(local->send_to("silent", "gone?").code == errc::agent_unavailable);
  }

  TEST_CASE("reconnect: the client comes back to a restarted edge, registers and re-subscribes") {
    actors::node n(small_node());
    transport::server_options so;
    so.port = 0;
    auto srv = std::make_unique<transport::server>(n, so);
    const std::uint16_t port = srv->port();
    inbox got;
    transport::client c(quick_reconnect_opts(port, "roamer"));
    REQUIRE(c.connect() == errc::ok);
    REQUIRE(c.subscribe("news", got.handler()).get() == errc::ok);
    auto local = n.connect({"local", "test"}).value();
    REQUIRE(local->publish("news", "before").delivered == 1);
    REQUIRE(eventually([&] { return got.size() == 1; }));

    srv->stop();
    REQUIRE(eventually([&] { return !c.connected(); }));
    CHECK(c.publish("news.queued", "sent after the reconnect") == errc::ok);
    so.port = port;
    srv = std::make_unique<transport::server>(n, so);
    REQUIRE(eventually([&] { return c.connected(); }));
    // re-subscribed: the subscription is back on the node
    REQUIRE(eventually([&] { return local->publish("news", "after").delivered == 1; }));
    REQUIRE(eventually([&] { return got.size() >= 2; }));
    CHECK(got.all().back() == "after");
    CHECK(c.stats().connects == 2);
  }

  TEST_CASE("a draining server stop writes everything queued, then GOODBYE") {
    edge e;
    inbox got;
    auto o = client_opts(e.port(), "drainee", {"flood"});
    o.reconnect = false;
    transport::client c(o);
    c.on_message(got.handler());
    REQUIRE(c.connect() == errc::ok);
    auto local = e.node.connect({"local", "test"}).value();
    constexpr int n = 2000;
    for (int i = 0; i < n; ++i)
      REQUIRE(local->publish("flood", std::to_string(i)).delivered == 1);
    e.server.stop(5s);
    REQUIRE(eventually([&] { return got.size() == n; }));
    CHECK(got.all().back() == std::to_string(n - 1));
    REQUIRE(eventually([&] { return !c.connected(); }));
    CHECK(e.node.dead().total() == 0);
  }

  TEST_CASE("a refused registration is reported by connect()") {
    edge e;
    transport::client first(client_opts(e.port(), "same"));
    REQUIRE(first.connect() == errc::ok);
    auto o = client_opts(e.port(), "same");
    o.reconnect = false;
    transport::client second(o);
    CHECK(second.connect() == errc::duplicate_agent);
    CHECK_FALSE(second.connected());
    auto bad = client_opts(e.port(), "");
    bad.reconnect = false;
    transport::client nameless(bad);
    CHECK(nameless.connect() == errc::invalid_agent);
  }
}
