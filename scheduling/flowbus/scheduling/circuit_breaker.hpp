// A circuit breaker (Nygard's "Release It!"; resilience4j's count and rate thresholds) for one
// downstream — in flowbus, one agent: deliveries that keep failing trip it, and while it is open
// messages for the agent fail fast (to the circuit-breaker dead-letter queue) instead of piling up.
//
//   closed ── failures in the sliding window reach the count, or the rate with enough calls ──▶ open
//   open ── open_for elapsed ──▶ half_open: up to `trial_calls` messages are let through
//   half_open ── every trial succeeds ──▶ closed (window cleared) · any trial fails ──▶ open again
//
// The window is `window` long, kept as `buckets` counters of successes and failures (old buckets
// roll off as time passes), so the memory is fixed and no call is stored. Time is passed in
// (steady nanoseconds), which keeps the breaker a pure state machine that tests drive exactly.
// @threadsafe no: one owner (the agent's breaker actor).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace flowbus::scheduling {

struct breaker_options {
  std::uint64_t window_ns = 10'000'000'000;   ///< sliding window length
  std::uint32_t buckets = 10;                 ///< window resolution
  std::uint32_t failure_count = 5;            ///< open at this many failures in the window (0: off)
  double failure_rate = 0.5;                  ///< open at this failed fraction of calls (0: off) ...
  std::uint32_t min_calls = 10;               ///< ... once the window holds this many calls
  std::uint64_t open_for_ns = 5'000'000'000;  ///< how long open fails fast before trying again
  std::uint32_t trial_calls = 3;              ///< calls let through in half-open
};

enum class breaker_state : std::uint8_t { closed, open, half_open };
const char* to_string(breaker_state s) noexcept;

class circuit_breaker {
public:
  explicit circuit_breaker(breaker_options o = {})
      : opt_(o), buckets_(std::max<std::uint32_t>(o.buckets, 1)) {
    bucket_ns_ = std::max<std::uint64_t>(opt_.window_ns / buckets_.size(), 1);
  }

  /// Whether a call may go through now. In half-open this admits (and counts) a trial call, so
  /// call it once per message and report its outcome.
  bool allow(std::uint64_t now) {
    switch (state_) {
      case breaker_state::closed: return true;
      case breaker_state::open:
        if (now < opened_at_ + opt_.open_for_ns) {
          ++rejected_;
          return false;
        }
        enter(breaker_state::half_open, now);
        [[fallthrough]];
      case breaker_state::half_open:
        if (trials_started_ < opt_.trial_calls) {
          ++trials_started_;
          return true;
        }
        ++rejected_;
        return false;
    }
    return false;
  }

  void on_success(std::uint64_t now) {
    if (state_ == breaker_state::half_open) {
      if (++trials_succeeded_ >= opt_.trial_calls) enter(breaker_state::closed, now);
      return;
    }
    if (state_ == breaker_state::closed) slot(now).ok++;
  }

  void on_failure(std::uint64_t now) {
    if (state_ == breaker_state::half_open) {
      enter(breaker_state::open, now);
      return;
    }
    if (state_ != breaker_state::closed) return; // a late outcome of a call let through before it opened
    slot(now).failed++;
    std::uint64_t ok = 0, failed = 0;
    totals(now, ok, failed);
    const bool by_count = opt_.failure_count && failed >= opt_.failure_count;
    const bool by_rate = opt_.failure_rate > 0 && ok + failed >= std::max<std::uint32_t>(opt_.min_calls, 1) &&
                         static_cast<double>(failed) >= opt_.failure_rate * static_cast<double>(ok + failed);
    if (by_count || by_rate) enter(breaker_state::open, now);
  }

  /// The state as of `now` (an open breaker whose time is up reads as half-open).
  breaker_state state(std::uint64_t now) const noexcept {
    if (state_ == breaker_state::open && now >= opened_at_ + opt_.open_for_ns) return breaker_state::half_open;
    return state_;
  }
  breaker_state state() const noexcept { return state_; }
  std::uint64_t rejected() const noexcept { return rejected_; }   ///< calls refused fast
  std::uint64_t transitions() const noexcept { return transitions_; }
  /// Failures and successes in the window as of `now`.
  std::pair<std::uint64_t, std::uint64_t> window(std::uint64_t now) const {
    std::uint64_t ok = 0, failed = 0;
    totals(now, ok, failed);
    return {failed, ok};
  }
  const breaker_options& options() const noexcept { return opt_; }

private:
  struct bucket {
    std::uint64_t epoch = UINT64_MAX; ///< which bucket_ns period it counts
    std::uint64_t ok = 0, failed = 0;
  };

  bucket& slot(std::uint64_t now) {
    const std::uint64_t e = now / bucket_ns_;
    bucket& b = buckets_[e % buckets_.size()];
    if (b.epoch != e) b = {e, 0, 0};
    return b;
  }

  void totals(std::uint64_t now, std::uint64_t& ok, std::uint64_t& failed) const {
    const std::uint64_t e = now / bucket_ns_;
    for (const auto& b : buckets_)
      if (b.epoch != UINT64_MAX && b.epoch + buckets_.size() > e && b.epoch <= e) {
        ok += b.ok;
        failed += b.failed;
      }
  }

  void enter(breaker_state s, std::uint64_t now) {
    state_ = s;
    ++transitions_;
    trials_started_ = trials_succeeded_ = 0;
    if (s == breaker_state::open) opened_at_ = now;
    if (s == breaker_state::closed) std::fill(buckets_.begin(), buckets_.end(), bucket{});
  }

  breaker_options opt_;
  std::vector<bucket> buckets_;
  std::uint64_t bucket_ns_ = 1;
  breaker_state state_ = breaker_state::closed;
  std::uint64_t opened_at_ = 0, rejected_ = 0, transitions_ = 0;
  std::uint32_t trials_started_ = 0, trials_succeeded_ = 0;
};

} // namespace flowbus::scheduling
