// Property tests: random valid messages survive encode -> decode unchanged, across many frames on
// one connection (so the string pools on both sides stay in step), through every encode path.
#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/codec/trace.hpp>

#include "codec/codec_test_util.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace flowbus::codec;
using test::message_gen;
using test::same_message;

TEST_SUITE("roundtrip") {

  TEST_CASE("random messages round-trip on one long-lived connection") {
    for (bool pooling : {true, false}) {
      CAPTURE(pooling);
      message_gen gen(pooling ? 1 : 2);
      encoder enc(encoder_options{defaults::max_frame_size, pooling});
      decoder dec;
      std::vector<byte> buf(defaults::max_frame_size);
      std::size_t references = 0;
      for (int i = 0; i < 20000; ++i) {
        message m = gen.next();
        const std::size_t bound = enc.literal_size(m);
        const encode_result r = enc.encode(m, buf.data(), buf.size());
        REQUIRE(r);
        CHECK(r.size <= bound);
        references += bound - r.size > 0;
        CHECK(m.sequence == static_cast<std::uint64_t>(i));
        message d;
        const decode_status s = dec.decode(bytes_view(buf.data(), r.size), d);
        REQUIRE_MESSAGE(s, to_string(s.code), " at ", s.offset);
        REQUIRE(same_message(m, d));
        CHECK(d.payload.data() == buf.data() + r.size - m.payload.size()); // zero-copy view
        CHECK(d.checksum == m.checksum);
        CHECK(d.frame_size == r.size);
      }
      CHECK(dec.pool().size() == enc.pool().size());
      if (pooling) {
        CHECK(references > 1000); // the pool actually shrank frames
        CHECK(enc.pool().size() > 0);
      } else {
        CHECK(enc.pool().size() == 0);
      }
    }
  }

  TEST_CASE("scatter-gather prefix + shared payload equals the one-piece frame") {
    message_gen gen(5);
    encoder whole, split;
    decoder dec;
    std::vector<byte> a(defaults::max_frame_size), b(defaults::max_frame_size);
    for (int i = 0; i < 2000; ++i) {
      message m = gen.next();
      message m2 = m;
      const encode_result ra = whole.encode(m, a.data(), a.size());
      REQUIRE(ra);
      const shared_payload payload(m2.payload);
      const encode_result rb = split.encode_prefix(m2, payload, b.data(), b.size());
      REQUIRE(rb);
      REQUIRE(rb.size + m2.payload.size() == ra.size);
      std::memcpy(b.data() + rb.size, m2.payload.data(), m2.payload.size()); // what writev would send
      REQUIRE(std::memcmp(a.data(), b.data(), ra.size) == 0);
      message d;
      REQUIRE(dec.decode(bytes_view(b.data(), ra.size), d));
    }
  }

  TEST_CASE("a failed encode changes neither the sequence nor the pool") {
    encoder enc;
    message m;
    m.set_topic("agent.worker.7.status");
    std::vector<byte> small(30);
    CHECK(enc.encode(m, small.data(), small.size()).code == errc::buffer_too_small);
    CHECK(enc.next_sequence() == 0);
    CHECK(enc.pool().size() == 0);
    message no_dest; // PUBLISH without topic, target, capability or BROADCAST
    std::vector<byte> buf(1024);
    CHECK(enc.encode(no_dest, buf.data(), buf.size()).code == errc::missing_field);
    no_dest.flags = flag::broadcast;
    CHECK(enc.encode(no_dest, buf.data(), buf.size()));
    message bad_flags = m;
    bad_flags.flags = 0x40;
    CHECK(enc.encode(bad_flags, buf.data(), buf.size()).code == errc::unknown_flags);
    message batch = m;
    batch.type = msg_type::batch;
    CHECK(enc.encode(batch, buf.data(), buf.size()).code == errc::unknown_type);
    CHECK(enc.next_sequence() == 1);
  }

  TEST_CASE("frame size limit uses the all-literal size, whatever the pool holds") {
    encoder enc;
    std::vector<byte> payload(defaults::max_frame_size - 40 - 23 + 1);
    std::vector<byte> buf(defaults::max_frame_size + 100);
    message m;
    m.set_topic("agent.worker.7.status"); // 21 bytes + 1 length + 1 key
    m.payload = bytes_view(payload.data(), payload.size());
    CHECK(enc.literal_size(m) == defaults::max_frame_size + 1);
    CHECK(enc.encode(m, buf.data(), buf.size()).code == errc::frame_too_large);
    payload.pop_back();
    m.payload = bytes_view(payload.data(), payload.size());
    CHECK(enc.encode(m, buf.data(), buf.size()));
  }

  TEST_CASE("HAS_DEADLINE follows the deadline field") {
    encoder enc;
    decoder dec;
    std::vector<byte> buf(256);
    message m;
    m.set_topic("t.deadline");
    m.set(field::deadline, std::uint64_t{1'700'000'000'000'000'000});
    const encode_result r1 = enc.encode(m, buf.data(), buf.size());
    REQUIRE(r1);
    CHECK((m.flags & flag::has_deadline) != 0);
    message d1;
    REQUIRE(dec.decode(bytes_view(buf.data(), r1.size), d1));
    CHECK((d1.flags & flag::has_deadline) != 0);
    CHECK(d1.deadline_ns() == 1'700'000'000'000'000'000);
    m.unset(field::deadline);
    const encode_result r = enc.encode(m, buf.data(), buf.size());
    REQUIRE(r);
    CHECK((m.flags & flag::has_deadline) == 0);
    message d;
    REQUIRE(dec.decode(bytes_view(buf.data(), r.size), d));
    CHECK_FALSE(d.has(field::deadline));
  }

  TEST_CASE("a trace travels as raw bytes with TRACED set, and its hops read back") {
    encoder enc;
    decoder dec;
    std::vector<byte> buf(256);
    std::string t;
    append_hop(t, hop::client_send, 1'700'000'000'000'000'001);
    append_hop(t, hop::node_in, 1'700'000'000'000'020'002);
    REQUIRE(valid_trace(t));
    message m;
    m.set_topic("t.trace");
    m.set(field::trace, t);
    const encode_result r = enc.encode(m, buf.data(), buf.size());
    REQUIRE(r);
    CHECK(r.size == enc.literal_size(m));
    CHECK((m.flags & flag::traced) != 0);
    message d;
    REQUIRE(dec.decode(bytes_view(buf.data(), r.size), d));
    CHECK((d.flags & flag::traced) != 0);
    REQUIRE(d.str(field::trace) == t);
    CHECK(hop_kind(d.str(field::trace), 1) == hop::node_in);
    CHECK(hop_time(d.str(field::trace), 1) == 1'700'000'000'000'020'002);
    CHECK(hop_time(d.str(field::trace), 0) == 1'700'000'000'000'000'001);
    // bounded: a 17th hop is not added; malformed traces are recognised
    for (int i = 0; i < 20; ++i)
      append_hop(t, hop::cluster_in, 1);
    CHECK(t.size() == max_trace_hops * trace_record_size);
    CHECK_FALSE(valid_trace(std::string_view(t).substr(0, 10)));
    CHECK_FALSE(valid_trace(std::string(9, '\x07')));
  }
}

TEST_SUITE("roundtrip") {
  TEST_CASE("string_bytes follows set, overwrite and unset (the encoder's O(1) size bound)") {
    message m;
    m.set_topic("abcd").set(field::source, "xy");
    CHECK(m.string_bytes() == 6);
    m.set_topic("a");
    CHECK(m.string_bytes() == 3);
    m.set(field::message_id, std::uint64_t{7});
    CHECK(m.string_bytes() == 3);
    m.unset(field::source).unset(field::message_id).unset(field::target);
    CHECK(m.string_bytes() == 1);
    m.clear_fields();
    CHECK(m.string_bytes() == 0);
  }
}
