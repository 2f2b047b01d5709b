// Offering load at a fixed rate, the way latency must be measured (nats-io/latency-tests, Aeron's
// load-test rig, Gil Tene's "coordinated omission"): message i is due at start + i / rate and is
// stamped with that *intended* time, so a sender that falls behind sends the overdue messages at
// once, each charged from when it should have left — the schedule never slides.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace flowbus::scheduling {

/// A steady-clock instant in ns: the clock of intended send times and of their receipt (one clock
/// for all processes of a host, so a publisher and a subscriber process can subtract them).
inline std::uint64_t steady_ns(std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now()) noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

/// Calls send(i, intended_ns) for i in [0, count), each at or after its due time; intended_ns is
/// the due time on the steady clock (shared by all processes of one host). Stops early when
/// `stop()` returns true.
template <class Send, class Stop>
void offer_at_fixed_rate(double rate, std::uint64_t count, Send&& send, Stop&& stop) {
  using clk = std::chrono::steady_clock;
  const auto period = std::chrono::duration<double>(1.0 / rate);
  const auto t0 = clk::now();
  for (std::uint64_t i = 0; i < count && !stop();) {
    const auto due = t0 + std::chrono::duration_cast<clk::duration>(period * static_cast<double>(i));
    if (clk::now() < due) {
      std::this_thread::sleep_until(due);
      continue;
    }
    send(i, steady_ns(due));
    ++i;
  }
}

template <class Send> void offer_at_fixed_rate(double rate, std::uint64_t count, Send&& send) {
  offer_at_fixed_rate(rate, count, static_cast<Send&&>(send), [] { return false; });
}

} // namespace flowbus::scheduling
