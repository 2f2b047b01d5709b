// Typed codec errors. The decoder reports one of these with the byte offset where it found it;
// the encoder reports the ones that concern what it was asked to write.
#pragma once

#include <cstdint>

namespace flowbus::codec {

// Values are part of the protocol (ERROR and NACK frames carry them in error_code): append only.
enum class errc : std::uint8_t {
  ok = 0,
  need_more = 1, ///< not an error: the frame is incomplete (probe says how many bytes)
  // fixed header
  bad_magic = 2,           ///< the first four bytes are not "FLOW"
  unsupported_version = 3, ///< version byte other than 1
  unknown_type = 4,        ///< type byte names no message type
  unknown_flags = 5,       ///< a flag bit this version does not define is set
  bad_priority = 6,        ///< priority byte above 4 (BACKGROUND)
  reserved_nonzero = 7,    ///< the reserved header word is not zero
  frame_too_small = 8,     ///< total size below the 40-byte header
  frame_too_large = 9,     ///< total size above the configured maximum
  size_mismatch = 10,      ///< sizes inconsistent (payload > total - header, or buffer != total)
  checksum_mismatch = 11,  ///< CRC32C over the frame does not match the checksum field
  // routing section
  truncated = 12,              ///< a field runs past the end of the routing section or frame
  varint_overlong = 13,        ///< a varint is not in its shortest form
  varint_overflow = 14,        ///< a varint does not fit in 64 bits
  bad_field = 15,              ///< field number 0, or a known field sent with the wrong wire kind
  bad_string_encoding = 16,    ///< string mode 3 (reserved)
  unknown_pool_id = 17,        ///< a pooled-string reference to an id that was never defined
  pool_full = 18,              ///< a pool definition beyond the pool's entry or byte bound
  pooled_string_too_long = 19, ///< a pool definition longer than 255 bytes
  duplicate_field = 20,        ///< a singular field appears twice
  too_many_fields = 21,        ///< more than 32 repeated fields in one message
  missing_field = 22,          ///< a field the message type requires is absent
  flag_mismatch = 23,          ///< HAS_DEADLINE flag and deadline field disagree
  // batches
  batch_empty = 24,          ///< a BATCH with no inner message
  batch_too_large = 25,      ///< more than 32 inner messages
  batch_nested = 26,         ///< a BATCH inside a BATCH
  batch_sequence = 27,       ///< inner sequence numbers are not consecutive from the batch's
  batch_inner_checksum = 28, ///< an inner message carries a checksum (must be 0: the batch covers it)
  // encoder
  buffer_too_small = 29, ///< the output buffer cannot hold the frame
};

/// A short, stable, human-readable description ("bad magic", ...).
const char* to_string(errc e) noexcept;

/// Outcome of a decode step. `offset` is the byte offset (from the start of the frame) where the
/// problem was found; 0 when code is ok.
struct decode_status {
  errc code = errc::ok;
  std::uint32_t offset = 0;
  explicit operator bool() const noexcept { return code == errc::ok; }
};

} // namespace flowbus::codec
