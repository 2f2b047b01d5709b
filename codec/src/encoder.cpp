#include <flowbus/codec/encoder.hpp>

#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/varint.hpp>

#include <algorithm>

namespace flowbus::codec {
namespace {

constexpr std::size_t hsize = defaults::header_size;

constexpr std::uint64_t key_of(field f, wire_kind k) noexcept {
  return (static_cast<std::uint64_t>(f) << 2) | static_cast<std::uint64_t>(k);
}
constexpr std::size_t literal_string_size(std::string_view s) noexcept {
  return varint_size(static_cast<std::uint64_t>(s.size()) << 2) + s.size();
}

// Iterates the set bits of a field mask in increasing field order.
template <class F> inline void for_each_field(std::uint32_t mask, F&& fn) {
  while (mask) {
    const auto n = static_cast<unsigned>(__builtin_ctz(mask));
    mask &= mask - 1;
    fn(static_cast<field>(n));
  }
}

} // namespace

encoder::encoder(encoder_options options) noexcept : options_(options) {
  options_.max_frame_size = defaults::clamp_max_frame_size(options_.max_frame_size);
}

std::size_t encoder::literal_size(const message& m) const noexcept {
  std::size_t n = hsize + m.payload.size();
  for_each_field(m.present_mask(), [&](field f) {
    const field_info* fi = describe(f);
    n += varint_size(key_of(f, fi->kind));
    if (fi->kind == wire_kind::string) n += literal_string_size(m.str(f));
    else if (fi->kind == wire_kind::bytes) n += varint_size(m.str(f).size()) + m.str(f).size();
    else n += varint_size(m.num(f));
  });
  for (const repeated_entry& e : m.repeated) {
    const field_info* fi = describe(e.id);
    n += varint_size(key_of(e.id, fi ? fi->kind : wire_kind::string)) + literal_string_size(e.key);
    if (e.id == field::header) n += literal_string_size(e.value);
  }
  return n;
}

errc encoder::check_size(const message& m, std::size_t used, std::size_t capacity,
                         bool payload_elsewhere) const noexcept {
  auto fits = [&](std::size_t size) {
    if (used + size > options_.max_frame_size) return errc::frame_too_large;
    if (used + size - (payload_elsewhere ? m.payload.size() : 0) > capacity) return errc::buffer_too_small;
    return errc::ok;
  };
  // Upper bound of literal_size: a key and a length take at most 1 + 10 bytes per field.
  std::size_t bound =
      hsize + m.payload.size() + m.string_bytes() + 11 * static_cast<std::size_t>(__builtin_popcount(m.present_mask()));
  if (!m.repeated.empty()) bound = literal_size(m);
  if (fits(bound) == errc::ok) return errc::ok;
  return fits(literal_size(m));
}

errc encoder::validate(const message& m) const noexcept {
  const type_info* t = describe(m.type);
  if (!t || m.type == msg_type::batch) return errc::unknown_type;
  if ((m.flags & ~flag::known_mask) != 0) return errc::unknown_flags;
  if (static_cast<std::uint8_t>(m.prio) >= priority_count) return errc::bad_priority;
  if (m.repeated.size() > defaults::max_repeated_fields) return errc::too_many_fields;
  bool has_capability = false;
  for (const repeated_entry& e : m.repeated) {
    const field_info* fi = describe(e.id);
    if (!fi || !fi->repeated) return errc::bad_field;
    if (e.id != field::header && !e.value.empty()) return errc::bad_field; // single-string fields
    has_capability |= e.id == field::capability;
  }
  if ((m.present_mask() & t->required) != t->required) return errc::missing_field;
  if (t->needs_destination && !m.has(field::topic) && !m.has(field::target) && !has_capability &&
      (m.flags & flag::broadcast) == 0)
    return errc::missing_field;
  return errc::ok;
}

byte* encoder::write_string(byte* p, std::string_view s, bool poolable) {
  const std::uint64_t len = s.size();
  if (poolable && options_.pool_strings && len >= defaults::pool_min_string && len <= defaults::pool_max_string) {
    if (const std::uint32_t id = pool_.find(s); id != outbound_pool::npos)
      return write_varint(p, (static_cast<std::uint64_t>(id) << 2) | 2);
    if (pool_.can_define(s)) {
      pool_.define(s);
      p = write_varint(p, (len << 2) | 1);
      std::memcpy(p, s.data(), s.size());
      return p + s.size();
    }
  }
  p = write_varint(p, len << 2);
  if (len) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

byte* encoder::write_prefix(message& m, byte* out) {
  // Routing first (its size is only known once pooling decided), header after.
  byte* p = out + hsize;
  for_each_field(m.present_mask(), [&](field f) {
    const field_info* fi = describe(f);
    p = write_varint(p, key_of(f, fi->kind));
    if (fi->kind == wire_kind::string) {
      p = write_string(p, m.str(f), true);
    } else if (fi->kind == wire_kind::bytes) {
      const std::string_view b = m.str(f);
      p = write_varint(p, b.size());
      if (!b.empty()) std::memcpy(p, b.data(), b.size());
      p += b.size();
    } else {
      p = write_varint(p, m.num(f));
    }
  });
  for (const repeated_entry& e : m.repeated) {
    p = write_varint(p, key_of(e.id, describe(e.id)->kind));
    p = write_string(p, e.key, true);
    if (e.id == field::header) p = write_string(p, e.value, false);
  }
  m.sequence = next_seq_++;
  m.flags = m.has(field::deadline) ? (m.flags | flag::has_deadline) : (m.flags & ~flag::has_deadline);
  m.flags = m.has(field::trace) ? (m.flags | flag::traced) : (m.flags & ~flag::traced);
  const auto routing = static_cast<std::uint32_t>(p - (out + hsize));
  frame_header h;
  h.type = static_cast<std::uint8_t>(m.type);
  h.flags = m.flags;
  h.priority = static_cast<std::uint8_t>(m.prio);
  h.payload_size = static_cast<std::uint32_t>(m.payload.size());
  h.total_size = static_cast<std::uint32_t>(hsize) + routing + h.payload_size;
  h.timestamp_ns = m.timestamp_ns;
  h.sequence = m.sequence;
  write_header(out, h);
  return p;
}

encode_result encoder::encode(message& m, byte* out, std::size_t capacity) {
  if (errc e = validate(m); e != errc::ok) return {e, 0};
  if (errc e = check_size(m, 0, capacity, false); e != errc::ok) return {e, 0};
  byte* p = write_prefix(m, out);
  if (!m.payload.empty()) std::memcpy(p, m.payload.data(), m.payload.size());
  const auto total = static_cast<std::uint32_t>(p - out + m.payload.size());
  m.checksum = options_.checksum ? crc32c(out, total) : 0; // (the checksum field is still zero)
  store_le(out + offset::checksum, m.checksum);
  return {errc::ok, total};
}

encode_result encoder::encode_prefix(message& m, const shared_payload& payload, byte* out, std::size_t capacity) {
  m.payload = payload.bytes;
  if (errc e = validate(m); e != errc::ok) return {e, 0};
  if (errc e = check_size(m, 0, capacity, true); e != errc::ok) return {e, 0};
  const byte* end = write_prefix(m, out);
  const auto prefix = static_cast<std::uint32_t>(end - out);
  m.checksum = payload.shift.combine(crc32c(out, prefix), payload.crc);
  store_le(out + offset::checksum, m.checksum);
  return {errc::ok, prefix};
}

// ---- batch_builder ----

errc batch_builder::add(message& m) {
  if (count_ == defaults::max_batch_messages) return errc::batch_too_large;
  if (errc e = enc_->validate(m); e != errc::ok) return e;
  if (errc e = enc_->check_size(m, size_, capacity_, false); e != errc::ok) return e;
  byte* start = out_ + size_;
  byte* p = enc_->write_prefix(m, start);
  if (!m.payload.empty()) std::memcpy(p, m.payload.data(), m.payload.size());
  m.checksum = 0;
  if (count_ == 0) {
    first_seq_ = m.sequence;
    first_timestamp_ = m.timestamp_ns;
  }
  prio_ = std::min(prio_, static_cast<std::uint8_t>(m.prio));
  size_ += static_cast<std::size_t>(p - start) + m.payload.size();
  ++count_;
  return errc::ok;
}

encode_result batch_builder::finish() {
  if (count_ == 0) return {errc::batch_empty, 0};
  frame_header h;
  h.type = static_cast<std::uint8_t>(msg_type::batch);
  h.priority = prio_;
  h.total_size = static_cast<std::uint32_t>(size_);
  h.payload_size = static_cast<std::uint32_t>(size_ - hsize);
  h.timestamp_ns = first_timestamp_;
  h.sequence = first_seq_;
  write_header(out_, h);
  store_le(out_ + offset::checksum, crc32c(out_, size_));
  return {errc::ok, static_cast<std::uint32_t>(size_)};
}

} // namespace flowbus::codec
