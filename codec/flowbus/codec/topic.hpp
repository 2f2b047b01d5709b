// The topic rules of the wire format (docs/protocol.md §4): topics are dot-separated tokens
// (agent.worker.7.status); subscription patterns may use `*` for exactly one token and `>` (last
// only) for one or more trailing tokens. Every side checks them the same way — the node's routing
// table, the C++ client before it sends, permissions — so they live here, below both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace flowbus::codec {

enum class topic_errc : std::uint8_t {
  ok = 0,
  empty,             ///< "" is neither a topic nor a pattern
  empty_token,       ///< "a..b", ".a", "a."
  wildcard_in_topic, ///< a published topic contains `*` or `>`
  bad_wildcard,      ///< `*`/`>` not a whole token ("a.b*"), or `>` not last
  too_long,          ///< over max_topic_bytes
};
const char* to_string(topic_errc e) noexcept;

inline constexpr std::size_t max_topic_bytes = 255; ///< pooled-string bound of the wire format

/// A topic agents publish to: tokens, no wildcards.
topic_errc validate_topic(std::string_view topic) noexcept;
/// A subscription pattern: tokens, `*` tokens, optionally a final `>`.
topic_errc validate_pattern(std::string_view pattern) noexcept;
/// Whether a valid `pattern` matches a valid `topic` (one pair; an index is for many patterns).
bool pattern_matches(std::string_view pattern, std::string_view topic) noexcept;
/// Whether every topic `inner` matches is matched by `outer` (both valid patterns).
bool pattern_covers(std::string_view outer, std::string_view inner) noexcept;
/// Whether some topic is matched by both valid patterns.
bool patterns_intersect(std::string_view a, std::string_view b) noexcept;

/// Calls f(token, is_last) for each dot-separated token of `s`, in order, while f returns true.
template <class F> void for_each_token(std::string_view s, F&& f) {
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    const std::string_view tok = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    const bool last = dot == std::string_view::npos;
    if (!f(tok, last) || last) return;
    start = dot + 1;
  }
}

} // namespace flowbus::codec
