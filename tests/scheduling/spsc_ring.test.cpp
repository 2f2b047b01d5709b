#include <flowbus/scheduling/spsc_ring.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace flowbus::scheduling;
using flowbus::test::tracked;

TEST_SUITE("spsc_ring") {

  TEST_CASE("capacity rounds up to a power of two; full and empty are reported") {
    spsc_ring<int> r(5);
    CHECK(r.capacity() == 8);
    CHECK(r.empty());
    for (int i = 0; i < 8; ++i)
      REQUIRE(r.try_push(i));
    CHECK_FALSE(r.try_push(99));
    CHECK(r.size_approx() == 8);
    int v = -1;
    for (int i = 0; i < 8; ++i) {
      REQUIRE(r.try_pop(v));
      CHECK(v == i);
    }
    CHECK_FALSE(r.try_pop(v));
    CHECK(r.empty());
    CHECK(spsc_ring<int>(0).capacity() == 2);
  }

  TEST_CASE("FIFO across many wrap-arounds, with batch push and drain") {
    spsc_ring<std::uint64_t> r(16);
    std::uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; ++round) {
      std::uint64_t batch[11];
      const std::size_t want = 1 + static_cast<std::size_t>(round % 11);
      for (std::size_t i = 0; i < want; ++i)
        batch[i] = next_in + i;
      const std::size_t pushed = r.try_push_n(batch, want);
      next_in += pushed;
      CHECK(r.size_approx() <= 16);
      r.drain([&](std::uint64_t&& v) { REQUIRE(v == next_out++); }, static_cast<std::size_t>(round % 7));
    }
    r.drain([&](std::uint64_t&& v) { REQUIRE(v == next_out++); }, 16);
    CHECK(next_out == next_in);
    CHECK(next_in > 1000);
  }

  TEST_CASE("a partial batch push fills exactly the free slots") {
    spsc_ring<int> r(4);
    int items[6] = {1, 2, 3, 4, 5, 6};
    CHECK(r.try_push_n(items, 6) == 4);
    CHECK(r.try_push_n(items, 6) == 0);
    int v;
    REQUIRE(r.try_pop(v));
    CHECK(r.try_push_n(items + 4, 2) == 1);
  }

  TEST_CASE("every element is constructed and destroyed exactly once, including leftovers") {
    {
      spsc_ring<tracked> r(8);
      for (std::uint64_t i = 0; i < 6; ++i)
        REQUIRE(r.try_emplace(i));
      tracked out;
      REQUIRE(r.try_pop(out));
      CHECK(out.value == 0);
      CHECK(tracked::live.load() == 1 + 5);
    } // the ring's destructor destroys the 5 left
    CHECK(tracked::live.load() == 0);
  }

  TEST_CASE("concurrent: one producer, one consumer, order kept, nothing lost or duplicated") {
    const std::uint64_t n = 10'000'000 / flowbus::test::scale;
    spsc_ring<std::uint64_t> r(1024);
    flowbus::test::start_barrier start(2);
    std::thread producer([&] {
      start.arrive_and_wait();
      std::uint64_t batch[8];
      for (std::uint64_t i = 0; i < n;) {
        if (i % 3 == 0) { // mix single and batch pushes
          if (r.try_push(i)) ++i;
        } else {
          const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(8, n - i));
          for (std::size_t j = 0; j < k; ++j)
            batch[j] = i + j;
          i += r.try_push_n(batch, k);
        }
      }
    });
    start.arrive_and_wait();
    std::uint64_t expected = 0, errors = 0;
    while (expected < n) {
      r.drain([&](std::uint64_t&& v) { errors += v != expected++; }, 64);
    }
    producer.join();
    CHECK(errors == 0);
    CHECK(expected == n);
    CHECK(r.empty());
  }
}
