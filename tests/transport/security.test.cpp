// Issue 20's table: one node with everything on — tokens, agent keys, roles, an origin list and
// a rate limit — and every kind of unauthorized operation against it, each with its typed answer:
// refused registrations close their own connection (ERROR 76–79), a cross-origin page gets 403,
// refused operations get NACK 113 / 114 on a connection that stays. All of them refused, and none
// of them reaching or disturbing the agents beside them.
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/reasons.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <string>

using namespace flowbus;
using namespace flowbus::test;
using transport::reason;

namespace {

struct secured_node {
  std::shared_ptr<transport::token_keys> tokens = std::make_shared<transport::token_keys>();
  transport::agent_identity key = transport::agent_identity::generate();
  std::unique_ptr<edge> e;

  secured_node() {
    tokens->add("k1", std::string(32, 'k'));
    auto keys = std::make_shared<transport::agent_keys>();
    transport::token_claims c;
    c.id_pattern = "keyed-*";
    c.role = "worker";
    keys->add(key.public_key(), c);
    auto roles = std::make_shared<transport::role_table>();
    roles->roles["worker"] = transport::parse_permissions(
        R"({"publish": {"allow": ["results.>"], "deny": ["results.admin.>"]}, "subscribe": {"allow": ["tasks.*"]},
            "unicast": {"allow": ["coordinator"]}, "broadcast": false, "allow_responses": true})");
    roles->roles["boss"] = transport::parse_permissions("{}");
    roles->default_role = "worker";
    transport::server_options o;
    o.auth = tokens;
    o.public_keys = keys;
    o.roles = roles;
    o.allowed_origins = {"https://dashboard.example"};
    o.limits.msgs_per_s = 2; // (a burst of 20, refilled slowly: the count below holds on a slow machine)
    o.limits.burst_msgs = 20;
    o.limits.action = transport::rate_limits::over::refuse;
    e = std::make_unique<edge>(o);
  }
  std::string token(const std::string& id, std::int64_t ttl_s = 3600, const std::string& role = {}) const {
    transport::token_claims c;
    c.id_pattern = id;
    c.expires = static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u) + ttl_s;
    c.key_id = "k1";
    c.role = role;
    return tokens->issue(c);
  }
};

/// A raw peer registered with `token` (checked: WELCOME); the CHALLENGE before it is skipped.
void join_with(raw_peer& p, const std::string& id, const std::string& token) {
  codec::message r;
  r.type = codec::msg_type::register_agent;
  r.set(codec::field::source, id);
  r.set(codec::field::token, token);
  p.send(r);
  auto f = p.next();
  while (f && f->type == codec::msg_type::challenge)
    f = p.next();
  REQUIRE(f);
  REQUIRE(f->type == codec::msg_type::welcome);
}

/// The ERROR code a refused REGISTER closed `p` with.
std::uint64_t refusal(raw_peer& p) {
  std::uint64_t code = 0;
  for (const got_frame& f : p.until_closed(3s))
    if (f.type == codec::msg_type::error && !code) code = f.error_code;
  CHECK(p.closed());
  return code;
}

} // namespace

