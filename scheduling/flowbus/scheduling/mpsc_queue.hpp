// Bounded multi-producer single-consumer queue: Dmitry Vyukov's bounded MPMC array queue with the
// consumer side simplified for one consumer. Each cell carries a sequence number that says whose
// turn it is: seq == pos (free for the producer claiming pos), seq == pos + 1 (full, for the
// consumer at pos), seq == pos + capacity (free again, for the next lap).
//
// Producers claim a position with a CAS on tail_ (lock-free: a stalled producer only delays the
// consumer at its own cell, never other producers), write the cell, then publish it by storing
// seq = pos + 1 with release. The consumer reads seq with acquire, takes the element, and frees the
// cell with seq = pos + capacity (release) so the producer of the next lap sees it empty.
// Per-producer FIFO order holds; across producers the order is the order of claims.
//
// Cells store seq minus their own index, so a fresh queue is all zero bytes: a large ring is
// mapped as untouched zero pages and costs resident memory only as far as it has been used
// (10K idle connections with 4096-slot mailboxes do not cost 640 MB).
// @threadsafe any number of producer threads, one consumer thread.
#pragma once

#include <flowbus/scheduling/cache.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace flowbus::scheduling {

namespace detail {
/// Zero-filled memory: anonymous pages (untouched until used) from 16 KiB up, the heap below.
void* zeroed_alloc(std::size_t bytes, std::size_t align);
void zeroed_free(void* p, std::size_t bytes, std::size_t align) noexcept;
} // namespace detail

/// `Separation`: alignment that keeps the producers' tail and the consumer's head apart (false
/// sharing); a rarely used ring may pass alignof(std::uint64_t) to be 32 bytes instead of 384.
template <class T, std::size_t Separation = false_sharing_range> class mpsc_queue {
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "queue elements must move and destroy without throwing");

public:
  /// @param capacity rounded up to a power of two, at least 2.
  explicit mpsc_queue(std::size_t capacity)
      : mask_(round_up_pow2(capacity < 2 ? 2 : capacity) - 1),
        cells_(static_cast<cell*>(detail::zeroed_alloc((mask_ + 1) * sizeof(cell), alignof(cell)))) {}
  ~mpsc_queue() {
    drain([](T&&) noexcept {}, capacity());
    detail::zeroed_free(cells_, (mask_ + 1) * sizeof(cell), alignof(cell));
  }
  mpsc_queue(const mpsc_queue&) = delete;
  mpsc_queue& operator=(const mpsc_queue&) = delete;

  // ---- producers ----

  /// Pushes one element; false if the queue is full.
  template <class... Args> [[nodiscard]] bool try_emplace(Args&&... args) noexcept {
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      cell& c = cells_[pos & mask_];
      const std::uint64_t seq = c.seq.load(std::memory_order_acquire) + (pos & mask_);
      const auto dif = static_cast<std::int64_t>(seq - pos);
      if (dif == 0) {
        // our turn at this cell if we win the claim; relaxed: the cell's seq carries the ordering
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          new (&c.storage) T(std::forward<Args>(args)...);
          c.seq.store(pos + 1 - (pos & mask_), std::memory_order_release); // publish to the consumer
          return true;
        }
      } else if (dif < 0) {
        return false; // the cell still holds last lap's element: full
      } else {
        pos = tail_.load(std::memory_order_relaxed); // another producer took pos
      }
    }
  }
  [[nodiscard]] bool try_push(const T& v) noexcept { return try_emplace(v); }
  [[nodiscard]] bool try_push(T&& v) noexcept { return try_emplace(std::move(v)); }

  // ---- consumer ----

  [[nodiscard]] bool try_pop(T& out) noexcept {
    cell& c = cells_[head_ & mask_];
    if (c.seq.load(std::memory_order_acquire) != lap() + 1) return false; // empty, or claimed but unpublished
    T* p = std::launder(reinterpret_cast<T*>(&c.storage));
    out = std::move(*p);
    p->~T();
    c.seq.store(lap() + mask_ + 1, std::memory_order_release); // free for the next lap
    ++head_;
    return true;
  }

  /// Calls f(T&&) for up to max published elements in order; returns the count.
  template <class F> std::size_t drain(F&& f, std::size_t max) noexcept(noexcept(f(std::declval<T&&>()))) {
    std::size_t n = 0;
    for (; n < max; ++n) {
      cell& c = cells_[head_ & mask_];
      if (c.seq.load(std::memory_order_acquire) != lap() + 1) break;
      T* p = std::launder(reinterpret_cast<T*>(&c.storage));
      f(std::move(*p));
      p->~T();
      c.seq.store(lap() + mask_ + 1, std::memory_order_release);
      ++head_;
    }
    return n;
  }

  /// Whether the next element is published. @pre called by the consumer.
  bool empty() const noexcept { return cells_[head_ & mask_].seq.load(std::memory_order_acquire) != lap() + 1; }
  std::size_t capacity() const noexcept { return mask_ + 1; }

private:
  /// head_ minus its cell's index: the head's lap times the capacity (what the cells store).
  std::uint64_t lap() const noexcept { return head_ & ~static_cast<std::uint64_t>(mask_); }

  struct cell {
    std::atomic<std::uint64_t> seq; ///< the Vyukov sequence minus this cell's index; 0 when new
    alignas(T) unsigned char storage[sizeof(T)];
  };
  const std::size_t mask_;
  cell* const cells_;
  alignas(Separation) std::atomic<std::uint64_t> tail_{0}; ///< next position to claim
  alignas(Separation) std::uint64_t head_ = 0;             ///< consumer only
};

} // namespace flowbus::scheduling
