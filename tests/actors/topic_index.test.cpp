#include <flowbus/actors/topic_index.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace flowbus::actors;

namespace {
subscriber_list ids(std::initializer_list<subscriber_id> l) { return subscriber_list(l); }

// Reference matcher, token by token, for the property test.
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}
bool reference_match(const std::string& pattern, const std::string& topic) {
  const auto p = split(pattern), t = split(topic);
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return t.size() > i;
    if (i >= t.size() || (p[i] != "*" && p[i] != t[i])) return false;
  }
  return p.size() == t.size();
}
} // namespace

TEST_SUITE("topic_index") {

  TEST_CASE("topic and pattern validation") {
    struct row {
      const char* s;
      topic_errc as_topic, as_pattern;
    } rows[] = {
        {"agent.worker.7.status", topic_errc::ok, topic_errc::ok},
        {"a", topic_errc::ok, topic_errc::ok},
        {"", topic_errc::empty, topic_errc::empty},
        {"a..b", topic_errc::empty_token, topic_errc::empty_token},
        {".a", topic_errc::empty_token, topic_errc::empty_token},
        {"a.", topic_errc::empty_token, topic_errc::empty_token},
        {"a.*.c", topic_errc::wildcard_in_topic, topic_errc::ok},
        {"a.>", topic_errc::wildcard_in_topic, topic_errc::ok},
        {">", topic_errc::wildcard_in_topic, topic_errc::ok},
        {"a.>.c", topic_errc::wildcard_in_topic, topic_errc::bad_wildcard},
        {"a.b*", topic_errc::wildcard_in_topic, topic_errc::bad_wildcard},
        {"a.**", topic_errc::wildcard_in_topic, topic_errc::bad_wildcard},
    };
    for (const auto& r : rows) {
      CAPTURE(std::string(r.s));
      CHECK(validate_topic(r.s) == r.as_topic);
      CHECK(validate_pattern(r.s) == r.as_pattern);
    }
    CHECK(validate_topic(std::string(256, 'a')) == topic_errc::too_long);
    topic_index idx;
    CHECK(idx.subscribe("a..b", 1) == topic_errc::empty_token);
    CHECK(idx.subscription_count() == 0);
  }

  TEST_CASE("routing semantics: exact, *, >, and what they do not match") {
    topic_index idx;
    REQUIRE(idx.subscribe("a.b.c", 1) == topic_errc::ok);
    REQUIRE(idx.subscribe("a.*.c", 2) == topic_errc::ok);
    REQUIRE(idx.subscribe("a.>", 3) == topic_errc::ok);
    REQUIRE(idx.subscribe("*", 4) == topic_errc::ok);
    REQUIRE(idx.subscribe(">", 5) == topic_errc::ok);
    REQUIRE(idx.subscribe("*.*.c.>", 6) == topic_errc::ok);
    struct row {
      const char* topic;
      subscriber_list expected;
    } rows[] = {
        {"a.b.c", ids({1, 2, 3, 5})}, {"a.x.c", ids({2, 3, 5})},  {"a.b.d", ids({3, 5})}, {"a.b.c.d", ids({3, 5, 6})},
        {"a.b", ids({3, 5})},         {"a", ids({4, 5})}, // `>` needs at least one token after "a": 3 does not match
        {"b.b.c", ids({5})},          {"x.y.c.z.w", ids({5, 6})}, {"a.*.c", ids({})}, // not a valid topic: matches
                                                                                      // nothing
    };
    for (const auto& r : rows) {
      CAPTURE(std::string(r.topic));
      CHECK(*idx.match(r.topic) == r.expected);
    }
  }

  TEST_CASE("overlapping patterns deliver once; subscribe is idempotent") {
    topic_index idx;
    for (const char* p : {"t.x.y", "t.*.y", "t.>", "t.x.>", "*.x.*"})
      REQUIRE(idx.subscribe(p, 9) == topic_errc::ok);
    REQUIRE(idx.subscribe("t.x.y", 9) == topic_errc::ok); // again
    CHECK(idx.subscription_count() == 5);
    CHECK(*idx.match("t.x.y") == ids({9}));
  }

  TEST_CASE("unsubscribe removes one pattern; agent death removes them all; the trie is pruned") {
    topic_index idx;
    const std::size_t empty_nodes = idx.trie_nodes();
    REQUIRE(idx.subscribe("jobs.*.new", 1) == topic_errc::ok);
    REQUIRE(idx.subscribe("jobs.>", 1) == topic_errc::ok);
    REQUIRE(idx.subscribe("jobs.eu.new", 1) == topic_errc::ok);
    REQUIRE(idx.subscribe("jobs.*.new", 2) == topic_errc::ok);
    CHECK(*idx.match("jobs.eu.new") == ids({1, 2}));
    CHECK(idx.unsubscribe("jobs.*.new", 1));
    CHECK_FALSE(idx.unsubscribe("jobs.*.new", 1));
    CHECK_FALSE(idx.unsubscribe("never.*", 1));
    CHECK(*idx.match("jobs.eu.new") == ids({1, 2})); // still via jobs.> and the exact pattern
    CHECK(idx.remove_subscriber(1) == 2);
    CHECK(*idx.match("jobs.eu.new") == ids({2}));
    CHECK(idx.remove_subscriber(1) == 0);
    CHECK(idx.unsubscribe("jobs.*.new", 2));
    CHECK(idx.subscription_count() == 0);
    CHECK(idx.match("jobs.eu.new")->empty());
    CHECK(idx.trie_nodes() == empty_nodes);
  }

  TEST_CASE("the cache serves repeated topics, is dropped on change, and stays bounded") {
    topic_index idx(16);
    REQUIRE(idx.subscribe("s.*", 1) == topic_errc::ok);
    CHECK(*idx.match("s.a") == ids({1}));
    CHECK(*idx.match("s.a") == ids({1}));
    CHECK(idx.cache().hits == 1);
    REQUIRE(idx.subscribe("s.a", 2) == topic_errc::ok); // invalidates
    CHECK(*idx.match("s.a") == ids({1, 2}));
    for (int i = 0; i < 100; ++i)
      idx.match("s.t" + std::to_string(i));
    CHECK(idx.cache().entries <= 16);
    topic_index uncached(0);
    REQUIRE(uncached.subscribe("s.*", 1) == topic_errc::ok);
    CHECK(*uncached.match("s.a") == ids({1}));
    CHECK(uncached.cache().entries == 0);
  }

  TEST_CASE("pattern_matches: one pattern against one topic (the client's handler dispatch)") {
    CHECK(pattern_matches("a.b", "a.b"));
    CHECK_FALSE(pattern_matches("a.b", "a.b.c"));
    CHECK_FALSE(pattern_matches("a.b.c", "a.b"));
    CHECK(pattern_matches("a.*.c", "a.x.c"));
    CHECK_FALSE(pattern_matches("a.*", "a"));
    CHECK_FALSE(pattern_matches("a.*", "a.b.c"));
    CHECK(pattern_matches("a.>", "a.b"));
    CHECK(pattern_matches("a.>", "a.b.c.d"));
    CHECK_FALSE(pattern_matches("a.>", "a"));
    CHECK(pattern_matches(">", "x"));
    CHECK_FALSE(pattern_matches("ab", "a"));
  }

  TEST_CASE("property: random subscriptions and churn agree with a brute-force matcher") {
    std::mt19937 rng(42);
    const char* words[] = {"a", "b", "c", "agent", "worker", "7"};
    auto token = [&](bool wild) -> std::string {
      const int r = static_cast<int>(rng() % 10);
      if (wild && r == 0) return "*";
      return words[rng() % 6];
    };
    auto make = [&](bool wild) {
      std::string s = token(wild);
      const int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i)
        s += "." + token(wild);
      if (wild && rng() % 5 == 0) s += ".>";
      if (wild && rng() % 30 == 0) s = ">";
      return s;
    };
    topic_index idx(64);
    std::set<std::pair<std::string, subscriber_id>> subs;
    for (int step = 0; step < 3000; ++step) {
      const auto id = static_cast<subscriber_id>(rng() % 12);
      const int op = static_cast<int>(rng() % 10);
      if (op < 5) {
        const std::string p = make(true);
        REQUIRE(idx.subscribe(p, id) == topic_errc::ok);
        subs.insert({p, id});
      } else if (op < 8 && !subs.empty()) {
        auto it = subs.begin();
        std::advance(it, static_cast<long>(rng() % subs.size()));
        CHECK(idx.unsubscribe(it->first, it->second));
        subs.erase(it);
      } else if (op == 8) {
        idx.remove_subscriber(id);
        for (auto it = subs.begin(); it != subs.end();)
          it = it->second == id ? subs.erase(it) : std::next(it);
      }
      const std::string topic = make(false);
      subscriber_list expected;
      for (const auto& [p, s] : subs) {
        const bool match = reference_match(p, topic);
        REQUIRE_MESSAGE(pattern_matches(p, topic) == match, p, " vs ", topic);
        if (match) expected.push_back(s);
      }
      std::sort(expected.begin(), expected.end());
      expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
      REQUIRE_MESSAGE(*idx.match(topic) == expected, topic);
      REQUIRE(idx.subscription_count() == subs.size());
    }
  }
}
