// Every defect the decoder knows, each with its typed error and byte offset; then the decoder
// under abuse: every prefix of valid frames (streaming), every byte mutated (never out of bounds).
#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/codec/varint.hpp>

#include "codec/codec_test_util.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

using namespace flowbus::codec;
using test::from_hex;

namespace {

using bytes = std::vector<byte>;

struct raw {
  std::uint8_t type = static_cast<std::uint8_t>(msg_type::publish);
  std::uint8_t flags = 0;
  std::uint8_t prio = 2;
  std::uint64_t seq = 0;
  bytes routing;
  bytes payload;
};

// A frame with exactly these bytes and a correct checksum (so defects behind the checksum are reached).
bytes build(const raw& r, std::uint32_t checksum_override = 0) {
  bytes f(40 + r.routing.size() + r.payload.size());
  frame_header h;
  h.type = r.type;
  h.flags = r.flags;
  h.priority = r.prio;
  h.total_size = static_cast<std::uint32_t>(f.size());
  h.payload_size = static_cast<std::uint32_t>(r.payload.size());
  h.sequence = r.seq;
  write_header(f.data(), h);
  std::copy(r.routing.begin(), r.routing.end(), f.begin() + 40);
  std::copy(r.payload.begin(), r.payload.end(), f.begin() + 40 + static_cast<long>(r.routing.size()));
  store_le(f.data() + offset::checksum, checksum_override ? checksum_override : crc32c(f.data(), f.size()));
  return f;
}
bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}
bytes topic(const std::string& t) { // field 1, string, literal
  bytes b = {0x05};
  byte len[10];
  for (const byte* p = len; p != write_varint(len, t.size() << 2); ++p)
    b.push_back(*p);
  for (char c : t)
    b.push_back(static_cast<byte>(c));
  return b;
}
bytes inner(std::uint64_t seq, std::uint8_t type = static_cast<std::uint8_t>(msg_type::heartbeat)) {
  raw r;
  r.type = type;
  r.seq = seq;
  bytes f = build(r);
  store_le<std::uint32_t>(f.data() + offset::checksum, 0); // batched messages carry no checksum
  return f;
}
raw batch_of(bytes payload, std::uint64_t seq = 0) {
  raw r;
  r.type = static_cast<std::uint8_t>(msg_type::batch);
  r.seq = seq;
  r.payload = std::move(payload);
  return r;
}
bytes repeat(const bytes& b, std::size_t n) {
  bytes out;
  for (std::size_t i = 0; i < n; ++i)
    out.insert(out.end(), b.begin(), b.end());
  return out;
}

struct row {
  const char* name;
  std::function<bytes()> make;
  errc expected;
  long offset; ///< -1: not checked
};

} // namespace

