// What one WebSocket message carries out of a connection: the frames waiting for it, gathered
// while the previous write was in flight. One frame goes as it is; several go as one BATCH
// (protocol.md §6), up to 32 or the peer's maximum frame size. Either way each message takes this
// direction's next sequence number (§7) and the checksum is computed over what is actually sent.
//
// Frames are copied into one contiguous buffer: a 128-byte frame costs ~10 ns to copy and its
// checksum must be recomputed anyway (its sequence number is this connection's), while the write
// system call it shares with 31 others costs ~1 µs.
// @threadsafe no
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/defaults.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flowbus::transport {

class outbound_batch {
public:
  explicit outbound_batch(std::uint32_t max_frame_size = codec::defaults::max_frame_size, std::size_t max_count = 32)
      : max_frame_(max_frame_size), max_count_(max_count) {}

  /// Whether `frame` (a complete, valid frame that is not a BATCH) still fits in this message.
  bool fits(std::size_t frame_size) const noexcept;
  /// Appends a copy. @pre fits(frame.size())
  void add(codec::bytes_view frame);
  std::size_t count() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }

  /// Numbers the frames from `next_sequence` (advanced by count()), checksums, and returns the
  /// bytes of the one WebSocket message: the frame itself, or a BATCH. Valid until clear().
  codec::bytes_view finish(std::uint64_t& next_sequence);
  void clear() noexcept;

private:
  std::uint32_t max_frame_;
  std::size_t max_count_;
  std::size_t count_ = 0;
  std::vector<codec::byte> buf_; ///< a 40-byte BATCH header slot, then the frames
};

} // namespace flowbus::transport
