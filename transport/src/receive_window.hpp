// An agent's receive window as the node keeps it (private to transport/; protocol.md §12, CREDIT).
//
// The agent announces a window of N data messages in REGISTER and grants them back with CREDIT as
// its handlers finish. The node writes at most N data messages ahead of those grants; CRITICAL
// ones may overdraw by one more window (an urgent frame is not stuck behind a slow handler), and
// control frames never count. A pure value: no clock, no socket — the session asks it which lanes
// may go next and tells it what it wrote and what was granted.
#pragma once

#include <algorithm>
#include <cstdint>

namespace flowbus::transport::detail {

class receive_window {
public:
  /// Above this an announced window is taken as this (a window is a count, not a byte size).
  static constexpr std::uint32_t max_window = 1u << 30;

  /// `announced`: REGISTER's `credit` field (0: no window, TCP's flow control alone).
  void open(std::uint64_t announced) noexcept {
    window_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(announced, max_window));
    credit_ = window_;
  }
  bool enabled() const noexcept { return window_ != 0; }
  std::uint32_t size() const noexcept { return window_; }
  std::int64_t credit() const noexcept { return credit_; }

  /// CREDIT n: the agent handled n more data messages. Never more than a window in hand (a
  /// duplicated or inflated grant cannot open the window wider than announced).
  void grant(std::uint64_t n) noexcept {
    if (!window_) return;
    credit_ = std::min<std::int64_t>(credit_ + static_cast<std::int64_t>(std::min<std::uint64_t>(n, window_)), window_);
  }
  /// A data message was written (control frames do not count).
  void wrote_data() noexcept {
    if (window_) --credit_;
  }

  enum class lanes : std::uint8_t { any, critical_only, none };
  /// Which frames may be written next: any lane while credit remains; CRITICAL alone while the
  /// overdraft stays within one window; then nothing until a grant.
  lanes may_send() const noexcept {
    if (!window_ || credit_ > 0) return lanes::any;
    return credit_ > -static_cast<std::int64_t>(window_) ? lanes::critical_only : lanes::none;
  }
  /// The window is used up: data waits for the agent's CREDIT.
  bool used_up() const noexcept { return window_ && credit_ <= 0; }

private:
  std::uint32_t window_ = 0; ///< in data messages (0: none)
  std::int64_t credit_ = 0;  ///< data messages we may still write (CRITICAL may overdraw by a window)
};

} // namespace flowbus::transport::detail
