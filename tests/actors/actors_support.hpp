// Helpers shared by the actors layer's tests: agent specs and client agents of an in-process node.
#pragma once

#include <flowbus/actors/node.hpp>

#include <doctest/doctest.h>

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

} // namespace flowbus::test
