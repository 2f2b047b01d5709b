#include <flowbus/codec/frame_header.hpp>
#include <flowbus/codec/types.hpp>

#include <doctest/doctest.h>

using namespace flowbus::codec;

TEST_SUITE("frame_header") {

  TEST_CASE("write then read gives the same header, little-endian at the documented offsets") {
    frame_header h;
    h.type = 0x14;
    h.flags = flag::ack_requested;
    h.priority = 1;
    h.total_size = 0x01020304;
    h.payload_size = 0x00000100;
    h.timestamp_ns = 0x1122334455667788ull;
    h.sequence = 0x0102030405060708ull;
    h.checksum = 0xAABBCCDD;
    byte buf[40];
    write_header(buf, h);
    CHECK(buf[0] == 'F');
    CHECK(buf[3] == 'W');
    CHECK(buf[offset::version] == 1);
    CHECK(buf[offset::total_size] == 0x04); // LSB first
    CHECK(buf[offset::timestamp] == 0x88);
    CHECK(buf[offset::sequence + 7] == 0x01);
    CHECK(buf[offset::checksum] == 0xDD);
    const frame_header r = read_header(buf);
    CHECK(r.type == h.type);
    CHECK(r.flags == h.flags);
    CHECK(r.priority == h.priority);
    CHECK(r.total_size == h.total_size);
    CHECK(r.payload_size == h.payload_size);
    CHECK(r.timestamp_ns == h.timestamp_ns);
    CHECK(r.sequence == h.sequence);
    CHECK(r.checksum == h.checksum);
    CHECK(r.reserved == 0);
  }

  TEST_CASE("check_header refuses a bad field as soon as its bytes are present") {
    frame_header h;
    h.type = static_cast<std::uint8_t>(msg_type::publish);
    h.total_size = 100;
    h.payload_size = 10;
    byte good[40];
    write_header(good, h);
    for (std::size_t n = 0; n <= 40; ++n)
      CHECK(check_header(good, n, 65536));

    struct row {
      std::size_t at;
      byte value;
      errc expected;
      std::size_t offset;
    } rows[] = {
        {0, 'G', errc::bad_magic, 0},         {2, 0, errc::bad_magic, 2},
        {4, 2, errc::unsupported_version, 4}, {4, 0, errc::unsupported_version, 4},
        {5, 0x00, errc::unknown_type, 5},     {5, 0x06, errc::unknown_type, 5},
        {5, 0x1D, errc::unknown_type, 5},     {5, 0xFF, errc::unknown_type, 5},
        {6, 0x20, errc::unknown_flags, 6},    {6, 0x80, errc::unknown_flags, 6},
        {7, 5, errc::bad_priority, 7},        {7, 0xFF, errc::bad_priority, 7},
        {36, 1, errc::reserved_nonzero, 36},  {39, 0x80, errc::reserved_nonzero, 36},
    };
    for (const auto& r : rows) {
      CAPTURE(r.at);
      byte bad[40];
      std::memcpy(bad, good, 40);
      bad[r.at] = r.value;
      for (std::size_t n = 0; n <= 40; ++n) {
        const decode_status s = check_header(bad, n, 65536);
        const std::size_t field_end = r.at >= 36 ? 40 : r.at + 1;
        if (n < field_end) {
          CHECK(s);
        } else {
          CHECK(s.code == r.expected);
          CHECK(s.offset == r.offset);
        }
      }
    }
  }

  TEST_CASE("sizes: below the header, above the maximum, payload beyond the frame") {
    frame_header h;
    h.type = static_cast<std::uint8_t>(msg_type::heartbeat);
    byte buf[40];
    h.total_size = 39;
    write_header(buf, h);
    CHECK(check_header(buf, 40, 65536).code == errc::frame_too_small);
    h.total_size = 65537;
    write_header(buf, h);
    CHECK(check_header(buf, 40, 65536).code == errc::frame_too_large);
    CHECK(check_header(buf, 40, 70000));
    h.total_size = 50;
    h.payload_size = 11;
    write_header(buf, h);
    const decode_status s = check_header(buf, 40, 65536);
    CHECK(s.code == errc::size_mismatch);
    CHECK(s.offset == offset::payload_size);
    h.payload_size = 10;
    write_header(buf, h);
    CHECK(check_header(buf, 40, 65536));
  }
}
