// Human-readable names for errors, types and priorities (logs, ERROR frames, docs).
#include <flowbus/codec/errc.hpp>
#include <flowbus/codec/types.hpp>

namespace flowbus::codec {

const char* to_string(errc e) noexcept {
  switch (e) {
  case errc::ok:
    return "ok";
  case errc::need_more:
    return "need more bytes";
  case errc::bad_magic:
    return "bad magic";
  case errc::unsupported_version:
    return "unsupported version";
  case errc::unknown_type:
    return "unknown message type";
  case errc::unknown_flags:
    return "unknown flag bits";
  case errc::bad_priority:
    return "bad priority";
  case errc::reserved_nonzero:
    return "reserved field not zero";
  case errc::frame_too_small:
    return "frame smaller than its header";
  case errc::frame_too_large:
    return "frame too large";
  case errc::size_mismatch:
    return "sizes inconsistent";
  case errc::checksum_mismatch:
    return "checksum mismatch";
  case errc::truncated:
    return "truncated";
  case errc::varint_overlong:
    return "overlong varint";
  case errc::varint_overflow:
    return "varint overflows 64 bits";
  case errc::bad_field:
    return "bad field key";
  case errc::bad_string_encoding:
    return "bad string encoding";
  case errc::unknown_pool_id:
    return "unknown pooled string id";
  case errc::pool_full:
    return "string pool full";
  case errc::pooled_string_too_long:
    return "pooled string too long";
  case errc::duplicate_field:
    return "duplicate field";
  case errc::too_many_fields:
    return "too many repeated fields";
  case errc::missing_field:
    return "required field missing";
  case errc::flag_mismatch:
    return "flags disagree with fields";
  case errc::batch_empty:
    return "empty batch";
  case errc::batch_too_large:
    return "batch over 32 messages";
  case errc::batch_nested:
    return "batch inside a batch";
  case errc::batch_sequence:
    return "batch sequence numbers not consecutive";
  case errc::batch_inner_checksum:
    return "checksum on a batched message";
  case errc::buffer_too_small:
    return "output buffer too small";
  }
  return "unknown error";
}

const char* to_string(msg_type t) noexcept {
  const type_info* i = describe(t);
  return i ? i->name : "UNKNOWN";
}

const char* to_string(priority p) noexcept {
  static constexpr const char* names[priority_count] = {"CRITICAL", "HIGH", "NORMAL", "LOW", "BACKGROUND"};
  const auto i = static_cast<std::uint8_t>(p);
  return i < priority_count ? names[i] : "INVALID";
}

} // namespace flowbus::codec
