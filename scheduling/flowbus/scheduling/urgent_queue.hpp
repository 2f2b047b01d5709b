// An MPSC queue with an express ring: urgent elements (CRITICAL frames) go into a ring of their
// own, drained first, so a burst of bulk traffic that fills the main ring cannot refuse them — the
// ingress half of "emergency mode protects CRITICAL" (the consumer's lanes do the rest). A
// drop-in Queue for scheduling::mailbox: the mailbox's announced count covers both rings. The
// express ring is 1024 cells of zero pages until used, so an idle consumer costs nothing more.
// @threadsafe try_emplace: any thread. drain: the consumer.
#pragma once

#include <flowbus/scheduling/mpsc_queue.hpp>

#include <atomic>
#include <cstddef>

namespace flowbus::scheduling {

template <class T> class urgent_queue {
public:
  explicit urgent_queue(std::size_t capacity, std::size_t urgent_capacity = 1024)
      : normal_(capacity), urgent_(urgent_capacity) {}

  /// Urgent elements try the express ring first, then the main one.
  [[nodiscard]] bool try_emplace(const T& v, bool urgent) noexcept {
    if (urgent) {
      // visible to the consumer with the element: the mailbox's announce (an acq_rel RMW) follows
      if (!used_.load(std::memory_order_relaxed)) used_.store(true, std::memory_order_relaxed);
      if (urgent_.try_emplace(v)) return true;
    }
    return normal_.try_emplace(v);
  }

  /// Urgent elements first, then the rest, up to `max` in all.
  template <class F> std::size_t drain(F&& f, std::size_t max) {
    // an express ring never used is never read: its pages stay unmapped (idle connections)
    std::size_t n = used_.load(std::memory_order_relaxed) ? urgent_.drain(f, max) : 0;
    if (n < max) n += normal_.drain(f, max - n);
    return n;
  }

private:
  mpsc_queue<T> normal_;
  // rarely used: tail and head share a line (32 bytes, not 384, per idle connection)
  mpsc_queue<T, alignof(std::uint64_t)> urgent_;
  std::atomic<bool> used_{false};
};

} // namespace flowbus::scheduling
