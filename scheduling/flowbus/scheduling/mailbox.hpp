// The hot-path mailbox of an actor: a lock-free queue plus a doorbell. A producer pushes and rings
// the doorbell only when the consumer is idle (the queue went from drained to non-empty); the
// consumer, once woken, drains in batches and goes idle again. The doorbell is whatever wakes the
// consumer: a CAF message to the owning actor (actors layer), a condition variable, an eventfd.
// In the steady state under load there is no doorbell at all: the consumer stays active and
// keeps draining.
//
// Why no wake-up is lost. Producers and consumer share one atomic word: the number of elements
// *announced* (each push increments it after the element is in the queue) and an IDLE bit. All
// changes to it are read-modify-writes, so they form one total order (no fences, no Dekker
// reasoning; ThreadSanitizer checks it as written).
//  - A producer's increment that finds IDLE set must wake the consumer; fetch_and(~IDLE) picks
//    exactly one producer to ring, so one idle period gets one doorbell.
//  - The consumer may set IDLE only by a CAS from a value whose announced count it has consumed
//    (announced <= consumed). If the CAS fails, or more was announced, it drains again: anything
//    announced is already visible in the queue (push happens-before announce).
//  - So an element is either announced before the consumer's CAS (the consumer sees the count and
//    drains it) or after (the announcing producer finds IDLE and rings). An element the consumer
//    took before its announcement arrived only costs one spurious, empty drain.
//
// @threadsafe try_push: the producers the Queue allows (spsc_ring: one; mpsc_queue: any).
//             drain: the consumer only, after a doorbell or after drain reported `more`.
#pragma once

#include <flowbus/scheduling/cache.hpp>
#include <flowbus/scheduling/mpsc_queue.hpp>

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
    // acq_rel: release publishes the element to whoever reads this count; see the top of the file
    const std::uint64_t before = state_.fetch_add(1, std::memory_order_acq_rel);
    if ((before & idle_bit) && (state_.fetch_and(~idle_bit, std::memory_order_acq_rel) & idle_bit)) {
      ring_(context_);
      return push_result::woke;
    }
    return push_result::ok;
  }

  /// Handles up to `max` (> 0) elements with f(T&&). When everything announced has been handled
  /// the consumer goes idle and the next push rings; when `max` is reached first, result.more
  /// asks for another drain.
  template <class F> drain_result drain(F&& f, std::size_t max) {
    return drain(std::forward<F>(f), max, [] { return false; });
  }

  /// The same, but when everything announced has been handled the consumer first polls on while
  /// keep_polling() returns true (a spin budget: Aeron's busy-spin / back-off idle strategies),
  /// and goes idle only after that. Elements arriving during the spin are taken with no doorbell
  /// at all. keep_polling is called once per empty poll; it should pause the CPU briefly.
  template <class F, class Keep> drain_result drain(F&& f, std::size_t max, Keep&& keep_polling) {
    drain_result r;
    for (;;) {
      const std::size_t n = queue_.drain(f, max - r.count);
      r.count += n;
      consumed_ += n;
      if (r.count == max) {
        r.more = true; // still active: yield to other actors, come back
        return r;
      }
      std::uint64_t s = state_.load(std::memory_order_acquire);
      if ((s & ~idle_bit) <= consumed_ && keep_polling()) continue; // spin: look again, stay active
      while ((s & ~idle_bit) <= consumed_) { // nothing announced that we have not handled
        if (state_.compare_exchange_weak(s, s | idle_bit, std::memory_order_acq_rel, std::memory_order_acquire))
          return r; // idle: the next announcement rings
      }
      // more was announced while we were draining: those elements are in the queue, go on
    }
  }

  /// Whether the consumer is idle (waiting for a doorbell). A snapshot, for tests and metrics.
  bool idle() const noexcept { return (state_.load(std::memory_order_acquire) & idle_bit) != 0; }
  /// Elements pushed so far (monotonic): with the consumer's own count, the backlog.
  std::uint64_t announced() const noexcept { return state_.load(std::memory_order_acquire) & ~idle_bit; }
  Queue& queue() noexcept { return queue_; }

private:
  static constexpr std::uint64_t idle_bit = std::uint64_t{1} << 63;

  Queue queue_;
  doorbell_fn ring_;
  void* context_;
  std::uint64_t consumed_ = 0;                                              ///< consumer only
  alignas(false_sharing_range) std::atomic<std::uint64_t> state_{idle_bit}; ///< announced count | IDLE
};

template <class T> using mpsc_mailbox = mailbox<mpsc_queue<T>>;

} // namespace flowbus::scheduling
