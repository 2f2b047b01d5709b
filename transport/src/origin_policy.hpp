// Which browser pages may open a WebSocket to the node (issue 20: cross-site WebSocket hijacking).
// A browser sends `Origin` with every WebSocket handshake and lets any page connect anywhere, so a
// page on another site that a user opens could drive a node on that user's localhost. Programs
// (the C++ client, Python's websockets, Node's ws) send no Origin: they are not what this guards.
// No socket here: tested in transport.origin.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::transport::detail {

inline bool same_text(std::string_view a, std::string_view b) noexcept { // ASCII case-insensitive
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// Whether a handshake with `origin` (empty: no Origin header) is allowed: no Origin (not a
/// browser); an Origin listed in `allowed` (scheme://host[:port], compared without case and without
/// a trailing '/'); or `*` listed (any page — only for a node whose every agent is trusted).
/// Everything else is refused, `null` (a file or sandboxed page) included unless listed. A page is
/// not let in for having the origin of the Host it connects to: with DNS rebinding an attacker's
/// page gets exactly that (evil.example resolving to 127.0.0.1).
inline bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  while (!origin.empty() && origin.back() == '/')
    origin.remove_suffix(1);
  for (const std::string& a : allowed) {
    std::string_view want = a;
    while (!want.empty() && want.back() == '/')
      want.remove_suffix(1);
    if (want == "*" || same_text(want, origin)) return true;
  }
  return false;
}

} // namespace flowbus::transport::detail
