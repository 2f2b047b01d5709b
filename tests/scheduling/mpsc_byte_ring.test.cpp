#include <flowbus/scheduling/mpsc_byte_ring.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace flowbus::scheduling;

namespace {
bool put(mpsc_byte_ring& r, const std::string& s) {
  auto c = r.try_claim(s.size());
  if (!c) return false;
  std::memcpy(c.data, s.data(), s.size());
  r.commit(c);
  return true;
}
/// Every committed record from the head, released.
std::vector<std::string> take(mpsc_byte_ring& r) {
  std::vector<std::string> out;
  r.release(r.peek([&](const unsigned char* p, std::size_t n) {
    out.emplace_back(reinterpret_cast<const char*>(p), n);
    return true;
  }));
  return out;
}
} // namespace

TEST_SUITE("mpsc_byte_ring") {

  TEST_CASE("records come out whole and in order; a record is only seen once committed") {
    mpsc_byte_ring r(256);
    CHECK(r.capacity() == 256);
    CHECK(r.max_record() == 120);
    CHECK(r.empty());
    REQUIRE(put(r, "alpha"));
    auto open = r.try_claim(3); // claimed, not yet written
    REQUIRE(open);
    REQUIRE(put(r, "gamma"));
    CHECK(take(r) == std::vector<std::string>{"alpha"}); // stops at the open claim
    CHECK_FALSE(r.empty());
    std::memcpy(open.data, "bet", 3);
    r.commit(open);
    CHECK(take(r) == std::vector<std::string>{"bet", "gamma"});
    CHECK(r.empty());
    CHECK(r.free_bytes() == 256);
  }

  TEST_CASE("a full ring refuses until released; too large is refused always") {
    mpsc_byte_ring r(128);
    CHECK_FALSE(r.try_claim(r.max_record() + 1));
    int n = 0;
    while (put(r, std::string(24, static_cast<char>('a' + n)))) // 32 ring bytes each
      ++n;
    CHECK(n == 4);
    CHECK(r.free_bytes() == 0);
    // a peek that stops early frees only what it took
    int seen = 0;
    r.release(r.peek([&](const unsigned char*, std::size_t) { return ++seen <= 1; }));
    CHECK(r.free_bytes() == 32);
    REQUIRE(put(r, std::string(24, 'z')));
    const auto rest = take(r);
    REQUIRE(rest.size() == 4);
    CHECK(rest[0] == std::string(24, 'b'));
    CHECK(rest[3] == std::string(24, 'z'));
  }

  TEST_CASE("a record that would cross the end goes to the start behind a padding record; laps reuse zeroed bytes") {
    mpsc_byte_ring r(128);
    for (int lap = 0; lap < 200; ++lap) {
      // sizes that put the end of the buffer at every offset, some records the largest allowed
      const std::size_t size = 1 + static_cast<std::size_t>(lap * 7) % r.max_record();
      const std::string s(size, static_cast<char>('A' + lap % 26));
      REQUIRE(put(r, s));
      const auto got = take(r);
      REQUIRE(got.size() == 1);
      CHECK(got[0] == s);
      CHECK(r.empty());
    }
  }

  TEST_CASE("an abandoned claim is skipped") {
    mpsc_byte_ring r(256);
    REQUIRE(put(r, "one"));
    auto c = r.try_claim(40);
    REQUIRE(c);
    std::memset(c.data, 'x', 40);
    r.abandon(c);
    REQUIRE(put(r, "two"));
    CHECK(take(r) == std::vector<std::string>{"one", "two"});
  }

  TEST_CASE("peek stops before max_bytes of the ring") {
    mpsc_byte_ring r(256);
    for (int i = 0; i < 4; ++i)
      REQUIRE(put(r, std::string(8, 'q'))); // 16 ring bytes each
    int seen = 0;
    const auto to = r.peek(
        [&](const unsigned char*, std::size_t) {
          ++seen;
          return true;
        },
        40);
    CHECK(seen == 2);
    r.release(to);
    CHECK(take(r).size() == 2);
  }

  TEST_CASE("many producers: every record once, whole, each producer's in its order") {
#ifdef FLOWBUS_SANITIZED
    constexpr std::uint32_t per = 20'000;
#else
    constexpr std::uint32_t per = 200'000;
#endif
    constexpr std::uint32_t producers = 4;
    mpsc_byte_ring r(4096);
    std::vector<std::thread> ts;
    for (std::uint32_t p = 0; p < producers; ++p)
      ts.emplace_back([&, p] {
        for (std::uint32_t i = 0; i < per; ++i) {
          // a record of 8..71 bytes: producer, index, then the index's low byte repeated
          const std::size_t size = 8 + (i * 13 + p) % 64;
          mpsc_byte_ring::claim c;
          while (!(c = r.try_claim(size)))
            std::this_thread::yield();
          std::memcpy(c.data, &p, 4);
          std::memcpy(c.data + 4, &i, 4);
          std::memset(c.data + 8, static_cast<int>(i & 0xff), size - 8);
          r.commit(c);
        }
      });
    std::vector<std::uint32_t> next(producers, 0);
    std::uint64_t got = 0, bad = 0;
    while (got < std::uint64_t{per} * producers) {
      r.release(r.peek([&](const unsigned char* d, std::size_t n) {
        std::uint32_t p, i;
        std::memcpy(&p, d, 4);
        std::memcpy(&i, d + 4, 4);
        if (p >= producers || i != next[p] || n != 8 + (i * 13 + p) % 64) ++bad;
        else ++next[p];
        for (std::size_t k = 8; k < n; ++k)
          if (d[k] != static_cast<unsigned char>(i & 0xff)) ++bad;
        ++got;
        return true;
      }));
    }
    for (auto& t : ts)
      t.join();
    CHECK(bad == 0);
    for (std::uint32_t p = 0; p < producers; ++p)
      CHECK(next[p] == per);
    CHECK(r.empty());
  }
}
