// Zero-copy message buffers: one encoded frame in pool memory, intrusively reference counted.
// A fan-out hands every recipient a copy of the same buffer_ref (one atomic increment each);
// the last release, on whatever thread it happens, puts the buffer back on its pool's free list.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace flowbus::scheduling {

class buffer_pool;

namespace detail {
struct size_class;
/// Lives in pool memory right before the data, one cache line.
struct alignas(64) buffer_header {
  std::atomic<std::uint32_t> refs{0};
  std::atomic<std::uint32_t> next_free{0}; ///< free-list link (index + 1), only while free
  std::uint32_t capacity = 0;
  std::uint32_t size = 0;
  std::uint32_t index = 0;
  size_class* owner = nullptr; ///< nullptr: a heap buffer (buffer_ref::copy_of), freed by the last release
  std::uint64_t stamp_ns = 0; ///< steady clock when the node took the frame in (0: not stamped)
  unsigned char* data() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
};
static_assert(sizeof(buffer_header) == 64, "header is one cache line; data starts line-aligned");
void release(buffer_header* h) noexcept; // back to the free list, or freed (buffer_pool.cpp)
buffer_header* heap_copy(const void* data, std::size_t n); // buffer_pool.cpp
} // namespace detail

/// Shared ownership of one pooled buffer. Copying adds a reference, destruction drops one.
/// @threadsafe distinct buffer_refs to the same buffer may be used and destroyed on any threads.
/// The bytes are not synchronised: write them while use_count() == 1, before sharing.
class buffer_ref {
public:
  buffer_ref() noexcept = default;
  buffer_ref(const buffer_ref& o) noexcept : h_(o.h_) {
    if (h_) h_->refs.fetch_add(1, std::memory_order_relaxed); // a new owner needs no ordering
  }
  buffer_ref(buffer_ref&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  buffer_ref& operator=(buffer_ref o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~buffer_ref() { reset(); }

  void reset() noexcept {
    // A count of 1 seen by an owner cannot grow (copies need an owner): skip the locked decrement
    // for the common unshared buffer. Otherwise acq_rel: the last owner must see every other
    // owner's accesses before the buffer is reused.
    if (h_ && (h_->refs.load(std::memory_order_acquire) == 1 || h_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1))
      detail::release(h_);
    h_ = nullptr;
  }

  unsigned char* data() const noexcept { return h_->data(); }
  std::size_t size() const noexcept { return h_->size; }
  std::size_t capacity() const noexcept { return h_->capacity; }
  /// @pre n <= capacity() and this is the only reference.
  void set_size(std::size_t n) noexcept { h_->size = static_cast<std::uint32_t>(n); }
  /// When the node took the frame in (steady clock, ns; 0: not stamped): the monitoring measures
  /// how long it waits in the node from it. Written like the bytes: before sharing.
  std::uint64_t stamp() const noexcept { return h_->stamp_ns; }
  void set_stamp(std::uint64_t ns) noexcept { h_->stamp_ns = ns; }
  std::uint32_t use_count() const noexcept { return h_ ? h_->refs.load(std::memory_order_acquire) : 0; }
  /// Whether the buffer is pool memory (false: empty, or a heap copy).
  bool pooled() const noexcept { return h_ && h_->owner; }

  /// A buffer of `n` bytes copied from `data`, on the heap rather than in a pool: for what is kept
  /// long (dead letters), so that it does not hold pool buffers the live traffic needs.
  static buffer_ref copy_of(const void* data, std::size_t n) { return buffer_ref(detail::heap_copy(data, n)); }
  explicit operator bool() const noexcept { return h_ != nullptr; }

private:
  friend class buffer_pool;
  explicit buffer_ref(detail::buffer_header* h) noexcept : h_(h) {}
  detail::buffer_header* h_ = nullptr;
};

} // namespace flowbus::scheduling
