// Left-Right (Ramalhete & Correia, 2015): two copies of a structure, readers wait-free and never
// blocked, one writer at a time. Readers read the copy the writer is not touching; the writer
// changes the other copy, switches readers over, waits until no reader can still be in the old
// copy, then applies the same change to it. Readers never lock, never retry and never allocate;
// the price is twice the memory and a writer that applies each change twice and waits for
// in-progress reads (which are short: a lookup).
//
// This is how the data plane reads routing state that control actors change: a publishing
// thread resolves a topic while the router subscribes and unsubscribes concurrently, and a copy
// of a 100K-subscription index per change (copy-on-write) is never needed.
//
// Memory order: every operation on the three shared words (which_, version_, the read
// indicators) is seq_cst, as in the paper's proof: a reader's arrive must be ordered before its
// load of which_, and the writer's store of which_ before its scan of the indicators.
//
// @threadsafe read(): any threads, concurrently with modify(). modify(): serialized internally.
//             A reader must not call modify() from inside read() (it would wait for itself).
#pragma once

#include <flowbus/scheduling/cache.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

namespace flowbus::scheduling {

namespace detail {
/// A small per-thread number spreading readers over the indicator slots.
inline std::size_t reader_slot() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine;
}
} // namespace detail

template <class T> class left_right {
public:
  template <class... Args> explicit left_right(const Args&... args) : copies_{T(args...), T(args...)} {}
  left_right(const left_right&) = delete;
  left_right& operator=(const left_right&) = delete;

  /// Calls f(const T&) on the current copy and returns its result. Wait-free for the reader.
  template <class F> decltype(auto) read(F&& f) const {
    const std::uint32_t v = version_.load(std::memory_order_seq_cst);
    std::atomic<std::int64_t>& ind = indicator(v, detail::reader_slot());
    ind.fetch_add(1, std::memory_order_seq_cst);
    struct depart {
      std::atomic<std::int64_t>& i;
      ~depart() { i.fetch_sub(1, std::memory_order_seq_cst); }
    } guard{ind};
    return f(static_cast<const T&>(copies_[which_.load(std::memory_order_seq_cst)]));
  }

  /// Applies f(T&) to both copies, readers never seeing a half-applied change. f must be
  /// deterministic: applied to equal copies it must leave equal copies. Returns f's result on the
  /// first copy. Blocks while reads of the old copy are in progress.
  template <class F> auto modify(F&& f) {
    std::lock_guard<std::mutex> g(writer_);
    const std::uint32_t front = which_.load(std::memory_order_relaxed);
    auto wait_and_apply_again = [&] {
      which_.store(1 - front, std::memory_order_seq_cst); // new reads see the changed copy
      generation_.fetch_add(1, std::memory_order_seq_cst);
      toggle_version_and_wait();
      (void)f(copies_[front]); // no reader is in the old copy any more
    };
    if constexpr (std::is_void_v<decltype(f(copies_[0]))>) {
      f(copies_[1 - front]);
      wait_and_apply_again();
    } else {
      auto r = f(copies_[1 - front]);
      wait_and_apply_again();
      return r;
    }
  }

  /// Incremented by each modify() once readers see the change: a reader that caches results
  /// computed inside read() keeps the generation it read *before* that read(), and drops them when
  /// the generation moves on.
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

  /// The writer's own view (for the single writer between modifications, e.g. to decide what to
  /// change). @pre called by the thread that serializes modify() calls, never concurrently with one.
  const T& writer_view() const noexcept { return copies_[which_.load(std::memory_order_relaxed)]; }

private:
  static constexpr std::size_t slots = 16;
  struct alignas(false_sharing_range) padded_counter {
    std::atomic<std::int64_t> n{0};
  };

  std::atomic<std::int64_t>& indicator(std::uint32_t version, std::size_t slot) const noexcept {
    return indicators_[version][slot % slots].n;
  }
  bool empty(std::uint32_t version) const noexcept {
    for (const padded_counter& c : indicators_[version])
      if (c.n.load(std::memory_order_seq_cst) != 0) return false;
    return true;
  }
  void toggle_version_and_wait() {
    const std::uint32_t old = version_.load(std::memory_order_seq_cst);
    while (!empty(1 - old)) // stragglers of the previous toggle
      std::this_thread::yield();
    version_.store(1 - old, std::memory_order_seq_cst);
    while (!empty(old)) // readers that may have loaded the old which_
      std::this_thread::yield();
  }

  T copies_[2];
  alignas(false_sharing_range) std::atomic<std::uint32_t> which_{0};
  alignas(false_sharing_range) std::atomic<std::uint32_t> version_{0};
  alignas(false_sharing_range) std::atomic<std::uint64_t> generation_{0};
  mutable std::array<padded_counter, slots> indicators_[2];
  std::mutex writer_;
};

} // namespace flowbus::scheduling
