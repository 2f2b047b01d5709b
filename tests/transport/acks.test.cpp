// Acknowledged delivery over WebSocket: the node ACKs a publisher once every recipient has the
// message queued; a subscriber that acknowledges (client_options::acks) has every frame kept until
// it does, so when its process is killed mid-stream each acknowledged message is either
// acknowledged by it or a dead letter — an exact count. Receivers drop redelivered duplicates.
#include "transport_support.hpp"

#include <flowbus/transport/client.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <future>
#include <mutex>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

using namespace flowbus;
using namespace flowbus::test;

namespace {
transport::client_options client_for(std::uint16_t port, std::string id) {
  auto o = client_opts(port, std::move(id));
  o.reconnect = false;
  return o;
}

/// A subscriber of `topic` that acknowledges what it handles (acknowledged delivery).
transport::client_options acking_sub(std::uint16_t port, std::string id, std::string topic) {
  auto o = client_for(port, std::move(id));
  o.subscriptions = {std::move(topic)};
  o.acks = true;
  return o;
}

/// A server retrying a failed message 3 times in all, quickly, with the breaker out of the way.
transport::server_options retrying_server() {
  transport::server_options o;
  o.retry = {3, std::chrono::milliseconds(1), std::chrono::milliseconds(5)};
  o.breaker_enabled = false;
  return o;
}

/// A node, an acking subscriber on "jobs" counting what it gets, and a publisher, both connected.
struct jobs_edge {
  edge e;
  std::atomic<int> got{0};
  transport::client sub{acking_sub(e.port(), "sub", "jobs")};
  transport::client pub{client_for(e.port(), "pub")};
  jobs_edge() {
    sub.on_message([this](const transport::incoming&) { ++got; });
    REQUIRE(sub.connect() == actors::errc::ok);
    REQUIRE(pub.connect() == actors::errc::ok);
  }
};
} // namespace

