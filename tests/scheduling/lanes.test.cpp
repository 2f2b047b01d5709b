#include <flowbus/scheduling/lanes.hpp>

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <vector>

using namespace flowbus::scheduling;

namespace {
// value = lane * 1000 + sequence, so a test can tell where each message came from
std::vector<int> drain_all(lane_scheduler<int>& s) {
  std::vector<int> out;
  while (auto v = s.next()) out.push_back(*v);
  return out;
}
} // namespace

TEST_SUITE("lanes") {

  TEST_CASE("one lane is FIFO; lanes leave in weighted round-robin, most urgent first") {
    lane_options o;
    o.weights = {4, 2, 1, 1, 1};
    lane_scheduler<int> s(o);
    for (int i = 0; i < 8; ++i) s.push(4000 + i, 4); // BACKGROUND first
    for (int i = 0; i < 8; ++i) s.push(i, 0);        // then CRITICAL
    for (int i = 0; i < 4; ++i) s.push(1000 + i, 1);
    const auto out = drain_all(s);
    // round 1: 4 CRITICAL, 2 HIGH, 1 BACKGROUND; round 2 likewise; then the rest
    const std::vector<int> expect{0, 1, 2, 3, 1000, 1001, 4000, 4, 5, 6, 7, 1002, 1003, 4001,
                                  4002, 4003, 4004, 4005, 4006, 4007};
    CHECK(out == expect);
    CHECK(s.served(0) == 8);
    CHECK(s.served(4) == 8);
  }

  TEST_CASE("starvation guard: under a CRITICAL flood every lane still gets its weight each round") {
    lane_scheduler<int> s; // 16, 8, 4, 2, 1
    for (int i = 0; i < 3100; ++i) s.push(0, 0);
    for (int i = 0; i < 100; ++i) s.push(4, 4);
    int background = 0;
    for (int i = 0; i < 1700; ++i) background += *s.next() == 4;
    // 100 rounds of 16 CRITICAL + 1 BACKGROUND = 1700 messages
    CHECK(background == 100);
  }

  TEST_CASE("earliest deadline first inside a lane, deadline-less messages after, FIFO among equals") {
    lane_scheduler<int> s;
    s.push(1, 2);          // no deadline
    s.push(2, 2, 300);
    s.push(3, 2, 100);
    s.push(4, 2);          // no deadline
    s.push(5, 2, 200);
    s.push(6, 2, 100);     // same deadline as 3: after it
    CHECK(drain_all(s) == std::vector<int>{3, 6, 5, 2, 1, 4});
  }

  TEST_CASE("expire removes exactly the messages whose deadline passed, in every lane") {
    lane_scheduler<int> s;
    s.push(1, 0, 50);
    s.push(2, 3, 150);
    s.push(3, 3, 100);
    s.push(4, 4);
    CHECK(s.earliest_deadline() == 50);
    std::vector<std::pair<int, std::size_t>> gone;
    CHECK(s.expire(100, [&](int&& v, std::size_t lane) { gone.emplace_back(v, lane); }) == 2);
    CHECK(gone == std::vector<std::pair<int, std::size_t>>{{1, 0}, {3, 3}});
    CHECK(s.size() == 2);
    CHECK(s.expired_count() == 2);
    CHECK(s.earliest_deadline() == 150);
    CHECK(drain_all(s) == std::vector<int>{2, 4});
  }

  TEST_CASE("water marks: throttled at 80 % until below 60 %, LOW and BACKGROUND shed from 95 %") {
    lane_options o;
    o.capacity = 100;
    lane_scheduler<int> s(o);
    for (int i = 0; i < 79; ++i) REQUIRE(s.push(i, 2).accepted);
    CHECK(s.state() == pressure::normal);
    s.push(79, 2);
    CHECK(s.state() == pressure::throttled);
    for (int i = 0; i < 15; ++i) s.next(); // 65 left: between the marks, still throttled
    CHECK(s.state() == pressure::throttled);
    for (int i = 0; i < 6; ++i) s.next(); // 59
    CHECK(s.state() == pressure::normal);
    while (s.size() < 95) s.push(0, 2);
    CHECK(s.state() == pressure::shedding);
    auto low = s.push(7, 3);
    CHECK_FALSE(low.accepted);
    REQUIRE(low.rejected);
    CHECK(*low.rejected == 7);
    CHECK(s.push(8, 4).rejected);
    CHECK(s.push(9, 1).accepted); // HIGH still gets in
    CHECK(s.shed_count() == 2);
  }

  TEST_CASE("emergency: when full only CRITICAL gets in, evicting the newest of the least urgent lane") {
    lane_options o;
    o.capacity = 10;
    lane_scheduler<int> s(o);
    REQUIRE(s.push(3000, 3).accepted); // LOW, while below the shed mark
    for (int i = 0; i < 5; ++i) s.push(2000 + i, 2);
    for (int i = 0; i < 4; ++i) s.push(1000 + i, 1);
    REQUIRE(s.size() == 10);
    CHECK(s.state() == pressure::emergency);
    auto h = s.push(1, 1); // HIGH: refused when full
    CHECK(h.rejected);
    auto c = s.push(0, 0);
    CHECK(c.accepted);
    REQUIRE(c.evicted);
    CHECK(*c.evicted == 3000); // LOW goes first
    c = s.push(0, 0);
    REQUIRE(c.evicted);
    CHECK(*c.evicted == 2004); // then the newest NORMAL
    CHECK(s.size() == 10);
    CHECK(s.evicted_count() == 2);
    // all CRITICAL: nothing left to evict
    lane_scheduler<int> full(o);
    for (int i = 0; i < 10; ++i) full.push(i, 0);
    CHECK(full.push(99, 0).rejected);
  }

  TEST_CASE("random pushes and pops: nothing lost or duplicated, each lane in order") {
    std::mt19937 rng(3);
    lane_options o;
    o.capacity = 64;
    lane_scheduler<int> s(o);
    std::map<int, int> accounted; // value -> times seen (taken, refused, evicted)
    std::array<int, lane_count> last{-1, -1, -1, -1, -1};
    int next_value = 0;
    for (int step = 0; step < 20000; ++step) {
      if (rng() % 3 != 0) {
        const std::size_t lane = rng() % lane_count;
        const int v = static_cast<int>(lane) * 1'000'000 + next_value++;
        auto a = s.push(v, lane);
        if (a.rejected) ++accounted[*a.rejected];
        if (a.evicted) ++accounted[*a.evicted];
      } else if (auto v = s.next()) {
        ++accounted[*v];
        const auto lane = static_cast<std::size_t>(*v / 1'000'000);
        CHECK(*v > last[lane]);
        last[lane] = *v;
      }
    }
    while (auto v = s.next()) ++accounted[*v];
    CHECK(accounted.size() == static_cast<std::size_t>(next_value));
    for (auto& [v, n] : accounted) REQUIRE(n == 1);
  }
}
