// The clock of the header's timestamp field (protocol.md §1): the sender's wall clock, ns since the
// Unix epoch (UTC). Latency is measured on the steady clock instead (scheduling/fixed_rate.hpp).
#pragma once

#include <chrono>
#include <cstdint>

namespace flowbus::codec {

inline std::uint64_t wall_clock_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

} // namespace flowbus::codec
