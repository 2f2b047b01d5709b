// Token buckets (the node's rate limits): the burst, the refill, debt for what is bigger than the
// burst, the waits they announce, and the long-run rate over a simulated clock.
#include <flowbus/scheduling/token_bucket.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <random>

using namespace flowbus::scheduling;
using namespace std::chrono_literals;
using clk = token_bucket::clock;

TEST_SUITE("token_bucket") {
  TEST_CASE("a burst at once, then the rate; waits say exactly when") {
    const clk::time_point t0{};
    token_bucket b(100, 10, t0); // 100/s, burst 10
    for (int i = 0; i < 10; ++i)
      CHECK(b.take(1, t0));
    CHECK_FALSE(b.take(1, t0));
    CHECK(b.wait(1, t0) > 9ms);
    CHECK(b.wait(1, t0) <= 10ms + 1ns);
    CHECK_FALSE(b.take(1, t0 + 9ms));
    CHECK(b.take(1, t0 + 10ms));
    // idle for long: never more than the burst
    CHECK(b.full(t0 + 10s));
    int taken = 0;
    while (b.take(1, t0 + 10s))
      ++taken;
    CHECK(taken == 10);
  }

  TEST_CASE("more than the burst goes through from a full bucket, as debt repaid first") {
    const clk::time_point t0{};
    token_bucket b(1000, 100, t0); // bytes: 1000/s, burst 100
    CHECK(b.take(500, t0));        // a 500-byte message: the bucket owes 400
    CHECK_FALSE(b.take(1, t0 + 399ms));
    CHECK(b.wait(1, t0 + 399ms) > 0ms);
    CHECK(b.take(1, t0 + 402ms));
    CHECK_FALSE(b.take(500, t0 + 402ms)); // not full again yet
    CHECK(b.wait(500, t0 + 402ms) > 90ms); // until full: the burst, not 500
    CHECK(b.wait(500, t0 + 402ms) < 110ms);
  }

  TEST_CASE("unlimited: rate 0") {
    token_bucket b;
    CHECK(b.unlimited());
    for (int i = 0; i < 1000; ++i)
      CHECK(b.take(1e9, clk::time_point{}));
    CHECK(b.wait(1e9, clk::time_point{}) == clk::duration::zero());
    CHECK(token_bucket(0, 5, clk::time_point{}).unlimited());
    CHECK(token_bucket(50, 0, clk::time_point{}).burst() == 50); // no burst given: a second's worth
  }

  TEST_CASE("the long-run rate holds whatever the sizes and the arrival pattern") {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> size(1, 3000), gap_us(0, 400);
    const clk::time_point t0{};
    rate_limiter lim(2000, 50, 1e6, 64 * 1024, t0); // 2000 msgs/s, 1 MB/s
    clk::time_point t = t0;
    std::size_t msgs = 0, bytes = 0;
    while (t < t0 + 10s) {
      const std::size_t n = static_cast<std::size_t>(size(rng));
      // a sender that waits as told whenever refused
      for (auto w = lim.admit(n, t); w != clk::duration::zero(); w = lim.admit(n, t))
        t += w;
      ++msgs;
      bytes += n;
      t += std::chrono::microseconds(gap_us(rng));
    }
    const double s = std::chrono::duration<double>(t - t0).count();
    // the bytes bound here (~1500 B a message at 1 MB/s is ~670/s): within the bursts of the rate
    CHECK(static_cast<double>(bytes) <= 1e6 * s + 64 * 1024 + 3000);
    CHECK(static_cast<double>(bytes) >= 0.95e6 * s);
    CHECK(static_cast<double>(msgs) <= 2000 * s + 50);
  }

  TEST_CASE("a message refused takes nothing from either bucket") {
    const clk::time_point t0{};
    rate_limiter lim(10, 1, 100, 100, t0);
    CHECK(lim.admit(100, t0) == clk::duration::zero()); // both empty now
    CHECK(lim.admit(1, t0) != clk::duration::zero());
    // at 100 ms: 1 message and 10 bytes back; a 50-byte message must wait for bytes, and must not
    // have used the message token meanwhile
    CHECK(lim.admit(50, t0 + 100ms) != clk::duration::zero());
    CHECK(lim.admit(10, t0 + 100ms) == clk::duration::zero());
  }
}

TEST_SUITE("token_bucket") {
  TEST_CASE("reservations queue up at the rate") {
    const clk::time_point t0{};
    token_bucket b(10, 2, t0); // 10/s, burst 2
    CHECK(b.reserve(1, t0) == clk::duration::zero());
    CHECK(b.reserve(1, t0) == clk::duration::zero());
    const auto third = b.reserve(1, t0), fourth = b.reserve(1, t0);
    CHECK(third > 99ms);
    CHECK(third < 101ms);
    CHECK(fourth > 199ms);
    CHECK(fourth < 201ms);
    CHECK_FALSE(b.take(1, t0 + 250ms)); // the debt is repaid at 200 ms, one more token at 300 ms
    CHECK(b.take(1, t0 + 300ms));
  }
}
