// Messages the node could not deliver, kept with their reason: the original frame (shared, not
// copied), the agent it was for, when, and why. Bounded: when full the oldest entry is evicted
// and counted, so the count of every reason stays exact even when entries are gone.
//
// This in-memory store is what the broker core routes undeliverable messages to; the reliability
// layer (typed DLQ actors, persistence, retries and replay) consumes it.
// @threadsafe all members.
#pragma once

#include <flowbus/scheduling/buffer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace flowbus::actors {

/// Why a message is dead (the DLQ kinds of the design, plus backpressure overflow).
enum class dead_reason : std::uint8_t {
  agent_unavailable = 0, ///< the recipient does not exist or went down
  network_timeout,       ///< a reply arrived after its request timed out
  overflow,              ///< the recipient's mailbox was full
  corruption,            ///< the frame failed to decode
  circuit_open,          ///< the recipient's circuit breaker is open (reliability layer)
  poison,                ///< the message failed its handler too often (reliability layer)
  shutdown,              ///< the node stopped before the recipient handled it
  unknown,
};
inline constexpr std::size_t dead_reason_count = 8;
const char* to_string(dead_reason r) noexcept;

struct dead_letter {
  dead_reason reason;
  scheduling::buffer_ref frame; ///< the encoded frame as sent
  std::string recipient;        ///< agent id, or the topic for a route with no live recipient
  std::chrono::system_clock::time_point when;
};

class dead_letters {
public:
  explicit dead_letters(std::size_t capacity = 10000) : capacity_(capacity) {}

  void add(dead_reason reason, scheduling::buffer_ref frame, std::string recipient);
  /// Removes and returns up to `max` entries, oldest first.
  std::vector<dead_letter> take(std::size_t max = SIZE_MAX);
  std::size_t size() const;
  /// Every message ever dead-lettered for `reason`, including evicted ones.
  std::uint64_t count(dead_reason reason) const;
  std::uint64_t total() const;
  std::uint64_t evicted() const;

private:
  mutable std::mutex m_;
  std::deque<dead_letter> entries_;
  std::array<std::uint64_t, dead_reason_count> counts_{};
  std::uint64_t evicted_ = 0;
  std::size_t capacity_;
};

} // namespace flowbus::actors
