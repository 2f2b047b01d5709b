// Tokens (issue 20): every way a token can be wrong gets its typed answer, at the token check
// (auth.hpp) and through a node (a refused REGISTER closes that connection with its ERROR; an
// expired token closes a registered one), and nothing of it touches the other agents.
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/reasons.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace flowbus;
using namespace flowbus::test;
using transport::auth_errc;
using transport::token_claims;
using transport::token_keys;

namespace {

const std::string key1(32, 'k'), key2 = "another key of at least 32 bytes, for rotation";

token_keys keys() {
  token_keys k;
  k.add("k1", key1);
  k.add("k2", key2);
  return k;
}

std::int64_t now_s() { return static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u); }

token_claims claims(std::string pattern, std::int64_t ttl_s = 3600, std::string kid = "k1") {
  token_claims c;
  c.id_pattern = std::move(pattern);
  c.expires = now_s() + ttl_s;
  c.key_id = std::move(kid);
  return c;
}

/// base64url of `s` (no padding), for hand-made tokens.
std::string b64url(const std::string& s) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(s[i]) << 16) | (static_cast<unsigned char>(s[i + 1]) << 8) |
                       static_cast<unsigned char>(s[i + 2]);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
  }
  if (i + 1 == s.size()) {
    const unsigned v = static_cast<unsigned char>(s[i]) << 16;
    out += {a[v >> 18], a[(v >> 12) & 63]};
  } else if (i + 2 == s.size()) {
    const unsigned v = (static_cast<unsigned char>(s[i]) << 16) | (static_cast<unsigned char>(s[i + 1]) << 8);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63]};
  }
  return out;
}

/// `token` with its part `part` (0 header, 1 claims, 2 signature) replaced.
std::string with_part(const std::string& token, int part, const std::string& replacement) {
  const std::size_t d1 = token.find('.'), d2 = token.find('.', d1 + 1);
  const std::string parts[3] = {token.substr(0, d1), token.substr(d1 + 1, d2 - d1 - 1), token.substr(d2 + 1)};
  std::string out;
  for (int i = 0; i < 3; ++i)
    out += (i ? "." : "") + (i == part ? replacement : parts[i]);
  return out;
}

} // namespace

