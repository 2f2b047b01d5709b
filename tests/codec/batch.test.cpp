#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>

#include "codec/codec_test_util.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace flowbus::codec;
using test::message_gen;
using test::same_message;

TEST_SUITE("batch") {

  TEST_CASE("batches of 1..32 random messages round-trip, interleaved with single frames") {
    message_gen gen(21);
    encoder enc;
    decoder dec;
    std::vector<byte> buf(defaults::max_frame_size);
    for (int round = 0; round < 300; ++round) {
      const std::size_t want = 1 + gen.pick(defaults::max_batch_messages);
      std::vector<std::vector<byte>> sent; // re-encoded copies to compare (messages view gen storage)
      batch_builder b(enc, buf.data(), buf.size());
      for (std::size_t i = 0; i < want; ++i) {
        message m = gen.next();
        m.payload = bytes_view(m.payload.data(), std::min<std::size_t>(m.payload.size(), 200));
        const errc e = b.add(m);
        if (e == errc::frame_too_large || e == errc::buffer_too_small) break;
        REQUIRE(e == errc::ok);
        // keep a self-contained copy (strings point into gen storage, which next() reuses)
        std::vector<byte> copy(defaults::max_frame_size);
        encoder solo(encoder_options{defaults::max_frame_size, false});
        solo.set_next_sequence(m.sequence);
        message mm = m;
        const encode_result r = solo.encode(mm, copy.data(), copy.size());
        REQUIRE(r);
        copy.resize(r.size);
        sent.push_back(std::move(copy));
      }
      const encode_result r = b.finish();
      REQUIRE(r);
      message outer;
      const decode_status s = dec.decode(bytes_view(buf.data(), r.size), outer);
      REQUIRE_MESSAGE(s, to_string(s.code), " at ", s.offset);
      CHECK(outer.type == msg_type::batch);
      batch_reader reader(dec, outer);
      std::size_t n = 0;
      while (!reader.done()) {
        message inner;
        REQUIRE(reader.next(inner));
        REQUIRE(n < sent.size());
        decoder solo_dec;
        message expected;
        REQUIRE(solo_dec.decode(bytes_view(sent[n].data(), sent[n].size()), expected));
        expected.checksum = 0;
        inner.checksum = 0;
        CHECK(same_message(expected, inner));
        if (n == 0) {
          CHECK(outer.sequence == inner.sequence);
          CHECK(outer.timestamp_ns == inner.timestamp_ns);
        }
        ++n;
      }
      CHECK(n == sent.size());
      CHECK(n == b.count());
      // a single frame after the batch still decodes: pools stayed in step
      message single = gen.next();
      const encode_result rs = enc.encode(single, buf.data(), buf.size());
      REQUIRE(rs);
      message d;
      REQUIRE(dec.decode(bytes_view(buf.data(), rs.size), d));
      CHECK(same_message(single, d));
    }
  }

  TEST_CASE("batch limits: 32 messages, non-empty, frame size") {
    encoder enc;
    std::vector<byte> buf(defaults::max_frame_size);
    batch_builder b(enc, buf.data(), buf.size());
    CHECK(b.finish().code == errc::batch_empty);
    message m;
    m.set_topic("agent.worker.1.tasks");
    for (std::size_t i = 0; i < defaults::max_batch_messages; ++i)
      REQUIRE(b.add(m) == errc::ok);
    const std::uint64_t seq_before = enc.next_sequence();
    CHECK(b.add(m) == errc::batch_too_large);
    CHECK(enc.next_sequence() == seq_before);
    const encode_result r = b.finish();
    REQUIRE(r);
    decoder dec;
    message outer;
    REQUIRE(dec.decode(bytes_view(buf.data(), r.size), outer));
    CHECK(outer.sequence == 0);

    std::vector<byte> big(40000);
    message heavy;
    heavy.set_topic("t.big");
    heavy.payload = bytes_view(big.data(), big.size());
    batch_builder b2(enc, buf.data(), buf.size());
    REQUIRE(b2.add(heavy) == errc::ok);
    CHECK(b2.add(heavy) == errc::frame_too_large);
    CHECK(b2.count() == 1);
    batch_builder b3(enc, buf.data(), 1000);
    CHECK(b3.add(heavy) == errc::buffer_too_small);
  }

  TEST_CASE("the batch carries the most urgent inner priority") {
    encoder enc;
    std::vector<byte> buf(4096);
    batch_builder b(enc, buf.data(), buf.size());
    message m;
    m.set_topic("t");
    m.prio = priority::low;
    REQUIRE(b.add(m) == errc::ok);
    m.prio = priority::high;
    REQUIRE(b.add(m) == errc::ok);
    m.prio = priority::background;
    REQUIRE(b.add(m) == errc::ok);
    const encode_result r = b.finish();
    REQUIRE(r);
    CHECK(read_header(buf.data()).priority == static_cast<std::uint8_t>(priority::high));
  }
}

TEST_SUITE("batch") {
  TEST_CASE("reading past the last inner message is refused, not undefined") {
    encoder enc;
    std::vector<byte> buf(1024);
    batch_builder b(enc, buf.data(), buf.size());
    message m;
    m.set_topic("t.one");
    REQUIRE(b.add(m) == errc::ok);
    const encode_result r = b.finish();
    REQUIRE(r);
    decoder dec;
    message outer, inner;
    REQUIRE(dec.decode(bytes_view(buf.data(), r.size), outer));
    batch_reader br(dec, outer);
    REQUIRE(br.next(inner));
    CHECK(br.done());
    CHECK(br.next(inner).code == errc::truncated);
  }
}
