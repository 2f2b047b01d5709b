// Priority lanes for one consumer: the order in which queued messages leave, and what is shed
// when too many wait. Five lanes (CRITICAL … BACKGROUND, codec::priority's numbering):
//
//  - **Weighted round-robin in priority order.** Each round a lane may send up to its weight
//    (default 16, 8, 4, 2, 1); next() serves the most urgent non-empty lane that has quota left,
//    and starts a new round when no non-empty lane has. So urgent traffic goes first, and every
//    non-empty lane still gets at least weight / (sum of weights) of the messages — the starvation
//    guard: BACKGROUND under a CRITICAL flood still gets 1 in 31.
//  - **Earliest deadline first inside a lane.** Messages with a deadline sit in a binary heap and
//    leave before the lane's FIFO of messages without one (no deadline = an infinite one), the
//    earliest deadline first; expire(now) removes those whose deadline has passed.
//  - **Bounded, with water marks** (fractions of `capacity`): at `high` (80 %) the scheduler
//    reports `throttled` (tell producers to slow down) until it falls below `low` (60 %); from
//    `shed` (95 %) LOW and BACKGROUND are refused; when full only CRITICAL gets in, by evicting
//    the newest message of the least urgent non-empty lane (emergency mode). A refused or evicted
//    message is handed back to the caller, which dead-letters it: nothing leaves silently.
//
// Consumer-side: one thread (the connection's strand, an actor) owns it. No CAF, no locks.
// @threadsafe no.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace flowbus::scheduling {

inline constexpr std::size_t lane_count = 5; ///< CRITICAL, HIGH, NORMAL, LOW, BACKGROUND

struct lane_options {
  std::array<std::uint32_t, lane_count> weights{16, 8, 4, 2, 1}; ///< per round; each >= 1
  std::size_t capacity = 4096;                                  ///< messages queued in all lanes
  double high = 0.80, low = 0.60, shed = 0.95;                  ///< water marks (fractions of capacity)
};

/// Where the scheduler stands against its water marks.
enum class pressure : std::uint8_t {
  normal,    ///< below high, or fallen below low since
  throttled, ///< reached high and not yet below low: producers should slow down
  shedding,  ///< at or above shed: LOW and BACKGROUND are refused
  emergency, ///< full: only CRITICAL gets in, evicting less urgent messages
};
const char* to_string(pressure p) noexcept;

