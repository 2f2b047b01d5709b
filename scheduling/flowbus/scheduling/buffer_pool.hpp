// Size-class slab pools for buffer_ref. Each class (by default 256 B, 1 KiB, 4 KiB, 64 KiB) is one
// slab mapped up front — huge pages when the kernel has them, bound to a NUMA node when asked —
// with a lock-free free list (a Treiber stack of indices with an ABA tag) and, for large classes,
// per-thread magazines in front of it: acquire and the last release touch only the thread's
// cache, and exchange half a magazine with the shared list per CAS. Nothing is allocated after
// construction.
//
// Exhaustion is explicit: try_acquire returns an empty buffer_ref and counts the miss; the caller
// applies backpressure (or, with spill_to_larger, the next larger class serves). Memory stays
// bounded by the slabs whatever the load.
#pragma once

#include <flowbus/scheduling/buffer.hpp>
#include <flowbus/scheduling/numa.hpp>

#include <cstddef>
#include <memory>
#include <system_error>
#include <vector>

namespace flowbus::scheduling {

namespace detail {
struct size_class;
}

struct buffer_pool_options {
  struct class_spec {
    std::size_t capacity; ///< bytes of data per buffer
    std::size_t count;    ///< buffers in the slab
  };
  std::vector<class_spec> classes = {{256, 8192}, {1024, 4096}, {4096, 1024}, {65536, 64}};
  int node = -1;                ///< NUMA node for the slabs (-1: wherever first touched)
  bool huge_pages = true;       ///< MAP_HUGETLB, else THP, else normal pages
  bool spill_to_larger = false; ///< on exhaustion, serve from the next larger class
  /// Free buffers each thread may keep per class (at most 32, and at most count / 128; below 4 the
  /// class has no thread cache). A cached buffer is free but reachable only from its thread until
  /// that thread's cache overflows or the thread exits — the price of not touching the shared
  /// free list on every message. 0: every acquire and release is one CAS on the shared list.
  std::size_t thread_cache = 32;
};

struct size_class_stats {
  std::size_t capacity, count;
  std::size_t free;      ///< on the shared free list (not in thread caches); exact while no thread acquires or releases
  std::size_t exhausted; ///< acquires refused for lack of a buffer
};

class buffer_pool {
public:
  /// Maps the slabs. On failure (ec set) the pool is empty and every acquire fails.
  buffer_pool(const buffer_pool_options& options, std::error_code& ec);
  explicit buffer_pool(const buffer_pool_options& options = {});
  /// @pre every buffer has been released (the slabs are unmapped).
  ~buffer_pool();
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;

  /// A buffer of at least `size` bytes with size() == 0 and use_count() == 1, or an empty ref if
  /// size is above the largest class or the class (and, with spill_to_larger, every larger one)
  /// is exhausted. @threadsafe
  buffer_ref try_acquire(std::size_t size) noexcept;

  std::vector<size_class_stats> stats() const;
  std::size_t largest_capacity() const noexcept;
  page_kind pages() const noexcept { return pages_; }
  /// The NUMA node the slabs are bound to, or -1 (not asked, or no NUMA).
  int node() const noexcept { return node_; }

private:
  void init(const buffer_pool_options& options, std::error_code& ec);
  std::vector<std::unique_ptr<detail::size_class>> classes_;
  bool spill_;
  page_kind pages_ = page_kind::normal;
  int node_ = -1;
};

} // namespace flowbus::scheduling
