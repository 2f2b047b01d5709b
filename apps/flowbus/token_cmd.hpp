// `flowbus token issue`: prints a signed token for an agent (docs/security.md).
#pragma once

#include <string>

namespace flowbus::app {

struct token_options {
  std::string action = "issue";
  std::string key_file;   ///< the signing key (raw bytes, or `hex:...`)
  std::string key_id;     ///< its id (the token's kid; the node's --auth-key kid=FILE)
  std::string id;         ///< the agent id or pattern (`worker-*`)
  std::string type;       ///< the agent type it must register with (empty: any)
  std::string role;       ///< a role name (empty: none)
  std::string permissions; ///< JSON permissions in place of a role (empty: none)
  std::string ttl = "1h"; ///< how long it is valid: 90s, 30m, 12h, 7d
};

/// Prints the token on stdout; 0, or 2 with the reason on stderr.
int run_token(const token_options& o);

/// "90s", "30m", "12h", "7d" (or plain seconds) in seconds; -1 if not one of these.
long long parse_duration_s(const std::string& s);

} // namespace flowbus::app
