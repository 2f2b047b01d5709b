// The fixed 40-byte frame header (little-endian):
//
//   0  magic "FLOW"      4  version   5  type   6  flags   7  priority
//   8  total size (u32: header + routing section + payload)
//  12  payload size (u32)
//  16  timestamp, ns (u64)
//  24  sequence (u64, per connection and direction)
//  32  checksum (u32: CRC32C of the whole frame with these 4 bytes taken as zero)
//  36  reserved (u32, zero)
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/defaults.hpp>
#include <flowbus/codec/errc.hpp>

namespace flowbus::codec {

namespace offset {
inline constexpr std::size_t magic = 0, version = 4, type = 5, flags = 6, priority = 7, total_size = 8,
                             payload_size = 12, timestamp = 16, sequence = 24, checksum = 32, reserved = 36;
} // namespace offset

inline constexpr byte frame_magic[4] = {'F', 'L', 'O', 'W'};

struct frame_header {
  std::uint8_t version = defaults::version;
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
  std::uint8_t priority = 2;
  std::uint32_t total_size = 0;
  std::uint32_t payload_size = 0;
  std::uint64_t timestamp_ns = 0;
  std::uint64_t sequence = 0;
  std::uint32_t checksum = 0;
  std::uint32_t reserved = 0;

  std::uint32_t routing_size() const noexcept { return total_size - defaults::header_size - payload_size; }
};
static_assert(defaults::header_size == 40, "the wire header is 40 bytes");

/// @pre p points at header_size readable bytes. Reads, does not validate.
frame_header read_header(const byte* p) noexcept;
/// Writes all 40 bytes including magic. @pre p has header_size bytes of room.
void write_header(byte* p, const frame_header& h) noexcept;

/// Validates the first n bytes of a header (n may be less than 40: only the fields wholly present
/// are checked, so garbage is refused after a few bytes). Checks magic, version, type, flags,
/// priority, total size (>= 40 and <= max_frame_size), payload size (<= total - 40) and reserved.
/// Does not check the checksum. The offset of an error is that of the offending field.
decode_status check_header(const byte* p, std::size_t n, std::uint32_t max_frame_size) noexcept;

} // namespace flowbus::codec
