#include <flowbus/actors/agent_directory.hpp>

#include <doctest/doctest.h>

#include <map>
#include <optional>

using namespace flowbus::actors;
using namespace std::chrono_literals;

namespace {
agent_info agent(std::string id, std::string type, std::vector<std::string> caps = {},
                 std::chrono::milliseconds hb = 1000ms) {
  agent_info a;
  a.id = std::move(id);
  a.type = std::move(type);
  a.capabilities = std::move(caps);
  a.heartbeat_interval = hb;
  return a;
}
const agent_clock::time_point t0{}; // an injected clock: tests never sleep
} // namespace

TEST_SUITE("agent_directory") {

  TEST_CASE("registration: handles, typed refusals, lookups by id, type and capability") {
    agent_directory dir;
    subscriber_id a = 0, b = 0, c = 0, x = 0;
    REQUIRE(dir.add(agent("agent-1", "worker", {"summarize", "translate"}), t0, a) == directory_errc::ok);
    REQUIRE(dir.add(agent("agent-2", "worker", {"summarize"}), t0, b) == directory_errc::ok);
    REQUIRE(dir.add(agent("coord", "coordinator"), t0, c) == directory_errc::ok);
    CHECK(a != b);
    CHECK(dir.add(agent("agent-1", "worker"), t0, x) == directory_errc::duplicate_id);
    CHECK(dir.add(agent("", "worker"), t0, x) == directory_errc::invalid_id);
    CHECK(dir.add(agent(std::string(300, 'a'), "worker"), t0, x) == directory_errc::invalid_id);
    CHECK(dir.add(agent("agent-9", "worker", {}, 0ms), t0, x) == directory_errc::invalid_interval);
    // issue 17.9: 2^42 ms overflowed the liveness clock and the agent was expired at once
    CHECK(dir.add(agent("agent-9", "worker", {}, std::chrono::milliseconds(1LL << 42)), t0, x) ==
          directory_errc::invalid_interval);
    CHECK(dir.add(agent("agent-9", "worker", {}, max_heartbeat_interval + 1ms), t0, x) == directory_errc::invalid_interval);
    {
      agent_directory slow;
      REQUIRE(slow.add(agent("agent-9", "worker", {}, max_heartbeat_interval), t0, x) == directory_errc::ok);
      CHECK(slow.expire(t0 + 3 * max_heartbeat_interval).empty()); // the largest allowed interval does not overflow
      CHECK(slow.expire(t0 + 3 * max_heartbeat_interval + 1ms).size() == 1);
    }
    CHECK(dir.size() == 3);
    CHECK(dir.find("agent-2") == b);
    CHECK_FALSE(dir.find("nobody"));
    REQUIRE(dir.find(a) != nullptr);
    CHECK(dir.find(a)->info.type == "worker");
    CHECK(dir.of_type("worker") == std::vector<subscriber_id>{a, b});
    CHECK(dir.capable_of("summarize") == std::vector<subscriber_id>{a, b});
    CHECK(dir.capable_of("translate") == std::vector<subscriber_id>{a});
    CHECK(dir.capable_of("fly").empty());
    CHECK(dir.all() == std::vector<subscriber_id>{a, b, c});
  }

  TEST_CASE("heartbeats keep agents alive; silence past the allowance expires them, oldest first") {
    agent_directory dir(3);
    subscriber_id fast = 0, slow = 0, quiet = 0;
    REQUIRE(dir.add(agent("fast", "w", {}, 100ms), t0, fast) == directory_errc::ok);
    REQUIRE(dir.add(agent("slow", "w", {}, 1000ms), t0, slow) == directory_errc::ok);
    REQUIRE(dir.add(agent("quiet", "w", {}, 100ms), t0 + 50ms, quiet) == directory_errc::ok);
    CHECK(dir.next_expiry() == t0 + 300ms);
    std::optional<agent_clock::time_point> quiet_gone;
    for (auto t = t0; t <= t0 + 2s; t += 100ms) {
      REQUIRE(dir.heartbeat(fast, t) == directory_errc::ok);
      const auto gone = dir.expire(t);
      if (gone.empty()) continue;
      REQUIRE(gone.size() == 1); // only quiet, and only once
      CHECK(gone[0].first == quiet);
      CHECK_FALSE(quiet_gone);
      quiet_gone = t;
    }
    CHECK(quiet_gone == t0 + 400ms); // last heard at 50 ms; 3 x 100 ms allowed: gone at the first check after 350 ms
    CHECK(dir.find(quiet) == nullptr);
    CHECK(dir.find(fast) != nullptr);
    CHECK(dir.find(slow) != nullptr); // 3 x 1000 ms not yet over at 2 s
    // at 3001 ms: slow (last heard at 0, 3 x 1000 ms allowed) and fast (silent since 2 s) are both gone
    const auto gone = dir.expire(t0 + 3001ms);
    REQUIRE(gone.size() == 2);
    CHECK(gone[0].first == slow); // oldest heartbeat first
    CHECK(gone[0].second.id == "slow");
    CHECK(gone[1].first == fast);
    CHECK(dir.size() == 0);
    CHECK(dir.heartbeat(slow, t0 + 3002ms) == directory_errc::unknown_agent);
    subscriber_id again = 0; // the id is free again, under a new handle
    REQUIRE(dir.add(agent("slow", "w"), t0 + 4s, again) == directory_errc::ok);
    CHECK(again != slow);
  }

  TEST_CASE("several expire together, oldest heartbeat first; remove is final") {
    agent_directory dir(1);
    subscriber_id a = 0, b = 0;
    REQUIRE(dir.add(agent("a", "w", {}, 100ms), t0 + 10ms, a) == directory_errc::ok);
    REQUIRE(dir.add(agent("b", "w", {}, 100ms), t0, b) == directory_errc::ok);
    const auto gone = dir.expire(t0 + 1s);
    REQUIRE(gone.size() == 2);
    CHECK(gone[0].first == b);
    CHECK(gone[1].first == a);
    CHECK_FALSE(dir.next_expiry());
    subscriber_id c = 0;
    REQUIRE(dir.add(agent("c", "w"), t0, c) == directory_errc::ok);
    CHECK(dir.remove(c) == directory_errc::ok);
    CHECK(dir.remove(c) == directory_errc::unknown_agent);
  }

  TEST_CASE("round-robin spreads a queue group exactly evenly and skips the departed") {
    agent_directory dir;
    std::vector<subscriber_id> group(3);
    for (int i = 0; i < 3; ++i)
      REQUIRE(dir.add(agent("w" + std::to_string(i), "worker"), t0, group[static_cast<std::size_t>(i)]) ==
              directory_errc::ok);
    std::map<subscriber_id, int> got;
    for (int i = 0; i < 300; ++i)
      ++got[*dir.pick(group, balance::round_robin, "workers")];
    for (subscriber_id g : group)
      CHECK(got[g] == 100);
    REQUIRE(dir.remove(group[1]) == directory_errc::ok);
    for (int i = 0; i < 10; ++i)
      CHECK(dir.pick(group, balance::round_robin, "workers") != group[1]);
    CHECK_FALSE(dir.pick({}, balance::round_robin, "none"));
    CHECK_FALSE(dir.pick({group[1]}, balance::least_loaded, "none"));
  }

  TEST_CASE("least-loaded sends work to the agent with the fewest messages in flight") {
    agent_directory dir;
    subscriber_id busy = 0, idle1 = 0, idle2 = 0;
    REQUIRE(dir.add(agent("busy", "w", {"summarize"}), t0, busy) == directory_errc::ok);
    REQUIRE(dir.add(agent("idle1", "w", {"summarize"}), t0, idle1) == directory_errc::ok);
    REQUIRE(dir.add(agent("idle2", "w", {"summarize"}), t0, idle2) == directory_errc::ok);
    dir.add_in_flight(busy, 5);
    const auto capable = dir.capable_of("summarize");
    std::map<subscriber_id, int> got;
    for (int i = 0; i < 10; ++i) { // each pick adds load, as the node would on hand-off
      const subscriber_id s = *dir.pick(capable, balance::least_loaded, "cap:summarize");
      ++got[s];
      dir.add_in_flight(s, 1);
    }
    CHECK(got[busy] == 0); // idle1 and idle2 climb to 5 first
    CHECK(got[idle1] == 5);
    CHECK(got[idle2] == 5);
    dir.add_in_flight(idle1, -100); // completions never drive the count below zero
    CHECK(dir.find(idle1)->in_flight == 0);
    CHECK(dir.pick(capable, balance::least_loaded, "cap:summarize") == idle1);
  }
}
