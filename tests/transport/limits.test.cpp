// Rate limits (issue 20): per agent, messages and bytes a second with a burst — held (nothing
// lost, the sender slowed) or refused (typed NACK/ERROR, the connection stays); per source
// address, new connections — held or refused with ERROR 80. One agent over its rate does not
// slow another.
#include "transport/transport_support.hpp"

#include <flowbus/transport/reasons.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;
using clk = std::chrono::steady_clock;
using rate_limits = transport::rate_limits;

namespace {

transport::server_options limited(double msgs, double burst, rate_limits::over action, double bytes = 0,
                                  double burst_bytes = 0) {
  transport::server_options o;
  o.limits.msgs_per_s = msgs;
  o.limits.burst_msgs = burst;
  o.limits.bytes_per_s = bytes;
  o.limits.burst_bytes = burst_bytes;
  o.limits.action = action;
  return o;
}

double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

} // namespace

TEST_SUITE("limits") {
  TEST_CASE("hold: over its rate an agent is slowed to it, and every message arrives in order") {
    edge e(limited(200, 20, rate_limits::over::hold));
    inbox in; // (outlives the clients: their I/O threads deliver into it)
    transport::client sub(client_opts(e.port(), "sub")), pub(client_opts(e.port(), "pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("rate.>", in.handler()).get() == errc::ok);
    const auto t0 = clk::now();
    for (int i = 0; i < 300; ++i)
      REQUIRE(pub.publish("rate.x", std::to_string(i)) == errc::ok);
    REQUIRE(eventually([&] { return in.size() == 300; }, 10s));
    // 20 at once, then 200 a second: 280 more take 1.4 s
    CHECK(seconds_since(t0) >= 1.2);
    const auto got = in.all();
    for (int i = 0; i < 300; ++i)
      CHECK(got[static_cast<std::size_t>(i)] == std::to_string(i));
    CHECK(e.server.stats().rate_limited > 0);
    CHECK(e.node.dead().total() == 0);
  }

  TEST_CASE("hold: one agent over its rate does not slow another") {
    edge e(limited(100, 10, rate_limits::over::hold));
    inbox flooded, calmed;
    transport::client sub(client_opts(e.port(), "sub")), flood(client_opts(e.port(), "flood")),
        calm(client_opts(e.port(), "calm"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(flood.connect() == errc::ok);
    REQUIRE(calm.connect() == errc::ok);
    REQUIRE(sub.subscribe("flood.x", flooded.handler()).get() == errc::ok);
    REQUIRE(sub.subscribe("calm.x", calmed.handler()).get() == errc::ok);
    for (int i = 0; i < 300; ++i) // 3 s of its rate
      REQUIRE(flood.publish("flood.x", "f") == errc::ok);
    std::this_thread::sleep_for(100ms);
    const auto t0 = clk::now();
    for (int i = 0; i < 5; ++i)
      REQUIRE(calm.publish("calm.x", "c") == errc::ok);
    REQUIRE(eventually([&] { return calmed.size() == 5; }, 2s));
    CHECK(seconds_since(t0) < 2.0); // within its own burst: not behind the flood (2.9 s of it)
    CHECK(flooded.size() < 300);    // the flood is still being held meanwhile
    REQUIRE(eventually([&] { return flooded.size() == 300; }, 10s));
  }

  TEST_CASE("refuse: what is over the rate gets NACK rate_limited and reaches nobody; the connection stays") {
    edge e(limited(10, 5, rate_limits::over::refuse)); // (slow refill: the counts hold under sanitizers)
    inbox in;
    transport::client sub(client_opts(e.port(), "sub")), pub(client_opts(e.port(), "pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("rate.>", in.handler()).get() == errc::ok);
    std::vector<std::future<errc>> acks;
    for (int i = 0; i < 40; ++i)
      acks.push_back(pub.publish_acked("rate.x", std::to_string(i)));
    std::size_t ok = 0, refused = 0;
    for (auto& f : acks) {
      const errc r = f.get();
      ok += r == errc::ok;
      refused += r == errc::rate_limited;
    }
    CHECK(ok + refused == 40);
    CHECK(ok >= 5);
    CHECK(refused >= 20);
    REQUIRE(eventually([&] { return in.size() == ok; }));
    std::this_thread::sleep_for(300ms);
    CHECK(in.size() == ok); // the refused ones reached nobody
    CHECK(e.server.stats().rate_limited == refused);
    // the connection stayed: once the bucket refilled, the next one goes through
    CHECK(pub.publish_acked("rate.x", "later").get() == errc::ok);
    CHECK(pub.connected());
  }

  TEST_CASE("refuse: bytes a second — a plain publish over it gets ERROR 114 with the reason") {
    edge e(limited(0, 0, rate_limits::over::refuse, 1000, 1000));
    raw_peer p(e.port());
    p.join("bytes");
    const std::string big(800, 'b');
    p.send_publish("bytes.x", big); // within the burst
    p.send_publish("bytes.x", big); // 200 bytes left: refused
    const auto err = p.next();
    REQUIRE(err);
    CHECK(err->type == codec::msg_type::error);
    CHECK(err->error_code == transport::code_of(errc::rate_limited));
    CHECK(err->reason.find("rate limit") != std::string::npos);
    CHECK_FALSE(p.next(200ms));
    CHECK_FALSE(p.closed());
  }

  TEST_CASE("connections per address, refuse: over the burst, ERROR 80 and the close; later ones connect") {
    transport::server_options o;
    o.limits.connections_per_s = 5;
    o.limits.burst_connections = 2;
    o.limits.action = rate_limits::over::refuse;
    edge e(o);
    raw_peer a(e.port()), b(e.port()), c(e.port());
    a.join("a");
    b.join("b");
    std::uint64_t code = 0;
    for (const got_frame& f : c.until_closed(3s))
      if (f.type == codec::msg_type::error) code = f.error_code;
    CHECK(code == transport::code_of(transport::reason::connection_rate_limited));
    CHECK(e.server.stats().connections_limited == 1);
    std::this_thread::sleep_for(250ms); // one more token
    raw_peer d(e.port());
    d.join("d");
    // the C++ client refused this way reconnects after its backoff, and gets in
    transport::client_options co = quick_reconnect_opts(e.port(), "retrying");
    raw_peer f1(e.port()), f2(e.port()); // use the tokens up (they need not register)
    transport::client cl(co);
    CHECK(cl.connect(5s) == errc::ok);
  }

  TEST_CASE("connections per address, hold: over the burst, a handshake waits its turn at the rate") {
    transport::server_options o;
    o.limits.connections_per_s = 10;
    o.limits.burst_connections = 1;
    edge e(o);
    const auto t0 = clk::now();
    transport::client a(client_opts(e.port(), "a")), b(client_opts(e.port(), "b")), c(client_opts(e.port(), "c"));
    auto fa = std::async(std::launch::async, [&] { return a.connect(); });
    auto fb = std::async(std::launch::async, [&] { return b.connect(); });
    auto fc = std::async(std::launch::async, [&] { return c.connect(); });
    CHECK(fa.get() == errc::ok);
    CHECK(fb.get() == errc::ok);
    CHECK(fc.get() == errc::ok);
    CHECK(seconds_since(t0) >= 0.15); // the third waited 200 ms for its turn
    CHECK(e.server.stats().connections_limited == 2);
  }
}
