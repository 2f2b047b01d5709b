// Acknowledged delivery to one agent without a socket or a timer (transport/src/delivery_tracker.hpp):
// cumulative ACKs, NACKs that schedule a retry with backoff, the retry budget (the sender's own or
// the node's) ending in the poison dead letters, the breaker, and what a lost connection leaves.
#include "transport/src/delivery_tracker.hpp"

#include "edge_frames.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace flowbus;
using transport::detail::delivery_options;
using transport::detail::delivery_tracker;
using test::stored_frame;

namespace {

constexpr std::uint64_t ms = 1'000'000; // in ns

delivery_options options(std::uint32_t attempts, bool breaker = false) {
  delivery_options o;
  o.window = 8;
  o.retry = scheduling::retry_policy{attempts, std::chrono::milliseconds(20), std::chrono::milliseconds(1000)};
  o.breaker_enabled = breaker;
  o.breaker.failure_count = 3;
  o.breaker.failure_rate = 0;
  o.breaker.open_for_ns = 100 * ms;
  o.breaker.trial_calls = 1;
  return o;
}

} // namespace

TEST_SUITE("delivery_tracker") {
  TEST_CASE("ACK is cumulative; the window counts what is in flight") {
    actors::dead_letters dead;
    const std::string agent = "a";
    delivery_tracker t(dead, agent, options(3));
    for (std::uint64_t s = 10; s < 15; ++s)
      t.sent(s, stored_frame("m" + std::to_string(s)));
    CHECK(t.in_flight() == 5);
    CHECK_FALSE(t.full());
    CHECK(t.full(3));
    CHECK(t.ack(9, 0) == 0);
    CHECK(t.ack(12, 0) == 3);
    CHECK(t.in_flight() == 2);
    CHECK(t.ack(12, 0) == 0); // a repeated ACK changes nothing
    CHECK(t.ack(100, 0) == 2);
    CHECK(dead.total() == 0);
  }

  TEST_CASE("a NACK schedules the same frame again within the backoff; an unknown one is ignored") {
    actors::dead_letters dead;
    const std::string agent = "a";
    delivery_tracker t(dead, agent, options(3));
    auto f = stored_frame("job");
    const void* bytes = f.data();
    t.sent(7, f);
    CHECK_FALSE(t.nack(6, 0).known);
    CHECK_FALSE(t.next_retry_ns().has_value());
    const std::uint64_t now = 1000 * ms;
    const auto out = t.nack(7, now);
    CHECK(out.known);
    CHECK_FALSE(out.poison);
    REQUIRE(t.next_retry_ns().has_value());
    const std::uint64_t due = *t.next_retry_ns();
    CHECK(due >= now);
    CHECK(due <= now + 20 * ms); // full jitter under the first ceiling
    std::vector<const void*> again;
    auto collect = [&](scheduling::buffer_ref&& r) { again.push_back(r.data()); };
    if (due > now) {
      t.take_due(due - 1, collect);
      CHECK(again.empty());
    }
    t.take_due(due, collect);
    REQUIRE(again.size() == 1);
    CHECK(again[0] == bytes); // the same buffer, not a copy
    CHECK_FALSE(t.next_retry_ns().has_value());
    CHECK(t.ack(7, now) == 1);
  }

  TEST_CASE("the node's retry budget, then the poison dead letters with the attempts made") {
    actors::dead_letters dead;
    const std::string agent = "a";
    delivery_tracker t(dead, agent, options(3));
    auto f = stored_frame("bad");
    std::uint64_t seq = 1;
    for (int attempt = 1; attempt <= 2; ++attempt) {
      t.sent(seq, f);
      const auto out = t.nack(seq, 0);
      CHECK(out.known);
      CHECK_FALSE(out.poison);
      t.take_due(UINT64_MAX, [](scheduling::buffer_ref&&) {});
      CHECK(t.ack(seq, 0) == 1);
      ++seq;
    }
    t.sent(seq, f);
    const auto last = t.nack(seq, 0);
    CHECK(last.poison);
    CHECK_FALSE(t.next_retry_ns().has_value());
    CHECK(dead.count(actors::dead_reason::poison) == 1);
    const auto entries = dead.take();
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].attempts == 3);
    CHECK(entries[0].recipient == "a");
  }

  TEST_CASE("a sender's own max_attempts wins over the node's policy") {
    actors::dead_letters dead;
    const std::string agent = "a";
    delivery_tracker t(dead, agent, options(5));
    test::frame_spec once;
    once.max_attempts = 1;
    auto f = test::stored_frame(once);
    CHECK(t.retry_budget(f) == 1);
    CHECK(t.retry_budget(stored_frame("plain")) == 5);
    t.sent(1, f);
    CHECK(t.nack(1, 0).poison);
    CHECK(dead.count(actors::dead_reason::poison) == 1);
  }

  TEST_CASE("failures open the breaker: frames are refused as circuit_open until it lets a trial through") {
    actors::dead_letters dead;
    const std::string agent = "a";
    std::vector<scheduling::breaker_state> shown;
    auto o = options(10, true);
    o.show_breaker = [&](scheduling::breaker_state s) { shown.push_back(s); };
    delivery_tracker t(dead, agent, o);
    actors::agent_breaker::arm_after arm;
    auto probe = stored_frame("probe");
    CHECK(t.allows(probe, 0, arm)); // no failure yet: no breaker
    const std::uint64_t now = 1000 * ms;
    actors::agent_breaker::arm_after opened;
    for (std::uint64_t s = 1; s <= 3; ++s) {
      t.sent(s, stored_frame("f"));
      const auto out = t.nack(s, now);
      if (out.arm) opened = out.arm;
    }
    REQUIRE(opened.has_value()); // the third failure opened it: arm its timer
    CHECK(t.breaker_state() == scheduling::breaker_state::open);
    REQUIRE_FALSE(shown.empty());
    CHECK(shown.back() == scheduling::breaker_state::open);
    auto refused = stored_frame("refused");
    CHECK_FALSE(t.allows(refused, now + 1, arm));
    CHECK(dead.count(actors::dead_reason::circuit_open) == 1);
    t.breaker_timer(now + 101 * ms); // open_for has passed
    CHECK(shown.back() == scheduling::breaker_state::half_open);
    auto trial = stored_frame("trial");
    CHECK(t.allows(trial, now + 102 * ms, arm));
  }

  TEST_CASE("a lost connection dead-letters what waits for a retry and what was never acknowledged") {
    actors::dead_letters dead;
    const std::string agent = "a";
    delivery_tracker t(dead, agent, options(3));
    for (std::uint64_t s = 1; s <= 4; ++s)
      t.sent(s, stored_frame("m"));
    t.nack(2, 0);
    t.drop_all();
    // each once: the NACKed one is in flight and waits for its retry, but is one message
    CHECK(dead.count(actors::dead_reason::agent_unavailable) == 4);
    CHECK(t.in_flight() == 0);
    CHECK_FALSE(t.next_retry_ns().has_value());
  }
}
