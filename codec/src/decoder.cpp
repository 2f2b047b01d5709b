#include <flowbus/codec/decoder.hpp>

#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/varint.hpp>

#include <algorithm>

namespace flowbus::codec {
namespace {

constexpr std::uint32_t hsize = static_cast<std::uint32_t>(defaults::header_size);

enum : std::uint64_t { str_literal = 0, str_define = 1, str_reference = 2 };

// Reads one string in pool encoding. With `pool` non-null, definitions are added to it; with
// `pool` null (re-walking an already decoded section) a definition is just read as its literal.
errc read_string(const byte*& p, const byte* end, inbound_pool* pool, const inbound_pool* lookup_pool,
                 std::string_view& out) noexcept {
  std::uint64_t h;
  const byte* q = p;
  if (errc e = read_varint(q, end, h); e != errc::ok) return e;
  const std::uint64_t mode = h & 3, value = h >> 2;
  if (mode == str_reference) {
    if (errc e = lookup_pool->lookup(value, out); e != errc::ok) return e;
    p = q;
    return errc::ok;
  }
  if (mode != str_literal && mode != str_define) return errc::bad_string_encoding;
  if (value > static_cast<std::uint64_t>(end - q)) return errc::truncated;
  out = std::string_view(reinterpret_cast<const char*>(q), static_cast<std::size_t>(value));
  if (mode == str_define && pool) {
    if (errc e = pool->define(out); e != errc::ok) return e;
  }
  p = q + value;
  return errc::ok;
}

} // namespace

decoder::decoder(decoder_options options) noexcept : options_(options) {
  options_.max_frame_size = defaults::clamp_max_frame_size(options_.max_frame_size);
}

probe_result decoder::probe(bytes_view in) const noexcept {
  probe_result r;
  const std::size_t n = in.size();
  if (decode_status s = check_header(in.data(), std::min(n, defaults::header_size), options_.max_frame_size); !s) {
    r.code = s.code;
    r.offset = s.offset;
    return r;
  }
  if (n < offset::total_size + 4) {
    r.needed = static_cast<std::uint32_t>(defaults::header_size - n);
    return r;
  }
  r.frame_size = load_le<std::uint32_t>(in.data() + offset::total_size);
  if (n < r.frame_size) {
    r.needed = static_cast<std::uint32_t>(r.frame_size - n);
    return r;
  }
  r.code = errc::ok;
  return r;
}

decode_status decoder::decode(bytes_view frame, message& out) {
  const byte* f = frame.data();
  const std::size_t n = frame.size();
  if (decode_status s = check_header(f, std::min(n, defaults::header_size), options_.max_frame_size); !s) return s;
  if (n < defaults::header_size) return {errc::truncated, static_cast<std::uint32_t>(n)};
  const frame_header h = read_header(f);
  if (n < h.total_size) return {errc::truncated, static_cast<std::uint32_t>(n)};
  if (n > h.total_size) return {errc::size_mismatch, h.total_size};
  if (options_.verify_checksum) {
    if (crc32c_with_hole(f, h.total_size, offset::checksum) != h.checksum)
      return {errc::checksum_mismatch, static_cast<std::uint32_t>(offset::checksum)};
  }
  const inbound_pool::mark mark = pool_.save();
  decode_status s = decode_body(f, h, 0, out);
  if (s && out.type == msg_type::batch) s = check_batch_layout(out, h.total_size - h.payload_size);
  if (!s) pool_.rollback(mark);
  return s;
}

decode_status decoder::decode_body(const byte* frame, const frame_header& h, std::uint32_t base, message& out) {
  out.type = static_cast<msg_type>(h.type);
  out.flags = h.flags;
  out.prio = static_cast<priority>(h.priority);
  out.timestamp_ns = h.timestamp_ns;
  out.sequence = h.sequence;
  out.checksum = h.checksum;
  out.frame_size = h.total_size;
  const byte* routing = frame + hsize;
  const byte* payload = frame + (h.total_size - h.payload_size);
  out.payload = bytes_view(payload, h.payload_size);

  bool has_capability = false;
  if (decode_status s = parse_routing(routing, payload, base + hsize, out, has_capability); !s) return s;

  const std::uint32_t at_end = base + (h.total_size - h.payload_size); // where the section ended
  if (((h.flags & flag::has_deadline) != 0) != out.has(field::deadline) ||
      ((h.flags & flag::traced) != 0) != out.has(field::trace))
    return {errc::flag_mismatch, base + static_cast<std::uint32_t>(offset::flags)};
  const type_info* t = describe(out.type);
  if ((out.present_mask() & t->required) != t->required) return {errc::missing_field, at_end};
  if (t->needs_destination && !out.has(field::topic) && !out.has(field::target) && !has_capability &&
      (h.flags & flag::broadcast) == 0)
    return {errc::missing_field, at_end};
  return {};
}

decode_status decoder::parse_routing(const byte* begin, const byte* end, std::uint32_t base, message& out,
                                     bool& has_capability) {
  out.clear_fields();
  std::size_t repeated = 0;
  const byte* p = begin;
  auto fail = [&](errc e, const byte* at) { return decode_status{e, base + static_cast<std::uint32_t>(at - begin)}; };
  while (p < end) {
    const byte* at = p;
    std::uint64_t key;
    if (errc e = read_varint(p, end, key); e != errc::ok) return fail(e, at);
    const std::uint64_t number = key >> 2;
    const auto kind = static_cast<wire_kind>(key & 3);
    if (number == 0) return fail(errc::bad_field, at);
    const field_info* fi = describe(number);
    if (fi && fi->kind != kind) return fail(errc::bad_field, at);
    const auto id = static_cast<field>(number);
    if (fi && fi->repeated && ++repeated > defaults::max_repeated_fields) return fail(errc::too_many_fields, at);
    if (fi && !fi->repeated && out.has(id)) return fail(errc::duplicate_field, at);
    const byte* value_at = p;
    switch (kind) {
    case wire_kind::varint: {
      std::uint64_t v;
      if (errc e = read_varint(p, end, v); e != errc::ok) return fail(e, value_at);
      if (fi) out.set(id, v);
      break;
    }
    case wire_kind::string: {
      std::string_view s;
      if (errc e = read_string(p, end, &pool_, &pool_, s); e != errc::ok) return fail(e, value_at);
      if (fi && !fi->repeated) out.set(id, s);
      if (fi && id == field::capability) has_capability = true;
      break;
    }
    case wire_kind::bytes: {
      std::uint64_t len;
      if (errc e = read_varint(p, end, len); e != errc::ok) return fail(e, value_at);
      if (len > static_cast<std::uint64_t>(end - p)) return fail(errc::truncated, value_at);
      if (fi && !fi->repeated) // (a known field's kind was checked above)
        out.set(id, std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len)));
      p += len;
      break;
    }
    case wire_kind::pair: {
      std::string_view k, v;
      if (errc e = read_string(p, end, &pool_, &pool_, k); e != errc::ok) return fail(e, value_at);
      value_at = p;
      if (errc e = read_string(p, end, &pool_, &pool_, v); e != errc::ok) return fail(e, value_at);
      break;
    }
    }
  }
  if (repeated)
    out.repeated =
        repeated_fields::from_wire(bytes_view(begin, static_cast<std::size_t>(end - begin)), &pool_, repeated);
  return {};
}

