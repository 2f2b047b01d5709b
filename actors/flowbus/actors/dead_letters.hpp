// Messages the node could not deliver, kept with their reason: the original frame (shared, not
// copied), the agent it was for, when, and why. Bounded: when full the oldest entry is evicted
// and counted, so the count of every reason stays exact even when entries are gone.
//
// Every undeliverable message comes here first (any thread, one short lock). With a DLQ directory
// configured (node_config::dlq_directory) each entry is also queued for its typed dead-letter
// queue, and that queue's DLQ actor is told when its queue goes from empty to non-empty; the actor
// takes the batch and appends it to disk (dlq.hpp). That queue is bounded too: entries beyond it
// are counted as not persisted.
// @threadsafe all members.
#pragma once

#include <flowbus/scheduling/buffer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
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
  expired,               ///< its deadline passed while it waited
  shed,                  ///< dropped by backpressure (a lane above its shed water mark)
};
inline constexpr std::size_t dead_reason_count = 10;
const char* to_string(dead_reason r) noexcept;

/// The six typed dead-letter queues.
enum class dlq_kind : std::uint8_t { network_timeout, agent_unavailable, corruption, circuit_open, poison, unknown };
inline constexpr std::size_t dlq_kind_count = 6;
const char* to_string(dlq_kind k) noexcept;
/// Which queue a dead letter goes to: timeouts and expired deadlines → network_timeout; a gone,
/// full, shedding or stopping recipient → agent_unavailable; the rest by name.
dlq_kind kind_of(dead_reason r) noexcept;

struct dead_letter {
  dead_reason reason;
  scheduling::buffer_ref frame; ///< the encoded frame as sent (a heap copy: pool buffers stay for live traffic)
  std::string recipient;        ///< agent id, or the topic for a route with no live recipient
  std::chrono::system_clock::time_point when;
  std::uint32_t attempts = 1; ///< deliveries tried (a poison message: every attempt its handler failed)
};

class dead_letters {
public:
  explicit dead_letters(std::size_t capacity = 10000) : capacity_(capacity) {}

  void add(dead_reason reason, scheduling::buffer_ref frame, std::string recipient, std::uint32_t attempts = 1);
  /// Removes and returns up to `max` entries, oldest first.
  std::vector<dead_letter> take(std::size_t max = SIZE_MAX);
  std::size_t size() const;
  /// Copies of the newest `max` entries still held, newest first (the frames are shared, not copied).
  std::vector<dead_letter> recent(std::size_t max) const;
  /// Every message ever dead-lettered for `reason`, including evicted ones.
  std::uint64_t count(dead_reason reason) const;
  std::uint64_t total() const;
  std::uint64_t evicted() const;

  /// Turns persistence on: from now on each add() is also queued for kind_of(reason), and
  /// notify(kind) is called (outside the lock) when that queue goes from empty to non-empty.
  void persist_to(std::function<void(dlq_kind)> notify, std::size_t bound);
  bool persistent() const;
  /// The DLQ actor's side: takes what waits for `kind`.
  std::vector<dead_letter> take_unpersisted(dlq_kind kind);
  /// The DLQ actor reports a batch written (ok) or not (the disk refused it).
  void persisted(dlq_kind kind, std::uint64_t n, bool ok);
  std::uint64_t persisted(dlq_kind kind) const;
  /// Entries that did not reach the disk (queue full, or a write error), all kinds.
  std::uint64_t not_persisted() const;
  /// Torn-tail bytes cut off the DLQ files (a crash or a full disk mid-append), at start or
  /// before an append.
  void torn_cut(std::uint64_t bytes);
  std::uint64_t torn_cut() const;

private:
  mutable std::mutex m_;
  std::deque<dead_letter> entries_;
  std::array<std::uint64_t, dead_reason_count> counts_{};
  std::uint64_t evicted_ = 0;
  std::size_t capacity_;
  std::function<void(dlq_kind)> notify_;
  std::size_t persist_bound_ = 0;
  std::array<std::vector<dead_letter>, dlq_kind_count> unpersisted_;
  std::array<std::uint64_t, dlq_kind_count> persisted_{};
  std::uint64_t not_persisted_ = 0;
  std::uint64_t torn_cut_ = 0;
};

} // namespace flowbus::actors