TEST_SUITE("acks") {

  TEST_CASE("a subscriber process killed mid-stream: every acknowledged message was delivered or is a dead letter") {
    int to_child[2];
    REQUIRE(pipe(to_child) == 0);
    const pid_t child = fork(); // the suite's first test: before this process starts any thread
    REQUIRE(child >= 0);
    if (child == 0) { // the subscriber: acknowledges what it handles until it is killed
      close(to_child[1]);
      std::uint16_t port = 0;
      if (read(to_child[0], &port, sizeof port) != sizeof port) _exit(2);
      transport::client sub(acking_sub(port, "victim", "stream"));
      sub.on_message([](const transport::incoming&) {});
      if (sub.connect() != actors::errc::ok) _exit(3);
      for (;;) pause();
    }
    close(to_child[0]);
    edge e;
    const std::uint16_t port = e.port();
    REQUIRE(write(to_child[1], &port, sizeof port) == sizeof port);
    close(to_child[1]);
    REQUIRE(eventually([&] {
      for (const auto& a : e.node.agents())
        if (a.id == "victim") return true;
      return false;
    }));
    auto po = client_for(port, "pub");
    po.ack_timeout = 60s; // no redelivery: each message is counted once
    transport::client pub(po);
    REQUIRE(pub.connect() == actors::errc::ok);
    constexpr int n = 20000;
    std::vector<std::future<actors::errc>> fs;
    fs.reserve(n);
    bool killed = false;
    for (int i = 0; i < n; ++i) {
      fs.push_back(pub.publish_acked("stream", std::string(100, 'm')));
      if (!killed && e.server.stats().acked > 1000) { // mid-stream
        kill(child, SIGKILL);
        killed = true;
      }
      if (i % 256 == 0) std::this_thread::sleep_for(1ms); // a stream, not one burst
    }
    if (!killed) kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    std::uint64_t ok = 0, closed = 0, nobody = 0;
    for (auto& f : fs) {
      REQUIRE(f.wait_for(10s) == std::future_status::ready);
      const actors::errc r = f.get();
      if (r == actors::errc::ok) ++ok;
      else if (r == actors::errc::agent_unavailable) ++closed; // its endpoint was closed: a dead letter too
      else if (r == actors::errc::no_responders) ++nobody;     // after it left the routes: no recipient
    }
    CHECK(ok + closed + nobody == n);
    CHECK(ok > 1000);
    auto& dead = e.node.dead();
    // every message handed to the subscriber: acknowledged by it, or dead-lettered when its
    // session went away (written but unacknowledged, queued in its lanes or mailbox)
    const auto unavailable = [&] { return dead.count(actors::dead_reason::agent_unavailable); };
    const bool exact = eventually([&] { return e.server.stats().acked + unavailable() - closed == ok; });
    INFO("ok " << ok << " closed " << closed << " nobody " << nobody << " acknowledged by the subscriber "
               << e.server.stats().acked << " dead (agent_unavailable) " << unavailable() << " total dead "
               << dead.total());
    CHECK(exact);
    CHECK(dead.total() == unavailable());
    pub.close();
  }

  TEST_CASE("publish_acked: ok once the subscriber has it queued, no_responders without one") {
    jobs_edge j;
    auto& [e, got, sub, pub] = j;
    std::vector<std::future<actors::errc>> fs;
    for (int i = 0; i < 100; ++i) fs.push_back(pub.publish_acked("jobs", "x"));
    for (auto& f : fs) {
      REQUIRE(f.wait_for(5s) == std::future_status::ready);
      CHECK(f.get() == actors::errc::ok);
    }
    auto none = pub.publish_acked("nobody.listens", "x");
    REQUIRE(none.wait_for(5s) == std::future_status::ready);
    CHECK(none.get() == actors::errc::no_responders);
    CHECK(eventually([&] { return got.load() == 100 && e.server.stats().acked == 100; }));
    CHECK(pub.stats().acked == 100);
    CHECK(pub.stats().redelivered == 0);
    sub.close();
    pub.close();
    CHECK(e.node.dead().total() == 0); // nobody listened: nothing to deliver (as a NATS publish), the publisher was told
  }

  TEST_CASE("publish_acked with a callback: each answered once, on the client's thread; a callback may publish again") {
    jobs_edge j;
    auto& [e, got, sub, pub] = j;
    std::mutex m;
    std::vector<actors::errc> answers;
    std::atomic<int> chained{0};
    for (int i = 0; i < 200; ++i)
      pub.publish_acked("jobs", "x", {}, [&](actors::errc r) {
        std::lock_guard<std::mutex> g(m);
        answers.push_back(r);
      });
    // from inside a callback (outside the client's lock): publishes again without deadlock
    pub.publish_acked("jobs", "first", {}, [&](actors::errc) {
      pub.publish_acked("jobs", "second", {}, [&](actors::errc r) { chained.store(r == actors::errc::ok ? 1 : -1); });
    });
    CHECK(eventually([&] {
      std::lock_guard<std::mutex> g(m);
      return answers.size() == 200;
    }));
    CHECK(eventually([&] { return chained.load() != 0; }));
    CHECK(chained.load() == 1);
    {
      std::lock_guard<std::mutex> g(m);
      CHECK(std::count(answers.begin(), answers.end(), actors::errc::ok) == 200);
    }
    actors::errc bad = actors::errc::ok;
    pub.publish_acked("not..a topic", "x", {}, [&](actors::errc r) { bad = r; }); // refused at once, on this thread
    CHECK(bad == actors::errc::invalid_topic);
    std::atomic<int> none{0};
    pub.publish_acked("nobody.listens", "x", {}, [&](actors::errc r) { none.store(static_cast<int>(r)); });
    CHECK(eventually([&] { return none.load() == static_cast<int>(actors::errc::no_responders); }));
    CHECK(eventually([&] { return got.load() == 202; }));
    CHECK(pub.stats().acked == 202);
    sub.close();
    pub.close();
  }

  // Regression (issue 17.3): with the node gone, publish_acked stayed pending for ever (12 s and
  // more) — its frame sat in the client's queue, and an unwritten frame spent no attempts.
  TEST_CASE("the node gone: publish_acked resolves with a typed error within its attempts, reconnecting or not") {
    auto e = std::make_unique<edge>();
    const std::uint16_t port = e->port();
    // a publisher with 3 x 100 ms of attempts, connected, then its node goes away
    auto lose_node = [&](transport::client_options o) {
      o.ack_timeout = 100ms;
      o.ack_attempts = 3;
      auto pub = std::make_unique<transport::client>(o);
      REQUIRE(pub->connect() == actors::errc::ok);
      e.reset();
      REQUIRE(eventually([&] { return !pub->connected(); }));
      return pub;
    };
    SUBCASE("reconnect off: node_stopped at once, also for what was queued") {
      auto owned = lose_node(client_for(port, "pub"));
      transport::client& pub = *owned;
      auto f = pub.publish_acked("jobs", "after the loss");
      REQUIRE(f.wait_for(2s) == std::future_status::ready);
      CHECK(f.get() == actors::errc::node_stopped);
      CHECK(pub.publish("jobs", "plain") == actors::errc::node_stopped);
    }
    SUBCASE("reconnecting to a node that does not come back: timeout after ack_attempts x ack_timeout") {
      auto owned = lose_node(quick_reconnect_opts(port, "pub"));
      transport::client& pub = *owned;
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::future<actors::errc>> fs;
      for (int i = 0; i < 10; ++i) fs.push_back(pub.publish_acked("jobs", "while away"));
      for (auto& f : fs) {
        REQUIRE(f.wait_for(5s) == std::future_status::ready); // was: pending until close()
        CHECK(f.get() == actors::errc::timeout);
      }
      CHECK(std::chrono::steady_clock::now() - t0 >= 300ms); // its attempts were spent, not cut short
      CHECK(pub.stats().redelivered == 0);                  // nothing was written: nothing copied again
    }
  }

  TEST_CASE("no ACK in time: the publisher sends again, the subscriber handles each message once") {
    actors::node_config c = small_node();
    c.buffers = {{{256, 64}}, -1, false, false, 0}; // the node soon has no buffer: the publisher is paused
    edge e({}, c);
    std::atomic<bool> go{false};
    std::mutex m;
    std::set<std::string> seen;
    std::atomic<int> handled{0};
    auto so = client_for(e.port(), "sub");
    so.subscriptions = {"jobs"};
    so.receive_buffer = 4096;
    transport::client sub(so);
    sub.on_message([&](const transport::incoming& in) {
      // the first message blocks the subscriber until the publisher has resent (bounded: a failed
      // check below must not leave the client's thread waiting forever)
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (!go.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
      std::lock_guard<std::mutex> g(m);
      seen.emplace(in.payload);
      ++handled;
    });
    REQUIRE(sub.connect() == actors::errc::ok);
    auto po = client_for(e.port(), "pub");
    po.ack_timeout = 200ms;
    po.ack_attempts = 1000; // as long as it takes (a slow, sanitized build included)
    transport::client pub(po);
    REQUIRE(pub.connect() == actors::errc::ok);
    constexpr int n = 3000; // more than the sockets between the node and the blocked subscriber hold
    std::vector<std::future<actors::errc>> fs;
    for (int i = 0; i < n; ++i) fs.push_back(pub.publish_acked("jobs", "m" + std::to_string(i) + std::string(100, '.')));
    REQUIRE(eventually([&] { return pub.stats().redelivered > 0; }));
    go = true;
    for (auto& f : fs) {
      REQUIRE(f.wait_for(60s) == std::future_status::ready);
      CHECK(f.get() == actors::errc::ok);
    }
    CHECK(eventually([&] { return handled.load() == n; }, 30s));
    // the copies sent again arrive after the originals (the node reads its backlog in order) and
    // are dropped by the subscriber
    CHECK(eventually([&] { return sub.stats().duplicates > 0; }, 20s));
    std::lock_guard<std::mutex> g(m);
    CHECK(handled.load() == n);
    CHECK(seen.size() == static_cast<std::size_t>(n));
    sub.close();
    pub.close();
  }

  TEST_CASE("a WebSocket agent's failing handler: the node retries the message, then quarantines it as poison") {
    edge e(retrying_server());
    std::atomic<int> bad_calls{0}, good{0};
    transport::client sub(acking_sub(e.port(), "sub", "jobs"));
    sub.on_message([&](const transport::incoming& in) {
      if (in.payload == "bad") {
        ++bad_calls;
        throw std::runtime_error("cannot handle this");
      }
      ++good;
    });
    REQUIRE(sub.connect() == actors::errc::ok);
    transport::client pub(client_for(e.port(), "pub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    CHECK(pub.publish_acked("jobs", "bad").get() == actors::errc::ok); // with a message id: not a duplicate when retried
    CHECK(pub.publish_acked("jobs", "fine").get() == actors::errc::ok);
    auto& dead = e.node.dead();
    REQUIRE(eventually([&] { return dead.count(actors::dead_reason::poison) == 1; }));
    std::this_thread::sleep_for(30ms);
    CHECK(bad_calls.load() == 3);
    CHECK(good.load() == 1);
    CHECK(sub.stats().handler_failures == 3);
    const auto letters = dead.take();
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].attempts == 3);
    CHECK(letters[0].recipient == "sub");
    sub.close();
    pub.close();
  }

  TEST_CASE("a WebSocket publisher's per-message retry budget overrides the server's policy") {
    edge e(retrying_server());
    std::atomic<int> once{0}, five{0};
    transport::client sub(acking_sub(e.port(), "sub", "jobs"));
    sub.on_message([&](const transport::incoming& in) {
      ++(in.payload == "once" ? once : five);
      throw std::runtime_error("cannot handle this");
    });
    REQUIRE(sub.connect() == actors::errc::ok);
    transport::client pub(client_for(e.port(), "pub"));
    REQUIRE(pub.connect() == actors::errc::ok);
    actors::send_options a, b;
    a.max_attempts = 1;
    b.max_attempts = 5;
    CHECK(pub.publish_acked("jobs", "once", a).get() == actors::errc::ok);
    CHECK(pub.publish_acked("jobs", "five", b).get() == actors::errc::ok);
    auto& dead = e.node.dead();
    REQUIRE(eventually([&] { return dead.count(actors::dead_reason::poison) == 2; }));
    std::this_thread::sleep_for(30ms);
    CHECK(once.load() == 1);
    CHECK(five.load() == 5);
    sub.close();
    pub.close();
  }

  TEST_CASE("a WebSocket agent's failures open its breaker: senders fail fast, a half-open trial closes it") {
    transport::server_options o;
    o.retry.max_attempts = 1; // each failure final: the breaker alone
    o.breaker.failure_count = 3;
    o.breaker.failure_rate = 0;
    o.breaker.open_for_ns = 200'000'000;
    o.breaker.trial_calls = 1;
    edge e(o);
    std::atomic<int> good{0};
    transport::client sub(acking_sub(e.port(), "sub", "jobs"));
    sub.on_message([&](const transport::incoming& in) {
      if (in.payload == "bad") throw std::runtime_error("failing");
      ++good;
    });
    REQUIRE(sub.connect() == actors::errc::ok);
    auto local = e.node.connect({"local-pub", "test"});
    REQUIRE(local.has_value());
    auto& pub = *local.value();
    for (int i = 0; i < 3; ++i) CHECK(pub.publish("jobs", "bad").code == actors::errc::ok);
    REQUIRE(eventually([&] { return e.node.breaker("sub").value() == scheduling::breaker_state::open; }));
    CHECK(pub.publish("jobs", "good").code == actors::errc::circuit_open);
    CHECK(e.node.dead().count(actors::dead_reason::circuit_open) == 1);
    REQUIRE(eventually([&] { return e.node.breaker("sub").value() == scheduling::breaker_state::half_open; }, 2s));
    CHECK(pub.publish("jobs", "good").code == actors::errc::ok); // the trial
    REQUIRE(eventually([&] { return e.node.breaker("sub").value() == scheduling::breaker_state::closed; }));
    CHECK(good.load() == 1);
    CHECK(e.node.dead().count(actors::dead_reason::poison) == 3);
    sub.close();
  }

  TEST_CASE("a redelivered duplicate is dropped by the receiver") {
    edge e;
    std::atomic<int> got{0};
    auto so = client_for(e.port(), "sub");
    so.subscriptions = {"jobs"};
    transport::client sub(so);
    sub.on_message([&](const transport::incoming&) { ++got; });
    REQUIRE(sub.connect() == actors::errc::ok);
    raw_peer pub(e.port());
    pub.join("raw-pub");
    for (int copy = 0; copy < 2; ++copy) { // the same message id twice, the second flagged redelivery
      codec::message m;
      m.type = codec::msg_type::publish;
      if (copy) m.flags |= codec::flag::redelivery;
      m.set_topic("jobs");
      m.set(codec::field::source, "raw-pub");
      m.set(codec::field::message_id, 7);
      m.payload = codec::bytes_view(std::string_view("once"));
      pub.send(m);
    }
    CHECK(eventually([&] { return sub.stats().duplicates == 1; }));
    std::this_thread::sleep_for(50ms);
    CHECK(got.load() == 1);
    sub.close();
  }
}
