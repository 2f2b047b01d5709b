// What a registered agent may publish to and subscribe to (issue 20, authorization), NATS's
// semantics: allow and deny lists of topic patterns (`*` one token, `>` the tail), deny wins, an
// empty allow list allows everything not denied. Beside topics: which agent ids it may send to
// by id (unicast, patterns with `*`), whether it may broadcast, and whether it may answer the
// requests it receives whatever those say (NATS's allow_responses). A permission comes from the agent's token (its
// `permissions` claim) or from the role the token names (the node's --auth-roles file).
// docs/security.md. Pure: tested without a node in transport.permissions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::transport {

struct permission_list {
  std::vector<std::string> allow, deny; ///< topic patterns
};

struct permissions {
  permission_list publish, subscribe;
  permission_list unicast; ///< agent ids (or patterns with `*`) it may send to by id
  bool broadcast = true;   ///< may send BROADCASTs
  /// A REPLY to an agent that sent it a REQUEST is allowed whatever `unicast` says: up to `max`
  /// replies per request, within `expires` of the request (0: no limit in time; the node keeps
  /// at most 4 096 requests per connection, forgetting the oldest). max 0: off.
  struct responses {
    std::uint32_t max = 0;
    std::chrono::milliseconds expires{0};
  } allow_responses;

  /// A publish to `topic` (no wildcards): allowed if an allow pattern matches it (or none is
  /// listed) and no deny pattern does.
  bool may_publish(std::string_view topic) const;
  /// A subscription to `pattern`: allowed if an allow pattern covers every topic it can match (or
  /// none is listed) and no deny pattern can match a topic it matches — so a wildcard subscription
  /// that could receive a denied topic is refused as a whole.
  bool may_subscribe(std::string_view pattern) const;
  /// A message sent by id to agent `id`: allowed if an allow pattern matches it (or none is
  /// listed) and no deny pattern does (`*` as any run of characters).
  bool may_unicast(std::string_view id) const;
};

/// Roles by name, and the role of an agent whose token names none.
struct role_table {
  std::map<std::string, permissions, std::less<>> roles;
  std::string default_role; ///< empty: such an agent may do everything
};

/// Parses `{"publish": {"allow": [...], "deny": [...]}, "subscribe": {...}, "unicast": {...},
/// "broadcast": false, "allow_responses": true | {"max": 1, "expires_ms": 60000}}` (each part
/// optional; `true` is max 1, no expiry).
/// Throws std::invalid_argument naming what is wrong (not an object, a pattern that is not valid).
permissions parse_permissions(std::string_view json_text);
/// Reads an --auth-roles file: `{"default_role": "...", "roles": {"name": <permissions>, ...}}`.
/// Throws std::runtime_error naming the file and what is wrong.
role_table read_roles_file(const std::string& path);

} // namespace flowbus::transport