TEST_SUITE("auth") {
  TEST_CASE("id patterns: equal, or '*' for any run of characters") {
    using transport::id_matches;
    CHECK(id_matches("worker-7", "worker-7"));
    CHECK_FALSE(id_matches("worker-7", "worker-70"));
    CHECK(id_matches("worker-*", "worker-70"));
    CHECK(id_matches("worker-*", "worker-"));
    CHECK_FALSE(id_matches("worker-*", "workers-1"));
    CHECK(id_matches("*", "anyone"));
    CHECK(id_matches("*-eu-*", "db-eu-3"));
    CHECK_FALSE(id_matches("*-eu-*", "db-us-3"));
    CHECK(id_matches("a*b*c", "aXXbYYc"));
    CHECK_FALSE(id_matches("a*b*c", "aXXbYY"));
    CHECK_FALSE(id_matches("", "x"));
  }

  TEST_CASE("every way a token is wrong, and its answer") {
    const token_keys k = keys();
    const std::int64_t now = now_s();
    const std::string good = k.issue(claims("worker-*"));
    CHECK(k.verify(good, "worker-1", "worker", now) == auth_errc::ok);
    token_claims got;
    REQUIRE(k.verify(good, "worker-1", "", now, &got) == auth_errc::ok);
    CHECK(got.id_pattern == "worker-*");
    CHECK(got.key_id == "k1");
    // key rotation: a token of the second key
    CHECK(k.verify(k.issue(claims("w", 60, "k2")), "w", "", now) == auth_errc::ok);

    struct row {
      const char* what;
      std::string token, id, type;
      auth_errc want;
    };
    token_claims typed = claims("svc");
    typed.agent_type = "coordinator";
    token_claims early = claims("svc");
    early.not_before = now + 600;
    // expiry relative to the `now` verify is given, not to the clock when issued: a second may tick
    // between the two
    token_claims past = claims("worker-*");
    past.expires = now - 1;
    token_claims at_now = claims("worker-*");
    at_now.expires = now;
    token_keys other;
    other.add("k1", std::string(32, 'x')); // the same kid, another secret: a forger's key
    const std::string header_none = b64url(R"({"alg":"none","typ":"JWT","kid":"k1"})");
    const std::string header_hs512 = b64url(R"({"alg":"HS512","typ":"JWT","kid":"k1"})");
    const std::string header_nokid = b64url(R"({"alg":"HS256","typ":"JWT"})");
    const std::string header_k9 = b64url(R"({"alg":"HS256","typ":"JWT","kid":"k9"})");
    const std::string claims_admin = b64url(R"({"sub":"*","exp":9999999999})");
    const row rows[] = {
        {"no token", "", "worker-1", "", auth_errc::missing},
        {"not a token", "hello", "worker-1", "", auth_errc::malformed},
        {"two parts", "a.b", "worker-1", "", auth_errc::malformed},
        {"four parts", good + ".x", "worker-1", "", auth_errc::malformed},
        {"not base64url", with_part(good, 1, "$$$"), "worker-1", "", auth_errc::malformed},
        {"header not JSON", with_part(good, 0, b64url("nope")), "worker-1", "", auth_errc::malformed},
        {"alg none", with_part(with_part(good, 0, header_none), 2, ""), "worker-1", "", auth_errc::malformed},
        {"alg none, signature kept", with_part(good, 0, header_none), "worker-1", "", auth_errc::unsupported_algorithm},
        {"alg HS512", with_part(good, 0, header_hs512), "worker-1", "", auth_errc::unsupported_algorithm},
        {"no kid", with_part(good, 0, header_nokid), "worker-1", "", auth_errc::unknown_key},
        {"unknown kid", with_part(good, 0, header_k9), "worker-1", "", auth_errc::unknown_key},
        {"tampered claims (sub widened to *)", with_part(good, 1, claims_admin), "admin", "", auth_errc::bad_signature},
        {"signed with another secret", other.issue(claims("worker-*")), "worker-1", "", auth_errc::bad_signature},
        {"signature cut short", good.substr(0, good.size() - 4), "worker-1", "", auth_errc::bad_signature},
        {"expired", k.issue(past), "worker-1", "", auth_errc::expired},
        {"expiring now", k.issue(at_now), "worker-1", "", auth_errc::expired},
        {"not yet valid", k.issue(early), "svc", "", auth_errc::not_yet_valid},
        {"another id (a takeover attempt)", good, "coordinator", "", auth_errc::id_not_permitted},
        {"the pattern's prefix only", good, "worker", "", auth_errc::id_not_permitted},
        {"another type", k.issue(typed), "svc", "worker", auth_errc::type_not_permitted},
        {"the right type", k.issue(typed), "svc", "coordinator", auth_errc::ok},
    };
    for (const row& r : rows) {
      CAPTURE(r.what);
      CHECK(k.verify(r.token, r.id, r.type, now) == r.want);
    }
  }

  TEST_CASE("keys: at least 32 bytes, ids unique; issuing needs the key") {
    token_keys k;
    CHECK_THROWS_AS(k.add("short", std::string(31, 'k')), std::invalid_argument);
    CHECK_THROWS_AS(k.add("", key1), std::invalid_argument);
    k.add("k1", key1);
    CHECK_THROWS_AS(k.add("k1", key2), std::invalid_argument);
    CHECK_THROWS_AS(k.issue(claims("x", 60, "k2")), std::invalid_argument);
    CHECK(k.size() == 1);
  }

  TEST_CASE("the golden token of protocol.md §12") {
    token_keys k;
    k.add("k1", "flowbus-example-key-0123456789abcdef"); // 36 bytes
    token_claims c;
    c.id_pattern = "worker-*";
    c.agent_type = "worker";
    c.expires = 1893456000; // 2030-01-01T00:00:00Z
    c.key_id = "k1";
    const std::string t = k.issue(c);
    CHECK(t == "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
               "eyJhZ2VudF90eXBlIjoid29ya2VyIiwiZXhwIjoxODkzNDU2MDAwLCJzdWIiOiJ3b3JrZXItKiJ9."
               "QuF2FzSuSK5-zyE-fcBIax5a6vLyuJLnWC9sZRlXlX8");
    CHECK(k.verify(t, "worker-3", "worker", 1893455999) == auth_errc::ok);
    CHECK(k.verify(t, "worker-3", "worker", 1893456000) == auth_errc::expired);
  }
}

