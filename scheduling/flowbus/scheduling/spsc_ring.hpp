// Bounded single-producer single-consumer ring (the shape of rigtorp/SPSCQueue).
//
// Capacity is a power of two; indices grow without wrapping (u64) and are masked on access. The
// producer owns tail_ and keeps a cached copy of head_; the consumer owns head_ and keeps a cached
// copy of tail_, so in the steady state each side touches the other's line only when its cached
// copy says the ring looks full (producer) or empty (consumer). Each index and its cached twin
// live on their own 128-byte block.
//
// Memory orders: the producer writes the slot, then publishes tail_ with release; the consumer
// reads tail_ with acquire before reading the slot (and symmetrically for head_ and slot reuse).
// @threadsafe one producer thread and one consumer thread; no other sharing.
#pragma once

#include <flowbus/scheduling/cache.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace flowbus::scheduling {

template <class T> class spsc_ring {
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "ring elements must move and destroy without throwing");

public:
  /// @param capacity rounded up to a power of two, at least 2.
  explicit spsc_ring(std::size_t capacity)
      : mask_(round_up_pow2(capacity < 2 ? 2 : capacity) - 1),
        slots_(static_cast<slot*>(::operator new[]((mask_ + 1) * sizeof(slot), std::align_val_t{alignof(slot)}))) {}

  ~spsc_ring() {
    drain([](T&&) noexcept {}, capacity());
    ::operator delete[](slots_, std::align_val_t{alignof(slot)});
  }
  spsc_ring(const spsc_ring&) = delete;
  spsc_ring& operator=(const spsc_ring&) = delete;

  // ---- producer ----

  /// Pushes one element; false if the ring is full (nothing is moved from then).
  template <class... Args> [[nodiscard]] bool try_emplace(Args&&... args) noexcept {
    const std::uint64_t t = prod_.tail.load(std::memory_order_relaxed);
    if (t - prod_.head_cache > mask_) {
      prod_.head_cache = cons_.head.load(std::memory_order_acquire); // slots freed by the consumer
      if (t - prod_.head_cache > mask_) return false;
    }
    new (&slots_[t & mask_]) T(std::forward<Args>(args)...);
    prod_.tail.store(t + 1, std::memory_order_release); // publish the slot
    return true;
  }
  [[nodiscard]] bool try_push(const T& v) noexcept { return try_emplace(v); }
  [[nodiscard]] bool try_push(T&& v) noexcept { return try_emplace(std::move(v)); }

  /// Pushes up to n elements from items (moved from) with one publication; returns how many.
  std::size_t try_push_n(T* items, std::size_t n) noexcept {
    const std::uint64_t t = prod_.tail.load(std::memory_order_relaxed);
    std::size_t room = mask_ + 1 - static_cast<std::size_t>(t - prod_.head_cache);
    if (room < n) {
      prod_.head_cache = cons_.head.load(std::memory_order_acquire);
      room = mask_ + 1 - static_cast<std::size_t>(t - prod_.head_cache);
    }
    const std::size_t k = n < room ? n : room;
    for (std::size_t i = 0; i < k; ++i)
      new (&slots_[(t + i) & mask_]) T(std::move(items[i]));
    if (k) prod_.tail.store(t + k, std::memory_order_release);
    return k;
  }

  // ---- consumer ----

  /// Pops one element into out; false if empty.
  [[nodiscard]] bool try_pop(T& out) noexcept {
    const std::uint64_t h = cons_.head.load(std::memory_order_relaxed);
    if (h == cons_.tail_cache) {
      cons_.tail_cache = prod_.tail.load(std::memory_order_acquire);
      if (h == cons_.tail_cache) return false;
    }
    T* p = std::launder(reinterpret_cast<T*>(&slots_[h & mask_]));
    out = std::move(*p);
    p->~T();
    cons_.head.store(h + 1, std::memory_order_release); // hand the slot back
    return true;
  }

  /// Calls f(T&&) for up to max elements, releasing their slots with one store; returns the count.
  template <class F> std::size_t drain(F&& f, std::size_t max) noexcept(noexcept(f(std::declval<T&&>()))) {
    const std::uint64_t h = cons_.head.load(std::memory_order_relaxed);
    std::size_t avail = static_cast<std::size_t>(cons_.tail_cache - h);
    if (avail < max) { // the cached tail may be stale: look again before settling for fewer
      cons_.tail_cache = prod_.tail.load(std::memory_order_acquire);
      avail = static_cast<std::size_t>(cons_.tail_cache - h);
    }
    const std::size_t k = avail < max ? avail : max;
    for (std::size_t i = 0; i < k; ++i) {
      T* p = std::launder(reinterpret_cast<T*>(&slots_[(h + i) & mask_]));
      f(std::move(*p));
      p->~T();
    }
    if (k) cons_.head.store(h + k, std::memory_order_release);
    return k;
  }

  // ---- either side ----

  /// Exact from the consumer's side, a snapshot from anywhere else.
  bool empty() const noexcept {
    return cons_.head.load(std::memory_order_acquire) == prod_.tail.load(std::memory_order_acquire);
  }
  std::size_t size_approx() const noexcept {
    const std::uint64_t h = cons_.head.load(std::memory_order_acquire);
    const std::uint64_t t = prod_.tail.load(std::memory_order_acquire);
    return static_cast<std::size_t>(t - h);
  }
  std::size_t capacity() const noexcept { return mask_ + 1; }

private:
  struct slot {
    alignas(T) unsigned char bytes[sizeof(T)];
  };
  struct alignas(false_sharing_range) producer_side {
    std::atomic<std::uint64_t> tail{0}; ///< next slot to write; written by the producer only
    std::uint64_t head_cache = 0;       ///< producer's last view of head
  };
  struct alignas(false_sharing_range) consumer_side {
    std::atomic<std::uint64_t> head{0}; ///< next slot to read; written by the consumer only
    std::uint64_t tail_cache = 0;       ///< consumer's last view of tail
  };
  static_assert(sizeof(producer_side) == false_sharing_range, "producer index alone on its block");

  const std::size_t mask_;
  slot* const slots_;
  alignas(false_sharing_range) producer_side prod_;
  consumer_side cons_;
};

} // namespace flowbus::scheduling
