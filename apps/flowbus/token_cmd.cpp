#include "token_cmd.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/auth.hpp>

#include <cstdio>
#include <exception>
#include <memory>

namespace flowbus::app {

long long parse_duration_s(const std::string& s) {
  if (s.empty()) return -1;
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(s, &used);
  } catch (const std::exception&) {
    return -1;
  }
  if (n <= 0) return -1;
  const std::string unit = s.substr(used);
  if (unit.empty() || unit == "s") return n;
  if (unit == "m") return n * 60;
  if (unit == "h") return n * 3600;
  if (unit == "d") return n * 86400;
  return -1;
}

int run_token(const token_options& o) {
  const long long ttl = parse_duration_s(o.ttl);
  if (ttl <= 0) return std::fprintf(stderr, "flowbus token: --ttl '%s' is not a duration (90s, 30m, 12h, 7d)\n", o.ttl.c_str()), 2;
  try {
    transport::token_keys keys;
    keys.add(o.key_id, transport::read_key_file(o.key_file));
    transport::token_claims c;
    c.id_pattern = o.id;
    c.agent_type = o.type;
    c.role = o.role;
    if (!o.permissions.empty())
      c.perms = std::make_shared<const transport::permissions>(transport::parse_permissions(o.permissions));
    c.key_id = o.key_id;
    c.issued_at = static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u);
    c.expires = c.issued_at + ttl;
    std::printf("%s\n", keys.issue(c).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus token: %s\n", e.what());
    return 2;
  }
}

} // namespace flowbus::app
