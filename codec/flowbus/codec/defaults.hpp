// Every codec limit in one place. Protocol constants (both peers must agree) are marked as such;
// the rest are local defaults a node may configure.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flowbus::codec::defaults {

/// Protocol: size of the fixed frame header.
inline constexpr std::size_t header_size = 40;
/// Protocol: the only version this codec speaks.
inline constexpr std::uint8_t version = 1;
/// Local: largest frame accepted or produced unless configured otherwise (header included).
inline constexpr std::uint32_t max_frame_size = 64 * 1024;
/// Local: the configurable maximum cannot exceed this (sizes travel as u32; 16 MiB keeps one
/// frame inside one pooled buffer class and one WebSocket message).
inline constexpr std::uint32_t max_frame_size_ceiling = 16 * 1024 * 1024;
/// A configured maximum brought into [header_size, max_frame_size_ceiling] (encoder and decoder).
inline constexpr std::uint32_t clamp_max_frame_size(std::uint32_t configured) noexcept {
  return configured < header_size              ? static_cast<std::uint32_t>(header_size)
         : configured > max_frame_size_ceiling ? max_frame_size_ceiling
                                               : configured;
}
/// Protocol: inner messages one BATCH frame may carry.
inline constexpr std::size_t max_batch_messages = 32;
/// Protocol: repeated routing fields (headers, capabilities, subscriptions) in one message.
inline constexpr std::size_t max_repeated_fields = 32;
/// Protocol: a LEB128 varint for a u64 takes at most 10 bytes.
inline constexpr std::size_t max_varint_bytes = 10;

/// Protocol: string pool bounds, per connection and per direction. The sender stops defining new
/// entries when either bound would be exceeded and sends further strings literally; a receiver
/// that is asked to go past them fails the frame with errc::pool_full.
inline constexpr std::uint32_t pool_max_entries = 1024;
inline constexpr std::uint32_t pool_max_bytes = 64 * 1024;
/// Protocol: longest string that may be pooled. Shorter than pool_min_string are never pooled
/// (a reference would not be smaller than the literal).
inline constexpr std::uint32_t pool_max_string = 255;
inline constexpr std::uint32_t pool_min_string = 2;

} // namespace flowbus::codec::defaults
