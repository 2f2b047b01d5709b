// Helpers shared by the actors layer's tests: agent specs and client agents of an in-process node.
#pragma once

#include <flowbus/actors/node.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace flowbus::test {

inline actors::agent_spec spec(std::string id, std::vector<std::string> subs = {}, std::string type = "test") {
  actors::agent_spec s;
  s.id = std::move(id);
  s.type = std::move(type);
  s.subscriptions = std::move(subs);
  return s;
}

inline std::unique_ptr<actors::client> connect(actors::node& n, actors::agent_spec s) {
  auto c = n.connect(std::move(s));
  REQUIRE(c.has_value());
  return std::move(c.value());
}

/// A cluster member in this process: any free cluster port, heartbeats loose enough for a loaded
/// CI machine (and TSan).
inline actors::node_config member(std::string name, std::vector<std::string> join = {}) {
  using namespace std::chrono_literals;
  actors::node_config c;
  c.workers = 2;
  c.cluster.port = 0;
  c.cluster.name = std::move(name);
  c.cluster.join = std::move(join);
  c.cluster.heartbeat_interval = 200ms;
  c.cluster.connection_timeout = 1500ms;
  return c;
}

/// Where a node of this process listens for other nodes: "127.0.0.1:PORT".
inline std::string address(const actors::node& n) { return "127.0.0.1:" + std::to_string(n.cluster_port()); }

} // namespace flowbus::test
