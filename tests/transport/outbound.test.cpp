// outbound_batch: one frame goes out as itself, several as one BATCH; every message takes the
// connection's next sequence number and a checksum over what is sent; size and count bounds hold.
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/transport/outbound.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace flowbus;

namespace {
std::vector<codec::byte> frame(codec::encoder& enc, const std::string& topic, const std::string& payload) {
  codec::message m;
  m.type = codec::msg_type::publish;
  m.set_topic(topic);
  m.payload = codec::bytes_view(payload);
  std::vector<codec::byte> out(enc.literal_size(m));
  const auto r = enc.encode(m, out.data(), out.size());
  REQUIRE(r);
  out.resize(r.size);
  return out;
}
} // namespace

TEST_SUITE("outbound") {
  TEST_CASE("a single frame is re-sequenced and re-checksummed, not wrapped") {
    codec::encoder enc; // its own numbering (0, 1, ...) is replaced by the connection's
    transport::outbound_batch b;
    const auto f = frame(enc, "a.b", "hello");
    REQUIRE(b.fits(f.size()));
    b.add(codec::bytes_view(f.data(), f.size()));
    std::uint64_t seq = 41;
    const auto out = b.finish(seq);
    CHECK(seq == 42);
    CHECK(out.size() == f.size());
    codec::decoder dec;
    codec::message m;
    REQUIRE(dec.decode(out, m));
    CHECK(m.type == codec::msg_type::publish);
    CHECK(m.sequence == 41);
    CHECK(m.topic() == "a.b");
    CHECK(m.payload.as_string() == "hello");
  }

  TEST_CASE("several frames become one BATCH with consecutive inner sequences, decoded in order") {
    codec::encoder enc; // pooled strings: inner frames define and reuse pool entries in order
    transport::outbound_batch b;
    std::vector<std::vector<codec::byte>> frames;
    for (int i = 0; i < 5; ++i)
      frames.push_back(frame(enc, "same.topic", "m" + std::to_string(i)));
    for (const auto& f : frames) {
      REQUIRE(b.fits(f.size()));
      b.add(codec::bytes_view(f.data(), f.size()));
    }
    std::uint64_t seq = 7;
    const auto out = b.finish(seq);
    CHECK(seq == 12);
    codec::decoder dec;
    codec::message m;
    REQUIRE(dec.decode(out, m));
    REQUIRE(m.type == codec::msg_type::batch);
    CHECK(m.sequence == 7);
    codec::batch_reader r(dec, m);
    codec::message inner;
    for (int i = 0; i < 5; ++i) {
      REQUIRE(r.next(inner));
      CHECK(inner.sequence == 7 + static_cast<std::uint64_t>(i));
      CHECK(inner.topic() == "same.topic");
      CHECK(inner.payload.as_string() == "m" + std::to_string(i));
    }
    CHECK(r.done());
  }

  TEST_CASE("bounds: at most max_count frames and max_frame_size bytes per message") {
    codec::encoder enc;
    const auto f = frame(enc, "t", std::string(100, 'x'));
    transport::outbound_batch counted(65536, 4);
    for (int i = 0; i < 4; ++i) {
      REQUIRE(counted.fits(f.size()));
      counted.add(codec::bytes_view(f.data(), f.size()));
    }
    CHECK_FALSE(counted.fits(f.size()));

    // room for the BATCH header and two frames, not three
    const auto limit = static_cast<std::uint32_t>(codec::defaults::header_size + 2 * f.size());
    transport::outbound_batch sized(limit, 32);
    CHECK(sized.fits(f.size()));
    sized.add(codec::bytes_view(f.data(), f.size()));
    CHECK(sized.fits(f.size()));
    sized.add(codec::bytes_view(f.data(), f.size()));
    CHECK_FALSE(sized.fits(f.size()));
    CHECK_FALSE(transport::outbound_batch(static_cast<std::uint32_t>(f.size() - 1), 32).fits(f.size()));
    sized.clear();
    CHECK(sized.empty());
  }
}
