// Bounded multi-producer single-consumer byte ring with claim/commit (the shape of Aeron's
// ManyToOneRingBuffer): variable-size records written in place, no lock, no copy.
//
// A producer claims a record with one CAS on tail_ (room is checked against head_), writes its
// bytes where the claim points, and commits: one release store of the record's 8-byte header.
// Until then the header reads 0 and the consumer stops there — a slow producer delays the
// records claimed after its own, never another producer's claim. A record that would cross the
// end of the buffer is preceded by a padding record up to the end (claimed in the same CAS), so
// every record is contiguous. The consumer reads committed records in place (`peek`), then
// `release`s them: it zeroes their bytes (so a header of the next lap reads 0 until committed)
// and moves head_ on. Records are 8-byte aligned; across producers the order is the order of
// claims, per producer it is FIFO.
//
// Headers are accessed with the __atomic builtins (the same bytes are plain payload on another
// lap, zeroed by the consumer before head_ lets a producer claim them again: release/acquire on
// head_ orders that).
// @threadsafe any number of producer threads (try_claim, commit, abandon), one consumer thread
// (peek, release, empty); capacity() and max_record() from anywhere.
#pragma once

#include <flowbus/scheduling/cache.hpp>
#include <flowbus/scheduling/mpsc_queue.hpp> // detail::zeroed_alloc

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace flowbus::scheduling {

class mpsc_byte_ring {
public:
  static constexpr std::size_t header_bytes = 8;
  static constexpr std::size_t alignment = 8;

  /// @param capacity bytes, rounded up to a power of two, at least 64.
  explicit mpsc_byte_ring(std::size_t capacity)
      : cap_(round_up_pow2(capacity < 64 ? 64 : capacity)),
        buf_(static_cast<unsigned char*>(detail::zeroed_alloc(cap_, alignof(std::uint64_t)))) {}
  ~mpsc_byte_ring() { detail::zeroed_free(buf_, cap_, alignof(std::uint64_t)); }
  mpsc_byte_ring(const mpsc_byte_ring&) = delete;
  mpsc_byte_ring& operator=(const mpsc_byte_ring&) = delete;

  std::size_t capacity() const noexcept { return cap_; }
  /// The largest record a claim can take: half the ring less a header, so that a claim in an
  /// empty ring always succeeds, wherever the end of the buffer falls.
  std::size_t max_record() const noexcept { return cap_ / 2 - header_bytes; }

  // ---- producers ----

  struct claim {
    unsigned char* data = nullptr; ///< `size` writable bytes
    std::size_t size = 0;
    std::uint64_t at = 0; ///< the record's position (its header)
    explicit operator bool() const noexcept { return data != nullptr; }
  };

  /// Claims a record of `bytes`. Empty if there is no room now, or never (bytes > max_record()).
  [[nodiscard]] claim try_claim(std::size_t bytes) noexcept {
    if (bytes > max_record()) return {};
    const std::size_t need = record_bytes(bytes);
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t idx = pos & (cap_ - 1);
      const std::size_t to_end = cap_ - idx;
      const std::size_t total = claim_bytes(pos, need);
      if (pos + total - head_.load(std::memory_order_acquire) > cap_) return {};
      // (seq_cst: a producer that claims and then looks at a flag of the consumer's, and a
      // consumer that sets that flag and then reads claimed(), cannot both miss)
      if (tail_.compare_exchange_weak(pos, pos + total, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        std::uint64_t at = pos;
        if (total != need) { // the end of the buffer: a padding record, committed now
          store_header(idx, (to_end - header_bytes) | committed_bit | padding_bit);
          at += to_end;
        }
        return claim{buf_ + (at & (cap_ - 1)) + header_bytes, bytes, at};
      }
    }
  }
  /// Publishes the record: the consumer may read it now.
  void commit(const claim& c) noexcept { store_header(c.at & (cap_ - 1), c.size | committed_bit); }
  /// Gives the record up: the consumer skips it, as padding.
  void abandon(const claim& c) noexcept {
    store_header(c.at & (cap_ - 1), c.size | committed_bit | padding_bit);
  }

  // ---- the consumer ----

  /// Calls `f(const unsigned char* data, std::size_t size) -> bool` for each committed record from
  /// the head, in order, until one is not committed yet, `f` returns false (that record is not
  /// taken) or `max_bytes` of the ring would be passed. Returns the position after the last record
  /// taken (padding included), for release(); nothing is freed before that.
  template <class F> std::uint64_t peek(F&& f, std::size_t max_bytes = ~std::size_t{0}) const {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    const std::uint64_t start = pos;
    while (pos - start < cap_) { // (a full ring: the next lap's header is this lap's first record)
      const std::size_t idx = pos & (cap_ - 1);
      const std::uint64_t h = load_header(idx);
      if (!(h & committed_bit)) return pos;
      const std::size_t size = static_cast<std::uint32_t>(h);
      const std::size_t len = record_bytes(size);
      if (pos + len - start > max_bytes) return pos;
      if (!(h & padding_bit) && !f(static_cast<const unsigned char*>(buf_ + idx + header_bytes), size)) return pos;
      pos += len;
    }
    return pos;
  }
  /// Frees everything before `to` (a position peek() returned): zeroes it, then lets producers
  /// claim it.
  void release(std::uint64_t to) noexcept {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    while (pos < to) {
      const std::size_t idx = pos & (cap_ - 1);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(to - pos, cap_ - idx));
      std::memset(buf_ + idx, 0, n);
      pos += n;
    }
    head_.store(to, std::memory_order_seq_cst); // (seq_cst: a producer that waits for room looks after saying so)
  }
  /// Whether the record at the head is committed (a record, or padding) — a look that is
  /// sequentially consistent with commit(): a producer that commits and then looks at a flag of
  /// the consumer's, and a consumer that clears that flag and then calls this, cannot both miss.
  bool readable() const noexcept { return load_header(head_.load(std::memory_order_relaxed) & (cap_ - 1)) & committed_bit; }
  /// Nothing claimed and not yet released (a claimed record still being written counts).
  bool empty() const noexcept { return tail_.load(std::memory_order_seq_cst) == head_.load(std::memory_order_relaxed); }
  /// Where the claims end (any thread; sequentially consistent with try_claim).
  std::uint64_t claimed() const noexcept { return tail_.load(std::memory_order_seq_cst); }
  /// Where the released records end: everything before it has been read (any thread).
  std::uint64_t released() const noexcept { return head_.load(std::memory_order_acquire); }
  /// Whether a claim of `bytes` would succeed now (any thread; a moment's view).
  bool fits(std::size_t bytes) const noexcept {
    if (bytes > max_record()) return false;
    const std::uint64_t pos = tail_.load(std::memory_order_seq_cst);
    return pos + claim_bytes(pos, record_bytes(bytes)) - head_.load(std::memory_order_seq_cst) <= cap_;
  }
  /// Bytes free for claims now (any thread; a moment's view).
  std::size_t free_bytes() const noexcept {
    return cap_ - static_cast<std::size_t>(tail_.load(std::memory_order_seq_cst) - head_.load(std::memory_order_seq_cst));
  }

  /// The ring bytes a record of `size` bytes takes (header and alignment).
  static constexpr std::size_t record_bytes(std::size_t size) noexcept {
    return (header_bytes + size + alignment - 1) & ~(alignment - 1);
  }

private:
  static constexpr std::uint64_t committed_bit = std::uint64_t{1} << 32;
  static constexpr std::uint64_t padding_bit = std::uint64_t{1} << 33;

  /// The ring bytes a claim of a `need`-byte record at `pos` takes: the record, and before it
  /// padding to the end of the buffer if it would cross it.
  std::size_t claim_bytes(std::uint64_t pos, std::size_t need) const noexcept {
    const std::size_t to_end = cap_ - (pos & (cap_ - 1));
    return need <= to_end ? need : to_end + need;
  }
  void store_header(std::size_t idx, std::uint64_t h) noexcept {
    __atomic_store_n(reinterpret_cast<std::uint64_t*>(buf_ + idx), h, __ATOMIC_SEQ_CST);
  }
  std::uint64_t load_header(std::size_t idx) const noexcept {
    return __atomic_load_n(reinterpret_cast<const std::uint64_t*>(buf_ + idx), __ATOMIC_SEQ_CST);
  }

  const std::size_t cap_;
  unsigned char* const buf_;
  alignas(false_sharing_range) std::atomic<std::uint64_t> tail_{0}; ///< producers' claims
  alignas(false_sharing_range) std::atomic<std::uint64_t> head_{0}; ///< the consumer's release
};

} // namespace flowbus::scheduling
