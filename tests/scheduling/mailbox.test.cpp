// The doorbell protocol under stress: a consumer that sleeps until rung, producers that race it
// going idle. A lost wake-up shows as a consumer asleep over a non-empty queue (the test's
// deadline fails it); a double wake-up as two drain requests outstanding at once.
#include <flowbus/scheduling/mailbox.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace flowbus::scheduling;

namespace {

// Stands in for an actor's scheduler: drain requests queue up here, a worker thread runs them.
struct fake_scheduler {
  std::mutex m;
  std::condition_variable cv;
  int pending = 0;
  int max_pending = 0;
  std::uint64_t doorbells = 0;

  void schedule() {
    std::lock_guard<std::mutex> g(m);
    max_pending = std::max(max_pending, ++pending);
    cv.notify_one();
  }
  static void ring(void* self) noexcept {
    auto* s = static_cast<fake_scheduler*>(self);
    {
      std::lock_guard<std::mutex> g(s->m);
      ++s->doorbells;
    }
    s->schedule();
  }
  /// Waits for a drain request; false on timeout.
  bool take(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> g(m);
    if (!cv.wait_for(g, timeout, [&] { return pending > 0; })) return false;
    --pending;
    return true;
  }
};

template <class Mailbox> void stress(int producers, std::uint64_t per_producer, std::size_t batch) {
  fake_scheduler sched;
  Mailbox box(64, &fake_scheduler::ring, &sched);
  flowbus::test::start_barrier start(producers + 1);
  std::vector<std::thread> threads;
  std::uint64_t full = 0;
  std::mutex full_m;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      start.arrive_and_wait();
      std::uint64_t my_full = 0;
      for (std::uint64_t i = 0; i < per_producer;) {
        const push_result r = box.try_push((static_cast<std::uint64_t>(p) << 48) | i);
        if (r == push_result::full) {
          ++my_full;
          std::this_thread::yield();
        } else {
          ++i;
          if (i % 1024 == 0) std::this_thread::yield(); // let the consumer go idle often
        }
      }
      std::lock_guard<std::mutex> g(full_m);
      full += my_full;
    });
  start.arrive_and_wait();
  std::vector<std::uint64_t> next(static_cast<std::size_t>(producers), 0);
  std::uint64_t received = 0, out_of_order = 0, drains = 0;
  const std::uint64_t total = per_producer * static_cast<std::uint64_t>(producers);
  bool stuck = false;
  while (received < total) {
    if (!sched.take(std::chrono::seconds(10))) {
      stuck = true; // asleep with messages outstanding: a lost wake-up
      break;
    }
    ++drains;
    const drain_result r = box.drain(
        [&](std::uint64_t&& v) {
          const auto p = static_cast<std::size_t>(v >> 48);
          out_of_order += (v & 0xFFFFFFFFFFFFull) != next[p]++;
        },
        batch);
    received += r.count;
    if (r.more) sched.schedule(); // fairness cut: come back later, still active
  }
  for (auto& t : threads)
    t.join();
  CHECK_FALSE(stuck);
  CHECK(received == total);
  CHECK(out_of_order == 0);
  CHECK(sched.max_pending == 1); // never two drains requested for one active period
  CHECK(sched.doorbells >= 1);
  CHECK(sched.doorbells <= drains);
  // after the last message the consumer went idle, and nothing is left behind
  CHECK(box.queue().empty());
  MESSAGE("doorbells: ", sched.doorbells, " drains: ", drains, " full: ", full);
}

} // namespace

TEST_SUITE("mailbox") {

  TEST_CASE("one push into an idle mailbox rings once; pushes while active do not ring") {
    fake_scheduler sched;
    mpsc_mailbox<int> box(8, &fake_scheduler::ring, &sched);
    CHECK(box.idle());
    CHECK(box.try_push(1) == push_result::woke);
    CHECK(box.try_push(2) == push_result::ok);
    CHECK(sched.doorbells == 1);
    int sum = 0;
    drain_result r = box.drain([&](int&& v) { sum += v; }, 1);
    CHECK(r.count == 1);
    CHECK(r.more); // cut by max: still active
    CHECK(box.try_push(3) == push_result::ok);
    r = box.drain([&](int&& v) { sum += v; }, 10);
    CHECK(r.count == 2);
    CHECK_FALSE(r.more);
    CHECK(box.idle());
    CHECK(sum == 6);
    CHECK(box.try_push(4) == push_result::woke);
    CHECK(sched.doorbells == 2);
  }

  TEST_CASE("a spinning consumer takes what arrives during its spin, with no doorbell, then goes idle") {
    fake_scheduler sched;
    mpsc_mailbox<int> box(8, &fake_scheduler::ring, &sched);
    CHECK(box.try_push(1) == push_result::woke);
    int polls = 0, sum = 0;
    push_result during = push_result::full;
    const drain_result r = box.drain([&](int&& v) { sum += v; }, 16, [&] {
      if (++polls == 3) during = box.try_push(5); // a message arrives while the consumer spins
      return polls < 6;                          // the spin budget
    });
    CHECK(during == push_result::ok); // the consumer was still active: nobody rang
    CHECK(r.count == 2);
    CHECK(sum == 6);
    CHECK(polls == 6);
    CHECK(box.idle());
    CHECK(sched.doorbells == 1);
    CHECK(box.try_push(7) == push_result::woke);
  }

  TEST_CASE("a full mailbox refuses without ringing") {
    fake_scheduler sched;
    mpsc_mailbox<int> box(2, &fake_scheduler::ring, &sched);
    CHECK(box.try_push(1) == push_result::woke);
    CHECK(box.try_push(2) == push_result::ok);
    CHECK(box.try_push(3) == push_result::full);
    CHECK(sched.doorbells == 1);
  }

  TEST_CASE("ping-pong: each push lands while the consumer is going idle") {
    // The producer pushes i+1 as soon as the consumer has handled i: that is, while the consumer
    // is between "queue looked empty" and "I am idle". A lost wake-up strands i+1 at once.
    fake_scheduler sched;
    mpsc_mailbox<std::uint64_t> box(16, &fake_scheduler::ring, &sched);
    const std::uint64_t n = 200'000 / flowbus::test::scale;
    std::atomic<std::uint64_t> handled{0};
    std::atomic<bool> stop{false};
    std::thread consumer([&] {
      while (!stop.load()) {
        if (!sched.take(std::chrono::milliseconds(50))) continue;
        const drain_result r = box.drain([&](std::uint64_t&&) { handled.fetch_add(1); }, 4);
        if (r.more) sched.schedule();
      }
    });
    bool stranded = false;
    for (std::uint64_t i = 0; i < n && !stranded; ++i) {
      REQUIRE(box.try_push(i) != push_result::full);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (handled.load() <= i) {
        if (std::chrono::steady_clock::now() > deadline) {
          stranded = true;
          break;
        }
      }
    }
    stop = true;
    consumer.join();
    CHECK_FALSE(stranded);
    CHECK(handled.load() == n);
    CHECK(sched.max_pending == 1);
  }

  TEST_CASE("stress: no lost or doubled wake-up, one producer (spsc)") {
    stress<mpsc_mailbox<std::uint64_t>>(1, 2'000'000 / flowbus::test::scale, 7);
  }

  TEST_CASE("stress: no lost or doubled wake-up, three producers (mpsc)") {
    stress<mpsc_mailbox<std::uint64_t>>(3, 700'000 / flowbus::test::scale, 5);
  }
}
