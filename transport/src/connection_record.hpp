// What the monitoring reads of one connection while it runs (server::connections(), /connz):
// written by its session on its strand, read by the monitor's thread at any time. The session
// adds to its counters once per read pass or write, not per message. (private to transport/)
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>

namespace flowbus::transport::detail {

/// Wall clock, ns, at the kernel's tick (~4 ms): cheap enough to note activity on every pass.
inline std::uint64_t coarse_wall_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct connection_record {
  // set before the session is listed (core::sessions), then constant
  std::uint64_t cid = 0;
  std::string ip;
  std::uint16_t port = 0;
  bool tls = false;
  std::uint64_t start_ns = 0;
  // set once, at registration
  mutable std::mutex m;
  std::string agent_id, agent_type;
  // written by the session alone (so a load and a store add), read by anyone
  std::atomic<std::uint8_t> state{0}; ///< session::state
  std::atomic<bool> shm{false};
  std::atomic<std::uint64_t> msgs_in{0}, bytes_in{0}, msgs_out{0}, bytes_out{0}, last_ns{0}, pending{0};
  std::array<std::atomic<std::uint32_t>, 5> lanes{};
  std::atomic<std::uint32_t> window{0};
  std::atomic<std::int64_t> credit{0};

  static void add(std::atomic<std::uint64_t>& a, std::uint64_t n) noexcept {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); // one writer: no RMW
  }
  template <class T, class U> static void set(std::atomic<T>& a, U v) noexcept {
    a.store(static_cast<T>(v), std::memory_order_relaxed);
  }
};

} // namespace flowbus::transport::detail