TEST_SUITE("security") {
  TEST_CASE("every unauthorized operation gets its typed answer, and none reaches or disturbs anyone else") {
    secured_node n;
    edge& e = *n.e;
    // the bystanders: a coordinator (role boss) receiving results, and a worker doing its job
    raw_peer boss(e.port());
    join_with(boss, "coordinator", n.token("coordinator", 3600, "boss"));
    codec::message sub;
    sub.type = codec::msg_type::subscribe;
    sub.set_topic("results.>");
    sub.set(codec::field::message_id, 1);
    boss.send(sub);
    REQUIRE(boss.next()->type == codec::msg_type::ack);
    raw_peer worker(e.port());
    join_with(worker, "worker-1", n.token("worker-*"));

    // registrations: refused, typed, closing that connection only
    const transport::agent_identity stranger = transport::agent_identity::generate();
    std::string replayed;
    {
      raw_peer first(e.port());
      const auto c = first.next();
      REQUIRE(c);
      replayed = n.key.sign(c->nonce);
    }
    std::string tampered = n.token("worker-*");
    tampered[tampered.find('.') + 3] ^= 1;
    struct creds {
      std::string token, key, signature;
    };
    transport::token_keys other;
    other.add("k9", std::string(32, 'x'));
    transport::token_claims foreign;
    foreign.id_pattern = "worker-*";
    foreign.expires = 9999999999;
    foreign.key_id = "k9";
    struct reg_row {
      const char* what;
      std::string id;
      std::function<creds(const std::string& nonce)> credentials;
      reason want;
    };
    const reg_row regs[] = {
        {"no credentials", "worker-2", [](const std::string&) { return creds{}; }, reason::auth_required},
        {"an expired token", "worker-2", [&](const std::string&) { return creds{n.token("worker-*", -10), {}, {}}; },
         reason::token_expired},
        {"a tampered token", "worker-2", [&](const std::string&) { return creds{tampered, {}, {}}; }, reason::auth_failed},
        {"a token of a key the node lacks", "worker-2", [&](const std::string&) { return creds{other.issue(foreign), {}, {}}; },
         reason::auth_failed},
        {"id takeover with a token", "coordinator", [&](const std::string&) { return creds{n.token("worker-*"), {}, {}}; },
         reason::id_not_permitted},
        {"a replayed nonce signature", "keyed-1", [&](const std::string&) { return creds{{}, n.key.public_key(), replayed}; },
         reason::auth_failed},
        {"an unknown key", "keyed-1",
         [&](const std::string& nonce) { return creds{{}, stranger.public_key(), stranger.sign(nonce)}; }, reason::auth_failed},
        {"id takeover with a key", "coordinator",
         [&](const std::string& nonce) { return creds{{}, n.key.public_key(), n.key.sign(nonce)}; }, reason::id_not_permitted},
    };
    for (const reg_row& r : regs) {
      CAPTURE(r.what);
      raw_peer p(e.port());
      const auto c = p.next();
      REQUIRE(c);
      REQUIRE(c->type == codec::msg_type::challenge);
      const creds cr = r.credentials(c->nonce);
      codec::message m;
      m.type = codec::msg_type::register_agent;
      m.set(codec::field::source, r.id);
      if (!cr.token.empty()) m.set(codec::field::token, cr.token);
      if (!cr.key.empty()) m.set(codec::field::public_key, cr.key);
      if (!cr.signature.empty()) m.set(codec::field::signature, cr.signature);
      p.send(m);
      CHECK(refusal(p) == transport::code_of(r.want));
    }
    // a good key registers (beside tokens)
    {
      raw_peer keyed(e.port());
      const auto c = keyed.next();
      REQUIRE(c);
      const std::string k = n.key.public_key(), sig = n.key.sign(c->nonce);
      codec::message m;
      m.type = codec::msg_type::register_agent;
      m.set(codec::field::source, "keyed-1");
      m.set(codec::field::public_key, k);
      m.set(codec::field::signature, sig);
      keyed.send(m);
      const auto w = keyed.next();
      REQUIRE(w);
      CHECK(w->type == codec::msg_type::welcome);
    }
    // a browser page from another origin
    CHECK(upgrade_with_origin(e.port(), "https://evil.example").status == 403);

    // operations of the registered worker: allowed ones ACKed, the others NACK 113, in one table
    std::uint64_t id = 100;
    auto op = [&](codec::msg_type type, const std::string& topic, const std::string& target, bool broadcast) {
      codec::message m;
      m.type = type;
      m.flags |= codec::flag::ack_requested;
      m.set(codec::field::message_id, ++id);
      if (!topic.empty()) m.set_topic(topic);
      if (!target.empty()) m.set(codec::field::target, target);
      if (broadcast) m.flags |= codec::flag::broadcast;
      m.payload = codec::bytes_view(std::string_view("x"));
      worker.send(m);
      const auto f = worker.next();
      REQUIRE(f);
      CHECK(f->message_id == id);
      return f->type == codec::msg_type::ack ? 0 : f->error_code;
    };
    const std::uint64_t denied = transport::code_of(actors::errc::not_permitted);
    struct op_row {
      const char* what;
      codec::msg_type type;
      std::string topic, target;
      bool broadcast;
      std::uint64_t want;
    };
    const op_row ops[] = {
        {"publish to an allowed topic", codec::msg_type::publish, "results.1", "", false, 0},
        {"publish outside the allow list", codec::msg_type::publish, "tasks.new", "", false, denied},
        {"publish to a denied topic inside the allow list", codec::msg_type::publish, "results.admin.x", "", false, denied},
        {"subscribe to an allowed pattern", codec::msg_type::subscribe, "tasks.*", "", false, 0},
        {"subscribe wider than allowed", codec::msg_type::subscribe, "tasks.>", "", false, denied},
        {"subscribe to everything", codec::msg_type::subscribe, ">", "", false, denied},
        {"send to an allowed agent", codec::msg_type::publish, "", "coordinator", false, 0},
        {"send to another agent", codec::msg_type::publish, "", "worker-9", false, denied},
        {"broadcast", codec::msg_type::publish, "", "", true, denied},
    };
    for (const op_row& r : ops) {
      CAPTURE(r.what);
      CHECK(op(r.type, r.topic, r.target, r.broadcast) == r.want);
    }
    // over the rate: the rest of its burst goes, what is beyond gets NACK 114; the connection stays
    std::size_t over = 0;
    for (int i = 0; i < 30; ++i)
      over += op(codec::msg_type::publish, "results.burst", "", false) == transport::code_of(actors::errc::rate_limited);
    CHECK(over >= 10);
    CHECK_FALSE(worker.closed());

    // the coordinator got exactly what was allowed: the publish, the message by id, and the
    // burst's share — nothing refused reached it, and it is still served
    std::size_t got = 0;
    while (auto f = boss.next(300ms))
      if (f->type == codec::msg_type::publish) ++got;
    CHECK(got == 2 + (30 - over));
    const auto s = e.server.stats();
    CHECK(s.auth_refused == std::size(regs));
    CHECK(s.origins_refused == 1);
    CHECK(s.not_permitted == 6);
    CHECK(s.rate_limited == over);
    CHECK_FALSE(boss.closed());
  }
}
