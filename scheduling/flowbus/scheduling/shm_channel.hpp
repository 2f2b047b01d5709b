// Shared-memory IPC between two processes on one host: an mmap'ed region (memfd or POSIX shm)
// holding one SPSC byte ring per direction. Frames travel as records, so the FLOW frame a
// process writes is the one the peer reads — no re-encoding, no system call per message.
//
// Region: a 4 KiB header (magic, version, ring capacity, each side's pid and heartbeat), then per
// ring a control block (producer and consumer positions on separate 128-byte blocks, then the two
// doorbell flags) and the data. docs/protocol.md §13 gives every offset.
//
// Records (the Aeron ring-buffer scheme): an 8-byte header word = length << 32 | kind, then the
// bytes, padded to 8. The producer writes the bytes first and the header word last (release): a
// zero word means "nothing committed here". A producer that dies mid-write therefore leaves
// nothing visible, never half a frame. A record that would cross the end of the ring is preceded
// by a padding record to the end. The consumer zeroes each record after use, so every header the
// producer has not yet written in this lap reads zero. The reader checks every length it reads;
// a damaged ring is reported (shm_read_status::corrupt), never followed out of bounds.
//
// Doorbells (the ring says when the other side must be woken; how is the caller's — the
// transport sends an empty WebSocket message): a consumer with nothing to read may park(); a
// producer's commit() then returns true, once, and the producer rings. A producer that finds the
// ring full may wait_for_space(); the consumer's publish() then returns true, once, and it rings.
// Both are Dekker handshakes on sequentially consistent accesses (flag, then the other side's
// word), so a wake-up is never lost: either the re-check sees the record (or the space), or the
// other side sees the flag.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

namespace flowbus::scheduling {

namespace detail {
struct shm_header;
struct shm_ring_control;
} // namespace detail

enum class shm_side : std::uint8_t { creator = 0, opener = 1 };

enum class peer_status : std::uint8_t {
  alive,          ///< attached, process exists, heartbeat recent
  never_attached, ///< no process has taken the other side yet
  stale,          ///< process exists but has not called heartbeat() within the limit (hung?)
  dead,           ///< the peer process is gone
};
const char* to_string(peer_status s) noexcept;

enum class shm_read_status : std::uint8_t { ok, corrupt };

/// A claimed, uncommitted record: write `size` bytes at `data`, then commit or abort.
struct shm_claim {
  unsigned char* data = nullptr;
  std::size_t size = 0;
  std::uint64_t position = 0;
  std::size_t record = 0; ///< header + bytes + padding
  explicit operator bool() const noexcept { return data != nullptr; }
};

/// One process's end of a channel: it produces into one ring and consumes the other.
/// @threadsafe one producing thread and one consuming thread per endpoint.
class shm_endpoint {
public:
  shm_endpoint() noexcept = default;

  /// Two-phase write. An empty claim: the ring is full (or size exceeds max_message()).
  shm_claim try_claim(std::size_t size) noexcept;
  /// Makes the record visible. True: the consumer had parked — wake it (once per park()).
  bool commit(const shm_claim& c) noexcept;
  /// Gives the claimed space up (it becomes padding the reader skips).
  void abort(const shm_claim& c) noexcept;
  /// Claim + copy + commit. False when full. `wake` (if given) is set when commit() says so.
  bool try_write(const void* data, std::size_t size, bool* wake = nullptr) noexcept;
  /// Producer, after a claim of `size` failed: asks the consumer to ring when it frees space.
  /// False: there is room now (claim again); true: the consumer's publish() will say to ring.
  bool wait_for_space(std::size_t size) noexcept;

  /// Zero-copy reading, one record at a time: next() finds the next data record (consuming
  /// padding), the caller uses the bytes for as long as it needs, then release()s it; publish()
  /// hands released space back to the producer. next() again without release() returns the same.
  struct record {
    const unsigned char* data = nullptr;
    std::size_t size = 0;
    std::size_t bytes = 0; ///< header + bytes + padding
  };
  /// False: nothing committed (or the ring is damaged: `corrupt` is set, the record not followed).
  bool next(record& r, bool& corrupt) noexcept;
  void release(const record& r) noexcept;
  /// Hands released space back. True: the producer waits for space (wait_for_space) — wake it.
  /// Nothing released since the last publish: false (a waiting producer stays waiting).
  bool publish() noexcept;
  /// Consumer with nothing to read: asks the producer to ring on its next commit. False: a record
  /// is already there (read on, not parked); true: parked.
  bool park() noexcept;
  /// Consumer reading again without a doorbell (a busy-poll, a timer): producers need not ring.
  void unpark() noexcept;