namespace {

/// A node that requires tokens of keys() (server_options::auth).
transport::server_options auth_on() {
  transport::server_options o;
  o.auth = std::make_shared<const token_keys>(keys());
  return o;
}

/// REGISTER as `id` with `token` (none if empty) and a subscription (if any), by a raw peer.
void register_with(raw_peer& p, const std::string& id, const std::string& token, const std::string& sub = {}) {
  codec::message m;
  m.type = codec::msg_type::register_agent;
  m.set(codec::field::source, id);
  if (!token.empty()) m.set(codec::field::token, token);
  const codec::repeated_entry s{codec::field::subscription, sub, {}};
  if (!sub.empty()) m.repeated = codec::repeated_fields(&s, 1);
  p.send(m);
}

/// The ERROR code the node closed `p` with (0: none), after its REGISTER.
std::uint64_t refusal(raw_peer& p, std::string* why = nullptr) {
  std::uint64_t code = 0;
  for (const got_frame& f : p.until_closed(3s))
    if (f.type == codec::msg_type::error && !code) {
      code = f.error_code;
      if (why) *why = f.reason;
    }
  CHECK(p.closed());
  return code;
}

} // namespace

TEST_SUITE("auth") {
  TEST_CASE("through a node: a good token registers; every refusal is typed, closes that connection only") {
    edge e(auth_on());
    const token_keys k = keys();
    raw_peer coordinator(e.port()); // registered first, with its own token
    register_with(coordinator, "coordinator", k.issue(claims("coordinator")), "tasks.>");
    auto w = coordinator.next();
    REQUIRE(w);
    REQUIRE(w->type == codec::msg_type::welcome);

    struct row {
      const char* what;
      std::string id, token;
      transport::reason want;
    };
    const row rows[] = {
        {"no token", "worker-1", "", transport::reason::auth_required},
        {"garbage", "worker-1", "not-a-token", transport::reason::auth_failed},
        {"tampered", "worker-1", with_part(k.issue(claims("worker-*")), 1, b64url(R"({"sub":"*","exp":9999999999})")),
         transport::reason::auth_failed},
        {"unknown key", "worker-1", with_part(k.issue(claims("worker-*")), 0, b64url(R"({"alg":"HS256","kid":"k9"})")),
         transport::reason::auth_failed},
        {"expired", "worker-1", k.issue(claims("worker-*", -5)), transport::reason::token_expired},
        {"takeover of the coordinator's id", "coordinator", k.issue(claims("worker-*")),
         transport::reason::id_not_permitted},
    };
    for (const row& r : rows) {
      CAPTURE(r.what);
      raw_peer p(e.port());
      register_with(p, r.id, r.token);
      std::string why;
      CHECK(refusal(p, &why) == transport::code_of(r.want));
      CHECK(why.find("refused") != std::string::npos);
    }
    CHECK(e.server.stats().auth_refused == std::size(rows));

    // the coordinator kept its id and its traffic: a worker with a good token reaches it (a token
    // good for centuries: its expiry is further than a timer's nanoseconds reach)
    raw_peer worker(e.port());
    register_with(worker, "worker-1", k.issue(claims("worker-*", 99999999999 - now_s())));
    w = worker.next();
    REQUIRE(w);
    REQUIRE(w->type == codec::msg_type::welcome);
    worker.send_publish("tasks.new", "for the coordinator");
    const auto got = coordinator.next();
    REQUIRE(got);
    CHECK(got->payload == "for the coordinator");
    CHECK(got->source == "worker-1");
  }

  TEST_CASE("a token that expires during the connection closes it: ERROR 78; the C++ client does not retry it") {
    edge e(auth_on());
    const token_keys k = keys();
    raw_peer p(e.port());
    register_with(p, "short-lived", k.issue(claims("short-lived", 2)));
    const auto w = p.next();
    REQUIRE(w);
    REQUIRE(w->type == codec::msg_type::welcome);
    CHECK(refusal(p) == transport::code_of(transport::reason::token_expired)); // within 3 s
    CHECK(e.server.stats().tokens_expired == 1);

    transport::client_options o = client_opts(e.port(), "client-1");
    o.token = k.issue(claims("client-*"));
    transport::client good(o);
    CHECK(good.connect(3s) == actors::errc::ok);
    o.id = "intruder";
    transport::client bad(o); // a token that does not allow this id
    CHECK(bad.connect(3s) == actors::errc::unauthenticated);
    CHECK_FALSE(bad.connected());
    o.token.clear();
    transport::client none(o);
    CHECK(none.connect(3s) == actors::errc::unauthenticated);
  }
}
