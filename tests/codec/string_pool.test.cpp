#include <flowbus/codec/string_pool.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace flowbus::codec;

TEST_SUITE("string_pool") {

  TEST_CASE("inbound ids are assigned in order and views stay valid as the pool grows") {
    inbound_pool pool;
    std::vector<std::string> strs;
    for (int i = 0; i < 600; ++i)
      strs.push_back("topic." + std::to_string(i) + std::string(static_cast<std::size_t>(i % 90), 'x'));
    std::vector<std::string_view> first_views;
    for (const auto& s : strs) {
      REQUIRE(pool.define(s) == errc::ok);
      std::string_view v;
      REQUIRE(pool.lookup(pool.size() - 1, v) == errc::ok);
      first_views.push_back(v);
    }
    for (std::size_t i = 0; i < strs.size(); ++i) {
      std::string_view v;
      REQUIRE(pool.lookup(i, v) == errc::ok);
      CHECK(v == strs[i]);
      CHECK(v.data() == first_views[i].data()); // never moved
    }
    std::string_view v;
    CHECK(pool.lookup(strs.size(), v) == errc::unknown_pool_id);
    CHECK(pool.lookup(~std::uint64_t{0}, v) == errc::unknown_pool_id);
  }

  TEST_CASE("inbound bounds: entries, bytes and string length") {
    inbound_pool pool;
    CHECK(pool.define(std::string(defaults::pool_max_string + 1, 'a')) == errc::pooled_string_too_long);
    CHECK(pool.size() == 0);
    for (std::uint32_t i = 0; i < defaults::pool_max_entries; ++i)
      REQUIRE(pool.define("k" + std::to_string(i)) == errc::ok);
    CHECK(pool.define("one-more") == errc::pool_full);
    CHECK(pool.size() == defaults::pool_max_entries);

    inbound_pool bytes_pool;
    const std::string big(defaults::pool_max_string, 'b');
    std::size_t defined = 0;
    while (bytes_pool.define(big) == errc::ok)
      ++defined;
    CHECK(defined == defaults::pool_max_bytes / defaults::pool_max_string);
    CHECK(bytes_pool.bytes() <= defaults::pool_max_bytes);
  }

  TEST_CASE("inbound rollback forgets definitions made after the mark") {
    inbound_pool pool;
    REQUIRE(pool.define("kept") == errc::ok);
    const auto mark = pool.save();
    for (int i = 0; i < 100; ++i)
      REQUIRE(pool.define(std::string(200, static_cast<char>('a' + i % 26))) == errc::ok);
    pool.rollback(mark);
    CHECK(pool.size() == 1);
    CHECK(pool.bytes() == 4);
    std::string_view v;
    CHECK(pool.lookup(0, v) == errc::ok);
    CHECK(v == "kept");
    CHECK(pool.lookup(1, v) == errc::unknown_pool_id);
    REQUIRE(pool.define("after") == errc::ok);
    CHECK(pool.lookup(1, v) == errc::ok);
    CHECK(v == "after");
  }

  TEST_CASE("outbound finds what it defined and refuses what the receiver would refuse") {
    outbound_pool pool;
    CHECK(pool.find("agent.worker.7.status") == outbound_pool::npos);
    CHECK(pool.define("agent.worker.7.status") == 0);
    CHECK(pool.define("agent.worker.8.status") == 1);
    CHECK(pool.find("agent.worker.7.status") == 0);
    CHECK(pool.find("agent.worker.8.status") == 1);
    CHECK(pool.find("agent.worker.9.status") == outbound_pool::npos);
    CHECK_FALSE(pool.can_define("x"));                                             // too short to gain
    CHECK_FALSE(pool.can_define(std::string(defaults::pool_max_string + 1, 'a'))); // too long
    for (std::uint32_t i = 2; i < defaults::pool_max_entries; ++i) {
      const std::string s = "s" + std::to_string(i);
      REQUIRE(pool.can_define(s));
      REQUIRE(pool.define(s) == i);
    }
    CHECK_FALSE(pool.can_define("full-now"));
    for (std::uint32_t i = 2; i < defaults::pool_max_entries; ++i)
      REQUIRE(pool.find("s" + std::to_string(i)) == i);
  }

  TEST_CASE("outbound and inbound bounds agree byte for byte") {
    outbound_pool out;
    inbound_pool in;
    for (int i = 0;; ++i) {
      const std::string s = std::to_string(i) + std::string(200, 'z');
      if (!out.can_define(s)) {
        CHECK(in.define(s) == errc::pool_full);
        break;
      }
      out.define(s);
      REQUIRE(in.define(s) == errc::ok);
    }
    CHECK(out.size() == in.size());
  }
}