TEST_SUITE("malformed") {

  TEST_CASE("each malformed input yields its typed error at its byte offset") {
    const raw ok_publish{static_cast<std::uint8_t>(msg_type::publish), 0, 2, 0, topic("a.b"), {1, 2, 3}};
    const std::vector<row> rows = {
        {"bad magic",
         [&] {
           auto f = build(ok_publish);
           f[1] = 'X';
           return f;
         },
         errc::bad_magic, 1},
        {"version 2",
         [&] {
           auto f = build(ok_publish);
           f[4] = 2;
           return f;
         },
         errc::unsupported_version, 4},
        {"unknown type",
         [&] {
           auto f = build(ok_publish);
           f[5] = 0x42;
           return f;
         },
         errc::unknown_type, 5},
        {"unknown flag",
         [&] {
           auto f = build(ok_publish);
           f[6] = 0x20;
           return f;
         },
         errc::unknown_flags, 6},
        {"priority 5",
         [&] {
           auto f = build(ok_publish);
           f[7] = 5;
           return f;
         },
         errc::bad_priority, 7},
        {"reserved",
         [&] {
           auto f = build(ok_publish);
           f[37] = 1;
           return f;
         },
         errc::reserved_nonzero, 36},
        {"total < 40",
         [&] {
           auto f = build(ok_publish);
           store_le<std::uint32_t>(&f[8], 12);
           return f;
         },
         errc::frame_too_small, 8},
        {"total > max",
         [&] {
           auto f = build(ok_publish);
           store_le<std::uint32_t>(&f[8], 70000);
           return f;
         },
         errc::frame_too_large, 8},
        {"payload > total-40",
         [&] {
           auto f = build(ok_publish);
           store_le<std::uint32_t>(&f[12], 9999);
           return f;
         },
         errc::size_mismatch, 12},
        {"bytes after the frame",
         [&] {
           auto f = build(ok_publish);
           f.push_back(0);
           return f;
         },
         errc::size_mismatch, 48},
        {"frame cut short",
         [&] {
           auto f = build(ok_publish);
           f.pop_back();
           return f;
         },
         errc::truncated, 47},
        {"only a header prefix",
         [&] {
           auto f = build(ok_publish);
           f.resize(20);
           return f;
         },
         errc::truncated, 20},
        {"checksum",
         [&] {
           auto f = build(ok_publish);
           f.back() ^= 1;
           return f;
         },
         errc::checksum_mismatch, 32},
        {"checksum field itself",
         [&] {
           auto f = build(ok_publish);
           f[33] ^= 0x10;
           return f;
         },
         errc::checksum_mismatch, 32},
        {"field key truncated",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x80}}), {}});
         },
         errc::truncated, 43},
        {"field key overlong",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x85, 0x00}}), {}});
         },
         errc::varint_overlong, 43},
        {"varint value overflow",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x08}, repeat({0xFF}, 9), {0x02}}), {}});
         },
         errc::varint_overflow, 44},
        {"varint value overlong",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x08, 0x81, 0x00}}), {}});
         },
         errc::varint_overlong, 44},
        {"field number 0",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x01, 0x00}}), {}});
         },
         errc::bad_field, 43},
        {"topic sent as varint",
         [] {
           return build({0x14, 0, 2, 0, {0x04, 0x07}, {}});
         },
         errc::bad_field, 40},
        {"string runs past the section",
         [] {
           return build({0x14, 0, 2, 0, {0x05, 0x28, 'a', 'b'}, {9, 9, 9, 9, 9, 9, 9, 9, 9, 9}});
         },
         errc::truncated, 41},
        {"string mode 3",
         [] {
           return build({0x14, 0, 2, 0, {0x05, 0x07}, {}});
         },
         errc::bad_string_encoding, 41},
        {"reference to an undefined id",
         [] {
           return build({0x14, 0, 2, 0, {0x05, 0x0A}, {}});
         },
         errc::unknown_pool_id, 41},
        {"pool definition over 255 bytes",
         [] {
           bytes r = {0x05, 0x81, 0x08}; // define, length 256
           r.resize(r.size() + 256, 'x');
           return build({0x14, 0, 2, 0, r, {}});
         },
         errc::pooled_string_too_long, 41},
        {"pool over 1024 entries",
         [] {
           bytes r; // unknown string field 99 (key 0x8D 0x03), each defining a 5-byte string
           for (int i = 0; i < 1025; ++i) {
             const std::string v = std::to_string(10000 + i);
             r = cat({r, {0x8D, 0x03, (5 << 2) | 1}, bytes(v.begin(), v.end())});
           }
           return build({0x14, flag::broadcast, 2, 0, r, {}});
         },
         errc::pool_full, 40 + 1024 * 8 + 2},
        {"duplicate topic",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), topic("b")}), {}});
         },
         errc::duplicate_field, 43},
        {"33 repeated fields",
         [] {
           bytes cap = {0x39, 0x04, 'c'}; // capability literal "c"
           return build({0x14, 0, 2, 0, repeat(cap, 33), {}});
         },
         errc::too_many_fields, 40 + 32 * 3},
        {"SUBSCRIBE without topic",
         [] {
           return build({0x12, 0, 2, 0, {}, {}});
         },
         errc::missing_field, 40},
        {"PUBLISH without destination",
         [] {
           return build({0x14, 0, 2, 0, {0x08, 0x05}, {7}});
         },
         errc::missing_field, 42},
        {"NACK without error_code",
         [] {
           return build({0x18, 0, 2, 0, {0x14, 0x01}, {}});
         },
         errc::missing_field, 42},
        {"HAS_DEADLINE without deadline",
         [] {
           return build({0x14, flag::has_deadline, 2, 0, topic("a"), {}});
         },
         errc::flag_mismatch, 6},
        {"deadline without HAS_DEADLINE",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x10, 0x01}}), {}});
         },
         errc::flag_mismatch, 6},
        {"TRACED without trace",
         [] {
           return build({0x14, flag::traced, 2, 0, topic("a"), {}});
         },
         errc::flag_mismatch, 6},
        {"trace without TRACED",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x5E, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0}}), {}});
         },
         errc::flag_mismatch, 6},
        {"trace sent as a string",
         [] {
           return build({0x14, flag::traced, 2, 0, cat({topic("a"), {0x5D, 0x04, 'x'}}), {}});
         },
         errc::bad_field, 43},
        {"bytes field past the end",
         [] {
           return build({0x14, 0, 2, 0, cat({topic("a"), {0x8E, 0x01, 0x05, 0x00}}), {}});
         },
         errc::truncated, 45},
        {"empty batch", [] { return build(batch_of({})); }, errc::batch_empty, 40},
        {"33 messages in a batch",
         [] {
           bytes p;
           for (std::uint64_t i = 0; i < 33; ++i)
             p = cat({p, inner(i)});
           return build(batch_of(p));
         },
         errc::batch_too_large, 40 + 32 * 40},
        {"batch in a batch", [] { return build(batch_of(inner(0, 0x05))); }, errc::batch_nested, 45},
        {"checksum on a batched message",
         [] {
           bytes in = inner(0);
           in[32] = 1;
           return build(batch_of(in));
         },
         errc::batch_inner_checksum, 72},
        {"batch sequence gap",
         [] {
           return build(batch_of(cat({inner(7), inner(9)}), 7));
         },
         errc::batch_sequence, 40 + 40 + 24},
        {"batch sequence not the first inner's", [] { return build(batch_of(inner(3), 2)); }, errc::batch_sequence, 64},
        {"inner frame longer than the batch",
         [] {
           bytes in = inner(0);
           store_le<std::uint32_t>(&in[8], 41);
           return build(batch_of(in));
         },
         errc::size_mismatch, 48},
        {"inner garbage", [] { return build(batch_of(bytes(40, 0xAB))); }, errc::bad_magic, 40},
        {"half an inner header",
         [] {
           return build(batch_of(cat({inner(0), bytes(20, 0)})));
         },
         errc::size_mismatch, 80},
    };
    for (const row& r : rows) {
      const std::string name = r.name;
      CAPTURE(name);
      decoder dec;
      const bytes f = r.make();
      message m;
      const decode_status s = dec.decode(bytes_view(f.data(), f.size()), m);
      CHECK_MESSAGE(s.code == r.expected, "got ", to_string(s.code), " at ", s.offset);
      if (r.offset >= 0) CHECK(s.offset == static_cast<std::uint32_t>(r.offset));
      CHECK(dec.pool().size() == 0); // a refused frame defines nothing
    }
  }

  TEST_CASE("unknown fields of every wire kind are skipped, and their pool definitions kept") {
    // field 40: varint, 41: string (define "zz"), 42: bytes, 43: pair; then topic referencing id 0
    const bytes routing = {0xA0, 0x01, 0x2A,             // 40 varint 42
                           0xA5, 0x01, 0x09, 'z',  'z',  // 41 string define "zz"
                           0xAA, 0x01, 0x02, 0xEE, 0xFF, // 42 bytes [ee ff]
                           0xAF, 0x01, 0x04, 'k',  0x00, // 43 pair ("k", "")
                           0x05, 0x02};                  // topic = pool ref 0
    const bytes f = build({0x14, 0, 2, 0, routing, {}});
    decoder dec;
    message m;
    const decode_status s = dec.decode(bytes_view(f.data(), f.size()), m);
    REQUIRE_MESSAGE(s, to_string(s.code));
    CHECK(m.topic() == "zz");
    CHECK(dec.pool().size() == 1);
  }

  TEST_CASE("a refused frame rolls back the definitions it made; the next good frame decodes") {
    decoder dec;
    // defines "agent.x" then fails on a duplicate topic
    bytes r = {0x05, static_cast<byte>((7 << 2) | 1), 'a', 'g', 'e', 'n', 't', '.', 'x'};
    r = cat({r, topic("again")});
    bytes bad = build({0x14, 0, 2, 0, r, {}});
    message m;
    CHECK(dec.decode(bytes_view(bad.data(), bad.size()), m).code == errc::duplicate_field);
    CHECK(dec.pool().size() == 0);
    bytes good = build({0x14, 0, 2, 0, {0x05, static_cast<byte>((7 << 2) | 1), 'a', 'g', 'e', 'n', 't', '.', 'y'}, {}});
    REQUIRE(dec.decode(bytes_view(good.data(), good.size()), m));
    CHECK(m.topic() == "agent.y");
    bytes ref = build({0x14, 0, 2, 1, {0x05, 0x02}, {}});
    REQUIRE(dec.decode(bytes_view(ref.data(), ref.size()), m));
    CHECK(m.topic() == "agent.y");
  }

  TEST_CASE("a frame above a configured maximum is refused from its header alone") {
    decoder dec(decoder_options{1024, true});
    bytes f = build({0x14, 0, 2, 0, topic("a"), bytes(2000, 1)});
    const probe_result p = dec.probe(bytes_view(f.data(), 12));
    CHECK(p.code == errc::frame_too_large);
    CHECK(p.offset == 8);
  }

  TEST_CASE("probe: every prefix of a stream of frames reports what it still needs") {
    test::message_gen gen(99);
    encoder enc;
    decoder dec;
    std::vector<byte> stream;
    std::vector<std::size_t> sizes;
    for (int i = 0; i < 40; ++i) {
      message m = gen.next();
      std::vector<byte> buf(defaults::max_frame_size);
      const encode_result r = enc.encode(m, buf.data(), buf.size());
      REQUIRE(r);
      stream.insert(stream.end(), buf.begin(), buf.begin() + r.size);
      sizes.push_back(r.size);
    }
    std::size_t start = 0, decoded = 0;
    for (std::size_t size : sizes) {
      for (std::size_t k = 0; k < size; ++k) { // the frame split after k bytes
        const probe_result p = dec.probe(bytes_view(stream.data() + start, k));
        REQUIRE(p.code == errc::need_more);
        if (k >= 12) {
          REQUIRE(p.frame_size == size);
          REQUIRE(p.needed == size - k);
        } else {
          REQUIRE(p.needed == 40 - k);
        }
      }
      const probe_result p = dec.probe(bytes_view(stream.data() + start, stream.size() - start));
      REQUIRE(p.code == errc::ok);
      REQUIRE(p.frame_size == size);
      message m;
      REQUIRE(dec.decode(bytes_view(stream.data() + start, size), m));
      start += size;
      ++decoded;
    }
    CHECK(decoded == sizes.size());
  }

  TEST_CASE("garbage is refused within the first bytes") {
    decoder dec;
    const bytes http = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'};
    const probe_result p = dec.probe(bytes_view(http.data(), http.size()));
    CHECK(p.code == errc::bad_magic);
    CHECK(p.offset == 0);
    const bytes wrong_version = {'F', 'L', 'O', 'W', 9};
    CHECK(dec.probe(bytes_view(wrong_version.data(), wrong_version.size())).code == errc::unsupported_version);
  }

  TEST_CASE("every single-byte mutation of valid frames is refused or decodes; nothing reads out of bounds") {
    // With checksums off the mutated bytes reach the routing parser; under ASan this is the check
    // that no input makes the decoder read outside the frame.
    test::message_gen gen(1234);
    encoder enc;
    std::vector<byte> buf(defaults::max_frame_size);
    std::size_t refused = 0, accepted = 0;
    for (int i = 0; i < 40; ++i) {
      message m = gen.next();
      m.payload = bytes_view(m.payload.data(), std::min<std::size_t>(m.payload.size(), 16));
      const encode_result r = enc.encode(m, buf.data(), buf.size());
      REQUIRE(r);
      for (std::size_t pos = 0; pos < r.size; ++pos)
        for (int delta : {1, 0x80, 0xFF}) {
          std::vector<byte> f(buf.begin(), buf.begin() + r.size);
          f[pos] = static_cast<byte>(f[pos] + delta);
          for (bool verify : {true, false}) {
            decoder dec(decoder_options{defaults::max_frame_size, verify});
            message d;
            const decode_status s = dec.decode(bytes_view(f.data(), f.size()), d);
            if (s) {
              ++accepted;
              for (const auto& e : d.repeated)
                (void)e; // walking repeated fields must be safe too
            } else {
              ++refused;
              CHECK(s.offset <= f.size());
            }
            if (verify) CHECK_FALSE(s); // CRC32C catches every single-byte error
          }
        }
    }
    CHECK(refused > accepted);
  }
}
