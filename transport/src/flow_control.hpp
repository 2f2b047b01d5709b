// A connection's flow control toward its agent as a publisher, as the node keeps it (private to
// transport/; protocol.md §12). A pure state machine: no socket, no timer — the session tells it
// what happened and when, and it answers what to send (CREDIT 0 / 1), how long to wait before
// looking again, and whether the connection is starving. Its sibling receive_window.hpp is the
// other direction (the agent's window for what the node writes).
//
// - Hold: a message met a recipient above its high water mark. The publisher gets CREDIT 0 and is
//   not read until that recipient is below its low mark (looked at after 100 µs, doubling to 5 ms),
//   then CREDIT 1. While held and itself waited for (its own CREDIT/ACK are behind its data), it is
//   shown as stalled so that two publishers holding each other do not wait for ever.
// - Pause: the node had no frame buffer for a message. No reading; the same message is tried again
//   after 100 µs, doubling to 5 ms while the pool stays empty, back to the start once it goes.
// - Starvation: frames wait for the agent (its receive or ack window is used up). Lasting the write
//   timeout, it is a slow consumer like one that reads nothing.
// @threadsafe no (the session's strand)
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

namespace flowbus::transport::detail {

class flow_control {
public:
  using clock = std::chrono::steady_clock;
  using us = std::chrono::microseconds;
  static constexpr us first_look{100}, longest_wait{5000};

  // holds
  /// The message just routed met a recipient above its high water mark (not a CRITICAL one).
  void met_throttled() noexcept { hold_due_ = true; }
  /// After the message: a due hold begins. True if a new hold began (send CREDIT 0, count it).
  bool begin_hold() noexcept {
    if (!hold_due_) return false;
    hold_due_ = false;
    if (holding_) return false;
    holding_ = true;
    hold_wait_ = first_look;
    return true;
  }
  bool holding() const noexcept { return holding_; }
  /// When to look at the holding recipient again: 100 µs, doubling to 5 ms.
  us next_look() noexcept {
    const us wait = hold_wait_;
    hold_wait_ = std::min(hold_wait_ * 2, longest_wait);
    return wait;
  }
  /// The recipient is below its low water mark, or gone: the hold ends (send CREDIT 1).
  void end_hold() noexcept { holding_ = false; }
  /// Whether the publisher shows as stalled: held, and frames wait for its own CREDIT or ACK.
  /// Returns the new value when it changed.
  std::optional<bool> update_stalled(bool waits_for_agent) noexcept {
    const bool on = holding_ && waits_for_agent;
    if (on == stalled_) return std::nullopt;
    stalled_ = on;
    return on;
  }
  bool stalled() const noexcept { return stalled_; }

  // pauses
  /// No frame buffer for the message: reading pauses.
  void no_buffer() noexcept { paused_ = true; }
  /// How long until the paused message is tried again: 100 µs, doubling to 5 ms.
  us pause() noexcept {
    if (rate_wait_.count()) return std::exchange(rate_wait_, us(0));
    pause_wait_ = std::min(pause_wait_ * 2, longest_wait);
    return pause_wait_;
  }
  bool paused() const noexcept { return paused_; }
  bool rate_waiting() const noexcept { return rate_wait_.count() != 0; }
  /// The agent is over its rate: reading pauses for `wait` (until its buckets have room), then
  /// the message is tried again.
  void over_rate(us wait) noexcept {
    paused_ = true;
    rate_wait_ = std::max(wait, us(1));
  }
  /// The wait is over: the message is tried again (pause() again if it still finds no buffer).
  void retry() noexcept { paused_ = false; }
  /// After the retry: if it went through, the next pause starts from the first wait again.
  void retried() noexcept {
    if (!paused_) pause_wait_ = us(50);
  }
  /// The connection closes: a paused message is not tried again.
  void cancel_pause() noexcept { paused_ = false; }

  // starvation
  /// Whether frames wait for the agent now. True if they just began to (arm the watchdog).
  bool waiting(bool waits_for_agent, clock::time_point now) noexcept {
    if (!waits_for_agent) {
      starved_since_.reset();
      return false;
    }
    if (starved_since_) return false;
    starved_since_ = now;
    return true;
  }
  /// How long frames have waited for the agent; none if they do not.
  std::optional<clock::duration> starved_for(clock::time_point now) const noexcept {
    if (!starved_since_) return std::nullopt;
    return now - *starved_since_;
  }

private:
  bool hold_due_ = false; ///< the last message met a throttled recipient: hold before reading on
  bool holding_ = false;  ///< CREDIT 0 sent, CREDIT 1 not yet
  bool stalled_ = false;
  bool paused_ = false;   ///< a message waits for a frame buffer
  us hold_wait_{first_look};
  us pause_wait_{50};
  us rate_wait_{0}; ///< over the rate: the next pause is this long
  std::optional<clock::time_point> starved_since_;
};

} // namespace flowbus::transport::detail
