// Gateway agents (the WebSocket edge's view of the node): asynchronous attach, subscription changes
// answered by token, frames taken as encoded, requests answered to the gateway, and the node's
// verdicts (missed heartbeats, shutdown) reported through `down`.
#include <flowbus/actors/node.hpp>
#include <flowbus/codec/decoder.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace flowbus;
using namespace flowbus::actors;
using namespace std::chrono_literals;

namespace {
/// What the node told one gateway, collected from whichever thread it came on.
struct probe {
  std::mutex m;
  std::condition_variable cv;
  int wakes = 0;
  std::vector<std::pair<std::uint64_t, errc>> done;
  std::vector<errc> downs;

  gateway_events events() {
    return {[this] { bump([&] { ++wakes; }); },
            [this](std::uint64_t t, errc e) { bump([&] { done.emplace_back(t, e); }); },
            [this](errc e) { bump([&] { downs.push_back(e); }); }};
  }
  template <class F> void bump(F f) {
    std::lock_guard<std::mutex> g(m);
    f();
    cv.notify_all();
  }
  template <class P> bool wait(P pred, std::chrono::milliseconds t = 3s) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_for(l, t, pred);
  }
};

std::unique_ptr<gateway> attach(node& n, agent_spec spec, probe& p) {
  std::promise<expected<std::unique_ptr<gateway>, errc>> got;
  n.attach(std::move(spec), p.events(), [&](expected<std::unique_ptr<gateway>, errc> r) { got.set_value(std::move(r)); });
  auto r = got.get_future().get();
  REQUIRE(r.has_value());
  return std::move(r.value());
}

struct taken {
  std::string topic, payload;
  codec::msg_type type;
  std::uint64_t correlation;
};

/// Frames queued for the gateway, decoded; waits up to `t` for at least `want` of them.
std::vector<taken> take(gateway& g, std::size_t want, std::chrono::milliseconds t = 3s) {
  std::vector<taken> out;
  codec::decoder dec(codec::stored_frame_decoding()); // a stored frame has no checksum: the edge writes it
  const auto until = std::chrono::steady_clock::now() + t;
  while (out.size() < want && std::chrono::steady_clock::now() < until) {
    std::vector<scheduling::buffer_ref> frames;
    g.take(frames, 64);
    for (auto& f : frames) {
      codec::message m;
      REQUIRE(dec.decode({f.data(), f.size()}, m));
      CHECK(m.checksum == 0); // no CRC pass on the way through the node
      out.push_back({std::string(m.topic()),
                     std::string(reinterpret_cast<const char*>(m.payload.data()), m.payload.size()), m.type,
                     m.correlation_id()});
    }
    if (frames.empty()) std::this_thread::sleep_for(1ms);
  }
  return out;
}

node_config small() {
  node_config c;
  c.workers = 2;
  return c;
}
} // namespace

TEST_SUITE("gateway") {
  TEST_CASE("attach, subscribe by token, take frames as encoded, wake only when idle") {
    probe p; // outlives the node: its events may come after the gateway is gone (gateway.hpp)
    node n(small());
    auto g = attach(n, {"edge-1", "edge"}, p);
    CHECK(g->up());
    CHECK(g->id() == "edge-1");
    g->subscribe("agent.*.status", "", 7);
    g->subscribe("bad..pattern", "", 8);
    REQUIRE(p.wait([&] { return p.done.size() == 2; }));
    std::sort(p.done.begin(), p.done.end()); // answers may come in any order: the token says which
    CHECK(p.done[0] == std::make_pair(std::uint64_t{7}, errc::ok));
    CHECK(p.done[1].first == 8);
    CHECK(p.done[1].second == errc::invalid_pattern);

    auto pub = n.connect({"pub", "test"}).value();
    REQUIRE(pub->publish("agent.worker.status", "one"));
    REQUIRE(pub->publish("agent.worker.status", "two"));
    REQUIRE(p.wait([&] { return p.wakes >= 1; }));
    const auto got = take(*g, 2);
    REQUIRE(got.size() == 2);
    CHECK(got[0].topic == "agent.worker.status");
    CHECK(got[0].payload == "one");
    CHECK(got[1].payload == "two");
    CHECK(g->backlog() == 0);

    g->unsubscribe("agent.*.status", "", 9);
    REQUIRE(p.wait([&] { return p.done.size() == 3; }));
    CHECK(p.done[2] == std::make_pair(std::uint64_t{9}, errc::ok));
    CHECK(pub->publish("agent.worker.status", "three").delivered == 0);
  }

  TEST_CASE("a gateway's request is answered to the gateway with its correlation id") {
    probe p; // outlives the node, as above
    node n(small());
    auto g = attach(n, {"edge-req", "edge"}, p);
    agent_spec responder{"responder", "svc"};
    responder.subscriptions = {"svc.echo"};
    REQUIRE(n.spawn(responder, [](agent_context& ctx, const delivery& d) { ctx.respond(d, "re:" + std::string(d.payload)); }));
    send_options o;
    o.type = codec::msg_type::request;
    o.correlation_id = 4242;
    REQUIRE(g->forward(destination::topic("svc.echo"), "ping", o));
    const auto got = take(*g, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].type == codec::msg_type::reply);
    CHECK(got[0].correlation == 4242);
    CHECK(got[0].payload == "re:ping");
  }

  TEST_CASE("down: missed heartbeats report agent_unavailable, shutdown reports node_stopped") {
    node n(small());
    probe silent, beating;
    agent_spec s{"silent", "edge"};
    s.heartbeat_interval = 20ms;
    auto g1 = attach(n, s, silent);
    agent_spec b{"beating", "edge"};
    b.heartbeat_interval = 50ms; // beats every 10 ms: a wide margin on a loaded machine
    auto g2 = attach(n, b, beating);
    const auto until = std::chrono::steady_clock::now() + 400ms;
    while (std::chrono::steady_clock::now() < until) {
      g2->heartbeat();
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(silent.wait([&] { return !silent.downs.empty(); }));
    CHECK(silent.downs.front() == errc::agent_unavailable);
    CHECK_FALSE(g1->up());
    CHECK(g2->up());
    n.shutdown();
    REQUIRE(beating.wait([&] { return !beating.downs.empty(); }));
    CHECK(beating.downs.front() == errc::node_stopped);
  }
}
