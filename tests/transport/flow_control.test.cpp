// The node's flow control toward a publisher (transport/src/flow_control.hpp), without a socket or
// a timer: holds with their backoff and CREDIT 0/1 moments, stalls, pauses, and starvation, with
// time passed in.
#include "transport/src/flow_control.hpp"

#include <doctest/doctest.h>

#include <vector>

using flowbus::transport::detail::flow_control;
using us = std::chrono::microseconds;
using namespace std::chrono_literals;

TEST_SUITE("flow_control") {
  TEST_CASE("a hold begins once per throttled episode, and looks again after 100 us doubling to 5 ms") {
    flow_control f;
    CHECK_FALSE(f.begin_hold()); // nothing met a throttled recipient
    CHECK_FALSE(f.holding());
    f.met_throttled();
    CHECK(f.begin_hold()); // CREDIT 0 goes out now
    CHECK(f.holding());
    f.met_throttled();          // another message meets it while held (a BATCH read on)
    CHECK_FALSE(f.begin_hold()); // no second CREDIT 0
    std::vector<us> looks;
    for (int i = 0; i < 9; ++i)
      looks.push_back(f.next_look());
    CHECK(looks == std::vector<us>{100us, 200us, 400us, 800us, 1600us, 3200us, 5000us, 5000us, 5000us});
    f.end_hold(); // CREDIT 1
    CHECK_FALSE(f.holding());
    f.met_throttled();
    CHECK(f.begin_hold());
    CHECK(f.next_look() == 100us); // a new hold starts its backoff again
  }

  TEST_CASE("stalled: held and waited for at once; each change is reported once") {
    flow_control f;
    CHECK_FALSE(f.update_stalled(true).has_value()); // not held: never stalled
    f.met_throttled();
    REQUIRE(f.begin_hold());
    CHECK_FALSE(f.update_stalled(false).has_value());
    const auto on = f.update_stalled(true);
    REQUIRE(on.has_value());
    CHECK(*on);
    CHECK(f.stalled());
    CHECK_FALSE(f.update_stalled(true).has_value()); // no news
    f.end_hold();
    const auto off = f.update_stalled(true);
    REQUIRE(off.has_value());
    CHECK_FALSE(*off);
  }

  TEST_CASE("a pause backs off from 100 us to 5 ms while the pool stays empty, and starts over once it goes") {
    flow_control f;
    CHECK_FALSE(f.paused());
    f.no_buffer();
    CHECK(f.paused());
    std::vector<us> waits;
    for (int i = 0; i < 8; ++i) {
      waits.push_back(f.pause());
      f.retry();
      f.no_buffer(); // still no buffer
      f.retried();
    }
    CHECK(waits == std::vector<us>{100us, 200us, 400us, 800us, 1600us, 3200us, 5000us, 5000us});
    CHECK(f.pause() == 5000us);
    f.retry(); // and this time it goes through
    f.retried();
    CHECK_FALSE(f.paused());
    f.no_buffer();
    CHECK(f.pause() == 100us);
    f.cancel_pause(); // the connection closes meanwhile
    CHECK_FALSE(f.paused());
  }

  TEST_CASE("starvation is timed from when frames began to wait for the agent, and ends with the wait") {
    flow_control f;
    const auto t0 = flow_control::clock::time_point{} + 1h;
    CHECK_FALSE(f.starved_for(t0).has_value());
    CHECK_FALSE(f.waiting(false, t0));
    CHECK(f.waiting(true, t0)); // began: arm the watchdog
    CHECK_FALSE(f.waiting(true, t0 + 2s)); // still the same episode: its clock is not reset
    REQUIRE(f.starved_for(t0 + 3s).has_value());
    CHECK(*f.starved_for(t0 + 3s) == 3s);
    CHECK_FALSE(f.waiting(false, t0 + 4s)); // a CREDIT came: over
    CHECK_FALSE(f.starved_for(t0 + 5s).has_value());
    CHECK(f.waiting(true, t0 + 6s));
    CHECK(*f.starved_for(t0 + 7s) == 1s);
  }
}
