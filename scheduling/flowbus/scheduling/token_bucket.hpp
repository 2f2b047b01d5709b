// Token buckets: rates with a burst (the node's rate limits per agent and per source address;
// docs/security.md, "Rate limits"). Pure: time is passed in, nothing is locked.
//
// A bucket holds up to `burst` tokens and gains `rate` per second. Taking n tokens succeeds if
// the bucket holds n — or, for n above the burst (a message bigger than the byte burst), if the
// bucket is full: it then goes into debt, repaid before anything else is taken, so the long-run
// rate holds whatever the sizes.
// @threadsafe no (one owner: a session's strand, the acceptor's strand)
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace flowbus::scheduling {

class token_bucket {
public:
  using clock = std::chrono::steady_clock;

  /// Unlimited: every take succeeds.
  token_bucket() = default;
  /// `rate` tokens a second (<= 0: unlimited), up to `burst` (<= 0: one second's worth); full at first.
  token_bucket(double rate, double burst, clock::time_point now) noexcept
      : rate_(rate), burst_(burst > 0 ? burst : rate), tokens_(burst_), last_(now) {}

  bool unlimited() const noexcept { return rate_ <= 0; }
  double rate() const noexcept { return rate_; }
  double burst() const noexcept { return burst_; }

  /// Takes n tokens if they are there (all of the burst will do for more than the burst).
  bool take(double n, clock::time_point now) noexcept {
    if (unlimited()) return true;
    refill(now);
    if (tokens_ + epsilon < std::min(n, burst_)) return false;
    tokens_ -= n;
    return true;
  }
  /// Takes n tokens now, into debt if there are fewer: how long until the bucket is out of debt
  /// (zero: it had them). Several reservations queue up behind each other at the rate.
  clock::duration reserve(double n, clock::time_point now) noexcept {
    if (unlimited()) return clock::duration::zero();
    refill(now);
    tokens_ -= n;
    if (tokens_ >= -epsilon) return clock::duration::zero();
    return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(-tokens_ / rate_)) +
           clock::duration(1);
  }
  /// How long until take(n) would succeed (zero: now).
  clock::duration wait(double n, clock::time_point now) noexcept {
    if (unlimited()) return clock::duration::zero();
    refill(now);
    const double missing = std::min(n, burst_) - tokens_;
    if (missing <= epsilon) return clock::duration::zero();
    return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(missing / rate_)) +
           clock::duration(1); // (never zero: the caller waits, then takes)
  }
  /// Whether the bucket is full now (an idle source: its state may be forgotten).
  bool full(clock::time_point now) noexcept {
    if (unlimited()) return true;
    refill(now);
    return tokens_ + epsilon >= burst_;
  }

private:
  /// Refills add up in floating point: 0.9 + 0.1 tokens is a whole token.
  static constexpr double epsilon = 1e-9;

  void refill(clock::time_point now) noexcept {
    if (now <= last_) return;
    tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

  double rate_ = 0, burst_ = 0, tokens_ = 0;
  clock::time_point last_{};
};

/// Messages and bytes a second together: a message goes through when both buckets have room,
/// and takes from both; else it takes from neither, and wait() says how long until it would.
class rate_limiter {
public:
  using clock = token_bucket::clock;

  rate_limiter() = default; ///< unlimited
  rate_limiter(double msgs_per_s, double burst_msgs, double bytes_per_s, double burst_bytes, clock::time_point now) noexcept
      : msgs_(msgs_per_s, burst_msgs, now), bytes_(bytes_per_s, burst_bytes, now) {}

  bool unlimited() const noexcept { return msgs_.unlimited() && bytes_.unlimited(); }
  /// Zero: the message of `bytes` goes through (taken from both buckets). Else how long until it would.
  clock::duration admit(std::size_t bytes, clock::time_point now) noexcept {
    const auto w = std::max(msgs_.wait(1, now), bytes_.wait(static_cast<double>(bytes), now));
    if (w != clock::duration::zero()) return w;
    msgs_.take(1, now);
    bytes_.take(static_cast<double>(bytes), now);
    return w;
  }

private:
  token_bucket msgs_, bytes_;
};

} // namespace flowbus::scheduling
