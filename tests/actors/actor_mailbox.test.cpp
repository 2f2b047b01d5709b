// A CAF actor fed through the lock-free mailbox: producers on plain threads, the actor drains in
// fair batches, CAF messages only as doorbells.
#include <flowbus/actors/actor_mailbox.hpp>

#include "test_support.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>
#include <vector>

using namespace flowbus;
using box_t = actors::actor_mailbox<scheduling::mpsc_queue<std::uint64_t>>;

namespace {
struct consumer_state {
  std::vector<std::uint64_t> next;
  std::uint64_t received = 0, out_of_order = 0, drains = 0;
};

caf::behavior consumer(caf::stateful_actor<consumer_state>* self, box_t* box, int producers, std::uint64_t total,
                       std::promise<consumer_state>* done) {
  self->state.next.assign(static_cast<std::size_t>(producers), 0);
  return {[=](actors::drain_atom) {
    auto& st = self->state;
    ++st.drains;
    actors::drain_step(
        self, *box,
        [&](std::uint64_t&& v) {
          const auto p = static_cast<std::size_t>(v >> 48);
          st.out_of_order += (v & 0xFFFFFFFFFFFFull) != st.next[p]++;
          ++st.received;
        },
        128);
    if (st.received == total) {
      done->set_value(st);
      self->quit();
    }
  }};
}
} // namespace

TEST_SUITE("actor_mailbox") {

  TEST_CASE("producer threads feed a CAF actor through the ring; doorbells only when it was idle") {
    constexpr int producers = 2;
    const std::uint64_t per = 500'000 / flowbus::test::scale;
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    caf::actor_system sys{cfg};
    box_t box(1024);
    std::promise<consumer_state> done;
    auto actor = sys.spawn(consumer, &box, producers, per * producers, &done);
    box.bind(actor);
    std::atomic<std::uint64_t> rings{0}, full{0};
    flowbus::test::start_barrier start(producers);
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&, p] {
        start.arrive_and_wait();
        for (std::uint64_t i = 0; i < per;) {
          const scheduling::push_result r = box.try_push((static_cast<std::uint64_t>(p) << 48) | i);
          if (r == scheduling::push_result::full) {
            full.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
            continue;
          }
          if (r == scheduling::push_result::woke) rings.fetch_add(1, std::memory_order_relaxed);
          ++i;
        }
      });
    auto fut = done.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
    for (auto& t : threads)
      t.join();
    const consumer_state st = fut.get();
    CHECK(st.received == per * producers);
    CHECK(st.out_of_order == 0);
    CHECK(rings.load() >= 1);
    CHECK(rings.load() < st.received / 10); // the ring carries the data, CAF only the doorbells
    MESSAGE("items: ", st.received, " doorbells: ", rings.load(), " drain messages: ", st.drains,
            " full: ", full.load());
  }
}