decode_status decoder::check_batch_layout(const message& batch, std::uint32_t payload_offset) const noexcept {
  const byte* p = batch.payload.begin();
  const byte* end = batch.payload.end();
  std::uint64_t expected_seq = batch.sequence;
  std::size_t count = 0;
  auto at = [&](std::size_t field_offset) {
    return payload_offset + static_cast<std::uint32_t>(p - batch.payload.begin() + field_offset);
  };
  while (p < end) {
    if (count == defaults::max_batch_messages) return {errc::batch_too_large, at(0)};
    const auto left = static_cast<std::size_t>(end - p);
    if (left < defaults::header_size) return {errc::size_mismatch, at(0)};
    if (decode_status s = check_header(p, defaults::header_size, options_.max_frame_size); !s)
      return {s.code, at(s.offset)};
    const frame_header h = read_header(p);
    if (h.total_size > left) return {errc::size_mismatch, at(offset::total_size)};
    if (h.type == static_cast<std::uint8_t>(msg_type::batch)) return {errc::batch_nested, at(offset::type)};
    if (h.checksum != 0) return {errc::batch_inner_checksum, at(offset::checksum)};
    if (h.sequence != expected_seq++) return {errc::batch_sequence, at(offset::sequence)};
    p += h.total_size;
    ++count;
  }
  if (count == 0) return {errc::batch_empty, payload_offset};
  return {};
}

// ---- batch_reader ----

batch_reader::batch_reader(decoder& dec, const message& batch) noexcept
    : dec_(&dec), p_(batch.payload.begin()), end_(batch.payload.end()),
      base_(batch.frame_size - static_cast<std::uint32_t>(batch.payload.size())) {}

decode_status batch_reader::next(message& out) {
  if (done()) return {errc::truncated, base_}; // misuse: nothing left to read
  const frame_header h = read_header(p_);      // layout validated by decoder::decode
  const inbound_pool::mark mark = dec_->pool_.save();
  decode_status s = dec_->decode_body(p_, h, base_, out);
  if (!s) {
    dec_->pool_.rollback(mark);
    p_ = end_;
    return s;
  }
  p_ += h.total_size;
  base_ += h.total_size;
  return s;
}

// ---- lazy walk of decoded repeated fields ----

void repeated_fields::iterator::advance_wire() noexcept {
  // The section was validated when it was decoded: reads cannot fail here.
  while (p_ < end_) {
    std::uint64_t key = 0;
    read_varint(p_, end_, key);
    const std::uint64_t number = key >> 2;
    const auto kind = static_cast<wire_kind>(key & 3);
    const field_info* fi = describe(number);
    std::string_view a, b;
    switch (kind) {
    case wire_kind::varint: {
      std::uint64_t v;
      read_varint(p_, end_, v);
      break;
    }
    case wire_kind::string:
      read_string(p_, end_, nullptr, pool_, a);
      break;
    case wire_kind::bytes: {
      std::uint64_t len = 0;
      read_varint(p_, end_, len);
      p_ += len;
      break;
    }
    case wire_kind::pair:
      read_string(p_, end_, nullptr, pool_, a);
      read_string(p_, end_, nullptr, pool_, b);
      break;
    }
    if (fi && fi->repeated) {
      cur_ = repeated_entry{static_cast<field>(number), a, b};
      return;
    }
  }
}

} // namespace flowbus::codec
