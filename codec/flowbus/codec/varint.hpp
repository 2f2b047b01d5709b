// LEB128 varints, bounds-checked. Canonical form is enforced on decode: a varint must be in its
// shortest form (no trailing 0x00 continuation group) and fit in 64 bits. Canonical encodings make
// every message have exactly one wire form, which keeps golden vectors and checksums stable.
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/errc.hpp>

namespace flowbus::codec {

/// Bytes needed to encode v (1..10).
inline constexpr std::size_t varint_size(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// Writes v at p; returns one past the last byte. @pre p has varint_size(v) bytes of room.
inline byte* write_varint(byte* p, std::uint64_t v) noexcept {
  while (v >= 0x80) {
    *p++ = static_cast<byte>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<byte>(v);
  return p;
}

/// Reads one varint from [p, end). On success advances p and returns errc::ok.
/// Errors: truncated (input ends inside the varint), varint_overflow (beyond 64 bits),
/// varint_overlong (not the shortest form). p is left unchanged on error.
inline errc read_varint(const byte*& p, const byte* end, std::uint64_t& out) noexcept {
  if (p < end && *p < 0x80) { // one-byte fast path: most tags and small values
    out = *p++;
    return errc::ok;
  }
  std::uint64_t v = 0;
  const byte* q = p;
  for (unsigned shift = 0; q < end; shift += 7) {
    const byte b = *q++;
    if (shift == 63 && b > 1) return errc::varint_overflow; // 10th byte holds bit 63 only
    v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
    if (b < 0x80) {
      if (b == 0 && shift != 0) return errc::varint_overlong;
      out = v;
      p = q;
      return errc::ok;
    }
  }
  return errc::truncated;
}

} // namespace flowbus::codec
