// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the frame checksum.
// The hardware path (SSE4.2 crc32 instruction) is chosen at run time; a slicing-by-8 table
// implementation is the portable fallback. Both are exposed so tests can hold them to each other.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flowbus::codec {

/// CRC32C of n bytes (init 0xFFFFFFFF, final xor 0xFFFFFFFF). crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t n) noexcept;

/// Continues a CRC: crc32c_extend(crc32c(a), b) == crc32c(a || b). crc32c_extend(0, x) == crc32c(x).
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t n) noexcept;

/// CRC32C of n bytes read as if the 4 bytes at `hole` were zero (a frame with its own checksum
/// field taken as zero), in one pass. @pre hole + 4 <= n
std::uint32_t crc32c_with_hole(const void* data, std::size_t n, std::size_t hole) noexcept;

/// CRC of a || b from crc32c(a), crc32c(b) and b's length, without reading either (GF(2) shift,
/// O(log len_b)). Lets a fan-out checksum its shared payload once and each recipient's header apart.
std::uint32_t crc32c_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::size_t len_b) noexcept;

/// "Shift a CRC past len zero bytes", precomputed once for a length so that combining many
/// prefixes with one suffix (a fan-out: one payload, a header per recipient) costs one carry-less
/// multiply each instead of an O(log len) computation.
class crc32c_shift {
public:
  explicit crc32c_shift(std::size_t len) noexcept;
  /// crc32c_combine(crc_a, crc_b, len) == combine(crc_a, crc_b) for this shift's len.
  std::uint32_t combine(std::uint32_t crc_a, std::uint32_t crc_b) const noexcept;
  std::size_t length() const noexcept { return len_; }

private:
  std::size_t len_;
  std::uint32_t xn_; ///< x^(8 len) mod P (portable path)
  std::uint64_t k_;  ///< x^(8 len - 33) mod P for the PCLMUL path; 0 when len < 5
};

/// The two implementations behind crc32c_extend, for tests and benchmarks.
std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data, std::size_t n) noexcept;
/// @pre crc32c_hardware_available()
std::uint32_t crc32c_extend_hardware(std::uint32_t crc, const void* data, std::size_t n) noexcept;
bool crc32c_hardware_available() noexcept;
/// "sse4.2" or "portable": what crc32c() uses on this machine.
const char* crc32c_implementation() noexcept;

} // namespace flowbus::codec
