// The broker end to end, in process: routing semantics, delivery modes, request/reply, balancing,
// heartbeat expiry, refusals, overflow and shutdown. Clients (agents driven by the test thread)
// make the outcomes deterministic; actor agents are used where the behaviour under test is the
// actor's (handlers, requests from actors, draining at shutdown).
#include <flowbus/actors/node.hpp>

#include "actors/actors_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>

using namespace flowbus::actors;
using flowbus::test::connect;
using flowbus::test::spec;
using namespace std::chrono_literals;

namespace {
node_config small() {
  node_config c;
  c.workers = 2;
  return c;
}

/// Payloads a client has waiting, without blocking long.
std::vector<std::string> drain(client& c) {
  std::vector<std::string> out;
  while (auto m = c.receive(20ms))
    out.emplace_back(m->msg.payload);
  return out;
}
} // namespace

TEST_SUITE("node") {
  TEST_CASE("routing semantics: exact, *, >, overlaps once, unsubscribe, agent departure") {
    node n(small());
    auto exact = connect(n, spec("exact", {"agent.worker.7.status"}));
    auto star = connect(n, spec("star", {"agent.*.7.status"}));
    auto tail = connect(n, spec("tail", {"agent.>"}));
    auto overlap = connect(n, spec("overlap", {"agent.worker.7.status", "agent.*.*.status", "agent.>"}));
    auto other = connect(n, spec("other", {"coordinator.>"}));
    auto pub = connect(n, spec("pub"));

    struct row {
      const char* topic;
      std::set<std::string> receivers;
    };
    const row table[] = {
        {"agent.worker.7.status", {"exact", "star", "tail", "overlap"}},
        {"agent.worker.8.status", {"tail", "overlap"}},
        {"agent.coordinator.7.status", {"star", "tail", "overlap"}},
        {"agent.worker", {"tail", "overlap"}},
        {"agent", {}}, // `>` needs at least one more token
        {"coordinator.task.assign", {"other"}},
        {"nobody.listens", {}},
    };
    for (const row& r : table) {
      CAPTURE(r.topic);
      const send_result s = pub->publish(r.topic, r.topic);
      CHECK(s.code == errc::ok);
      CHECK(s.delivered == r.receivers.size());
      std::set<std::string> got;
      for (client* c : {exact.get(), star.get(), tail.get(), overlap.get(), other.get()}) {
        const auto msgs = drain(*c);
        CHECK(msgs.size() <= 1); // overlapping patterns deliver once
        if (!msgs.empty()) {
          CHECK(msgs[0] == r.topic);
          got.insert(c->id());
        }
      }
      CHECK(got == r.receivers);
    }

    CHECK(tail->unsubscribe("agent.>") == errc::ok);
    CHECK(tail->unsubscribe("agent.>") == errc::not_subscribed);
    CHECK(pub->publish("agent.worker.8.status", "x").delivered == 1); // overlap only
    CHECK(drain(*tail).empty());
    CHECK(drain(*overlap).size() == 1);

    overlap->leave();
    // the departure reaches the routing table asynchronously; a blocking call to the directory
    // orders after it
    CHECK(pub->subscribe("sync") == errc::ok);
    CHECK(pub->publish("agent.worker.7.status", "y").delivered == 2); // exact, star
    const send_result gone = pub->send_to("overlap", "z");
    CHECK(gone.code == errc::agent_unavailable);
    CHECK(n.dead().count(dead_reason::agent_unavailable) == 1);

    CHECK(pub->publish("agent..x", "bad").code == errc::invalid_topic);
    CHECK(pub->publish("agent.*", "bad").code == errc::invalid_topic);
    CHECK(pub->subscribe("agent.>.x") == errc::invalid_pattern);
  }

  TEST_CASE("unicast, broadcast to all and to one type, payload and fields intact") {
    node n(small());
    auto a = connect(n, spec("a", {}, "worker"));
    auto b = connect(n, spec("b", {}, "worker"));
    auto c = connect(n, spec("c", {}, "coordinator"));

    send_options o;
    o.type = flowbus::codec::msg_type::task_assignment;
    o.prio = flowbus::codec::priority::high;
    o.message_id = 42;
    CHECK(c->send_to("a", "task-1", o).delivered == 1);
    auto m = a->receive(1s);
    REQUIRE(m);
    CHECK(m->msg.payload == "task-1");
    CHECK(m->msg.source == "c");
    CHECK(m->msg.target == "a");
    CHECK(m->msg.type == flowbus::codec::msg_type::task_assignment);
    CHECK(m->msg.prio == flowbus::codec::priority::high);
    CHECK(m->msg.message_id == 42);
    CHECK(m->msg.timestamp_ns > 0);
    CHECK(drain(*b).empty());

    CHECK(c->broadcast("all").delivered == 2); // everyone but the sender
    CHECK(drain(*a) == std::vector<std::string>{"all"});
    CHECK(drain(*b) == std::vector<std::string>{"all"});
    CHECK(drain(*c).empty());
    CHECK(a->broadcast("coordinators", "coordinator").delivered == 1);
    CHECK(drain(*c) == std::vector<std::string>{"coordinators"});
    CHECK(drain(*b).empty());
  }

  TEST_CASE("request/reply: reply, typed timeout, unavailable, no responders; late replies are dead letters") {
    node n(small());
    auto upper = n.spawn(spec("upper", {"svc.upper"}), [](agent_context& ctx, const delivery& d) {
      if (!d.is_request()) return;
      std::string s(d.payload);
      for (char& ch : s)
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      ctx.respond(d, s);
    });
    REQUIRE(upper.has_value());
    auto slow = connect(n, spec("slow")); // receives requests and answers only when told
    auto me = connect(n, spec("me"));

    reply r = me->request(destination::agent("upper"), "hello", 1s);
    REQUIRE(r.code == errc::ok);
    CHECK(r.response.msg.payload == "HELLO");
    CHECK(r.response.msg.source == "upper");
    r = me->request(destination::topic("svc.upper"), "topic", 1s);
    REQUIRE(r.code == errc::ok);
    CHECK(r.response.msg.payload == "TOPIC");

    const auto t0 = std::chrono::steady_clock::now();
    r = me->request(destination::agent("slow"), "late", 50ms);
    CHECK(r.code == errc::timeout);
    CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
    auto req = slow->receive(1s);
    REQUIRE(req);
    CHECK(req->msg.is_request());
    CHECK(slow->respond(req->msg, "too late").delivered == 1);
    CHECK(me->request(destination::agent("nobody"), "x", 1s).code == errc::agent_unavailable);
    CHECK(me->request(destination::topic("svc.none"), "x", 1s).code == errc::no_responders);
    CHECK(me->request(destination::capability("fly"), "x", 1s).code == errc::no_capable_agent);
    // the late reply arrived while the last requests waited: counted, not lost
    r = me->request(destination::agent("upper"), "again", 1s);
    CHECK(r.code == errc::ok);
    CHECK(n.dead().count(dead_reason::network_timeout) == 1);
  }

  TEST_CASE("with parked idle workers, actor agents still pass work between them without stalls") {
    node_config c = small();
    c.park_idle_workers = true; // CAF workers sleep at once when idle (flowbus node's default)
    node n(c);
    REQUIRE(n.spawn(spec("echo"), [](agent_context& ctx, const delivery& d) {
              if (d.is_request()) ctx.respond(d, d.payload);
            }).has_value());
    // 300 request/reply round trips one after another, each started by the previous reply: a
    // hand-over that waited for an idle worker's 10 ms time-out would take 3 s or more
    constexpr int rounds = 300;
    auto done = std::make_shared<std::promise<int>>();
    auto fut = done->get_future();
    struct chain {
      static void next(agent_context& ctx, int left, std::shared_ptr<std::promise<int>> p, int ok) {
        if (left == 0) return p->set_value(ok);
        ctx.request(destination::agent("echo"), "r", 1s, [&ctx, left, p, ok](reply&& r) {
          next(ctx, left - 1, p, ok + (r && r.response.msg.payload == "r" ? 1 : 0));
        });
      }
    };
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(n.spawn(spec("asker"), [](agent_context&, const delivery&) {},
                    [done](agent_context& ctx) { chain::next(ctx, rounds, done, 0); })
                .has_value());
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    CHECK(fut.get() == rounds);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  }

  TEST_CASE("requests from an actor agent get a reply or a typed error, exactly once") {
    node n(small());
    REQUIRE(n.spawn(spec("echo"), [](agent_context& ctx, const delivery& d) {
              if (d.is_request()) ctx.respond(d, d.payload);
            }).has_value());
    REQUIRE(n.connect(spec("mute")).has_value()); // never answers: keep its client alive below
    auto mute = n.connect(spec("mute2"));
    REQUIRE(mute.has_value());
    std::promise<std::vector<std::string>> outcomes;
    auto fut = outcomes.get_future();
    auto results = std::make_shared<std::vector<std::string>>();
    REQUIRE(n.spawn(spec("asker"), [](agent_context&, const delivery&) {},
                    [results, p = std::make_shared<std::promise<std::vector<std::string>>>(std::move(outcomes))](
                        agent_context& ctx) {
                      auto done = [results, p](std::string s) {
                        results->push_back(std::move(s));
                        if (results->size() == 3) p->set_value(*results);
                      };
                      ctx.request(destination::agent("echo"), "ping", 5s, // (a loaded machine: only mute2's may time out)
                                  [done](reply&& r) { done(r ? std::string(r.response.msg.payload) : to_string(r.code)); });
                      ctx.request(destination::agent("mute2"), "hello?", 30ms,
                                  [done](reply&& r) { done(to_string(r.code)); });
                      ctx.request(destination::agent("ghost"), "boo", 5s, [done](reply&& r) { done(to_string(r.code)); });
                    })
                .has_value());
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    std::vector<std::string> got = fut.get();
    std::sort(got.begin(), got.end());
    std::string joined; // printed by doctest when it differs
    for (const auto& s : got)
      joined += s + " ";
    CHECK(joined == "agent_unavailable ping timeout ");
  }

  TEST_CASE("queue group: each message to one member, round-robin exactly even; plain subscribers get all") {
    node n(small());
    constexpr int members = 3, messages = 300;
    std::atomic<int> counts[members] = {};
    std::atomic<int> audit{0};
    for (int i = 0; i < members; ++i) {
      agent_spec s = spec("worker-" + std::to_string(i));
      s.queue_groups = {{"tasks.>", "workers"}};
      REQUIRE(n.spawn(s, [&counts, i](agent_context&, const delivery&) { counts[i].fetch_add(1); }).has_value());
    }
    REQUIRE(n.spawn(spec("auditor", {"tasks.>"}), [&](agent_context&, const delivery&) { audit.fetch_add(1); })
                .has_value());
    auto pub = connect(n, spec("coordinator"));
    for (int k = 0; k < messages; ++k)
      REQUIRE(pub->publish("tasks.summarize", "t").delivered == 2);
    const shutdown_report rep = n.shutdown();
    CHECK(rep.drained);
    CHECK(audit.load() == messages);
    for (auto& c : counts) // one publisher, round-robin: exactly messages / members each
      CHECK(c.load() == messages / members);
  }

  TEST_CASE("least-loaded balancing sends to the member with the fewest messages in flight") {
    node n(small());
    agent_spec sa = spec("a"), sb = spec("b");
    sa.capabilities = sb.capabilities = {"summarize"};
    auto a = connect(n, sa);
    auto b = connect(n, sb);
    auto pub = connect(n, spec("pub"));
    for (int i = 0; i < 10; ++i)
      REQUIRE(pub->send_to_capability("summarize", "x", balance::least_loaded).delivered == 1);
    // neither has received anything: the load alternates, 5 each
    CHECK(drain(*a).size() == 5);
    // a is empty now, b still holds 5: the next 4 all go to a, then they tie and alternate
    for (int i = 0; i < 4; ++i)
      REQUIRE(pub->send_to_capability("summarize", "y", balance::least_loaded).delivered == 1);
    CHECK(drain(*a).size() == 4);
    CHECK(drain(*b).size() == 5);
  }

  TEST_CASE("capability routing: round-robin among the capable, typed refusal when none") {
    node n(small());
    agent_spec s1 = spec("s1"), s2 = spec("s2"), t = spec("t");
    s1.capabilities = {"summarize", "translate"};
    s2.capabilities = {"summarize"};
    t.capabilities = {"translate"};
    auto c1 = connect(n, s1), c2 = connect(n, s2), c3 = connect(n, t);
    auto pub = connect(n, spec("pub"));
    for (int i = 0; i < 10; ++i)
      REQUIRE(pub->send_to_capability("summarize", "s").delivered == 1);
    CHECK(drain(*c1).size() == 5);
    CHECK(drain(*c2).size() == 5);
    CHECK(drain(*c3).empty());
    auto m = (pub->send_to_capability("translate", "t"), c1->receive(20ms));
    if (!m) m = c3->receive(20ms);
    REQUIRE(m);
    CHECK(m->msg.target == "translate");
    CHECK(pub->send_to_capability("fly", "x").code == errc::no_capable_agent);
  }

  TEST_CASE("heartbeats: a silent agent is marked down and unsubscribed, a beating one stays") {
    node_config cfg = small();
    cfg.missed_heartbeats = 3;
    node n(cfg);
    agent_spec quiet = spec("quiet", {"news"}), alive = spec("alive", {"news"});
    quiet.heartbeat_interval = 20ms;
    alive.heartbeat_interval = 50ms; // beats every 5 ms: a wide margin on a loaded machine
    auto q = connect(n, quiet);
    auto a = connect(n, alive);
    auto pub = connect(n, spec("pub"));
    const auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
      a->heartbeat();
      std::this_thread::sleep_for(5ms);
    }
    CHECK_FALSE(q->up());
    CHECK(a->up());
    CHECK(pub->publish("news", "n").delivered == 1);
    CHECK(pub->send_to("quiet", "hello?").code == errc::agent_unavailable);
    CHECK(n.agents().size() == 2);
  }

  TEST_CASE("topic actors own the subscriber sets: a pattern lives while it has members, and comes back on demand") {
    node_config cfg = small();
    cfg.topic_shards = 3; // patterns share shards: each must keep its own members
    node n(cfg);
    auto a = connect(n, spec("a", {"jobs.>", "news.tech"}));
    auto b = connect(n, spec("b"));
    CHECK(b->subscribe_group("jobs.>", "pool") == errc::ok);
    CHECK(n.topics() == std::vector<std::string>{"jobs.>", "news.tech"});
    auto eventually = [&](std::vector<std::string> want) {
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (n.topics() != want && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(5ms);
      return n.topics() == want;
    };
    CHECK(a->unsubscribe("news.tech") == errc::ok);
    CHECK(eventually({"jobs.>"}));
    a->leave(); // "jobs.>" still has b's group membership: it stays
    std::this_thread::sleep_for(100ms);
    CHECK(n.topics() == std::vector<std::string>{"jobs.>"});
    CHECK(b->unsubscribe("jobs.>", "pool") == errc::ok);
    CHECK(eventually({}));
    // a pattern that went away is taken up again by the next subscription, and routes again
    CHECK(b->subscribe("news.tech") == errc::ok);
    auto pub = connect(n, spec("pub"));
    CHECK(pub->publish("news.tech", "again").delivered == 1);
    CHECK(drain(*b) == std::vector<std::string>{"again"});
    CHECK(n.topics() == std::vector<std::string>{"news.tech"});
  }

  TEST_CASE("an agent holds at most max_subscriptions patterns: beyond, too_many_subscriptions") {
    node_config cfg = small();
    cfg.max_subscriptions = 3;
    node n(cfg);
    CHECK(n.connect(spec("greedy", {"a", "b", "c", "d"})).error() == errc::too_many_subscriptions);
    auto a = connect(n, spec("a", {"one", "two"}));
    CHECK(a->subscribe("three") == errc::ok);
    CHECK(a->subscribe("four") == errc::too_many_subscriptions);
    CHECK(a->subscribe("two") == errc::ok);              // one it holds: not a new one
    CHECK(a->subscribe_group("two", "pool") == errc::ok); // the same pattern in a group: still three patterns
    CHECK(a->unsubscribe("one") == errc::ok);
    CHECK(a->subscribe("four") == errc::ok); // room again
    auto pub = connect(n, spec("pub"));
    CHECK(pub->publish("four", "x").delivered == 1);
    CHECK(pub->publish("one", "x").delivered == 0);
  }

  TEST_CASE("registration refusals are typed") {
    node n(small());
    auto a = connect(n, spec("a"));
    CHECK(n.connect(spec("a")).error() == errc::duplicate_agent);
    CHECK(n.connect(spec("")).error() == errc::invalid_agent);
    CHECK(n.connect(spec("b", {"x..y"})).error() == errc::invalid_pattern);
    agent_spec bad = spec("c");
    bad.heartbeat_interval = 0ms;
    CHECK(n.spawn(bad, [](agent_context&, const delivery&) {}).error() == errc::invalid_agent);
    CHECK(n.agents().size() == 1);
  }

  TEST_CASE("a full mailbox refuses with mailbox_full and keeps the message as a dead letter") {
    node n(small());
    agent_spec s = spec("tiny", {"flood"});
    s.mailbox_capacity = 4;
    auto tiny = connect(n, s);
    auto pub = connect(n, spec("pub"));
    int full = 0;
    for (int i = 0; i < 10; ++i)
      full += pub->publish("flood", "x").code == errc::mailbox_full;
    CHECK(full == 6);
    CHECK(n.dead().count(dead_reason::overflow) == 6);
    auto letters = n.dead().take();
    REQUIRE(letters.size() == 6);
    CHECK(letters[0].recipient == "tiny");
    CHECK(letters[0].frame.size() > 40);
    CHECK_FALSE(letters[0].frame.pooled()); // a copy: dead letters hold no pool buffer
    CHECK(drain(*tiny).size() == 4);
  }

  TEST_CASE("clean shutdown: every message handed to an actor agent is handled, including forwarded ones") {
    const int messages = static_cast<int>(20000 / flowbus::test::scale);
    std::atomic<int> forwarded{0}, sunk{0};
    node_config cfg = small();
    cfg.dead_letter_capacity = 1000000; // keep every refusal to check it below
    node n(cfg);
    REQUIRE(n.spawn(spec("sink"), [&](agent_context&, const delivery&) { sunk.fetch_add(1); }).has_value());
    REQUIRE(n.spawn(spec("relay", {"in"}), [&](agent_context& ctx, const delivery& d) {
              forwarded.fetch_add(1);
              ctx.send_to("sink", d.payload);
            }).has_value());
    auto pub = connect(n, spec("pub"));
    int sent = 0;
    for (int i = 0; i < messages; ++i) {
      const send_result r = pub->publish("in", "m");
      if (r.code == errc::mailbox_full) { // backpressure: let the relay catch up
        std::this_thread::yield();
        continue;
      }
      REQUIRE(r.code == errc::ok);
      ++sent;
    }
    const shutdown_report rep = n.shutdown();
    CHECK(rep.drained);
    CHECK(rep.dead_lettered == 0);
    CHECK(forwarded.load() == sent);
    // relay -> sink copies the sink had no room for are dead letters (overflow), none lost
    int refused_for_sink = 0;
    for (const dead_letter& d : n.dead().take())
      refused_for_sink += d.recipient == "sink" && d.reason == dead_reason::overflow;
    CHECK(n.dead().evicted() == 0);
    CHECK(sunk.load() + refused_for_sink == sent);
    CHECK(pub->publish("in", "after").code == errc::node_stopped);
    CHECK(n.connect(spec("late")).error() == errc::node_stopped);
  }

  TEST_CASE("a client blocked in receive() longer than its heartbeat interval stays up") {
    node n(small());
    auto s = spec("patient");
    s.heartbeat_interval = 100ms; // down after 3 missed: 300 ms
    auto c = connect(n, s);
    CHECK(!c->receive(700ms)); // nothing arrives; the wait heartbeats meanwhile
    CHECK(c->up());
    CHECK(n.agents().size() == 1);
  }
}
