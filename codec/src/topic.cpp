#include <flowbus/codec/topic.hpp>

namespace flowbus::codec {

namespace {

topic_errc validate(std::string_view s, bool wildcards) noexcept {
  if (s.empty()) return topic_errc::empty;
  if (s.size() > max_topic_bytes) return topic_errc::too_long;
  topic_errc e = topic_errc::ok;
  for_each_token(s, [&](std::string_view tok, bool last) {
    if (tok.empty())
      e = topic_errc::empty_token;
    else if (tok.find_first_of("*>") != std::string_view::npos) {
      if (!wildcards)
        e = topic_errc::wildcard_in_topic;
      else if (tok.size() != 1 || (tok == ">" && !last))
        e = topic_errc::bad_wildcard;
    }
    return e == topic_errc::ok;
  });
  return e;
}

} // namespace

const char* to_string(topic_errc e) noexcept {
  switch (e) {
  case topic_errc::ok:
    return "ok";
  case topic_errc::empty:
    return "empty topic";
  case topic_errc::empty_token:
    return "empty token";
  case topic_errc::wildcard_in_topic:
    return "wildcard in a published topic";
  case topic_errc::bad_wildcard:
    return "wildcard must be a whole token, '>' only last";
  case topic_errc::too_long:
    return "topic too long";
  }
  return "?";
}

topic_errc validate_topic(std::string_view topic) noexcept { return validate(topic, false); }
topic_errc validate_pattern(std::string_view pattern) noexcept { return validate(pattern, true); }

namespace {

/// Walks a valid topic or pattern token by token, in place.
struct token_cursor {
  std::string_view rest;
  bool more;
  explicit token_cursor(std::string_view s) noexcept : rest(s), more(!s.empty()) {}
  std::string_view next() noexcept {
    const std::size_t dot = rest.find('.');
    const std::string_view token = rest.substr(0, dot);
    more = dot != std::string_view::npos;
    rest = more ? rest.substr(dot + 1) : std::string_view{};
    return token;
  }
};

} // namespace

bool pattern_matches(std::string_view pattern, std::string_view topic) noexcept {
  token_cursor p(pattern), t(topic);
  while (p.more) {
    const std::string_view pt = p.next();
    if (pt == ">") return t.more; // one or more remaining levels
    if (!t.more) return false;
    const std::string_view tt = t.next();
    if (pt != "*" && pt != tt) return false;
  }
  return !t.more;
}

bool pattern_covers(std::string_view outer, std::string_view inner) noexcept {
  token_cursor o(outer), i(inner);
  while (o.more) {
    const std::string_view ot = o.next();
    if (ot == ">") return i.more; // the tail: one token or more, whatever inner has there
    if (!i.more) return false;
    const std::string_view it = i.next();
    if (it == ">") return false; // inner goes on where outer does not
    if (ot != "*" && (it == "*" || ot != it)) return false;
  }
  return !i.more;
}

bool patterns_intersect(std::string_view a, std::string_view b) noexcept {
  token_cursor x(a), y(b);
  while (x.more && y.more) {
    const std::string_view xt = x.next(), yt = y.next();
    if (xt == ">" || yt == ">") return true; // the other has a token here: both match it, and more
    if (xt != "*" && yt != "*" && xt != yt) return false;
  }
  return !x.more && !y.more;
}

} // namespace flowbus::codec
