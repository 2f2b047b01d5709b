// The hot-path mailbox of an actor: a lock-free queue plus a doorbell. A producer pushes and rings
// the doorbell only when the consumer is idle (the queue went from drained to non-empty); the
// consumer, once woken, drains in batches and goes idle again. The doorbell is whatever wakes the
// consumer: a CAF message to the owning actor (actors layer), a condition variable, an eventfd.
// In the steady state under load there is no doorbell at all: the consumer stays active and
// keeps draining.
//
// Why no wake-up is lost. Two shared facts: "the queue holds an element" (Q) and "the consumer
// is idle" (I). A producer makes Q true, then reads I. A going-idle consumer makes I true, then
// reads Q. With a seq_cst fence between each side's write and read (a Dekker pattern), at least
// one side sees the other's write: either the producer sees I and rings, or the consumer sees Q
// and resumes. When both see it, idle_.exchange(false) lets exactly one of them win, so the
// consumer is never woken twice for one idle period and never left idle over a non-empty queue.
// (Release/acquire alone would allow both reads to miss: store-load reordering.)
//
// @threadsafe try_push: the producers the Queue allows (spsc_ring: one; mpsc_queue: any).
//             drain: the consumer only, after a doorbell or after drain reported `more`.
#pragma once

#include <flowbus/scheduling/cache.hpp>
#include <flowbus/scheduling/mpsc_queue.hpp>
#include <flowbus/scheduling/spsc_ring.hpp>

#include <atomic>
#include <cstddef>
#include <utility>

namespace flowbus::scheduling {

enum class push_result : std::uint8_t {
  ok,   ///< queued; the consumer was already active
  woke, ///< queued, and this push rang the doorbell
  full, ///< not queued: the queue is at capacity (apply the caller's backpressure policy)
};

struct drain_result {
  std::size_t count = 0; ///< elements handled
  bool more = false;     ///< the consumer is still active: schedule another drain (fairness cut)
};

template <class Queue> class mailbox {
public:
  using doorbell_fn = void (*)(void* context) noexcept;

  /// @param ring called (from the pushing thread) when the consumer must be woken.
  mailbox(std::size_t capacity, doorbell_fn ring, void* context) : queue_(capacity), ring_(ring), context_(context) {}

  template <class... Args> push_result try_push(Args&&... args) noexcept {
    if (!queue_.try_emplace(std::forward<Args>(args)...)) return push_result::full;
    std::atomic_thread_fence(std::memory_order_seq_cst); // Q written before I is read (see top)
    if (idle_.load(std::memory_order_relaxed) && idle_.exchange(false, std::memory_order_acquire)) {
      ring_(context_);
      return push_result::woke;
    }
    return push_result::ok;
  }

  /// Handles up to `max` elements with f(T&&). When the queue runs dry the consumer goes idle and
  /// the next push rings again; when `max` is reached first, result.more asks for another drain.
  template <class F> drain_result drain(F&& f, std::size_t max) {
    drain_result r;
    for (;;) {
      r.count += queue_.drain(f, max - r.count);
      if (r.count == max) {
        r.more = true; // still active: yield to other actors, come back
        return r;
      }
      idle_.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst); // I written before Q is read (see top)
      if (queue_.empty() || !idle_.exchange(false, std::memory_order_acquire)) return r; // idle, or a producer rang
      // a push raced with going idle and we took the active role back: keep draining
    }
  }

  /// Whether the consumer is idle (waiting for a doorbell). A snapshot, for tests and metrics.
  bool idle() const noexcept { return idle_.load(std::memory_order_acquire); }
  Queue& queue() noexcept { return queue_; }

private:
  Queue queue_;
  doorbell_fn ring_;
  void* context_;
  alignas(false_sharing_range) std::atomic<bool> idle_{true};
};

template <class T> using spsc_mailbox = mailbox<spsc_ring<T>>;
template <class T> using mpsc_mailbox = mailbox<mpsc_queue<T>>;

} // namespace flowbus::scheduling
