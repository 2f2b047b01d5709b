// Priority lanes on a WebSocket connection: urgent frames overtake a backlog, the least urgent are
// shed to the dead letters under pressure, expired deadlines are dead-lettered — and every frame
// is either delivered or accounted for.
#include "transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/reasons.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

using namespace flowbus;
using namespace flowbus::test;

namespace {
transport::server_options tight() {
  transport::server_options o;
  o.mailbox_capacity = 512;
  o.notsent_lowat = 16 * 1024;
  return o;
}

std::unique_ptr<actors::client> publisher(actors::node& n) {
  auto c = n.connect({"pub", "test"});
  REQUIRE(c.has_value());
  return std::move(c.value());
}
} // namespace

TEST_SUITE("lanes") {

  TEST_CASE("a CRITICAL frame overtakes a BACKGROUND backlog; what is shed is dead-lettered, nothing lost") {
    edge e(tight());
    // the kernel takes little: the backlog stays in the lanes (with the kernel's default buffers
    // the socket could take most of it before the urgent frame came: 36 behind it once in CI)
    raw_peer sub(e.port(), 4096);
    sub.join("sub", {"bulk.>"});
    auto pub = publisher(e.node);
    const std::string payload(200, 'b');
    actors::send_options bg;
    bg.prio = codec::priority::background;
    constexpr int bulk = 20000;
    for (int i = 0; i < bulk; ++i) pub->publish("bulk.x", payload, bg); // the peer does not read yet
    auto& dead = e.node.dead();
    REQUIRE(eventually([&] { return dead.count(actors::dead_reason::shed) > 0; }));
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    CHECK(pub->publish("bulk.x", "urgent", crit).code == actors::errc::ok);

    int background = 0, after_urgent = -1;
    while (auto f = sub.next(1s)) {
      if (f->payload == "urgent") after_urgent = 0;
      else if (f->topic == "bulk.x") {
        ++background;
        if (after_urgent >= 0) ++after_urgent;
      }
    }
    REQUIRE(after_urgent >= 0);
    // the lanes held ~480 frames when it came: it left ahead of them (only what the kernel already
    // had, and at most one BACKGROUND per round, went before it)
    CHECK(after_urgent >= 300);
    const auto shed = dead.count(actors::dead_reason::shed), overflow = dead.count(actors::dead_reason::overflow);
    CHECK(shed > 0);
    CHECK(static_cast<std::uint64_t>(background) + shed + overflow == bulk);
  }

  TEST_CASE("frames whose deadline passes while queued are dead-lettered as expired, not sent") {
    auto o = tight();
    o.mailbox_capacity = 8192; // room for everything: nothing is shed, the socket is what blocks
    edge e(o);
    raw_peer sub(e.port());
    sub.join("sub", {"jobs.>"});
    auto pub = publisher(e.node);
    const std::string filler(200, 'f');
    for (int i = 0; i < 3000; ++i) pub->publish("jobs.fill", filler); // fill kernel buffers and lanes
    std::this_thread::sleep_for(50ms); // the peer does not read: the socket is blocked
    actors::send_options soon;
    soon.deadline_ns = codec::wall_clock_ns() + 20'000'000; // 20 ms
    for (int i = 0; i < 5; ++i) CHECK(pub->publish("jobs.soon", "stale", soon).code == actors::errc::ok);
    std::this_thread::sleep_for(100ms);
    int stale = 0, fill = 0;
    while (auto f = sub.next(1s)) {
      if (f->payload == "stale") ++stale;
      else ++fill;
    }
    auto& dead = e.node.dead();
    CHECK(stale == 0);
    CHECK(dead.count(actors::dead_reason::expired) == 5);
    CHECK(fill == 3000);
    for (const auto& d : dead.take())
      if (d.reason == actors::dead_reason::expired) CHECK(d.recipient == "sub");
  }

  TEST_CASE("a publisher feeding a connection above its high water mark is held (CREDIT 0), then let go") {
    edge e(tight(), lossless_node()); // lanes of 512: throttled from 410 queued
    raw_peer sub(e.port(), 4096); // the kernel takes little: the backlog stays in the lanes
    sub.join("sub", {"bulk"});
    transport::client pub(client_opts(e.port(), "wspub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    const std::string payload(100, 'p');
    constexpr std::uint64_t n = 5000;
    for (std::uint64_t i = 0; i < n; ++i) REQUIRE(pub.publish("bulk", payload) == actors::errc::ok);
    const bool held = eventually([&] { return e.server.stats().holds > 0 && pub.stats().holds > 0; });
    INFO("server holds " << e.server.stats().holds << " client holds " << pub.stats().holds << " in "
                         << e.server.stats().frames_in << " out " << e.server.stats().frames_out << " shed "
                         << e.node.dead().count(actors::dead_reason::shed) << " overflow "
                         << e.node.dead().count(actors::dead_reason::overflow) << " paused " << e.server.stats().paused);
    REQUIRE(held);
    std::uint64_t got = 0; // now the subscriber reads, until everything is accounted for (a
    auto& dead = e.node.dead(); // quiet spell is no end: under TSan on a busy machine 2 s passed)
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (got + dead.count(actors::dead_reason::shed) < n && std::chrono::steady_clock::now() < until)
      if (auto f = sub.next(2s); f && f->payload == payload) ++got;
    CHECK(got + dead.count(actors::dead_reason::shed) == n); // held or shed, never lost
    CHECK(got > n / 2);   // holding kept most of it from being shed
    CHECK(eventually([&] { return !pub.held(); })); // CREDIT 1 after the hold
    pub.close();
    CHECK(pub.stats().unsent == 0);
  }

  TEST_CASE("a held client keeps its data queued; its CRITICAL messages are written ahead of it") {
    edge e(tight(), lossless_node());
    raw_peer sub(e.port(), 4096); // reads nothing yet: its lanes fill and hold the publisher
    sub.join("sub", {"bulk"});
    inbox alarms;
    transport::client watcher(client_opts(e.port(), "watcher", {"alarm"}));
    watcher.on_message(alarms.handler());
    REQUIRE(watcher.connect() == actors::errc::ok);
    transport::client pub(client_opts(e.port(), "wspub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    const std::string payload(100, 'p');
    for (int i = 0; i < 5000; ++i) REQUIRE(pub.publish("bulk", payload) == actors::errc::ok);
    REQUIRE(eventually([&] { return pub.held(); }));
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    const auto sent_before = pub.stats().sent;
    REQUIRE(pub.publish("alarm", "normal") == actors::errc::ok); // queued behind the bulk
    REQUIRE(pub.publish("alarm", "critical", crit) == actors::errc::ok);
    // while held nothing of its data is written — the CRITICAL message is (the node reads it when
    // the hold ends, ahead of everything the client still had queued)
    REQUIRE(eventually([&] { return pub.stats().sent == sent_before + 1; }));
    CHECK(pub.held());
    std::uint64_t got = 0;
    while (auto f = sub.next(2s)) // now the subscriber reads: the hold ends, the rest goes
      if (f->payload == payload) ++got;
    REQUIRE(eventually([&] { return alarms.size() == 2; }));
    CHECK(alarms.all() == std::vector<std::string>{"critical", "normal"});
    CHECK(got + e.node.dead().count(actors::dead_reason::shed) == 5000);
  }

  TEST_CASE("a WebSocket publisher feeding a slow actor agent is held by the agent's mailbox water marks") {
    edge e(tight(), lossless_node());
    actors::agent_spec spec("slow", "test");
    spec.subscriptions = {"work"};
    spec.mailbox_capacity = 512; // throttled from 410 queued
    std::atomic<std::uint64_t> handled{0};
    REQUIRE(e.node.spawn(spec, [&](actors::agent_context&, const actors::delivery&) {
                  std::this_thread::sleep_for(50us);
                  ++handled;
                }).has_value());
    transport::client pub(client_opts(e.port(), "wspub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    constexpr std::uint64_t n = 5000;
    const std::string payload(100, 'w');
    for (std::uint64_t i = 0; i < n; ++i) REQUIRE(pub.publish("work", payload) == actors::errc::ok);
    const bool all = eventually([&] { return handled.load() == n; }, 20s);
    INFO("handled " << handled.load() << ", holds " << e.server.stats().holds << ", overflow "
                    << e.node.dead().count(actors::dead_reason::overflow));
    CHECK(all);
    CHECK(e.server.stats().holds > 0);
    CHECK(pub.stats().holds > 0);
    CHECK(e.node.dead().total() == 0); // held, so nothing overflowed the 512-frame mailbox
    pub.close();
  }

  TEST_CASE("when the node runs out of frame buffers the publisher's connection pauses; nothing is dropped") {
    actors::node_config c = small_node();
    c.buffers = {{{256, 256}}, -1, false, false, 0}; // 256 frames in all: far fewer than the mailbox holds
    edge e(tight(), c);
    raw_peer sub(e.port());
    sub.join("sub", {"bulk"});
    transport::client pub(client_opts(e.port(), "wspub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    const std::string payload(100, 'p');
    std::uint64_t sent = 0;
    while (sent < 20000) // the subscriber does not read yet
      if (pub.publish("bulk", payload) == actors::errc::ok) ++sent;
      else std::this_thread::sleep_for(100us);
    REQUIRE(eventually([&] { return e.server.stats().paused > 0; }));
    // a CRITICAL frame still gets a buffer (the reserve) while every normal one is taken
    auto local = publisher(e.node);
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    CHECK(local->publish("bulk", "urgent", crit).code == actors::errc::ok);
    // a NORMAL one is refused once every buffer is taken; the publisher's backlog may still free a
    // few (frames written into the subscriber's socket buffer) and take them back: any normal one
    // that got a buffer in that window is delivered like the rest
    std::uint64_t normal_ok = 0;
    bool refused = false;
    for (int i = 0; i < 200 && !refused; ++i) {
      const auto code = local->publish("bulk", "normal").code;
      refused = code == actors::errc::no_buffer;
      if (code == actors::errc::ok) ++normal_ok;
      if (!refused) std::this_thread::sleep_for(10ms);
    }
    CHECK(refused);
    std::uint64_t got = 0, urgent = 0, normal = 0;
    while (auto f = sub.next(2s)) {
      if (f->payload == "urgent") ++urgent;
      else if (f->payload == "normal") ++normal;
      else if (f->payload == payload) ++got;
    }
    CHECK(urgent == 1);
    CHECK(normal == normal_ok);
    CHECK(got == sent);
    CHECK(e.node.dead().total() == 0);
    pub.close();
  }

  TEST_CASE("under a BACKGROUND flood from another connection, every CRITICAL probe arrives, nothing is lost") {
    transport::server_options o;
    o.mailbox_capacity = 16384;
    edge e(o);
    std::atomic<int> probes{0}, flood{0};
    auto so = client_opts(e.port(), "sub", {"load"});
    so.receive_buffer = 64 * 1024;
    transport::client sub(so);
    sub.on_message([&](const transport::incoming& m) { (m.payload == "probe" ? probes : flood).fetch_add(1); });
    REQUIRE(sub.connect() == actors::errc::ok);
    std::atomic<bool> done{false};
    std::uint64_t flood_sent = 0, flood_unsent = 0;
    std::thread flooder([&] {
      transport::client c(client_opts(e.port(), "flooder"));
      REQUIRE(c.connect() == actors::errc::ok);
      actors::send_options bg;
      bg.prio = codec::priority::background;
      const std::string payload(128, 'f');
      while (!done.load()) {
        if (c.publish("load", payload, bg) == actors::errc::ok) ++flood_sent;
        else std::this_thread::sleep_for(50us);
      }
      c.close(); // after what is queued (bounded: what it could not write is counted)
      flood_unsent = c.stats().unsent;
    });
    transport::client prober(client_opts(e.port(), "prober"));
    REQUIRE(prober.connect() == actors::errc::ok);
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    constexpr int n = 300;
    std::this_thread::sleep_for(200ms);
    for (int i = 0; i < n; ++i) {
      REQUIRE(prober.publish("load", "probe", crit) == actors::errc::ok);
      std::this_thread::sleep_for(2ms);
    }
    done = true;
    flooder.join();
    auto& dead = e.node.dead();
    CHECK(eventually([&] { return probes.load() == n; }, 10s));
    // every flood frame the flooder's client wrote is delivered or dead-lettered (shed)
    const bool balanced = eventually(
        [&] { return static_cast<std::uint64_t>(flood.load()) + dead.total() == flood_sent - flood_unsent; }, 20s);
    INFO("probes " << probes.load() << " flood " << flood.load() << " shed " << dead.count(actors::dead_reason::shed)
                      << " overflow " << dead.count(actors::dead_reason::overflow) << " unavailable "
                      << dead.count(actors::dead_reason::agent_unavailable) << " slow " << e.server.stats().slow_consumers
                      << " in " << e.server.stats().frames_in << " out " << e.server.stats().frames_out << " client recv "
                      << sub.stats().received << " total dead " << dead.total() << " sent " << flood_sent
                      << " unsent " << flood_unsent << " paused " << e.server.stats().paused << " holds "
                      << e.server.stats().holds);
    CHECK(balanced);
    prober.close();
    sub.close();
  }

  TEST_CASE("a receive window: the node writes that many data messages ahead of the agent's CREDIT") {
    edge e(tight());
    raw_peer sub(e.port());
    sub.join("sub", {"jobs"}, 8);
    auto pub = publisher(e.node);
    for (int i = 0; i < 100; ++i) REQUIRE(pub->publish("jobs", std::to_string(i)).code == actors::errc::ok);
    auto take = [&](int most, std::chrono::milliseconds quiet) {
      std::vector<std::string> got;
      while (static_cast<int>(got.size()) < most)
        if (auto f = sub.next(quiet)) got.push_back(f->payload);
        else break;
      return got;
    };
    auto first = take(100, 300ms);
    REQUIRE(first.size() == 8); // then nothing: the window is used up
    CHECK(first.front() == "0");
    CHECK(first.back() == "7");
    CHECK(e.server.stats().window_waits > 0);
    // CRITICAL is not held by the window (it may overdraw it by one more window)
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    REQUIRE(pub->publish("jobs", "urgent", crit).code == actors::errc::ok);
    auto urgent = take(100, 300ms);
    INFO("out " << e.server.stats().frames_out << " waits " << e.server.stats().window_waits);
    REQUIRE(urgent.size() == 1);
    CHECK(urgent[0] == "urgent");
    // it counted against the window all the same: -1 now, so CREDIT 1 lets nothing out, 3 more three
    sub.send_credit(1);
    CHECK(take(100, 300ms).empty());
    sub.send_credit(3);
    auto next = take(100, 300ms);
    REQUIRE(next.size() == 3);
    CHECK(next.front() == "8");
    CHECK(next.back() == "10");
    sub.send_credit(1000); // more than the window: the window
    CHECK(take(100, 300ms).size() == 8);
    int got = 8 + 3 + 8, expect = got;
    while (got < 100) { // the rest, a grant at a time, in order
      sub.send_credit(8);
      auto more = take(8, 1s);
      REQUIRE(!more.empty());
      for (const auto& p : more) CHECK(p == std::to_string(expect++));
      got += static_cast<int>(more.size());
    }
    CHECK(got == 100);
    CHECK(e.node.dead().total() == 0);
  }

  TEST_CASE("with a receive window the backlog waits in the lanes: a CRITICAL message overtakes it") {
    edge e(tight());
    auto o = client_opts(e.port(), "slow", {"jobs"});
    o.receive_window = 16;
    transport::client sub(o);
    std::atomic<bool> go{false};
    std::mutex m;
    std::vector<std::string> order;
    sub.on_message([&](const transport::incoming& in) {
      while (!go.load()) std::this_thread::sleep_for(1ms); // a handler stuck on the first message
      std::lock_guard<std::mutex> g(m);
      order.emplace_back(in.payload);
    });
    REQUIRE(sub.connect() == actors::errc::ok);
    auto pub = publisher(e.node);
    constexpr int n = 400; // in the lanes (512): no shedding, no holding
    for (int i = 0; i < n; ++i) REQUIRE(pub->publish("jobs", "bulk").code == actors::errc::ok);
    REQUIRE(eventually([&] { return e.server.stats().window_waits > 0; }));
    actors::send_options crit;
    crit.prio = codec::priority::critical;
    REQUIRE(pub->publish("jobs", "urgent", crit).code == actors::errc::ok);
    go = true;
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> g(m);
      return order.size() == n + 1;
    }));
    std::lock_guard<std::mutex> g(m);
    const auto at = std::find(order.begin(), order.end(), "urgent") - order.begin();
    // behind at most the window (what was written before it came), ahead of the other ~380
    CHECK(at <= 17);
    CHECK(e.node.dead().total() == 0);
  }

  TEST_CASE("two agents publishing to each other through used-up windows and held publishers both finish") {
    edge e(tight(), lossless_node()); // throttled from 410 queued: both publishers are held again and again
    auto make = [&](const std::string& id, const std::string& topic) {
      auto o = client_opts(e.port(), id, {topic});
      o.receive_window = 8;
      return std::make_unique<transport::client>(o);
    };
    auto a = make("a", "to.a"), b = make("b", "to.b");
    std::atomic<std::uint64_t> at_a{0}, at_b{0};
    a->on_message([&](const transport::incoming&) {
      ++at_a;
      std::this_thread::sleep_for(20us);
    });
    b->on_message([&](const transport::incoming&) {
      ++at_b;
      std::this_thread::sleep_for(20us);
    });
    REQUIRE(a->connect() == actors::errc::ok);
    REQUIRE(b->connect() == actors::errc::ok);
    constexpr std::uint64_t n = 5000;
    const std::string payload(64, 'x');
    std::thread ta([&] {
      for (std::uint64_t i = 0; i < n;)
        if (a->publish("to.b", payload) == actors::errc::ok) ++i;
        else std::this_thread::sleep_for(50us);
    });
    for (std::uint64_t i = 0; i < n;)
      if (b->publish("to.a", payload) == actors::errc::ok) ++i;
      else std::this_thread::sleep_for(50us);
    ta.join();
    auto& dead = e.node.dead();
    // both are slow consumers flooding each other: the node reads each on for its CREDITs (the
    // cycle would never end) and what the other's lanes cannot queue is shed — counted, not lost
    const bool done = eventually(
        [&] {
          return at_a.load() + at_b.load() + dead.count(actors::dead_reason::overflow) +
                     dead.count(actors::dead_reason::shed) ==
                 2 * n;
        },
        20s);
    INFO("a got " << at_a.load() << ", b got " << at_b.load() << ", holds " << e.server.stats().holds
                  << ", window waits " << e.server.stats().window_waits << ", dead " << dead.total());
    CHECK(done);
    CHECK(e.server.stats().holds > 0);
    CHECK(e.server.stats().window_waits > 0);
  }

  TEST_CASE("a held publisher whose own window is used up stays held when its recipient is not in a cycle") {
    edge e(tight(), lossless_node()); // lanes of 512: throttled from 410 queued
    raw_peer worker(e.port());
    worker.join("worker", {"to.worker"}, 8); // and then reads nothing: its window stays used up
    auto oc = client_opts(e.port(), "coordinator", {"to.coordinator"});
    oc.receive_window = 8;
    transport::client coordinator(oc);
    std::atomic<std::uint64_t> got{0};
    coordinator.on_message([&](const transport::incoming&) {
      ++got;
      std::this_thread::sleep_for(100us);
    });
    REQUIRE(coordinator.connect() == actors::errc::ok);
    auto local = publisher(e.node);
    for (int i = 0; i < 50; ++i) REQUIRE(local->publish("to.worker", "task").code == actors::errc::ok);
    REQUIRE(eventually([&] { return e.server.stats().window_waits > 0; }));
    constexpr std::uint64_t n = 3000;
    for (std::uint64_t i = 0; i < n; ++i) worker.send_publish("to.coordinator", "result"); // blocks while held
    const bool all = eventually([&] { return got.load() == n; }, 20s);
    INFO("coordinator got " << got.load() << ", holds " << e.server.stats().holds << ", shed "
                            << e.node.dead().count(actors::dead_reason::shed));
    CHECK(all);
    CHECK(e.server.stats().holds > 0);
    CHECK(e.node.dead().total() == 0); // held, not read on: nothing shed
  }

  // Regression (issue 17.4): a publisher held by the node (CREDIT 0: not read) kept sending
  // HEARTBEATs the node did not read, and was taken down for missed heartbeats (ERROR 72) after
  // ~3 intervals — before the slow consumer that caused the hold was cut.
  TEST_CASE("a publisher the node holds is not taken down for heartbeats it could not read") {
    transport::server_options o = tight();
    o.write_timeout = 2000ms; // the hold lasts until the non-reading subscriber is cut: ~2 s
    edge e(o, lossless_node()); // a topic whose slow subscribers hold publishers
    raw_peer sub(e.port(), 4096);
    sub.join("stuck", {"bulk"}); // and never reads again
    auto po = client_opts(e.port(), "wspub");
    po.heartbeat = 150ms; // taken down after 3 missed intervals: ~450 ms of not being read
    po.reconnect = false;
    transport::client pub(po);
    REQUIRE(pub.connect() == actors::errc::ok);
    const std::string payload(100, 'p');
    for (int i = 0; i < 5000; ++i) REQUIRE(pub.publish("bulk", payload) == actors::errc::ok);
    REQUIRE(eventually([&] { return e.server.stats().holds > 0; }));
    std::this_thread::sleep_for(1000ms); // > 6 heartbeat intervals held
    CHECK(pub.connected());
    CHECK(e.node.agents().size() == 2);
    REQUIRE(eventually([&] { return e.server.stats().slow_consumers == 1; }, 5s)); // the cause is cut
    REQUIRE(eventually([&] { return !pub.held(); }, 5s));                      // the hold ends
    CHECK(pub.connected()); // never taken down, never reconnected
    CHECK(pub.stats().connects == 1);
    pub.close();
  }

  // Regression (issue 17.5): a subscriber whose receive window was used up, but which kept
  // heartbeating, held its publisher — and so its whole topic — for ever (35 s observed).
  TEST_CASE("a subscriber that grants no CREDIT for write_timeout is cut; its backlog is dead-lettered, the others go on") {
    transport::server_options o = tight();
    o.write_timeout = 500ms;
    edge e(o, lossless_node()); // a topic whose slow subscribers hold publishers
    raw_peer starved(e.port());
    starved.join("starved", {"jobs"}, 8); // a window of 8, never granted back
    inbox got;
    transport::client good(client_opts(e.port(), "good", {"jobs"}));
    good.on_message(got.handler());
    REQUIRE(good.connect() == actors::errc::ok);
    transport::client pub(client_opts(e.port(), "wspub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    constexpr int n = 3000; // far above the starved lanes' high water mark: the publisher is held
    for (int i = 0; i < n; ++i) REQUIRE(pub.publish("jobs", std::to_string(i)) == actors::errc::ok);
    // the starved one still shows it is alive
    const auto until = std::chrono::steady_clock::now() + 3s;
    while (e.server.stats().slow_consumers == 0 && std::chrono::steady_clock::now() < until) {
      codec::message beat;
      beat.type = codec::msg_type::heartbeat;
      starved.send(beat);
      std::this_thread::sleep_for(50ms);
    }
    CHECK(e.server.stats().slow_consumers == 1);
    REQUIRE(eventually([&] { return got.size() == static_cast<std::size_t>(n); }, 10s)); // the others get everything
    const auto seen = starved.until_closed();
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back().type == codec::msg_type::error);
    CHECK(seen.back().error_code == transport::code_of(transport::reason::slow_consumer));
    std::size_t data = 0;
    for (const auto& f : seen) data += f.type == codec::msg_type::publish ? 1 : 0;
    CHECK(data == 8); // its window, then nothing
    // what waited for it when it was cut is accounted for (after the cut it is no longer a subscriber)
    CHECK(dead_letters_for(e.node, "starved") > 0);
    pub.close();
    good.close();
  }

  // Issue 17.6: one subscriber that stopped reading froze every other subscriber of its topic
  // (its publisher was held for it). By default a multicast topic isolates it.
  TEST_CASE("a subscriber that stops reading is isolated by default: the publisher is not held, the others get everything") {
    transport::server_options o = tight();
    o.write_timeout = 1000ms;
    edge e(o); // no lossless topics
    raw_peer stuck(e.port(), 4096);
    stuck.join("stuck", {"news"}); // and never reads again
    inbox got;
    transport::client good(client_opts(e.port(), "good", {"news"}));
    good.on_message(got.handler());
    REQUIRE(good.connect() == actors::errc::ok);
    transport::client pub(client_opts(e.port(), "wspub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    // ten times what the stuck one's lanes hold, at the pace the good one reads (isolation is for
    // subscribers that fall behind the topic's rate; one that keeps up loses nothing)
    constexpr int n = 5000;
    for (int i = 0; i < n;) {
      if (i - static_cast<int>(got.size()) > 128) {
        std::this_thread::sleep_for(100us);
        continue;
      }
      REQUIRE(pub.publish("news", std::string(100, 'n')) == actors::errc::ok);
      ++i;
    }
    REQUIRE(eventually([&] { return got.size() == static_cast<std::size_t>(n); }, 10s));
    CHECK(e.server.stats().holds == 0); // never held for the stuck one
    CHECK(pub.stats().holds == 0);
    // what the stuck one could not take is counted in the dead letters, then it is cut
    REQUIRE(eventually([&] { return e.server.stats().slow_consumers == 1; }, 5s));
    CHECK(dead_letters_for(e.node, "stuck") > 0);
    pub.close();
    good.close();
  }

  TEST_CASE("lossless_topics: an invalid pattern refuses the node") {
    actors::node_config c = small_node();
    c.lossless_topics = {"a..b"};
    CHECK_THROWS_AS(actors::node{c}, std::system_error);
  }
}
