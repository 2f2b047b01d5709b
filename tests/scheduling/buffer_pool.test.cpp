#include <flowbus/scheduling/buffer_pool.hpp>
#include <flowbus/scheduling/spsc_ring.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <optional>
#include <ostream> // doctest prints std::error_code
#include <string>
#include <thread>

using namespace flowbus::scheduling;

namespace {
buffer_pool_options small_pool(bool spill = false) {
  buffer_pool_options o;
  o.classes = {{1024, 2}, {256, 4}}; // unsorted on purpose
  o.huge_pages = false;
  o.spill_to_larger = spill;
  return o;
}
std::size_t free_of(const buffer_pool& p, std::size_t capacity) {
  for (const auto& s : p.stats())
    if (s.capacity == capacity) return s.free;
  return ~std::size_t{0};
}
} // namespace

TEST_SUITE("buffer_pool") {

  TEST_CASE("the smallest class that fits serves; fresh buffers are empty and unshared") {
    buffer_pool pool(small_pool());
    buffer_ref a = pool.try_acquire(10);
    REQUIRE(a);
    CHECK(a.capacity() == 256);
    CHECK(a.size() == 0);
    CHECK(a.use_count() == 1);
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
    buffer_ref b = pool.try_acquire(257);
    REQUIRE(b);
    CHECK(b.capacity() == 1024);
    CHECK_FALSE(pool.try_acquire(1025)); // above the largest class
    CHECK(pool.largest_capacity() == 1024);
  }

  TEST_CASE("exhaustion returns an empty ref, counts it, and recovers when a buffer comes back") {
    buffer_pool pool(small_pool());
    std::vector<buffer_ref> held;
    for (int i = 0; i < 4; ++i)
      held.push_back(pool.try_acquire(100));
    for (auto& h : held)
      REQUIRE(h);
    CHECK(free_of(pool, 256) == 0);
    CHECK_FALSE(pool.try_acquire(100)); // no spill: the 1 KiB class is not touched
    CHECK(free_of(pool, 1024) == 2);
    CHECK(pool.stats()[0].exhausted == 1);
    held.pop_back();
    CHECK(free_of(pool, 256) == 1);
    CHECK(pool.try_acquire(100));
  }

  TEST_CASE("with spill_to_larger, a larger class serves an exhausted one") {
    buffer_pool pool(small_pool(true));
    std::vector<buffer_ref> held;
    for (int i = 0; i < 6; ++i) {
      held.push_back(pool.try_acquire(100));
      REQUIRE(held.back());
    }
    CHECK(held[4].capacity() == 1024);
    CHECK_FALSE(pool.try_acquire(100)); // everything gone now
  }

  TEST_CASE("a heap copy holds its own bytes, is not pooled, and is freed by its last release") {
    buffer_pool pool(small_pool());
    buffer_ref a = pool.try_acquire(5);
    std::memcpy(a.data(), "hello", 5);
    a.set_size(5);
    CHECK(a.pooled());
    buffer_ref c = buffer_ref::copy_of(a.data(), a.size());
    CHECK_FALSE(c.pooled());
    a.reset(); // the pool buffer goes back; the copy is independent
    CHECK(free_of(pool, 256) == 4);
    REQUIRE(c.size() == 5);
    CHECK(std::memcmp(c.data(), "hello", 5) == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(c.data()) % 64 == 0);
    buffer_ref shared = c; // shared like a pooled one; ASan checks the single free
    CHECK(c.use_count() == 2);
    c.reset();
    CHECK(shared.use_count() == 1);
    CHECK(std::memcmp(shared.data(), "hello", 5) == 0);
    CHECK_FALSE(buffer_ref{}.pooled());
  }

  TEST_CASE("a fan-out shares one buffer; the last release returns it") {
    buffer_pool pool(small_pool());
    buffer_ref frame = pool.try_acquire(200);
    std::memcpy(frame.data(), "FLOW", 4);
    frame.set_size(4);
    std::vector<buffer_ref> recipients(10, frame);
    CHECK(frame.use_count() == 11);
    for (const auto& r : recipients) {
      CHECK(r.data() == frame.data()); // zero-copy: same bytes
      CHECK(r.size() == 4);
    }
    frame.reset();
    CHECK(free_of(pool, 256) == 3);
    recipients.clear();
    CHECK(free_of(pool, 256) == 4);
  }

  TEST_CASE("a buffer released on another thread goes back to its pool") {
    buffer_pool pool(small_pool());
    buffer_ref b = pool.try_acquire(64);
    std::thread t([moved = std::move(b)]() mutable { moved.reset(); });
    t.join();
    CHECK(free_of(pool, 256) == 4);
  }

  TEST_CASE("concurrent: buffers filled on one thread, checked and released on another") {
    buffer_pool_options o;
    o.classes = {{256, 64}};
    o.huge_pages = false;
    buffer_pool pool(o);
    spsc_ring<buffer_ref> to_consumer(32);
    const std::uint64_t n = 2'000'000 / flowbus::test::scale;
    flowbus::test::start_barrier start(2);
    std::thread producer([&] {
      start.arrive_and_wait();
      for (std::uint64_t i = 0; i < n;) {
        buffer_ref b = pool.try_acquire(256);
        if (!b) {
          std::this_thread::yield(); // exhausted: the consumer still holds them
          continue;
        }
        std::memcpy(b.data(), &i, sizeof i);
        std::memset(b.data() + 8, static_cast<int>(i & 0xFF), 248);
        b.set_size(256);
        while (!to_consumer.try_push(std::move(b)))
          std::this_thread::yield();
        ++i;
      }
    });
    start.arrive_and_wait();
    std::uint64_t expected = 0, corrupt = 0;
    while (expected < n) {
      to_consumer.drain(
          [&](buffer_ref&& b) {
            std::uint64_t v;
            std::memcpy(&v, b.data(), 8);
            corrupt += v != expected || b.data()[255] != static_cast<unsigned char>(expected & 0xFF);
            ++expected;
          },
          16);
    }
    producer.join();
    CHECK(corrupt == 0);
    CHECK(free_of(pool, 256) == 64); // every buffer is back
  }

  TEST_CASE("thread caches: a thread keeps a few free buffers and gives them back when it exits") {
    buffer_pool_options o;
    o.classes = {{256, 1024}}; // 1024 / 128: each thread may cache up to 8
    o.huge_pages = false;
    buffer_pool pool(o);
    flowbus::test::start_barrier cached(2), done(2);
    std::thread t([&] {
      std::vector<buffer_ref> held;
      for (int i = 0; i < 100; ++i)
        held.push_back(pool.try_acquire(64));
      held.clear(); // released into this thread's cache first, the overflow back to the list
      cached.arrive_and_wait();
      done.arrive_and_wait();
    });
    cached.arrive_and_wait();
    const std::size_t shared = free_of(pool, 256);
    CHECK(shared < 1024);
    CHECK(shared >= 1024 - 8);
    done.arrive_and_wait();
    t.join();
    CHECK(free_of(pool, 256) == 1024); // the exiting thread flushed its cache
  }

  TEST_CASE("thread caches: a pool may die while a living thread still caches its buffers") {
    buffer_pool_options o;
    o.classes = {{256, 1024}};
    o.huge_pages = false;
    flowbus::test::start_barrier cached(2), pool_gone(2), reused(2);
    std::optional<buffer_pool> pool(std::in_place, o);
    std::thread t([&] {
      pool->try_acquire(64).reset(); // now cached by this thread
      cached.arrive_and_wait();
      pool_gone.arrive_and_wait();
      pool->try_acquire(64).reset(); // a new pool, perhaps at the same address
      reused.arrive_and_wait();
    }); // exits: its cache holds buffers of the new pool only; the dead one's are dropped
    cached.arrive_and_wait();
    pool.emplace(o);
    pool_gone.arrive_and_wait();
    reused.arrive_and_wait();
    t.join();
    CHECK(free_of(*pool, 256) == 1024);
  }

  TEST_CASE("huge pages are used when the kernel has them, with a fallback that works") {
    std::error_code ec;
    buffer_pool pool(buffer_pool_options{}, ec);
    REQUIRE_FALSE(ec);
    MESSAGE("default pool pages: ", std::string(to_string(pool.pages())));
    buffer_ref b = pool.try_acquire(65536);
    REQUIRE(b);
    std::memset(b.data(), 0xAB, 65536);
    CHECK(b.data()[65535] == 0xAB);
  }
}