  /// Calls f(const unsigned char*, std::size_t) for up to max committed records, in order.
  /// The bytes are valid during the call only. Returns the number of records handled.
  template <class F> std::size_t read(F&& f, std::size_t max, shm_read_status* status = nullptr) noexcept;

  std::size_t max_message() const noexcept { return capacity_ / 4; }
  /// Records this side's liveness for the peer's peer() check.
  void heartbeat() noexcept;
  peer_status peer(std::chrono::nanoseconds stale_after = std::chrono::seconds(1)) const noexcept;
  shm_side side() const noexcept { return side_; }
  explicit operator bool() const noexcept { return header_ != nullptr; }

private:
  friend class shm_channel;
  struct record_view {
    const unsigned char* data;
    std::size_t size;
    bool is_data;
  };
  /// Next committed record at the read position, if any; corrupt sets `bad`.
  bool peek(record_view& r, std::size_t& record_bytes, bool& bad) const noexcept;
  void consume(std::size_t record_bytes) noexcept; // zero it, advance
  void publish_head() noexcept;
  std::size_t needed(std::size_t size) const noexcept; ///< ring bytes a record of `size` takes now

  detail::shm_header* header_ = nullptr;
  shm_side side_ = shm_side::creator;
  std::size_t capacity_ = 0;
  // producing ring
  detail::shm_ring_control* tx_ = nullptr;
  unsigned char* tx_data_ = nullptr;
  std::uint64_t tx_tail_ = 0, tx_head_cache_ = 0;
  // consuming ring
  detail::shm_ring_control* rx_ = nullptr;
  unsigned char* rx_data_ = nullptr;
  std::uint64_t rx_head_ = 0;
  std::uint64_t rx_published_ = 0; ///< rx_head_ as publish() last handed it back
};

/// Owns the mapping of a channel region. Move-only; unmaps on destruction.
class shm_channel {
public:
  /// Creates a region with two rings of `ring_capacity` bytes (rounded up to a power of two,
  /// at least 4 KiB). name empty: an anonymous memfd (share it by fork or by passing fd());
  /// otherwise a POSIX shm object (/name) that other processes open() by name.
  static shm_channel create(std::size_t ring_capacity, const std::string& name, std::error_code& ec);
  /// Maps an existing region by name or by file descriptor (the fd is duplicated).
  static shm_channel open(const std::string& name, std::error_code& ec);
  static shm_channel open_fd(int fd, std::error_code& ec);
  /// Removes a named region (existing mappings stay valid).
  static void unlink(const std::string& name) noexcept;

  shm_channel() noexcept = default;
  shm_channel(shm_channel&& o) noexcept;
  shm_channel& operator=(shm_channel&& o) noexcept;
  ~shm_channel();

  /// Takes one side of the channel for the calling process (records its pid).
  shm_endpoint endpoint(shm_side side) noexcept;
  int fd() const noexcept { return fd_; }
  std::size_t ring_capacity() const noexcept;
  explicit operator bool() const noexcept { return base_ != nullptr; }

private:
  /// Takes ownership of fd (closed on error, or when the channel is destroyed).
  static shm_channel map_fd(int fd, bool initialise, std::size_t ring_capacity, std::error_code& ec);
  void* base_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

// ---- read() ----

template <class F> std::size_t shm_endpoint::read(F&& f, std::size_t max, shm_read_status* status) noexcept {
  std::size_t n = 0;
  bool bad = false;
  while (n < max) {
    record_view r;
    std::size_t bytes = 0;
    if (!peek(r, bytes, bad)) break;
    if (r.is_data) {
      f(r.data, r.size);
      ++n;
    }
    consume(bytes);
  }
  publish_head();
  if (status) *status = bad ? shm_read_status::corrupt : shm_read_status::ok;
  return n;
}

} // namespace flowbus::scheduling
