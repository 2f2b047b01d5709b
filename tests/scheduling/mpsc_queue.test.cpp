#include <flowbus/scheduling/mpsc_queue.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace flowbus::scheduling;
using flowbus::test::tracked;

TEST_SUITE("mpsc_queue") {

  TEST_CASE("bounded FIFO from one thread") {
    mpsc_queue<int> q(4);
    CHECK(q.capacity() == 4);
    CHECK(q.empty());
    for (int i = 0; i < 4; ++i)
      REQUIRE(q.try_push(i));
    CHECK_FALSE(q.try_push(4));
    int v;
    for (int lap = 0; lap < 100; ++lap) {
      REQUIRE(q.try_pop(v));
      CHECK(v == lap);
      REQUIRE(q.try_push(lap + 4));
    }
    CHECK(q.drain([](int&&) {}, 100) == 4);
    CHECK(q.empty());
  }

  TEST_CASE("elements are destroyed exactly once") {
    {
      mpsc_queue<tracked> q(8);
      for (std::uint64_t i = 0; i < 5; ++i)
        REQUIRE(q.try_emplace(i));
      CHECK(q.drain([](tracked&& t) { CHECK(t.value < 5); }, 2) == 2);
    }
    CHECK(tracked::live.load() == 0);
  }

  TEST_CASE("concurrent: three producers, per-producer order kept, nothing lost or duplicated") {
    constexpr int producers = 3;
    const std::uint64_t per = 3'000'000 / flowbus::test::scale;
    mpsc_queue<std::uint64_t> q(1024);
    flowbus::test::start_barrier start(producers + 1);
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&, p] {
        start.arrive_and_wait();
        for (std::uint64_t i = 0; i < per;) {
          if (q.try_push((static_cast<std::uint64_t>(p) << 48) | i))
            ++i;
          else
            std::this_thread::yield();
        }
      });
    start.arrive_and_wait();
    std::vector<std::uint64_t> next(producers, 0);
    std::uint64_t received = 0, out_of_order = 0;
    while (received < per * producers) {
      received += q.drain(
          [&](std::uint64_t&& v) {
            const auto p = static_cast<std::size_t>(v >> 48);
            out_of_order += (v & 0xFFFFFFFFFFFFull) != next[p]++;
          },
          256);
    }
    for (auto& t : threads)
      t.join();
    CHECK(out_of_order == 0);
    for (int p = 0; p < producers; ++p)
      CHECK(next[static_cast<std::size_t>(p)] == per);
    CHECK(q.empty());
  }
}
