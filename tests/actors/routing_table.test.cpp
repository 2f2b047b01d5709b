// The routing table the data path reads: queue groups as index subscribers, capability and type
// sets, departure removing everything an agent had, and identical copies under left_right.
#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/actors/routing_table.hpp>
#include <flowbus/scheduling/left_right.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

using namespace flowbus::actors;

namespace {
void no_ring(void*) noexcept {}
std::shared_ptr<endpoint> ep(subscriber_id id, std::string name, std::string type = "w",
                             std::vector<std::string> caps = {}) {
  return std::make_shared<endpoint>(id, std::move(name), std::move(type), std::move(caps), 16, &no_ring, nullptr,
                                    nullptr);
}
std::vector<subscriber_id> ids(const route& r) {
  std::vector<subscriber_id> out;
  for (const auto& e : r.direct)
    out.push_back(e->id());
  return out;
}
} // namespace

TEST_SUITE("routing_table") {
  TEST_CASE("plain and queue-group subscribers of one topic; groups leave with their last member") {
    routing_table t;
    auto a = ep(1, "a"), b = ep(2, "b"), c = ep(3, "c");
    for (auto& e : {a, b, c})
      t.add_agent(e);
    CHECK(t.subscribe("jobs.>", 1) == topic_errc::ok);
    CHECK(t.subscribe_group("jobs.*", "pool", balance::round_robin, 2) == topic_errc::ok);
    CHECK(t.subscribe_group("jobs.*", "pool", balance::round_robin, 3) == topic_errc::ok);
    CHECK(t.subscribe_group("jobs.*", "pool", balance::round_robin, 3) == topic_errc::ok); // idempotent
    routing_table::scratch s;
    route r;
    t.resolve("jobs.x", s, r);
    CHECK(ids(r) == std::vector<subscriber_id>{1});
    REQUIRE(r.groups.size() == 1);
    CHECK(r.groups[0].members.size() == 2);
    // round-robin alternates between the two members
    CHECK(pick(r.groups[0])->id() != pick(r.groups[0])->id());
    CHECK(t.group_count() == 1);
    CHECK(t.unsubscribe("jobs.*", "pool", 2));
    CHECK_FALSE(t.unsubscribe("jobs.*", "pool", 2));
    t.remove_agent(3);
    CHECK(t.group_count() == 0);
    t.resolve("jobs.x", s, r);
    CHECK(r.groups.empty());
    CHECK(t.subscription_count() == 1);
  }

  TEST_CASE("departure removes subscriptions, capabilities, type and name; closed members are skipped") {
    routing_table t;
    auto a = ep(1, "a", "w", {"sum"}), b = ep(2, "b", "w", {"sum", "tr"});
    t.add_agent(a);
    t.add_agent(b);
    t.subscribe("x", 1);
    t.subscribe("x", 2);
    REQUIRE(t.capable("sum"));
    CHECK(t.capable("sum")->members.size() == 2);
    CHECK(t.agent("b") == b.get());
    b->close();
    for (int i = 0; i < 4; ++i)
      CHECK(pick(*t.capable("sum"))->id() == 1); // b is closed: never picked
    t.remove_agent(2);
    CHECK(t.agent("b") == nullptr);
    CHECK(t.capable("tr") == nullptr);
    CHECK(t.capable("sum")->members.size() == 1);
    int of_type = 0;
    t.for_each_agent("w", [&](endpoint&) { ++of_type; });
    CHECK(of_type == 1);
    routing_table::scratch s;
    route r;
    t.resolve("x", s, r);
    CHECK(ids(r) == std::vector<subscriber_id>{1});
  }

  TEST_CASE("readers resolve while the writer subscribes and unsubscribes (left_right)") {
    flowbus::scheduling::left_right<routing_table> lr;
    std::vector<std::shared_ptr<endpoint>> eps;
    for (subscriber_id i = 1; i <= 8; ++i) {
      eps.push_back(ep(i, "e" + std::to_string(i)));
      lr.modify([&](routing_table& t) { t.add_agent(eps.back()); });
    }
    lr.modify([](routing_table& t) { t.subscribe("stable.topic", 1); });
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0};
    flowbus::test::start_barrier start(3);
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
      readers.emplace_back([&] {
        routing_table::scratch s;
        route out;
        unsigned reads = 0;
        start.arrive_and_wait();
        while (!done.load()) {
          lr.read([&](const routing_table& t) { t.resolve("stable.topic", s, out); });
          if (out.direct.size() != 1 || out.direct[0]->id() != 1) wrong.fetch_add(1);
          if (++reads % 64 == 0) std::this_thread::yield(); // do not starve the writer on 2 CPUs
        }
      });
    start.arrive_and_wait();
    const int rounds = static_cast<int>(2000 / flowbus::test::scale);
    for (int k = 0; k < rounds; ++k) {
      const subscriber_id id = static_cast<subscriber_id>(2 + k % 7);
      const std::string p = "churn." + std::to_string(k % 13) + ".>";
      lr.modify([&](routing_table& t) { t.subscribe(p, id); });
      lr.modify([&](routing_table& t) { t.unsubscribe(p, {}, id); });
    }
    done.store(true);
    for (auto& t : readers)
      t.join();
    CHECK(wrong.load() == 0);
    CHECK(lr.read([](const routing_table& t) { return t.subscription_count(); }) == 1);
  }

  TEST_CASE("link endpoints: subscribable, not agents; local members picked first; remote agents and capabilities") {
    routing_table t;
    auto local = ep(1, "local", "w", {"gpu"});
    auto link_b = ep(100, "node:b"), link_c = ep(101, "node:c"), group_b = ep(102, "node:b/pool");
    for (auto& e : {link_b, link_c, group_b})
      e->set_remote();
    t.add_agent(local);
    t.add_peer(link_b, true);
    t.add_peer(link_c, true);
    t.add_peer(group_b, false);
    CHECK(t.agent_count() == 1); // links are not agents
    CHECK(t.subscribe("news.>", 100) == topic_errc::ok);
    CHECK(t.subscribe("news.*", 100) == topic_errc::ok); // overlapping patterns: the link still once
    routing_table::scratch s;
    route r;
    t.resolve("news.x", s, r);
    CHECK(ids(r) == std::vector<subscriber_id>{100});
    // a queue group with a local member and node b's group endpoint: the local member while it is open
    t.subscribe_group("jobs", "pool", balance::round_robin, 102);
    t.subscribe_group("jobs", "pool", balance::round_robin, 1);
    const member_set* g = t.group(std::string("jobs") + '\x1f' + "pool");
    REQUIRE(g);
    for (int i = 0; i < 4; ++i)
      CHECK(pick(*g) == local.get());
    local->close();
    CHECK(pick(*g) == group_b.get());
    CHECK(pick_local(*g) == nullptr); // a frame from another node is never passed on to a third
    // remote agents: unicast and capabilities reach the link serving them; a local id wins
    CHECK(t.add_remote_agent("w9", {"gpu", "tpu"}, 100));
    CHECK(!t.add_remote_agent("w8", {}, 55)); // not a link endpoint
    CHECK(t.agent("w9") == link_b.get());
    CHECK(t.local_agent("w9") == nullptr);
    CHECK(t.agent("local") == local.get());
    REQUIRE(t.capable("tpu"));
    CHECK(pick(*t.capable("tpu")) == link_b.get());
    CHECK(t.capable("gpu")->members.size() == 2);
    // moved to node c: b's late departure does not remove c's announcement
    CHECK(t.add_remote_agent("w9", {"tpu"}, 101));
    t.remove_remote_agent("w9", 100);
    CHECK(t.agent("w9") == link_c.get());
    CHECK(pick(*t.capable("tpu")) == link_c.get());
    CHECK(t.capable("gpu")->members.size() == 1);
    // a link goes: its subscriptions, group memberships, agents and capabilities with it
    t.remove_peer(101);
    CHECK(t.agent("w9") == nullptr);
    CHECK(t.capable("tpu") == nullptr);
    t.remove_peer(100);
    t.resolve("news.x", s, r);
    CHECK(r.empty());
    int peers = 0;
    t.for_each_peer([&](endpoint&) { ++peers; });
    CHECK(peers == 0); // group_b is left, and it is not a main link
  }
}
