// A hierarchical timing wheel (Varghese & Lauck; Kafka's and Netty's timers): many timeouts —
// request deadlines, ack redelivery, TTLs — scheduled and cancelled in O(1), expired in O(1) each
// as time advances. Time is counted in ticks (the caller picks the unit, e.g. 1 ms). Four levels of
// 64 slots cover 64^4 ticks (16.7 M; 4.6 hours at 1 ms); a timer further out waits in the top
// level and is placed again when its slot comes round. A timer fires in the tick of its deadline
// or, when advance() was called late, in that call: never early.
//
// Timers live in one vector of nodes linked into slots (no allocation per timer once the vector
// has grown); a handle carries a generation, so cancelling a timer that already fired is harmless.
// @threadsafe no: one owner (an actor, a strand).
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace flowbus::scheduling {

template <class T> class timing_wheel {
public:
  struct handle {
    std::uint32_t index = UINT32_MAX, generation = 0;
  };

  explicit timing_wheel(std::uint64_t now_tick = 0) : now_(now_tick) {
    for (auto& level : slots_) level.fill(none);
  }

  std::uint64_t now() const noexcept { return now_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// Fires `value` at tick `deadline` (a deadline not after now() fires at the next advance()).
  handle schedule(std::uint64_t deadline, T value) {
    std::uint32_t i;
    if (free_ != none) {
      i = free_;
      free_ = nodes_[i].next;
    } else {
      i = static_cast<std::uint32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    node& n = nodes_[i];
    n.deadline = deadline;
    n.value = std::move(value);
    n.live = true;
    ++size_;
    place(i, now_ + 1);
    return {i, n.generation};
  }

  /// Cancels a pending timer; false if it already fired or was cancelled.
  bool cancel(handle h) {
    if (h.index >= nodes_.size()) return false;
    node& n = nodes_[h.index];
    if (!n.live || n.generation != h.generation) return false;
    unlink(h.index);
    release(h.index);
    return true;
  }

  /// Advances to `tick`, calling f(T&&) for every timer whose deadline is <= tick, tick by tick
  /// (so in deadline order). Returns how many fired. f may schedule or cancel timers.
  template <class F> std::size_t advance(std::uint64_t tick, F&& f) {
    std::size_t fired = 0;
    while (now_ < tick) {
      if (size_ == 0) { // nothing to walk through: jump
        now_ = tick;
        break;
      }
      const std::uint64_t t = ++now_;
      // when the lower levels wrap, the higher levels' current slots come down (highest first)
      std::size_t top = 0;
      while (top + 1 < levels && (t & mask(top)) == 0) ++top;
      for (std::size_t level = top; level >= 1; --level) redistribute(level, slot_of(t, level), t);
      // the level-0 slot of tick t holds exactly the timers due at t
      const std::size_t s = slot_of(t, 0);
      std::uint32_t i = slots_[0][s];
      slots_[0][s] = none;
      while (i != none) {
        const std::uint32_t next = nodes_[i].next;
        if (nodes_[i].deadline <= t) {
          T v = std::move(nodes_[i].value);
          release(i);
          ++fired;
          f(std::move(v));
        } else {
          place(i, t + 1);
        }
        i = next;
      }
    }
    return fired;
  }

private:
  static constexpr std::size_t levels = 4, bits = 6, slots = 1u << bits;
  static constexpr std::uint32_t none = UINT32_MAX;
  static constexpr std::uint64_t mask(std::size_t level) noexcept { return (std::uint64_t{1} << (bits * (level + 1))) - 1; }
  static std::size_t slot_of(std::uint64_t t, std::size_t level) noexcept { return (t >> (bits * level)) & (slots - 1); }

  struct node {
    std::uint64_t deadline = 0;
    T value{};
    std::uint32_t next = none, prev = none, generation = 0;
    std::uint8_t level = 0, slot = 0;
    bool live = false;
  };

  // Links node i into the slot for its deadline, seen from `base`, the first tick not yet processed:
  // the lowest level whose span (from base) reaches it; an overdue timer fires at base.
  void place(std::uint32_t i, std::uint64_t base) {
    node& n = nodes_[i];
    const std::uint64_t d = n.deadline > base ? n.deadline : base;
    std::size_t level = 0;
    while (level + 1 < levels && (d ^ base) > mask(level)) ++level;
    const std::size_t s = slot_of(d, level);
    n.level = static_cast<std::uint8_t>(level);
    n.slot = static_cast<std::uint8_t>(s);
    n.prev = none;
    n.next = slots_[level][s];
    if (n.next != none) nodes_[n.next].prev = i;
    slots_[level][s] = i;
  }

  void unlink(std::uint32_t i) {
    node& n = nodes_[i];
    if (n.prev != none) nodes_[n.prev].next = n.next;
    else slots_[n.level][n.slot] = n.next;
    if (n.next != none) nodes_[n.next].prev = n.prev;
  }

  void release(std::uint32_t i) {
    node& n = nodes_[i];
    n.live = false;
    n.value = T{};
    ++n.generation;
    n.next = free_;
    free_ = i;
    --size_;
  }

  void redistribute(std::size_t level, std::size_t s, std::uint64_t base) {
    std::uint32_t i = slots_[level][s];
    slots_[level][s] = none;
    while (i != none) {
      const std::uint32_t next = nodes_[i].next;
      place(i, base);
      i = next;
    }
  }

  std::uint64_t now_;
  std::array<std::array<std::uint32_t, slots>, levels> slots_{};
  std::vector<node> nodes_;
  std::uint32_t free_ = none;
  std::size_t size_ = 0;
};

} // namespace flowbus::scheduling
