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

/// CRC of a || b from crc32c(a), crc32c(b) and b's length, without reading either (GF(2) shift,
/// O(log len_b)). Lets a fan-out checksum its shared payload once and each recipient's header apart.
std::uint32_t crc32c_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::size_t len_b) noexcept;

/// The two implementations behind crc32c_extend, for tests and benchmarks.
std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data, std::size_t n) noexcept;
/// @pre crc32c_hardware_available()
std::uint32_t crc32c_extend_hardware(std::uint32_t crc, const void* data, std::size_t n) noexcept;
bool crc32c_hardware_available() noexcept;
/// "sse4.2" or "portable": what crc32c() uses on this machine.
const char* crc32c_implementation() noexcept;

} // namespace flowbus::codec
