#include <flowbus/codec/varint.hpp>

#include "codec/codec_test_util.hpp"

#include <doctest/doctest.h>

#include <random>
#include <vector>

using namespace flowbus::codec;
using flowbus::codec::test::from_hex;

TEST_SUITE("varint") {

  TEST_CASE("round-trips boundary values in their shortest form") {
    std::vector<std::uint64_t> values = {0, 1, 127, 128, 255, 300, 16383, 16384, ~std::uint64_t{0}};
    for (int k = 0; k < 64; ++k) {
      values.push_back(std::uint64_t{1} << k);
      values.push_back((std::uint64_t{1} << k) - 1);
    }
    for (std::uint64_t v : values) {
      byte buf[16] = {};
      byte* end = write_varint(buf, v);
      const auto n = static_cast<std::size_t>(end - buf);
      CHECK(n == varint_size(v));
      CHECK(n <= defaults::max_varint_bytes);
      const byte* p = buf;
      std::uint64_t out = 0;
      REQUIRE(read_varint(p, buf + n, out) == errc::ok);
      CHECK(out == v);
      CHECK(p == end);
      // every strict prefix is truncated, and the cursor does not move
      for (std::size_t cut = 0; cut < n; ++cut) {
        const byte* q = buf;
        CHECK(read_varint(q, buf + cut, out) == errc::truncated);
        CHECK(q == buf);
      }
    }
  }

  TEST_CASE("known encodings") {
    byte buf[10];
    CHECK(test::to_hex(buf, static_cast<std::size_t>(write_varint(buf, 300) - buf)) == "ac 02");
    CHECK(test::to_hex(buf, static_cast<std::size_t>(write_varint(buf, ~std::uint64_t{0}) - buf)) ==
          "ff ff ff ff ff ff ff ff ff 01");
  }

  TEST_CASE("malformed varints get their typed error") {
    struct row {
      const char* hex;
      errc expected;
    } rows[] = {
        {"", errc::truncated},
        {"80", errc::truncated},
        {"ff ff ff", errc::truncated},
        {"80 00", errc::varint_overlong},
        {"ff 80 00", errc::varint_overlong},
        {"ff ff ff ff ff ff ff ff ff 02", errc::varint_overflow},
        {"ff ff ff ff ff ff ff ff ff 81 01", errc::varint_overflow},
        {"ff ff ff ff ff ff ff ff ff ff ff ff", errc::varint_overflow},
    };
    for (const auto& r : rows) {
      CAPTURE(r.hex);
      const auto bytes = from_hex(r.hex);
      const byte* p = bytes.data();
      std::uint64_t out = 0;
      CHECK(read_varint(p, bytes.data() + bytes.size(), out) == r.expected);
      CHECK(p == bytes.data());
    }
  }

  TEST_CASE("random values round-trip") {
    std::mt19937_64 rng(3);
    byte buf[10];
    for (int i = 0; i < 100000; ++i) {
      const std::uint64_t v = rng() >> (rng() % 64);
      byte* end = write_varint(buf, v);
      const byte* p = buf;
      std::uint64_t out;
      REQUIRE(read_varint(p, end, out) == errc::ok);
      REQUIRE(out == v);
    }
  }
}
