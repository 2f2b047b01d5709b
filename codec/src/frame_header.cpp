#include <flowbus/codec/frame_header.hpp>

#include <flowbus/codec/types.hpp>

namespace flowbus::codec {

frame_header read_header(const byte* p) noexcept {
  frame_header h;
  h.version = p[offset::version];
  h.type = p[offset::type];
  h.flags = p[offset::flags];
  h.priority = p[offset::priority];
  h.total_size = load_le<std::uint32_t>(p + offset::total_size);
  h.payload_size = load_le<std::uint32_t>(p + offset::payload_size);
  h.timestamp_ns = load_le<std::uint64_t>(p + offset::timestamp);
  h.sequence = load_le<std::uint64_t>(p + offset::sequence);
  h.checksum = load_le<std::uint32_t>(p + offset::checksum);
  h.reserved = load_le<std::uint32_t>(p + offset::reserved);
  return h;
}

void write_header(byte* p, const frame_header& h) noexcept {
  std::memcpy(p, frame_magic, 4);
  p[offset::version] = h.version;
  p[offset::type] = h.type;
  p[offset::flags] = h.flags;
  p[offset::priority] = h.priority;
  store_le(p + offset::total_size, h.total_size);
  store_le(p + offset::payload_size, h.payload_size);
  store_le(p + offset::timestamp, h.timestamp_ns);
  store_le(p + offset::sequence, h.sequence);
  store_le(p + offset::checksum, h.checksum);
  store_le(p + offset::reserved, h.reserved);
}

decode_status check_header(const byte* p, std::size_t n, std::uint32_t max_frame_size) noexcept {
  auto fail = [](errc e, std::size_t at) { return decode_status{e, static_cast<std::uint32_t>(at)}; };
  for (std::size_t i = 0; i < 4 && i < n; ++i)
    if (p[i] != frame_magic[i]) return fail(errc::bad_magic, i);
  if (n > offset::version && p[offset::version] != defaults::version)
    return fail(errc::unsupported_version, offset::version);
  if (n > offset::type && !is_known_type(p[offset::type])) return fail(errc::unknown_type, offset::type);
  if (n > offset::flags && (p[offset::flags] & ~flag::known_mask) != 0) return fail(errc::unknown_flags, offset::flags);
  if (n > offset::priority && p[offset::priority] >= priority_count) return fail(errc::bad_priority, offset::priority);
  if (n < offset::total_size + 4) return {};
  const auto total = load_le<std::uint32_t>(p + offset::total_size);
  if (total < defaults::header_size) return fail(errc::frame_too_small, offset::total_size);
  if (total > max_frame_size) return fail(errc::frame_too_large, offset::total_size);
  if (n < offset::payload_size + 4) return {};
  if (load_le<std::uint32_t>(p + offset::payload_size) > total - defaults::header_size)
    return fail(errc::size_mismatch, offset::payload_size);
  if (n < offset::reserved + 4) return {};
  if (load_le<std::uint32_t>(p + offset::reserved) != 0) return fail(errc::reserved_nonzero, offset::reserved);
  return {};
}

} // namespace flowbus::codec
