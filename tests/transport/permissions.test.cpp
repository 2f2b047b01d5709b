// Permissions (issue 20, authorization): which topics an agent may publish to and subscribe to,
// deny over allow, NATS's semantics — as a table, and through a node: a refused publish or
// subscription gets its typed NACK or ERROR, is counted, and the connection (and everyone else)
// goes on.
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/permissions.hpp>
#include <flowbus/transport/reasons.hpp>

#include "transport/src/response_grants.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace flowbus;
using namespace flowbus::test;
using transport::permissions;

TEST_SUITE("permissions") {
  TEST_CASE("covers and intersects, token by token") {
    using actors::pattern_covers;
    using actors::patterns_intersect;
    struct row {
      const char *a, *b;
      bool covers, intersects;
    };
    const row rows[] = {
        {"a.b", "a.b", true, true},       {"a.b", "a.c", false, false},   {"a.*", "a.b", true, true},
        {"a.b", "a.*", false, true},      {"a.*", "a.*", true, true},     {"a.*", "a.>", false, true},
        {"a.>", "a.b.c", true, true},     {"a.>", "a.*", true, true},     {"a.>", "a.>", true, true},
        {"a.>", "a", false, false},       {">", "x.y", true, true},       {"*", "x.y", false, false},
        {"a.*.c", "a.b.c", true, true},   {"a.*.c", "a.b.d", false, false}, {"a.b.>", "a.>", false, true},
        {"*.b", "a.*", false, true},      {"a.b.c", "a.b", false, false},
    };
    for (const row& r : rows) {
      CAPTURE(r.a);
      CAPTURE(r.b);
      CHECK(pattern_covers(r.a, r.b) == r.covers);
      CHECK(patterns_intersect(r.a, r.b) == r.intersects);
      CHECK(patterns_intersect(r.b, r.a) == r.intersects); // symmetric
    }
  }

  TEST_CASE("publish and subscribe: allowed, denied, deny over allow, wildcard edges") {
    permissions p = transport::parse_permissions(R"({
      "publish": {"allow": ["tasks.>", "status.*"], "deny": ["tasks.admin.>"]},
      "subscribe": {"allow": ["results.*", "status.>"], "deny": ["status.secret"]}})");
    struct row {
      const char* what;
      bool publish;
      const char* topic;
      bool ok;
    };
    const row rows[] = {
        {"allowed", true, "tasks.new", true},
        {"allowed, deep", true, "tasks.a.b.c", true},
        {"deny over allow", true, "tasks.admin.reset", false},
        {"not in allow", true, "results.x", false},
        {"'*' is one token", true, "status.a.b", false},
        {"subscribe allowed", false, "results.7", true},
        {"subscribe with '*' inside an allow", false, "results.*", true},
        {"subscribe wider than allow", false, "results.>", false},
        {"subscribe not in allow", false, "tasks.new", false},
        {"subscribe to '>'", false, ">", false},
        {"subscribe exactly denied", false, "status.secret", false},
        {"subscribe whose '*' reaches a denied topic", false, "status.*", false},
        {"subscribe beside the denied one", false, "status.public.x", true},
    };
    for (const row& r : rows) {
      CAPTURE(r.what);
      CHECK((r.publish ? p.may_publish(r.topic) : p.may_subscribe(r.topic)) == r.ok);
    }
    const permissions all;
    CHECK(all.may_publish("any.thing"));
    CHECK(all.may_subscribe(">"));
    CHECK_THROWS_AS(transport::parse_permissions(R"({"publish": {"allow": ["a..b"]}})"), std::invalid_argument);
    CHECK_THROWS_AS(transport::parse_permissions(R"({"publish": {"allow": "a.b"}})"), std::invalid_argument);
    CHECK_THROWS_AS(transport::parse_permissions("[]"), std::invalid_argument);
  }

  TEST_CASE("through a node: roles and a token's own permissions; refusals are typed, the connection stays") {
    const std::string roles_file = "/tmp/flowbus-roles-" + std::to_string(::getpid()) + ".json";
    {
      std::ofstream f(roles_file);
      f << R"({"default_role": "reader",
               "roles": {"reader": {"publish": {"deny": [">"]}, "subscribe": {"allow": ["news.>"]}},
                         "worker": {"publish": {"allow": ["results.>"]}, "subscribe": {"allow": ["tasks.*"]}}}})";
    }
    transport::server_options o;
    auto keys = std::make_shared<transport::token_keys>();
    keys->add("k1", std::string(32, 'k'));
    o.auth = keys;
    o.roles = std::make_shared<const transport::role_table>(transport::read_roles_file(roles_file));
    std::remove(roles_file.c_str());
    edge e(o);
    const auto now = static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u);
    auto token = [&](const std::string& id, const std::string& role, std::shared_ptr<const permissions> perms = {}) {
      transport::token_claims c;
      c.id_pattern = id;
      c.expires = now + 3600;
      c.key_id = "k1";
      c.role = role;
      c.perms = std::move(perms);
      return keys->issue(c);
    };

    transport::client_options co = client_opts(e.port(), "boss");
    co.token = token("boss", "", std::make_shared<const permissions>(transport::parse_permissions(R"({})")));
    transport::client boss(co); // its own permissions: everything
    REQUIRE(boss.connect(3s) == actors::errc::ok);
    inbox results;
    REQUIRE(boss.subscribe("results.>", results.handler()).get() == actors::errc::ok);

    co = client_opts(e.port(), "w1");
    co.token = token("w1", "worker");
    transport::client worker(co);
    REQUIRE(worker.connect(3s) == actors::errc::ok);
    inbox tasks;
    CHECK(worker.subscribe("tasks.*", tasks.handler()).get() == actors::errc::ok);
    CHECK(worker.subscribe("tasks.>", tasks.handler()).get() == actors::errc::not_permitted); // wider
    CHECK(worker.subscribe("news.x").get() == actors::errc::not_permitted);
    // an acknowledged publish outside its role: NACK not_permitted; inside: delivered
    CHECK(worker.publish_acked("tasks.new", "no").get() == actors::errc::not_permitted);
    CHECK(worker.publish_acked("results.7", "done").get() == actors::errc::ok);
    REQUIRE(eventually([&] { return results.size() == 1; }));
    CHECK(boss.publish("tasks.t1", "work") == actors::errc::ok);
    REQUIRE(eventually([&] { return tasks.size() == 1; }));
    CHECK(tasks.all().front() == "work");

    // the default role (no role in the token): may not publish at all; a plain publish gets an
    // ERROR naming the permission and the connection stays
    raw_peer reader(e.port());
    {
      codec::message r;
      r.type = codec::msg_type::register_agent;
      r.set(codec::field::source, "reader-1");
      const std::string t = token("reader-*", "");
      r.set(codec::field::token, t);
      reader.send(r);
      const auto w = reader.next();
      REQUIRE(w);
      REQUIRE(w->type == codec::msg_type::welcome);
    }
    reader.send_publish("results.x", "sneaky");
    const auto err = reader.next();
    REQUIRE(err);
    CHECK(err->type == codec::msg_type::error);
    CHECK(err->error_code == transport::code_of(actors::errc::not_permitted));
    CHECK(err->reason.find("publish to 'results.x'") != std::string::npos);
    CHECK_FALSE(reader.next(300ms)); // nothing else: not closed
    CHECK_FALSE(reader.closed());
    CHECK(results.size() == 1);   // the refused message reached nobody

    // a REGISTER whose subscription is not permitted is refused; a role the node lacks too
    raw_peer greedy(e.port());
    {
      codec::message r;
      r.type = codec::msg_type::register_agent;
      r.set(codec::field::source, "reader-2");
      const std::string t = token("reader-*", "");
      r.set(codec::field::token, t);
      const codec::repeated_entry sub{codec::field::subscription, ">", {}};
      r.repeated = codec::repeated_fields(&sub, 1);
      greedy.send(r);
    }
    std::uint64_t first = 0;
    for (const got_frame& f : greedy.until_closed(3s))
      if (f.type == codec::msg_type::error && !first) first = f.error_code;
    CHECK(first == transport::code_of(actors::errc::not_permitted));
    co = client_opts(e.port(), "x1");
    co.token = token("x1", "no-such-role");
    transport::client lost(co);
    CHECK(lost.connect(3s) == actors::errc::unauthenticated);

    CHECK(e.server.stats().not_permitted == 5); // 2 subscribes, 1 acked publish, 1 plain, 1 REGISTER
  }

  TEST_CASE("by id: unicast allow/deny of agent ids, broadcast off, parsed and refused") {
    const permissions p = transport::parse_permissions(
        R"({"unicast": {"allow": ["coordinator", "db-*"], "deny": ["db-admin"]}, "broadcast": false,
            "allow_responses": {"max": 2, "expires_ms": 500}})");
    CHECK(p.may_unicast("coordinator"));
    CHECK(p.may_unicast("db-3"));
    CHECK_FALSE(p.may_unicast("db-admin")); // deny wins
    CHECK_FALSE(p.may_unicast("worker-1"));
    CHECK_FALSE(p.broadcast);
    CHECK(p.allow_responses.max == 2);
    CHECK(p.allow_responses.expires == std::chrono::milliseconds(500));
    CHECK(transport::parse_permissions(R"({"allow_responses": true})").allow_responses.max == 1);
    CHECK(transport::parse_permissions(R"({})").broadcast);
    CHECK(transport::parse_permissions(R"({})").may_unicast("anyone"));
    CHECK_THROWS_AS(transport::parse_permissions(R"({"unicast": {"allow": [""]}})"), std::invalid_argument);
    CHECK_THROWS_AS(transport::parse_permissions(R"({"broadcast": "no"})"), std::invalid_argument);
    CHECK_THROWS_AS(transport::parse_permissions(R"({"allow_responses": {"max": -1}})"), std::invalid_argument);
  }

  TEST_CASE("allow_responses: as many replies as allowed, to a request received, within its expiry") {
    using transport::detail::response_grants;
    response_grants g;
    const response_grants::clock::time_point t0{};
    g.granted("client-1", 7, 2, std::chrono::milliseconds(100), t0);
    CHECK_FALSE(g.use("client-2", 7, t0)); // another requester
    CHECK_FALSE(g.use("client-1", 8, t0)); // another request
    CHECK(g.use("client-1", 7, t0 + std::chrono::milliseconds(10)));
    CHECK(g.use("client-1", 7, t0 + std::chrono::milliseconds(20)));
    CHECK_FALSE(g.use("client-1", 7, t0 + std::chrono::milliseconds(30))); // max 2
    g.granted("client-1", 9, 1, std::chrono::milliseconds(100), t0);
    CHECK_FALSE(g.use("client-1", 9, t0 + std::chrono::milliseconds(101))); // expired
    for (std::uint64_t i = 0; i < response_grants::capacity + 10; ++i)
      g.granted("c", i, 1, std::chrono::milliseconds(0), t0);
    CHECK(g.size() == response_grants::capacity);
    CHECK_FALSE(g.use("c", 0, t0));                              // the oldest went
    CHECK(g.use("c", response_grants::capacity + 9, t0 + std::chrono::hours(1))); // no expiry
  }

  TEST_CASE("through a node: unicast, broadcast and replies by permission; refusals typed, the connection stays") {
    transport::server_options o;
    auto keys = std::make_shared<transport::token_keys>();
    keys->add("k1", std::string(32, 'k'));
    o.auth = keys;
    edge e(o);
    const auto now = static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u);
    auto token = [&](const std::string& id, const std::string& perms) {
      transport::token_claims c;
      c.id_pattern = id;
      c.expires = now + 3600;
      c.key_id = "k1";
      c.perms = std::make_shared<const permissions>(transport::parse_permissions(perms));
      return keys->issue(c);
    };
    auto connect = [&](const std::string& id, const std::string& perms) {
      transport::client_options co = client_opts(e.port(), id);
      co.token = token(id, perms);
      auto c = std::make_unique<transport::client>(co);
      REQUIRE(c->connect(3s) == actors::errc::ok);
      return c;
    };
    inbox to_boss;
    auto boss = connect("coordinator", "{}");
    boss->on_message(to_boss.handler());
    auto client = connect("client-1", "{}");
    raw_peer worker(e.port());
    {
      codec::message r;
      r.type = codec::msg_type::register_agent;
      r.set(codec::field::source, "worker-1");
      const std::string t =
          token("worker-1", R"({"unicast": {"allow": ["coordinator"]}, "broadcast": false, "allow_responses": true})");
      r.set(codec::field::token, t);
      worker.send(r);
      const auto w = worker.next();
      REQUIRE(w);
      REQUIRE(w->type == codec::msg_type::welcome);
    }
    // a message by id (acknowledged when `id`), or a broadcast, or a REPLY with `correlation`
    auto send = [&](codec::msg_type type, const std::string& to, std::uint64_t id, std::uint64_t correlation = 0) {
      codec::message m;
      m.type = type;
      if (to.empty()) m.flags |= codec::flag::broadcast;
      else m.set(codec::field::target, to);
      if (id) {
        m.flags |= codec::flag::ack_requested;
        m.set(codec::field::message_id, id);
      }
      if (correlation) m.set(codec::field::correlation_id, correlation);
      m.payload = codec::bytes_view(std::string_view("payload"));
      worker.send(m);
      return worker.next();
    };
    auto f = send(codec::msg_type::publish, "coordinator", 1); // allowed
    REQUIRE(f);
    CHECK(f->type == codec::msg_type::ack);
    REQUIRE(eventually([&] { return to_boss.size() == 1; }));
    f = send(codec::msg_type::publish, "client-1", 2); // not in its unicast allow list
    REQUIRE(f);
    CHECK(f->type == codec::msg_type::nack);
    CHECK(f->error_code == transport::code_of(actors::errc::not_permitted));
    f = send(codec::msg_type::publish, "", 3); // a broadcast
    REQUIRE(f);
    CHECK(f->type == codec::msg_type::nack);
    CHECK(f->error_code == transport::code_of(actors::errc::not_permitted));

    // a request from the client: the worker may answer it once, though it may not send to the client
    auto pending = client->request(actors::destination::agent("worker-1"), "job", 3s);
    const auto req = worker.next();
    REQUIRE(req);
    REQUIRE(req->type == codec::msg_type::request);
    CHECK(req->source == "client-1");
    f = send(codec::msg_type::reply, "client-1", 0, req->correlation_id + 1); // not a request it received
    REQUIRE(f);
    CHECK(f->type == codec::msg_type::error);
    CHECK(f->reason.find("reply to 'client-1'") != std::string::npos);
    codec::message answer;
    answer.type = codec::msg_type::reply;
    answer.set(codec::field::target, "client-1");
    answer.set(codec::field::correlation_id, req->correlation_id);
    answer.payload = codec::bytes_view(std::string_view("result"));
    worker.send(answer);
    const auto r = pending.get();
    CHECK(r.code == actors::errc::ok);
    CHECK(r.payload == "result");
    f = send(codec::msg_type::reply, "client-1", 0, req->correlation_id); // a second answer: max 1
    REQUIRE(f);
    CHECK(f->type == codec::msg_type::error);
    CHECK(f->error_code == transport::code_of(actors::errc::not_permitted));
    CHECK_FALSE(worker.closed());
    CHECK(e.server.stats().not_permitted == 4);
    CHECK(to_boss.size() == 1);
  }

  TEST_CASE("a roles file in TOML says what the JSON one says; a bad one is refused naming the file") {
    char dir[] = "/tmp/flowbus-roles-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string toml_file = std::string(dir) + "/roles.toml", bad = std::string(dir) + "/bad.toml";
    std::ofstream(toml_file) << R"(default_role = "reader"

[roles.reader]
publish = { deny = [">"] }
subscribe = { allow = ["news.>"] }
broadcast = false

[roles.worker]
publish = { allow = ["results.>"], deny = ["results.admin.>"] }
unicast = { allow = ["coordinator"] }
allow_responses = { max = 2, expires_ms = 60000 }
)";
    std::ofstream(bad) << "[roles.x]\npublish = { allow = [\"bad..pattern\"] }\n";
    const transport::role_table t = transport::read_roles_file(toml_file);
    CHECK(t.default_role == "reader");
    REQUIRE(t.roles.count("reader") == 1);
    REQUIRE(t.roles.count("worker") == 1);
    const permissions& reader = t.roles.at("reader");
    const permissions& worker = t.roles.at("worker");
    CHECK_FALSE(reader.may_publish("news.x"));
    CHECK(reader.may_subscribe("news.sport.*"));
    CHECK_FALSE(reader.broadcast);
    CHECK(worker.may_publish("results.7"));
    CHECK_FALSE(worker.may_publish("results.admin.x"));
    CHECK(worker.may_unicast("coordinator"));
    CHECK_FALSE(worker.may_unicast("reader-1"));
    CHECK(worker.allow_responses.max == 2);
    CHECK(worker.allow_responses.expires == std::chrono::milliseconds(60000));
    try {
      transport::read_roles_file(bad);
      FAIL("a bad pattern was accepted");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("bad.toml") != std::string::npos);
      CHECK(std::string(e.what()).find("not a topic pattern") != std::string::npos);
    }
    std::ofstream(bad) << "[roles\n"; // not TOML
    CHECK_THROWS_AS(transport::read_roles_file(bad), std::runtime_error);
    std::filesystem::remove_all(dir);
  }
}
