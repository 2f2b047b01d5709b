// Subscription churn against a node process: subscribing and unsubscribing many distinct topics
// (unique inbox topics do exactly this) leaves nothing behind — resident memory returns to its
// baseline — and a connection holding very many subscriptions closes in linear time.
#include "transport/node_process.hpp"
#include "transport/transport_support.hpp"

#include <flowbus/scheduling/numa.hpp>
#include <flowbus/transport/client.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;

namespace {
#ifdef FLOWBUS_SANITIZED
constexpr int topics_per_round = 2000;
#else
constexpr int topics_per_round = 10000;
#endif

/// Subscribes `n` distinct topics (`prefix`.i), or unsubscribes them; every answer checked.
void churn(transport::client& c, const std::string& prefix, int n, bool subscribe) {
  std::vector<std::future<errc>> answers;
  answers.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const std::string topic = prefix + "." + std::to_string(i);
    answers.push_back(subscribe ? c.subscribe(topic) : c.unsubscribe(topic));
  }
  for (auto& a : answers) {
    REQUIRE(a.wait_for(60s) == std::future_status::ready);
    REQUIRE(a.get() == errc::ok);
  }
}
} // namespace

TEST_SUITE("churn") {
  // Regression (issue 17.7): each round of 10 000 distinct topics left ~20 MiB resident (one topic
  // actor per pattern, alive 30 s after its last member): 32 -> 118 MiB over four rounds.
  TEST_CASE("subscribe then unsubscribe 10 000 distinct topics, 4 rounds: the node's memory returns to its baseline") {
    // One malloc arena in the node process: with glibc's one per thread, pages that a few live
    // allocations pin in another thread's arena keep 0-4 MiB resident after malloc_trim at random
    // (seen: 34-37 MiB after any number of rounds, no growth) — noise around the 10 % line, not
    // what this test is about (what the node itself keeps). Read by glibc at the child's start.
    ::setenv("MALLOC_ARENA_MAX", "1", 1);
    node_process node;
    ::unsetenv("MALLOC_ARENA_MAX");
    transport::client c(client_opts(node.port, "churner"));
    REQUIRE(c.connect() == errc::ok);
    std::this_thread::sleep_for(200ms);
    const std::uint64_t cold = scheduling::resident_kib(node.pid);
    // The baseline is taken after one warm-up round: what the first round sizes for good (the
    // allocator's arena, hash tables' bucket arrays) is not churn. Measured here: 32 MiB cold,
    // 34 MiB after the warm-up and after four more rounds (before the fix: 118 MiB).
    churn(c, "_inbox.warm", topics_per_round, true);
    churn(c, "_inbox.warm", topics_per_round, false);
    std::uint64_t base = 0;
    auto rss_settles = [&](std::uint64_t bound) {
      std::uint64_t now = 0;
      eventually([&] { return (now = scheduling::resident_kib(node.pid)) <= bound; }, 5s);
      return now;
    };
    std::this_thread::sleep_for(1500ms); // the node gives freed pages back a second after a burst
    base = scheduling::resident_kib(node.pid);
    REQUIRE(base > 0);
    std::string rounds;
    for (int round = 0; round < 4; ++round) {
      churn(c, "_inbox.r" + std::to_string(round), topics_per_round, true);
      churn(c, "_inbox.r" + std::to_string(round), topics_per_round, false);
      rounds += " " + std::to_string(scheduling::resident_kib(node.pid));
    }
    const std::uint64_t settled = rss_settles(base + base / 10);
    MESSAGE("node RSS (KiB): cold " << cold << ", after warm-up " << base << ", after each round" << rounds
                                    << ", settled " << settled);
#ifndef FLOWBUS_SANITIZED
    CHECK(settled <= base + base / 10);
#else
    (void)settled; // ASan keeps freed memory in its quarantine and ignores malloc_trim: nothing to measure
#endif
  }

  // Regression (issue 17.8): closing a connection cost O(subscriptions^2) (100 000: the node busy
  // for minutes). The time is measured by `flowbus bench subscriptions`; here: everything it held
  // leaves the routing table and the topic actors, and the node goes on serving.
  TEST_CASE("a connection holding many subscriptions closes: all of them leave, the node serves on") {
    edge e;
    {
      transport::client holder(client_opts(e.port(), "holder"));
      REQUIRE(holder.connect() == errc::ok);
      churn(holder, "_inbox.held", 2 * topics_per_round, true);
      CHECK(e.node.topics().size() == static_cast<std::size_t>(2 * topics_per_round));
      holder.close();
    }
    REQUIRE(eventually([&] { return e.node.agents().empty() && e.node.topics().empty(); }, 30s));
    transport::client sub(client_opts(e.port(), "holder", {"after.close"})); // the id is free again
    inbox got;
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    auto pub = e.node.connect({"pub", "test"}).value();
    CHECK(pub->publish("after.close", "still serving").delivered == 1);
    CHECK(pub->publish("_inbox.held.7", "gone").delivered == 0);
    REQUIRE(eventually([&] { return got.size() == 1; }));
  }
}
