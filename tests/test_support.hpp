// Helpers for concurrent tests: a start barrier (all threads begin together, as in Aeron's
// concurrent tests) and counts that shrink under sanitizers; and for tests that write files: a
// fresh directory, and a full disk.
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

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

/// A fresh directory per test (`what` names it), created, and removed afterwards.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& what = "test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("flowbus-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

/// A full disk, in process: RLIMIT_FSIZE makes writes past `bytes` fail with EFBIG (SIGXFSZ ignored).
struct file_size_limit {
  rlimit old{};
  explicit file_size_limit(std::uint64_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit l = old;
    l.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &l);
  }
  ~file_size_limit() { ::setrlimit(RLIMIT_FSIZE, &old); }
  file_size_limit(const file_size_limit&) = delete;
  file_size_limit& operator=(const file_size_limit&) = delete;
};

} // namespace flowbus::test
