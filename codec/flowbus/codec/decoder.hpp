// Frame decoder: strict, zero-copy, bounded. One decoder per connection and direction (it holds
// that direction's string pool). Every view it hands out points into the frame the caller passed
// (or into the pool, which lives as long as the decoder): keep the frame alive while you use them.
//
// A decoded message's repeated fields refer to the decoder's pool: keep the decoder alive (and in
// place) while they are used.
//
// It never reads outside the span it is given, never allocates except to grow the string pool
// (bounded: defaults.hpp), and reports every defect as a typed errc with the byte offset.
#pragma once

#include <flowbus/codec/defaults.hpp>
#include <flowbus/codec/errc.hpp>
#include <flowbus/codec/frame_header.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/codec/string_pool.hpp>

namespace flowbus::codec {

struct decoder_options {
  /// Largest frame accepted (header included); at most defaults::max_frame_size_ceiling.
  std::uint32_t max_frame_size = defaults::max_frame_size;
  /// Off only where the transport already guarantees integrity and a benchmark says it matters,
  /// or for stored frames (below).
  bool verify_checksum = true;
};

/// Reading a node's stored frame (made in process by stored_frame_encoding(), encoder.hpp): its
/// checksum field is 0 and nothing is verified — the frame never crossed a wire as it is; the
/// edge verified the bytes it came from.
inline decoder_options stored_frame_decoding() noexcept {
  decoder_options o;
  o.verify_checksum = false;
  return o;
}

/// What the front of a byte stream holds.
struct probe_result {
  errc code = errc::need_more;  ///< ok: a whole frame is present; need_more; or the header's error
  std::uint32_t frame_size = 0; ///< total size, once the size field has arrived (else 0)
  std::uint32_t needed = 0;     ///< need_more: bytes still missing (a lower bound until the size is known)
  std::uint32_t offset = 0;     ///< error: byte offset of the bad header field
};

class decoder {
public:
  explicit decoder(decoder_options options = {}) noexcept;

  /// Looks at the start of a stream: how long the first frame is, whether it is all there, and
  /// whether the header bytes seen so far are valid. Stateless, O(1); the checksum and routing
  /// section are checked by decode().
  probe_result probe(bytes_view in) const noexcept;

  /// Decodes exactly one frame: frame.size() must equal the header's total size. On success `out`
  /// describes it; for a BATCH the inner layout has been validated and batch_reader walks it.
  /// On error the string pool is as it was before the call.
  decode_status decode(bytes_view frame, message& out);

  const inbound_pool& pool() const noexcept { return pool_; }
  const decoder_options& options() const noexcept { return options_; }
  /// Forgets the pool (a new connection).
  void reset() noexcept { pool_.clear(); }

private:
  friend class batch_reader;
  /// Routing section + per-type checks of the frame at [frame, frame + h.total_size).
  /// `base` = offset of `frame` inside the outermost frame, for error offsets.
  decode_status decode_body(const byte* frame, const frame_header& h, std::uint32_t base, message& out);
  decode_status parse_routing(const byte* begin, const byte* end, std::uint32_t base, message& out,
                              bool& has_capability);
  decode_status check_batch_layout(const message& batch, std::uint32_t payload_offset) const noexcept;

  decoder_options options_;
  inbound_pool pool_;
};

/// Walks the inner messages of a BATCH decoded by the same decoder, in order (inner messages may
/// define and use pooled strings, so they must be read in order and exactly once).
class batch_reader {
public:
  /// @pre `batch` was returned by dec.decode() and batch.type == msg_type::batch
  batch_reader(decoder& dec, const message& batch) noexcept;
  bool done() const noexcept { return p_ >= end_; }
  /// Decodes the next inner message (errc::truncated if done()). After an error, done() is true.
  decode_status next(message& out);

private:
  decoder* dec_;
  const byte* p_;
  const byte* end_;
  std::uint32_t base_; ///< offset of p_ within the outer frame
};

} // namespace flowbus::codec
