// Left-Right: readers never see a half-applied change and never block; both copies stay equal.
// The structure under test is deliberately not thread-safe (a vector and a running sum): a reader
// in the copy being written would see a sum that disagrees with the elements, and ThreadSanitizer
// would report the race.
#include <flowbus/scheduling/left_right.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <numeric>
#include <thread>
#include <vector>

using namespace flowbus::scheduling;

namespace {
struct ledger {
  std::vector<std::uint64_t> items;
  std::uint64_t sum = 0;
  void add(std::uint64_t x) {
    items.push_back(x);
    sum += x;
  }
  bool consistent() const { return std::accumulate(items.begin(), items.end(), std::uint64_t{0}) == sum; }
};
} // namespace

TEST_SUITE("left_right") {
  TEST_CASE("a change is visible to the next read, generation advances, f's result is returned") {
    left_right<ledger> lr;
    CHECK(lr.generation() == 0);
    const std::size_t n = lr.modify([](ledger& l) {
      l.add(5);
      return l.items.size();
    });
    CHECK(n == 1);
    CHECK(lr.generation() == 1);
    CHECK(lr.read([](const ledger& l) { return l.sum; }) == 5);
    lr.modify([](ledger& l) { l.add(7); });
    CHECK(lr.read([](const ledger& l) { return l.sum; }) == 12);
    CHECK(lr.writer_view().items == std::vector<std::uint64_t>{5, 7});
  }

  TEST_CASE("both copies receive every change, in order") {
    left_right<ledger> lr;
    for (std::uint64_t i = 1; i <= 9; ++i)
      lr.modify([i](ledger& l) { l.add(i); });
    // each modify switches copies: consecutive reads after even and odd counts see both copies
    const auto a = lr.read([](const ledger& l) { return l.items; });
    lr.modify([](ledger& l) { l.add(10); });
    const auto b = lr.read([](const ledger& l) { return l.items; });
    CHECK(a == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(b == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  }

  TEST_CASE("concurrent readers see consistent, monotonically growing states while a writer changes them") {
    // 2 readers + the writer on a 2-CPU machine, possibly next to other tests: readers yield now
    // and then so that a writer waiting for them is not starved for whole scheduler quanta
    constexpr int readers = 2;
    const std::uint64_t writes = 5000 / flowbus::test::scale;
    left_right<ledger> lr;
    flowbus::test::start_barrier start(readers + 1);
    std::atomic<bool> done{false};
    std::atomic<int> torn{0}, backwards{0};
    std::atomic<std::uint64_t> reads{0};
    std::atomic<int> reading{0}; // readers past their first read: the writes overlap real reads
    std::vector<std::thread> ts;
    for (int r = 0; r < readers; ++r)
      ts.emplace_back([&] {
        start.arrive_and_wait();
        std::size_t last = 0;
        std::uint64_t mine = 0;
        bool first = true;
        while (!done.load(std::memory_order_acquire)) {
          const auto [ok, size] = lr.read([](const ledger& l) { return std::make_pair(l.consistent(), l.items.size()); });
          if (!ok) torn.fetch_add(1);
          if (size < last) backwards.fetch_add(1);
          last = size;
          if (first) reading.fetch_add(1), first = false;
          if (++mine % 64 == 0) std::this_thread::yield();
        }
        reads.fetch_add(mine);
      });
    start.arrive_and_wait();
    while (reading.load() < readers) // on a loaded machine the writer could otherwise finish first
      std::this_thread::yield();
    for (std::uint64_t i = 1; i <= writes; ++i)
      lr.modify([i](ledger& l) { l.add(i); });
    done.store(true, std::memory_order_release);
    for (auto& t : ts)
      t.join();
    CHECK(torn.load() == 0);
    CHECK(backwards.load() == 0);
    CHECK(reads.load() > 0);
    CHECK(lr.read([](const ledger& l) { return l.sum; }) == writes * (writes + 1) / 2);
    CHECK(lr.generation() == writes);
  }
}
