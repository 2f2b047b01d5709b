#include <flowbus/transport/permissions.hpp>

#include <flowbus/actors/topic_index.hpp> // pattern_matches, validate_pattern

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace flowbus::transport {
namespace {

using json = nlohmann::json;

std::vector<std::string_view> tokens(std::string_view p) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t dot = p.find('.', at);
    out.push_back(p.substr(at, dot == std::string_view::npos ? std::string_view::npos : dot - at));
    if (dot == std::string_view::npos) return out;
    at = dot + 1;
  }
}

bool any_matches(const std::vector<std::string>& patterns, std::string_view topic) {
  for (const std::string& p : patterns)
    if (actors::pattern_matches(p, topic)) return true;
  return false;
}

permission_list parse_list(const json& j, const char* what) {
  permission_list l;
  if (!j.is_object()) throw std::invalid_argument(std::string(what) + " is not an object");
  for (const char* key : {"allow", "deny"}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_array()) throw std::invalid_argument(std::string(what) + "." + key + " is not a list");
    for (const json& p : *it) {
      if (!p.is_string() || actors::validate_pattern(p.get_ref<const std::string&>()) != actors::topic_errc::ok)
        throw std::invalid_argument(std::string(what) + "." + key + " holds " + p.dump() + ", not a topic pattern");
      (key[0] == 'a' ? l.allow : l.deny).push_back(p.get<std::string>());
    }
  }
  return l;
}

permissions from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("permissions are not an object");
  permissions p;
  if (const auto it = j.find("publish"); it != j.end()) p.publish = parse_list(*it, "publish");
  if (const auto it = j.find("subscribe"); it != j.end()) p.subscribe = parse_list(*it, "subscribe");
  return p;
}

} // namespace

bool pattern_covers(std::string_view outer, std::string_view inner) noexcept {
  const auto o = tokens(outer), i = tokens(inner);
  for (std::size_t k = 0; k < o.size(); ++k) {
    if (o[k] == ">") return k < i.size(); // the tail: one token or more, whatever inner has there
    if (k >= i.size() || i[k] == ">") return false; // inner goes on where outer does not
    if (o[k] != "*" && (i[k] == "*" || o[k] != i[k])) return false;
  }
  return o.size() == i.size();
}

bool patterns_intersect(std::string_view a, std::string_view b) noexcept {
  const auto x = tokens(a), y = tokens(b);
  for (std::size_t k = 0;; ++k) {
    const bool x_end = k == x.size(), y_end = k == y.size();
    if (x_end || y_end) return x_end && y_end;
    if (x[k] == ">" || y[k] == ">") return true; // the other has a token here: both match it, and more
    if (x[k] != "*" && y[k] != "*" && x[k] != y[k]) return false;
  }
}

bool permissions::may_publish(std::string_view topic) const {
  if (any_matches(publish.deny, topic)) return false;
  return publish.allow.empty() || any_matches(publish.allow, topic);
}

bool permissions::may_subscribe(std::string_view pattern) const {
  for (const std::string& d : subscribe.deny)
    if (patterns_intersect(d, pattern)) return false;
  if (subscribe.allow.empty()) return true;
  for (const std::string& a : subscribe.allow)
    if (pattern_covers(a, pattern)) return true;
  return false;
}

permissions parse_permissions(std::string_view json_text) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded()) throw std::invalid_argument("permissions are not JSON");
  return from_json(j);
}

role_table read_roles_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read roles file " + path);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) throw std::runtime_error("roles file " + path + ": not a JSON object");
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
