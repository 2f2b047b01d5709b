#include <flowbus/codec/crc32c.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace flowbus::codec;

TEST_SUITE("crc32c") {

  TEST_CASE("standard check value and RFC 3720 vectors, both implementations") {
    const std::string check = "123456789";
    std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF), inc(32), dec(32);
    for (int i = 0; i < 32; ++i) {
      inc[i] = static_cast<unsigned char>(i);
      dec[i] = static_cast<unsigned char>(31 - i);
    }
    struct vec {
      const void* data;
      std::size_t n;
      std::uint32_t crc;
    } vectors[] = {
        {check.data(), check.size(), 0xE3069283u},
        {zeros.data(), 32, 0x8A9136AAu},
        {ones.data(), 32, 0x62A8AB43u},
        {inc.data(), 32, 0x46DD794Eu},
        {dec.data(), 32, 0x113FDB5Cu},
        {"", 0, 0u},
    };
    for (const auto& v : vectors) {
      CHECK(crc32c(v.data, v.n) == v.crc);
      CHECK(crc32c_extend_portable(0, v.data, v.n) == v.crc);
      if (crc32c_hardware_available()) CHECK(crc32c_extend_hardware(0, v.data, v.n) == v.crc);
    }
  }

  TEST_CASE("hardware and portable agree on every length and alignment, across the interleave thresholds") {
    if (!crc32c_hardware_available()) return;
    std::mt19937_64 rng(7);
    std::vector<unsigned char> buf(70000);
    for (auto& b : buf)
      b = static_cast<unsigned char>(rng());
    for (std::size_t n : {0,   1,   7,    8,    9,    63,   64,   191,  192,  193,   215,   216,
                          255, 330, 1023, 1024, 4079, 4080, 4081, 4271, 8191, 12288, 65536, 69000})
      for (std::size_t align = 0; align < 8; ++align) {
        const std::uint32_t seed = static_cast<std::uint32_t>(rng());
        CHECK(crc32c_extend_hardware(seed, buf.data() + align, n) ==
              crc32c_extend_portable(seed, buf.data() + align, n));
      }
  }

  TEST_CASE("extend continues a CRC across a split at every position") {
    const std::string s = "the quick brown fox jumps over the lazy dog, twice: the quick brown fox";
    const std::uint32_t whole = crc32c(s.data(), s.size());
    for (std::size_t i = 0; i <= s.size(); ++i)
      CHECK(crc32c_extend(crc32c(s.data(), i), s.data() + i, s.size() - i) == whole);
  }

  TEST_CASE("combine equals the CRC of the concatenation without reading the data") {
    std::mt19937_64 rng(11);
    std::vector<unsigned char> buf(100000);
    for (auto& b : buf)
      b = static_cast<unsigned char>(rng());
    for (int i = 0; i < 200; ++i) {
      const std::size_t a = rng() % 5000, b = (i % 10 == 0) ? rng() % 100000 : rng() % 300;
      if (a + b > buf.size()) continue;
      const std::uint32_t ca = crc32c(buf.data(), a), cb = crc32c(buf.data() + a, b);
      CHECK(crc32c_combine(ca, cb, b) == crc32c(buf.data(), a + b));
    }
    CHECK(crc32c_combine(0x12345678u, 0, 0) == 0x12345678u); // empty tail changes nothing
  }

  TEST_CASE("a precomputed shift combines like crc32c_combine, for short and long tails") {
    std::mt19937_64 rng(13);
    std::vector<unsigned char> buf(70000);
    for (auto& b : buf)
      b = static_cast<unsigned char>(rng());
    for (std::size_t len : {0, 1, 4, 5, 6, 8, 31, 256, 1000, 65536}) {
      const crc32c_shift shift(len);
      CHECK(shift.length() == len);
      for (int i = 0; i < 20; ++i) {
        const std::size_t a = rng() % 3000;
        const std::uint32_t ca = crc32c(buf.data(), a), cb = crc32c(buf.data() + a, len);
        REQUIRE(shift.combine(ca, cb) == crc32c(buf.data(), a + len));
        REQUIRE(shift.combine(ca, cb) == crc32c_combine(ca, cb, len));
      }
    }
  }

  TEST_CASE("the implementation in use is named") {
    const std::string impl = crc32c_implementation();
    CHECK((impl == "sse4.2" || impl == "portable"));
    CHECK((impl == "sse4.2") == crc32c_hardware_available());
  }
}

TEST_SUITE("crc32c") {
  TEST_CASE("with_hole equals the CRC of a copy whose 4 hole bytes are zero") {
    std::mt19937_64 rng(17);
    for (std::size_t n : {4, 5, 36, 40, 41, 100, 330, 1000, 5000, 65536}) {
      std::vector<unsigned char> buf(n);
      for (auto& b : buf)
        b = static_cast<unsigned char>(rng());
      for (std::size_t hole : {std::size_t{0}, std::size_t{32} % (n - 3), n - 4}) {
        auto copy = buf;
        std::fill(copy.begin() + static_cast<long>(hole), copy.begin() + static_cast<long>(hole) + 4, 0);
        REQUIRE(crc32c_with_hole(buf.data(), n, hole) == crc32c(copy.data(), n));
      }
    }
  }
}
