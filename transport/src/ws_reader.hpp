// Reading WebSocket messages straight out of a connection's read buffer (private to transport/).
//
// Beast reads one message per asynchronous operation: each costs a completion, a strand post
// and its executor bookkeeping, however many messages the last recv() brought. A client that sends
// every FLOW frame as its own WebSocket message (most clients do) then pays that per message, and
// the node forwards each one before it reads the next — one write to the subscriber per message
// (issue 19: 0.10 M msgs/s). After the handshake the node's session therefore parses the
// client-to-server frames itself (RFC 6455 §5): every complete message in the buffer in one pass,
// unmasked in place, handed over as a view — no copy, no completion per message. Beast still does
// the HTTP upgrade; the server's writes already frame themselves (buffered_stream::write_frames).
//
// `ws_reader` is the parser alone: bytes in, messages, control frames or a typed refusal out. It
// owns no socket and no buffer, so it is tested byte by byte without one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace flowbus::transport::detail {

/// RFC 6455 opcodes.
enum class ws_opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

/// WebSocket close codes the reader asks for (RFC 6455 §7.4.1).
enum class ws_close : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  bad_payload = 1007,
  policy_error = 1008,
  too_big = 1009,
  try_again_later = 1013,
};

/// The header of an unmasked, final WebSocket frame of `payload` bytes (RFC 6455 §5.2; binary
/// unless `op` says otherwise) into `out` (≥ 10 bytes); returns its length (2, 4 or 10).
inline std::size_t frame_header(std::uint64_t payload, unsigned char* out, ws_opcode op = ws_opcode::binary) noexcept {
  out[0] = static_cast<unsigned char>(0x80 | static_cast<unsigned char>(op)); // FIN, the opcode
  if (payload < 126) {
    out[1] = static_cast<unsigned char>(payload);
    return 2;
  }
  if (payload <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<unsigned char>(payload >> 8);
    out[3] = static_cast<unsigned char>(payload);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<unsigned char>(payload >> (56 - 8 * i));
  return 10;
}

/// Whether `p[0, n)` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, ≤ U+10FFFF).
inline bool valid_utf8(const unsigned char* p, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF; // the bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

/// Masks or unmasks (the same XOR, RFC 6455 §5.3) `n` bytes from `src` into `dst` (which may be
/// `src`) with `key`, the 4 bytes as they appear on the wire; 8 bytes at a time.
inline void mask_copy(const unsigned char* src, unsigned char* dst, std::size_t n, const unsigned char key[4]) noexcept {
  unsigned char k[8];
  for (std::size_t i = 0; i < 8; ++i)
    k[i] = key[i % 4];
  std::uint64_t k8;
  std::memcpy(&k8, k, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= k8;
    std::memcpy(dst + i, &w, 8);
  }
  for (; i < n; ++i)
    dst[i] = static_cast<unsigned char>(src[i] ^ k[i % 4]);
}

/// Parses a client's WebSocket frames (masked, as RFC 6455 §5.1 requires of a client) out of a
/// byte buffer. Messages are handed out as views into that buffer, unmasked in place; a message
/// in several fragments is gathered into the reader's own buffer (rare: no client of ours
/// fragments). Not thread-safe: one per connection.
class ws_reader {
public:
  enum class kind : std::uint8_t {
    need_more, ///< no whole frame at the front of the buffer: read more (`need` says how much in all)
    fragment,  ///< a fragment of a message, kept by the reader: skip `used` bytes and call again
    message,   ///< a whole binary message (`data`, `size`)
    text,      ///< a whole text message, valid UTF-8 (FLOW refuses it with its own ERROR)
    ping,      ///< answer with a pong carrying the same `data`
    pong,
    close,     ///< the peer closes: `code` (1005 when it gave none), reply and tear down
    refused,   ///< a protocol violation: close with `code`, `why` says which
  };
  struct result {
    kind what = kind::need_more;
    std::size_t used = 0;  ///< bytes of the buffer this result took (skip them before the next call)
    std::size_t need = 0;  ///< need_more: bytes the front frame needs in all (0: its header is incomplete)
    unsigned char* data = nullptr; ///< message / text / ping: the payload, unmasked, valid until the buffer changes
    std::size_t size = 0;
    std::uint16_t code = 0; ///< close: the peer's code; refused: the code to close with
    const char* why = "";
  };

  explicit ws_reader(std::size_t max_message) noexcept : max_(max_message) {}

  /// Parses the frame at buf[0, n). Whole frames only: nothing is consumed from a partial one, so
  /// the caller may move it and call again with more bytes.
  result next(unsigned char* buf, std::size_t n) {
    result r;
    if (n < 2) return r;
    const unsigned char b0 = buf[0], b1 = buf[1];
    const bool fin = (b0 & 0x80) != 0;
    const auto op = static_cast<ws_opcode>(b0 & 0x0F);
    if (b0 & 0x70) return refuse(r, ws_close::protocol_error, "a reserved bit set (no extension was agreed)");
    if (!(b1 & 0x80)) return refuse(r, ws_close::protocol_error, "an unmasked frame from a client");
    std::uint64_t len = b1 & 0x7F;
    std::size_t at = 2;
    if (len == 126) {
      if (n < 4) return r;
      len = (std::uint64_t{buf[2]} << 8) | buf[3];
      at = 4;
    } else if (len == 127) {
      if (n < 10) return r;
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | buf[2 + i];
      at = 10;
    }
    const bool control = (b0 & 0x08) != 0;
    if (control) {
      if (op != ws_opcode::close && op != ws_opcode::ping && op != ws_opcode::pong)
        return refuse(r, ws_close::protocol_error, "a reserved control opcode");
      if (!fin || len > 125) return refuse(r, ws_close::protocol_error, "a fragmented or long control frame");
    } else {
      if (op != ws_opcode::continuation && op != ws_opcode::text && op != ws_opcode::binary)
        return refuse(r, ws_close::protocol_error, "a reserved data opcode");
      if (op == ws_opcode::continuation && !in_fragments_)
        return refuse(r, ws_close::protocol_error, "a continuation frame with no message to continue");
      if (op != ws_opcode::continuation && in_fragments_)
        return refuse(r, ws_close::protocol_error, "a new message inside a fragmented one");
      if (len + (in_fragments_ ? frag_.size() : 0) > max_)
        return refuse(r, ws_close::too_big, "a message above the node's maximum");
    }
    const std::size_t header = at + 4;
    const std::size_t whole = header + static_cast<std::size_t>(len);
    if (n < whole) {
      r.need = whole;
      return r;
    }
    unsigned char* payload = buf + header;
    mask_copy(payload, payload, static_cast<std::size_t>(len), buf + at);
    r.used = whole;
    if (control) {
      r.data = payload;
      r.size = static_cast<std::size_t>(len);
      if (op == ws_opcode::ping) r.what = kind::ping;
      else if (op == ws_opcode::pong) r.what = kind::pong;
      else close_frame(r, payload, static_cast<std::size_t>(len));
      return r;
    }
    if (!fin || in_fragments_) { // gathered into frag_ until the final fragment
      if (!in_fragments_) {
        in_fragments_ = true;
        frag_text_ = op == ws_opcode::text;
        frag_.clear();
      }
      frag_.insert(frag_.end(), payload, payload + len);
      if (!fin) {
        r.what = kind::fragment;
        return r;
      }
      in_fragments_ = false;
      return deliver(r, frag_.data(), frag_.size(), frag_text_);
    }
    return deliver(r, payload, static_cast<std::size_t>(len), op == ws_opcode::text);
  }

private:
  static result& refuse(result& r, ws_close c, const char* why) {
    r.what = kind::refused;
    r.code = static_cast<std::uint16_t>(c);
    r.why = why;
    return r;
  }
  static result& deliver(result& r, unsigned char* p, std::size_t n, bool text) {
    if (text && !valid_utf8(p, n)) return refuse(r, ws_close::bad_payload, "a text message that is not UTF-8");
    r.what = text ? kind::text : kind::message;
    r.data = p;
    r.size = n;
    return r;
  }
  static void close_frame(result& r, const unsigned char* p, std::size_t n) {
    if (n == 1) {
      refuse(r, ws_close::protocol_error, "a close frame with a one-byte body");
      return;
    }
    if (n >= 2 && !valid_utf8(p + 2, n - 2)) {
      refuse(r, ws_close::bad_payload, "a close reason that is not UTF-8");
      return;
    }
    r.what = kind::close;
    r.code = n >= 2 ? static_cast<std::uint16_t>((p[0] << 8) | p[1]) : 1005;
  }

  std::size_t max_;
  bool in_fragments_ = false, frag_text_ = false;
  std::vector<unsigned char> frag_; ///< a fragmented message so far (empty, no capacity, almost always)
};

/// The bytes of an unmasked server-to-client control frame (close, ping, pong) with `payload`
/// (at most 125 bytes: a control frame's header is always 2).
inline std::vector<unsigned char> control_frame(ws_opcode op, const unsigned char* payload, std::size_t n) {
  std::vector<unsigned char> f(10);
  f.resize(frame_header(n, f.data(), op));
  f.insert(f.end(), payload, payload + n);
  return f;
}
inline std::vector<unsigned char> close_frame_with(std::uint16_t code) {
  const unsigned char body[2] = {static_cast<unsigned char>(code >> 8), static_cast<unsigned char>(code)};
  return control_frame(ws_opcode::close, body, 2);
}

} // namespace flowbus::transport::detail
