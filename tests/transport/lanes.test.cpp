// Priority lanes on a WebSocket connection: urgent frames overtake a backlog, the least urgent are
// shed to the dead letters under pressure, expired deadlines are dead-lettered — and every frame
// is either delivered or accounted for.
#include "transport_support.hpp"

#include <flowbus/codec/clock.hpp>

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
    raw_peer sub(e.port());
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
}
