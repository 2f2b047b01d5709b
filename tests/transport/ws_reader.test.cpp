// The node's WebSocket frame parser (transport/src/ws_reader.hpp), without a socket: whole
// messages come out of a buffer in order and unmasked whatever the read boundaries; a partial
// frame is never consumed; each violation of RFC 6455 a client can commit gets its close code.
#include "transport/src/ws_reader.hpp"
#include "transport/src/buffered_stream.hpp" // append_masked_frame: what a client writes

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

namespace {

using flowbus::transport::detail::append_masked_frame;
using flowbus::transport::detail::ws_reader;
using kind = ws_reader::kind;
using bytes = std::vector<unsigned char>;

/// A masked client frame with any first byte (FIN, RSV, opcode).
bytes frame(unsigned char b0, const std::string& payload, std::uint32_t key = 0x1234abcd) {
  bytes out;
  append_masked_frame(out, reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), key);
  out[0] = b0;
  return out;
}
bytes binary(const std::string& p, std::uint32_t key = 0x1234abcd) { return frame(0x82, p, key); }

std::string as_string(const ws_reader::result& r) { return std::string(reinterpret_cast<const char*>(r.data), r.size); }

/// Feeds `wire` to a reader in reads of the given sizes, as a session does: parse what is whole,
/// keep the rest at the front, read more. Returns the messages.
std::vector<std::string> feed(const bytes& wire, const std::vector<std::size_t>& reads, std::size_t max = 1 << 20) {
  ws_reader rd(max);
  std::vector<std::string> got;
  bytes buf;
  std::size_t pos = 0, r = 0;
  while (pos < wire.size()) {
    const std::size_t n = std::min(reads[r++ % reads.size()], wire.size() - pos);
    buf.insert(buf.end(), wire.begin() + static_cast<std::ptrdiff_t>(pos), wire.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
    std::size_t at = 0;
    for (;;) {
      const auto res = rd.next(buf.data() + at, buf.size() - at);
      if (res.what == kind::need_more) {
        if (res.need) CHECK(res.need > buf.size() - at); // says truly how much the frame needs
        break;
      }
      REQUIRE(res.what != kind::refused);
      if (res.what == kind::message) got.push_back(as_string(res));
      at += res.used;
    }
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(at));
  }
  CHECK(buf.empty());
  return got;
}

} // namespace