template <class T> class lane_scheduler {
public:
  struct admit {
    bool accepted = false;      ///< the message is queued
    std::optional<T> rejected;  ///< the message itself, refused (shed)
    std::optional<T> evicted;   ///< a less urgent message pushed out to make room (emergency)
  };

  explicit lane_scheduler(lane_options o = {}) : opt_(o) {
    for (auto& w : opt_.weights) w = std::max<std::uint32_t>(w, 1);
    opt_.capacity = std::max<std::size_t>(opt_.capacity, 1);
    high_ = level(opt_.high);
    low_ = std::min(level(opt_.low), high_);
    shed_ = std::max(level(opt_.shed), high_);
    quota_ = opt_.weights;
  }

  /// Queues `v` in lane `lane` (0 = CRITICAL; values above 4 count as BACKGROUND) with an absolute
  /// deadline (any monotonic unit; 0: none).
  admit push(T v, std::size_t lane, std::uint64_t deadline = 0) {
    lane = std::min(lane, lane_count - 1);
    admit r;
    if (size_ >= opt_.capacity) {
      if (lane != 0 || !evict_below(0, r)) {
        r.rejected.emplace(std::move(v));
        ++shed_count_;
        return r;
      }
    } else if (size_ >= shed_ && lane >= 3) {
      r.rejected.emplace(std::move(v));
      ++shed_count_;
      return r;
    }
    auto& l = lanes_[lane];
    if (deadline) {
      l.edf.push_back({deadline, seq_++, std::move(v)});
      std::push_heap(l.edf.begin(), l.edf.end(), later);
    } else {
      l.fifo.push_back(std::move(v));
    }
    ++size_;
    r.accepted = true;
    update_pressure();
    return r;
  }

  /// The next message to send, or nothing when empty.
  std::optional<T> next() {
    if (size_ == 0) return std::nullopt;
    for (int pass = 0; pass < 2; ++pass) {
      for (std::size_t i = 0; i < lane_count; ++i) {
        if (quota_[i] == 0 || lanes_[i].empty()) continue;
        --quota_[i];
        ++served_[i];
        return take(i);
      }
      quota_ = opt_.weights; // every non-empty lane used its quota: a new round
    }
    return std::nullopt; // unreachable: size_ > 0 means some lane is non-empty
  }

  /// The next message of lane `lane` only (EDF first), or nothing when that lane is empty; the
  /// round's quotas are untouched. For a receiver that takes only urgent traffic for now.
  std::optional<T> next_from(std::size_t lane) {
    if (lane >= lane_count || lanes_[lane].empty()) return std::nullopt;
    ++served_[lane];
    return take(lane);
  }

  /// Removes every message whose deadline is <= now, calling f(T&&, lane) for each.
  template <class F> std::size_t expire(std::uint64_t now, F&& f) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < lane_count; ++i) {
      auto& h = lanes_[i].edf;
      while (!h.empty() && h.front().deadline <= now) {
        std::pop_heap(h.begin(), h.end(), later);
        f(std::move(h.back().value), i);
        h.pop_back();
        --size_;
        ++n;
      }
    }
    expired_count_ += n;
    if (n) update_pressure();
    return n;
  }

  /// Removes everything, calling f(T&&, lane) for each (a connection going away).
  template <class F> void clear(F&& f) {
    for (std::size_t i = 0; i < lane_count; ++i) {
      for (auto& e : lanes_[i].edf) f(std::move(e.value), i);
      lanes_[i].fifo.for_each([&](T& v) { f(std::move(v), i); });
      lanes_[i].edf.clear();
      lanes_[i].fifo.clear();
    }
    size_ = 0;
    update_pressure();
  }

  /// The earliest deadline queued (0: none) — when to call expire() next.
  std::uint64_t earliest_deadline() const noexcept {
    std::uint64_t d = 0;
    for (const auto& l : lanes_)
      if (!l.edf.empty() && (d == 0 || l.edf.front().deadline < d)) d = l.edf.front().deadline;
    return d;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size(std::size_t lane) const noexcept { return lanes_[lane].size(); }
  std::size_t capacity() const noexcept { return opt_.capacity; }
  pressure state() const noexcept { return state_; }
  /// Whether producers should hold back (throttled or worse).
  bool throttled() const noexcept { return state_ != pressure::normal; }
  std::uint64_t served(std::size_t lane) const noexcept { return served_[lane]; }
  std::uint64_t shed_count() const noexcept { return shed_count_; }
  std::uint64_t evicted_count() const noexcept { return evicted_count_; }
  std::uint64_t expired_count() const noexcept { return expired_count_; }

private:
  struct timed {
    std::uint64_t deadline, seq;
    T value;
  };
  // std heap is a max-heap: "later" puts the earliest deadline (then the oldest) on top
  static bool later(const timed& a, const timed& b) noexcept {
    return a.deadline != b.deadline ? a.deadline > b.deadline : a.seq > b.seq;
  }
  // A FIFO as a vector and a head index: nothing allocated until used (a connection has five
  // lanes; std::deque would allocate ~600 B each up front), compacted as the head advances.
  struct fifo_queue {
    std::vector<T> v;
    std::size_t head = 0;
    bool empty() const noexcept { return head == v.size(); }
    std::size_t size() const noexcept { return v.size() - head; }
    void push_back(T x) { v.push_back(std::move(x)); }
    T& back() noexcept { return v.back(); }
    void pop_back() noexcept {
      v.pop_back();
      if (head == v.size()) clear();
    }
    T pop_front() {
      T x = std::move(v[head++]);
      if (head == v.size()) clear();
      else if (head >= 64 && head * 2 >= v.size()) { // most of the vector is consumed: shift down
        v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(head));
        head = 0;
      }
      return x;
    }
    void clear() noexcept {
      v.clear();
      head = 0;
    }
    template <class F> void for_each(F&& f) {
      for (std::size_t i = head; i < v.size(); ++i) f(v[i]);
    }
  };
  struct lane_queue {
    std::vector<timed> edf;
    fifo_queue fifo;
    bool empty() const noexcept { return edf.empty() && fifo.empty(); }
    std::size_t size() const noexcept { return edf.size() + fifo.size(); }
  };

  std::size_t level(double f) const noexcept {
    const auto n = static_cast<std::size_t>(f * static_cast<double>(opt_.capacity));
    return std::clamp<std::size_t>(n, 1, opt_.capacity);
  }

  T take(std::size_t i) {
    auto& l = lanes_[i];
    --size_;
    if (!l.edf.empty()) {
      std::pop_heap(l.edf.begin(), l.edf.end(), later);
      T v = std::move(l.edf.back().value);
      l.edf.pop_back();
      update_pressure();
      return v;
    }
    T v = l.fifo.pop_front();
    update_pressure();
    return v;
  }

  // Evicts the newest message of the least urgent non-empty lane above `lane`.
  bool evict_below(std::size_t lane, admit& r) {
    for (std::size_t i = lane_count; i-- > lane + 1;) {
      auto& l = lanes_[i];
      if (l.empty()) continue;
      if (!l.fifo.empty()) {
        r.evicted.emplace(std::move(l.fifo.back()));
        l.fifo.pop_back();
      } else { // the latest deadline: the heap's last leaf is not it, so search (rare path)
        auto it = std::min_element(l.edf.begin(), l.edf.end(), later);
        r.evicted.emplace(std::move(it->value));
        l.edf.erase(it);
        std::make_heap(l.edf.begin(), l.edf.end(), later);
      }
      --size_;
      ++evicted_count_;
      return true;
    }
    return false;
  }

  void update_pressure() noexcept {
    if (size_ >= opt_.capacity) state_ = pressure::emergency;
    else if (size_ >= shed_) state_ = pressure::shedding;
    else if (size_ >= high_) state_ = pressure::throttled;
    else if (size_ < low_) state_ = pressure::normal;
    else if (state_ != pressure::normal) state_ = pressure::throttled; // between low and high: hysteresis
  }

  lane_options opt_;
  std::array<lane_queue, lane_count> lanes_;
  std::array<std::uint32_t, lane_count> quota_{};
  std::array<std::uint64_t, lane_count> served_{};
  std::size_t size_ = 0, high_ = 0, low_ = 0, shed_ = 0;
  std::uint64_t seq_ = 0, shed_count_ = 0, evicted_count_ = 0, expired_count_ = 0;
  pressure state_ = pressure::normal;
};

} // namespace flowbus::scheduling
