// Permissions (issue 20, authorization): which topics an agent may publish to and subscribe to,
// deny over allow, NATS's semantics — as a table, and through a node: a refused publish or
// subscription gets its typed NACK or ERROR, is counted, and the connection (and everyone else)
// goes on.
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/permissions.hpp>
#include <flowbus/transport/reasons.hpp>

#include <doctest/doctest.h>

#include <cstdio>
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
}
