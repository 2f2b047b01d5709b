#include <flowbus/scheduling/timing_wheel.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

using namespace flowbus::scheduling;

TEST_SUITE("timing_wheel") {

  TEST_CASE("timers fire in the tick of their deadline, never early, across every level") {
    timing_wheel<std::uint64_t> w;
    const std::vector<std::uint64_t> deadlines{1, 2, 63, 64, 65, 127, 128, 4095, 4096, 4097, 262143, 262144,
                                               300000, 16777215, 16777216, 20000000};
    for (auto d : deadlines) w.schedule(d, d);
    CHECK(w.size() == deadlines.size());
    std::vector<std::uint64_t> fired_at;
    std::uint64_t t = 0;
    while (!w.empty()) {
      ++t;
      w.advance(t, [&](std::uint64_t&& d) {
        CHECK(d == t); // exactly on its tick
        fired_at.push_back(d);
      });
    }
    CHECK(fired_at == deadlines);
  }

  TEST_CASE("a late advance fires everything due, in deadline order; overdue schedules fire next tick") {
    timing_wheel<int> w(1000);
    w.schedule(1500, 3);
    w.schedule(1010, 1);
    w.schedule(1200, 2);
    w.schedule(99999, 4);
    std::vector<int> got;
    CHECK(w.advance(2000, [&](int&& v) { got.push_back(v); }) == 3);
    CHECK(got == std::vector<int>{1, 2, 3});
    w.schedule(5, 5); // in the past
    CHECK(w.advance(2000, [&](int&& v) { got.push_back(v); }) == 0);
    CHECK(w.advance(2001, [&](int&& v) { got.push_back(v); }) == 1);
    CHECK(got.back() == 5);
    CHECK(w.size() == 1);
  }

  TEST_CASE("cancel: a pending timer never fires; cancelling a fired or reused handle is refused") {
    timing_wheel<int> w;
    auto a = w.schedule(10, 1);
    auto b = w.schedule(10, 2);
    auto c = w.schedule(5000, 3);
    CHECK(w.cancel(a));
    CHECK_FALSE(w.cancel(a));
    CHECK(w.cancel(c));
    std::vector<int> got;
    w.advance(10000, [&](int&& v) { got.push_back(v); });
    CHECK(got == std::vector<int>{2});
    CHECK_FALSE(w.cancel(b)); // fired
    auto d = w.schedule(20000, 4); // reuses a node: the old handles stay dead
    CHECK_FALSE(w.cancel(a));
    CHECK(w.cancel(d));
    CHECK(w.empty());
  }

  TEST_CASE("a callback may schedule more timers") {
    timing_wheel<int> w;
    w.schedule(3, 0);
    std::vector<std::uint64_t> at;
    int chain = 0;
    for (std::uint64_t t = 1; t <= 200; ++t)
      w.advance(t, [&](int&&) {
        at.push_back(t);
        if (++chain < 4) w.schedule(t + 50, chain);
      });
    CHECK(at == std::vector<std::uint64_t>{3, 53, 103, 153});
  }

  TEST_CASE("random schedules and cancels against a sorted model, with uneven advances") {
    std::mt19937_64 rng(11);
    timing_wheel<std::uint64_t> w;
    std::multimap<std::uint64_t, std::uint64_t> model; // deadline -> id
    std::map<std::uint64_t, timing_wheel<std::uint64_t>::handle> handles;
    std::uint64_t now = 0, id = 0;
    for (int step = 0; step < 3000; ++step) {
      const auto r = rng() % 10;
      if (r < 6) {
        const std::uint64_t d = now + 1 + rng() % (rng() % 4 == 0 ? 1'000'000 : 500);
        handles[id] = w.schedule(d, id);
        model.emplace(d, id);
        ++id;
      } else if (r < 7 && !handles.empty()) {
        auto it = handles.begin();
        std::advance(it, static_cast<long>(rng() % handles.size()));
        CHECK(w.cancel(it->second));
        for (auto m = model.begin(); m != model.end(); ++m)
          if (m->second == it->first) {
            model.erase(m);
            break;
          }
        handles.erase(it);
      } else {
        now += rng() % 3000;
        std::vector<std::uint64_t> fired;
        w.advance(now, [&](std::uint64_t&& v) { fired.push_back(v); });
        std::vector<std::uint64_t> expect;
        while (!model.empty() && model.begin()->first <= now) {
          expect.push_back(model.begin()->second);
          handles.erase(model.begin()->second);
          model.erase(model.begin());
        }
        std::sort(fired.begin(), fired.end());
        std::sort(expect.begin(), expect.end());
        REQUIRE(fired == expect);
      }
      REQUIRE(w.size() == model.size());
    }
  }
}
