// Helpers for concurrent tests: a start barrier (all threads begin together, as in Aeron's
// concurrent tests) and counts that shrink under sanitizers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace flowbus::test {

#ifdef FLOWBUS_SANITIZED
inline constexpr std::uint64_t scale = 10; ///< divide stress counts by this
#else
inline constexpr std::uint64_t scale = 1;
#endif

/// Waits up to `t` for `pred`, looking every millisecond.
template <class P> bool eventually(P pred, std::chrono::milliseconds t = std::chrono::milliseconds(5000)) {
  const auto until = std::chrono::steady_clock::now() + t;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Spins until `parties` threads have arrived.
class start_barrier {
public:
  explicit start_barrier(int parties) : left_(parties) {}
  void arrive_and_wait() noexcept {
    left_.fetch_sub(1, std::memory_order_acq_rel);
    while (left_.load(std::memory_order_acquire) > 0) {
    }
  }

private:
  std::atomic<int> left_;
};

/// Counts live instances, constructions and destructions (rigtorp's TestType idea).
struct tracked {
  static inline std::atomic<long> live{0};
  std::uint64_t value = 0;
  tracked() noexcept { live.fetch_add(1, std::memory_order_relaxed); }
  explicit tracked(std::uint64_t v) noexcept : value(v) { live.fetch_add(1, std::memory_order_relaxed); }
  tracked(const tracked& o) noexcept : value(o.value) { live.fetch_add(1, std::memory_order_relaxed); }
  tracked(tracked&& o) noexcept : value(o.value) { live.fetch_add(1, std::memory_order_relaxed); }
  tracked& operator=(const tracked&) noexcept = default;
  tracked& operator=(tracked&&) noexcept = default;
  ~tracked() { live.fetch_sub(1, std::memory_order_relaxed); }
};

} // namespace flowbus::test
