#include <flowbus/transport/permissions.hpp>

#include <flowbus/codec/topic.hpp> // pattern_matches, pattern_covers, patterns_intersect, validate_pattern
#include <flowbus/transport/auth.hpp>      // id_matches

#include <flowbus/transport/structured_file.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace flowbus::transport {
namespace {

using json = nlohmann::json;

bool any_matches(const std::vector<std::string>& patterns, std::string_view topic) {
  for (const std::string& p : patterns)
    if (codec::pattern_matches(p, topic)) return true;
  return false;
}

/// `{"allow": [...], "deny": [...]}` of strings `valid` accepts (`kind` names them in errors).
template <class Valid> permission_list parse_list(const json& j, const char* what, const char* kind, Valid valid) {
  permission_list l;
  if (!j.is_object()) throw std::invalid_argument(std::string(what) + " is not an object");
  for (const char* key : {"allow", "deny"}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_array()) throw std::invalid_argument(std::string(what) + "." + key + " is not a list");
    for (const json& p : *it) {
      if (!p.is_string() || !valid(p.get_ref<const std::string&>()))
        throw std::invalid_argument(std::string(what) + "." + key + " holds " + p.dump() + ", not " + kind);
      (key[0] == 'a' ? l.allow : l.deny).push_back(p.get<std::string>());
    }
  }
  return l;
}

permission_list parse_topics(const json& j, const char* what) {
  return parse_list(j, what, "a topic pattern",
                    [](const std::string& p) { return codec::validate_pattern(p) == codec::topic_errc::ok; });
}

/// Agent id patterns (`*`): non-empty strings.
permission_list parse_ids(const json& j, const char* what) {
  return parse_list(j, what, "an agent id pattern", [](const std::string& p) { return !p.empty(); });
}

permissions from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("permissions are not an object");
  permissions p;
  if (const auto it = j.find("publish"); it != j.end()) p.publish = parse_topics(*it, "publish");
  if (const auto it = j.find("subscribe"); it != j.end()) p.subscribe = parse_topics(*it, "subscribe");
  if (const auto it = j.find("unicast"); it != j.end()) p.unicast = parse_ids(*it, "unicast");
  if (const auto it = j.find("broadcast"); it != j.end()) {
    if (!it->is_boolean()) throw std::invalid_argument("broadcast is not true or false");
    p.broadcast = it->get<bool>();
  }
  if (const auto it = j.find("allow_responses"); it != j.end()) {
    if (it->is_boolean()) {
      p.allow_responses.max = it->get<bool>() ? 1 : 0;
    } else if (it->is_object()) {
      const auto max = it->value("max", json(1)), expires = it->value("expires_ms", json(0));
      if (!max.is_number_unsigned() || !expires.is_number_unsigned())
        throw std::invalid_argument("allow_responses.max and .expires_ms are not whole numbers");
      p.allow_responses.max = max.get<std::uint32_t>();
      p.allow_responses.expires = std::chrono::milliseconds(expires.get<std::uint64_t>());
    } else {
      throw std::invalid_argument("allow_responses is not true, false or {\"max\": N, \"expires_ms\": T}");
    }
  }
  return p;
}

} // namespace

bool permissions::may_publish(std::string_view topic) const {
  if (any_matches(publish.deny, topic)) return false;
  return publish.allow.empty() || any_matches(publish.allow, topic);
}

bool permissions::may_subscribe(std::string_view pattern) const {
  for (const std::string& d : subscribe.deny)
    if (codec::patterns_intersect(d, pattern)) return false;
  if (subscribe.allow.empty()) return true;
  for (const std::string& a : subscribe.allow)
    if (codec::pattern_covers(a, pattern)) return true;
  return false;
}

bool permissions::may_unicast(std::string_view id) const {
  for (const std::string& d : unicast.deny)
    if (id_matches(d, id)) return false;
  if (unicast.allow.empty()) return true;
  for (const std::string& a : unicast.allow)
    if (id_matches(a, id)) return true;
  return false;
}

permissions parse_permissions(std::string_view json_text) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded()) throw std::invalid_argument("permissions are not JSON");
  return from_json(j);
}

role_table read_roles_file(const std::string& path) {
  const json j = read_json_or_toml(path, "roles file");
  if (!j.is_object()) throw std::runtime_error("roles file " + path + ": not an object");
  role_table t;
  try {
    if (const auto it = j.find("roles"); it != j.end()) {
      if (!it->is_object()) throw std::invalid_argument("roles is not an object");
      for (const auto& [name, perms] : it->items())
        t.roles.emplace(name, from_json(perms));
    }
    if (const auto it = j.find("default_role"); it != j.end()) {
      if (!it->is_string()) throw std::invalid_argument("default_role is not a string");
      t.default_role = it->get<std::string>();
      if (!t.roles.count(t.default_role)) throw std::invalid_argument("default_role '" + t.default_role + "' is not a role");
    }
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("roles file " + path + ": " + e.what());
  }
  return t;
}

} // namespace flowbus::transport
