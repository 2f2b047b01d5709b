// Frame encoder: one per connection and direction (it holds that direction's string pool and
// sequence counter). Writes into caller-provided memory; no heap allocation per message (the
// string pool grows, boundedly, the first time a string is seen).
//
// Whether a message can be encoded never depends on the pool's state: the size checks use the
// size with every string literal, which is an upper bound of the pooled size. A failed encode
// changes nothing (no sequence number used, no pool entry defined).
#pragma once

#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/defaults.hpp>
#include <flowbus/codec/errc.hpp>
#include <flowbus/codec/frame_header.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/codec/string_pool.hpp>

namespace flowbus::codec {

struct encoder_options {
  /// Largest frame produced (header included); at most defaults::max_frame_size_ceiling.
  std::uint32_t max_frame_size = defaults::max_frame_size;
  /// Send identifier strings (topic, agent ids, header keys, ...) through the string pool.
  bool pool_strings = true;
  /// Compute the CRC32C. false: the checksum field stays 0 — only for frames that never leave
  /// the process as they are (a node's stored frames: every way out rewrites the checksum, and
  /// whoever reads one back inside the node decodes without verifying it).
  bool checksum = true;
};

/// A frame kept before it is written — a node's stored frame, a client's queued one: literal
/// strings (no connection's pool: it may go out on any) and no checksum — it never leaves as it
/// is: the writer rewrites sequence and checksum, and inside a node links, actors and the DLQ read
/// it with stored_frame_decoding() (decoder.hpp).
inline encoder_options stored_frame_encoding() noexcept {
  encoder_options o;
  o.pool_strings = false;
  o.checksum = false;
  return o;
}
/// The same, for frames of at most `max_frame_size` bytes.
inline encoder_options stored_frame_encoding(std::uint32_t max_frame_size) noexcept {
  encoder_options o = stored_frame_encoding();
  o.max_frame_size = max_frame_size;
  return o;
}

/// A payload shared by a fan-out: its CRC32C and the shift operator for its length, computed once
/// and used for every recipient's frame.
struct shared_payload {
  bytes_view bytes;
  std::uint32_t crc;
  crc32c_shift shift;
  explicit shared_payload(bytes_view b) noexcept : bytes(b), crc(crc32c(b.data(), b.size())), shift(b.size()) {}
};

struct encode_result {
  errc code = errc::ok;
  std::uint32_t size = 0; ///< bytes written
  explicit operator bool() const noexcept { return code == errc::ok; }
};

class encoder {
public:
  explicit encoder(encoder_options options = {}) noexcept;

  /// Frame size with every string sent literally: what encode() needs at most.
  std::size_t literal_size(const message& m) const noexcept;

  /// Encodes m as one frame into [out, out + capacity) and assigns m.sequence. The HAS_DEADLINE
  /// flag is set from has(field::deadline). Errors: unknown_type (including BATCH: use
  /// batch_builder), unknown_flags, bad_priority, bad_field / too_many_fields (repeated entries),
  /// missing_field, frame_too_large, buffer_too_small.
  encode_result encode(message& m, byte* out, std::size_t capacity);

  /// Scatter-gather form for a fan-out: writes only the header and routing section of a frame
  /// whose payload is sent from elsewhere (one buffer shared by all recipients, e.g. with writev).
  /// Sets m.payload to payload.bytes. The checksum combines the prefix's CRC with the payload's
  /// precomputed one: the payload is never read here.
  encode_result encode_prefix(message& m, const shared_payload& payload, byte* out, std::size_t capacity);

  std::uint64_t next_sequence() const noexcept { return next_seq_; }
  void set_next_sequence(std::uint64_t s) noexcept { next_seq_ = s; }
  const outbound_pool& pool() const noexcept { return pool_; }
  const encoder_options& options() const noexcept { return options_; }
  /// Forgets the pool and restarts sequences at 0 (a new connection).
  void reset() noexcept {
    pool_.clear();
    next_seq_ = 0;
  }

private:
  friend class batch_builder;
  errc validate(const message& m) const noexcept;
  /// Whether the frame fits the limits, judged by its all-literal size: `used` bytes already in
  /// the buffer (a batch), the payload written elsewhere or not. A cheap bound settles most calls.
  errc check_size(const message& m, std::size_t used, std::size_t capacity, bool payload_elsewhere) const noexcept;
  /// Writes header (checksum 0) and routing section; returns the routing section's end.
  /// @pre validated and sized
  byte* write_prefix(message& m, byte* out);
  byte* write_string(byte* p, std::string_view s, bool poolable);

  encoder_options options_;
  outbound_pool pool_;
  std::uint64_t next_seq_ = 0;
};

/// Builds one BATCH frame in caller memory: 1..32 inner messages, each a complete frame with its
/// own header (checksum field 0: the batch checksum covers it), consecutive sequence numbers, the
/// batch header carrying the first one's. Every successful add() must be followed by finish() and
/// the frame sent: the inner messages have taken sequence numbers and may have defined pool entries.
class batch_builder {
public:
  batch_builder(encoder& enc, byte* out, std::size_t capacity) noexcept : enc_(&enc), out_(out), capacity_(capacity) {}

  /// Appends m. Errors as encoder::encode, plus batch_too_large (already 32); on error nothing changes.
  errc add(message& m);
  std::size_t count() const noexcept { return count_; }
  /// Bytes the batch frame takes so far (the 40-byte batch header included).
  std::size_t size() const noexcept { return size_; }
  /// Writes the batch header and checksum. batch_empty if nothing was added.
  encode_result finish();

private:
  encoder* enc_;
  byte* out_;
  std::size_t capacity_;
  std::size_t size_ = defaults::header_size;
  std::size_t count_ = 0;
  std::uint64_t first_seq_ = 0;
  std::uint64_t first_timestamp_ = 0;
  std::uint8_t prio_ = priority_count - 1; ///< most urgent inner priority
};

} // namespace flowbus::codec
