// circuit_breaker, retry backoff, dedup_window: the pure state of the reliability layer.
#include <flowbus/scheduling/circuit_breaker.hpp>
#include <flowbus/scheduling/dedup_window.hpp>
#include <flowbus/scheduling/retry.hpp>

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>

using namespace flowbus::scheduling;
using namespace std::chrono_literals;

namespace {
constexpr std::uint64_t ms = 1'000'000;
}

TEST_SUITE("resilience") {

  TEST_CASE("breaker: opens on the failure count, fails fast, half-opens, closes after its trials") {
    breaker_options o;
    o.failure_count = 3;
    o.failure_rate = 0;
    o.open_for_ns = 100 * ms;
    o.trial_calls = 2;
    circuit_breaker b(o);
    std::uint64_t t = 1000 * ms;
    for (int i = 0; i < 10; ++i) {
      REQUIRE(b.allow(t));
      b.on_success(t);
    }
    b.on_failure(t);
    b.on_failure(t + ms);
    CHECK(b.state() == breaker_state::closed);
    b.on_failure(t + 2 * ms);
    CHECK(b.state() == breaker_state::open);
    CHECK_FALSE(b.allow(t + 50 * ms));
    CHECK(b.rejected() == 1);
    t += 2 * ms + 100 * ms; // open_for elapsed
    CHECK(b.state(t) == breaker_state::half_open);
    CHECK(b.allow(t));
    CHECK(b.allow(t));
    CHECK_FALSE(b.allow(t)); // only two trials at a time
    b.on_success(t);
    CHECK(b.state() == breaker_state::half_open);
    b.on_success(t);
    CHECK(b.state() == breaker_state::closed);
    b.on_failure(t); // window cleared on closing: one failure does not reopen it
    CHECK(b.state() == breaker_state::closed);
  }

  TEST_CASE("breaker: a failed trial opens it again for another open_for") {
    breaker_options o;
    o.failure_count = 1;
    o.open_for_ns = 10 * ms;
    circuit_breaker b(o);
    b.on_failure(0);
    REQUIRE(b.state() == breaker_state::open);
    REQUIRE(b.allow(10 * ms));
    b.on_failure(10 * ms);
    CHECK(b.state() == breaker_state::open);
    CHECK_FALSE(b.allow(19 * ms));
    CHECK(b.allow(20 * ms));
  }

  TEST_CASE("breaker: the rate threshold needs min_calls, and old failures roll out of the window") {
    breaker_options o;
    o.failure_count = 0;
    o.failure_rate = 0.5;
    o.min_calls = 10;
    o.window_ns = 1000 * ms;
    o.buckets = 10;
    circuit_breaker b(o);
    for (int i = 0; i < 4; ++i) b.on_failure(0); // 4 of 4 failed, but fewer than min_calls
    CHECK(b.state() == breaker_state::closed);
    for (int i = 0; i < 5; ++i) b.on_success(ms);
    CHECK(b.window(ms) == std::pair<std::uint64_t, std::uint64_t>{4, 5});
    // a second later the early failures are out of the window: 1 of 6 fails, no trip
    for (int i = 0; i < 5; ++i) b.on_success(1050 * ms);
    b.on_failure(1050 * ms);
    CHECK(b.window(1050 * ms) == std::pair<std::uint64_t, std::uint64_t>{1, 5});
    CHECK(b.state() == breaker_state::closed);
    for (int i = 0; i < 5; ++i) b.on_failure(1100 * ms); // 6 of 11
    CHECK(b.state() == breaker_state::open);
  }

  TEST_CASE("backoff: ceilings double up to the cap; full jitter stays within [0, ceiling] and spreads") {
    CHECK(backoff_ceiling(0, 50ms, 5000ms) == 0ms);
    CHECK(backoff_ceiling(1, 50ms, 5000ms) == 50ms);
    CHECK(backoff_ceiling(2, 50ms, 5000ms) == 100ms);
    CHECK(backoff_ceiling(7, 50ms, 5000ms) == 3200ms);
    CHECK(backoff_ceiling(8, 50ms, 5000ms) == 5000ms);
    CHECK(backoff_ceiling(200, 50ms, 5000ms) == 5000ms);
    std::mt19937_64 rng(1);
    std::int64_t lo = 1 << 30, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      const auto w = full_jitter(4, 50ms, 5000ms, rng).count();
      REQUIRE(w >= 0);
      REQUIRE(w <= 400);
      lo = std::min(lo, w);
      hi = std::max(hi, w);
    }
    CHECK(lo < 40);
    CHECK(hi > 360);
  }

  TEST_CASE("dedup window: duplicates inside the window are caught, per source; out-of-window is stale") {
    dedup_window d(128, 16);
    using v = dedup_window::verdict;
    CHECK(d.check("a", 10) == v::fresh);
    CHECK(d.check("a", 10) == v::duplicate);
    CHECK(d.check("b", 10) == v::fresh); // another source
    CHECK(d.check("a", 12) == v::fresh);
    CHECK(d.check("a", 11) == v::fresh); // out of order, still new
    CHECK(d.check("a", 11) == v::duplicate);
    CHECK(d.check("a", 12) == v::duplicate);
    CHECK(d.check("a", 200) == v::fresh); // slides: 200 - 128 = 72 is the oldest judged
    CHECK(d.check("a", 73) == v::fresh);
    CHECK(d.check("a", 73) == v::duplicate);
    CHECK(d.check("a", 12) == v::stale);
    CHECK(d.duplicates() == 4);
    CHECK(d.stale() == 1);
    // a long jump clears the bitmap
    CHECK(d.check("a", 100000) == v::fresh);
    CHECK(d.check("a", 99999) == v::fresh);
  }

  TEST_CASE("dedup window: random redeliveries against an exact set; sources are bounded") {
    std::mt19937_64 rng(2);
    dedup_window d(1024, 8);
    std::set<std::uint64_t> seen;
    std::uint64_t next = 1;
    for (int i = 0; i < 50000; ++i) {
      std::uint64_t id;
      if (rng() % 4 == 0 && next > 600) id = next - 1 - rng() % 500; // a redelivery within the window
      else id = next++;
      const bool fresh = seen.insert(id).second;
      REQUIRE((d.check("src", id) == dedup_window::verdict::fresh) == fresh);
    }
    for (int s = 0; s < 20; ++s) d.check("s" + std::to_string(s), 1);
    CHECK(d.sources() == 8);
  }
}