TEST_SUITE("ws_reader") {
  TEST_CASE("every message comes out once, in order, unmasked, whatever the read sizes") {
    std::vector<std::string> sent;
    bytes wire;
    std::mt19937 rng(7);
    for (int i = 0; i < 200; ++i) {
      // all three length forms: 7-bit, 16-bit, 64-bit
      const std::size_t n = i % 50 == 0 ? 70000 + static_cast<std::size_t>(i) : i % 7 == 0 ? 300 : static_cast<std::size_t>(i % 120);
      std::string p(n, '\0');
      for (auto& c : p)
        c = static_cast<char>(rng());
      sent.push_back(p);
      const bytes f = binary(p, static_cast<std::uint32_t>(rng()));
      wire.insert(wire.end(), f.begin(), f.end());
    }
    CHECK(feed(wire, {wire.size()}) == sent); // all at once
    CHECK(feed(wire, {1}) == sent);           // byte by byte
    CHECK(feed(wire, {3, 1, 7, 4096, 2, 65536}) == sent);
  }

  TEST_CASE("a partial frame is not consumed and says what it needs") {
    const bytes f = binary(std::string(300, 'x'));
    ws_reader rd(1 << 16);
    bytes part(f.begin(), f.begin() + 1);
    auto r = rd.next(part.data(), part.size());
    CHECK(r.what == kind::need_more);
    CHECK(r.need == 0); // the header itself is incomplete
    part.assign(f.begin(), f.end() - 1);
    r = rd.next(part.data(), part.size());
    CHECK(r.what == kind::need_more);
    CHECK(r.need == f.size());
    CHECK(r.used == 0);
    bytes whole = f;
    r = rd.next(whole.data(), whole.size());
    REQUIRE(r.what == kind::message);
    CHECK(as_string(r) == std::string(300, 'x'));
    CHECK(r.used == f.size());
  }

  TEST_CASE("control frames: ping with its payload, pong, close with and without a code") {
    ws_reader rd(1024);
    bytes p = frame(0x89, "hello");
    auto r = rd.next(p.data(), p.size());
    CHECK(r.what == kind::ping);
    CHECK(as_string(r) == "hello");
    bytes po = frame(0x8A, "");
    CHECK(rd.next(po.data(), po.size()).what == kind::pong);
    bytes c = frame(0x88, std::string("\x03\xe9", 2) + "bye"); // 1001
    r = rd.next(c.data(), c.size());
    CHECK(r.what == kind::close);
    CHECK(r.code == 1001);
    bytes c0 = frame(0x88, "");
    r = rd.next(c0.data(), c0.size());
    CHECK(r.what == kind::close);
    CHECK(r.code == 1005);
  }

  TEST_CASE("a fragmented message is gathered, with a ping between its fragments") {
    ws_reader rd(1024);
    bytes wire;
    for (const bytes& f : {frame(0x02, "abc"), frame(0x89, "p"), frame(0x00, "def"), frame(0x80, "gh")})
      wire.insert(wire.end(), f.begin(), f.end());
    std::vector<kind> kinds;
    std::string msg;
    std::size_t at = 0;
    while (at < wire.size()) {
      auto r = rd.next(wire.data() + at, wire.size() - at);
      REQUIRE(r.used > 0);
      kinds.push_back(r.what);
      if (r.what == kind::message) msg = as_string(r);
      at += r.used;
    }
    CHECK(kinds == std::vector<kind>{kind::fragment, kind::ping, kind::fragment, kind::message});
    CHECK(msg == "abcdefgh");
  }

  TEST_CASE("text: valid UTF-8 is a text message, anything else is refused with 1007") {
    ws_reader rd(1024);
    bytes t = frame(0x81, "h\xc3\xa9llo");
    CHECK(rd.next(t.data(), t.size()).what == kind::text);
    bytes bad = frame(0x81, "abc\xff");
    const auto r = rd.next(bad.data(), bad.size());
    CHECK(r.what == kind::refused);
    CHECK(r.code == 1007);
  }

  TEST_CASE("each protocol violation is refused with its close code") {
    struct violation {
      bytes wire;
      std::uint16_t code;
    };
    bytes unmasked = binary("abc");
    unmasked[1] &= 0x7F;
    unmasked.erase(unmasked.begin() + 2, unmasked.begin() + 6); // no key either
    const std::vector<violation> cases = {
        {unmasked, 1002},
        {frame(0xC2, "abc"), 1002},                 // RSV1: no extension agreed
        {frame(0x83, "abc"), 1002},                 // reserved data opcode
        {frame(0x8B, ""), 1002},                    // reserved control opcode
        {frame(0x09, "p"), 1002},                   // a fragmented ping
        {frame(0x89, std::string(126, 'p')), 1002}, // a control frame above 125 bytes
        {frame(0x80, "cont"), 1002},                // continuation of nothing
        {binary(std::string(2000, 'x')), 1009},     // above the maximum
        {frame(0x88, "\x03"), 1002},                // a close body of one byte
    };
    for (const auto& v : cases) {
      ws_reader rd(1024);
      bytes w = v.wire;
      const auto r = rd.next(w.data(), w.size());
      INFO("first byte " << int(v.wire[0]));
      CHECK(r.what == kind::refused);
      CHECK(r.code == v.code);
      CHECK(std::string(r.why).size() > 0);
    }
    // the maximum holds across fragments too, and is seen from the header, before the payload
    ws_reader rd(1024);
    bytes a = frame(0x02, std::string(600, 'a'));
    CHECK(rd.next(a.data(), a.size()).what == kind::fragment);
    bytes b = frame(0x80, std::string(600, 'b'));
    const auto r = rd.next(b.data(), 4); // only the header is there yet
    CHECK(r.what == kind::refused);
    CHECK(r.code == 1009);
  }

  TEST_CASE("UTF-8: overlong forms, surrogates and code points above U+10FFFF are refused") {
    using flowbus::transport::detail::valid_utf8;
    auto ok = [](const std::string& s) { return valid_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size()); };
    CHECK(ok(""));
    CHECK(ok("plain"));
    CHECK(ok("\xe2\x82\xac"));     // €
    CHECK(ok("\xf0\x9f\x98\x80")); // 😀
    CHECK_FALSE(ok("\xc0\xaf"));   // overlong '/'
    CHECK_FALSE(ok("\xe0\x80\xaf"));
    CHECK_FALSE(ok("\xed\xa0\x80")); // U+D800
    CHECK_FALSE(ok("\xf4\x90\x80\x80")); // U+110000
    CHECK_FALSE(ok("\xe2\x82"));          // cut short
    CHECK_FALSE(ok("\x80"));
  }
}
