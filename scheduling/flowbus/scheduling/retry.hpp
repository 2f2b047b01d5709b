// Retry timing: exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
// and Jitter"): attempt n waits a uniform time in [0, min(max, initial * 2^(n-1))], so a crowd of
// clients that failed together does not retry together. Used by the client's reconnect and the
// dead-letter retries; `retry_policy` travels with a message.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace flowbus::scheduling {

struct retry_policy {
  std::uint32_t max_attempts = 5;                 ///< deliveries in all, the first included
  std::chrono::milliseconds initial{50};          ///< ceiling of the first retry's wait
  std::chrono::milliseconds max{5000};            ///< ceiling of any wait
};

/// The ceiling of retry `attempt`'s wait (attempt 1 = the first retry): initial * 2^(attempt-1), capped.
inline std::chrono::milliseconds backoff_ceiling(std::uint32_t attempt, std::chrono::milliseconds initial,
                                                 std::chrono::milliseconds max) noexcept {
  if (attempt == 0) return std::chrono::milliseconds(0);
  const std::uint32_t shift = std::min<std::uint32_t>(attempt - 1, 30);
  const auto c = static_cast<std::int64_t>(initial.count()) << shift;
  return std::chrono::milliseconds(std::min<std::int64_t>(c, max.count()));
}

/// A full-jitter wait for retry `attempt`: uniform in [0, backoff_ceiling(attempt, ...)].
template <class Rng>
std::chrono::milliseconds full_jitter(std::uint32_t attempt, std::chrono::milliseconds initial,
                                      std::chrono::milliseconds max, Rng& rng) {
  const auto c = backoff_ceiling(attempt, initial, max).count();
  return std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, c)(rng));
}

} // namespace flowbus::scheduling
