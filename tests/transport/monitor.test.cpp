// The monitoring port (issue 21): each endpoint over real HTTP against a node with agents, its
// figures checked against what the test sent — connections and their counters, routing tests,
// dead letters, the latency histograms per lane, /healthz's 503 — and bad requests answered.
#include "transport/transport_support.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/trace.hpp>
#include <flowbus/transport/monitor.hpp>

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <string>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;
using json = nlohmann::json;

namespace {

namespace http = beast::http;

struct http_answer {
  unsigned status = 0;
  std::string content_type, body;
  json j() const { return json::parse(body); }
};

/// One GET over a fresh connection, as curl would.
http_answer get(std::uint16_t port, const std::string& target) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {res.result_int(), std::string(res[http::field::content_type]), res.body()};
}

struct monitored : edge {
  transport::monitor mon;
  monitored() : edge(), mon(node, &server, options()) {}
  static transport::monitor_options options() {
    transport::monitor_options o;
    o.port = 0;
    o.server_name = "test-node";
    o.config_json = R"({"port": 0})";
    return o;
  }
  http_answer get(const std::string& target) { return ::get(mon.port(), target); }
};

const json* connection_named(const json& connz, const std::string& name) {
  for (const json& c : connz["connections"])
    if (c["name"] == name) return &c;
  return nullptr;
}

} // namespace

TEST_SUITE("monitor") {
  TEST_CASE("varz and connz count what the agents sent and received") {
    monitored m;
    inbox in;
    transport::client sub(client_opts(m.port(), "mon-sub")), pub(client_opts(m.port(), "mon-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("mon.>", in.handler()).get() == errc::ok);
    constexpr int n = 500;
    for (int i = 0; i < n; ++i)
      REQUIRE(pub.publish("mon.x", std::string(100, 'p')) == errc::ok);
    REQUIRE(eventually([&] { return in.size() == n; }, 10s));
    // the counters are added once per read pass or write: they settle as soon as the messages are through
    REQUIRE(eventually([&] {
      const json c = m.get("/connz").j();
      const json* s = connection_named(c, "mon-sub");
      return s && (*s)["out_msgs"] == n;
    }, 5s));

    const http_answer v = m.get("/varz");
    CHECK(v.status == 200);
    CHECK(v.content_type == "application/json");
    const json varz = v.j();
    CHECK(varz["server_name"] == "test-node");
    CHECK(varz["connections"] == 2);
    CHECK(varz["agents"] == 2);
    CHECK(varz["subscriptions"] == 1);
    CHECK(varz["out_msgs"] == n);
    CHECK(varz["in_msgs"].get<std::uint64_t>() >= n); // (REGISTER, SUBSCRIBE and heartbeats too)
    CHECK(varz["config"]["port"] == 0);
    CHECK(varz["mem"].get<std::uint64_t>() > 1'000'000);
    CHECK(varz["latency"]["age_at_delivery"]["count"] == n);
    CHECK(varz["latency"]["queued_in_node"]["count"] == n);
    // the publisher's route cache: one topic, so every lookup after the first is a hit (counted per 256)
    CHECK(varz["route_cache"]["lookups"].get<std::uint64_t>() >= 256);
    CHECK(varz["route_cache"]["hit_rate"].get<double>() > 0.99);

    const json connz = m.get("/connz?subs=1").j();
    CHECK(connz["total"] == 2);
    const json* s = connection_named(connz, "mon-sub");
    const json* p = connection_named(connz, "mon-pub");
    REQUIRE(s);
    REQUIRE(p);
    CHECK((*s)["agent_type"] == "test");
    CHECK((*s)["state"] == "open");
    CHECK((*s)["ip"] == "127.0.0.1");
    CHECK((*s)["subscriptions"] == 1);
    CHECK((*s)["subscriptions_list"] == json::array({"mon.>"}));
    CHECK((*s)["out_bytes"].get<std::uint64_t>() > n * 100);
    CHECK((*s)["breaker"] == "closed");
    CHECK((*p)["in_msgs"].get<std::uint64_t>() >= n);
    CHECK((*p)["in_bytes"].get<std::uint64_t>() > n * 100);
    CHECK((*p)["out_msgs"] == 0);
    CHECK((*p)["subscriptions"] == 0);
    CHECK((*p)["cid"].get<std::uint64_t>() > (*s)["cid"].get<std::uint64_t>()); // connected second

    // sort, limit, offset, as NATS's
    const json top = m.get("/connz?sort=msgs_to&limit=1").j();
    REQUIRE(top["connections"].size() == 1);
    CHECK(top["connections"][0]["name"] == "mon-sub");
    CHECK(top["total"] == 2);
    const json second = m.get("/connz?sort=msgs_to&limit=1&offset=1").j();
    REQUIRE(second["connections"].size() == 1);
    CHECK(second["connections"][0]["name"] == "mon-pub");
    CHECK(m.get("/connz?sort=bogus").status == 400);

    sub.close();
    REQUIRE(eventually([&] { return m.get("/varz").j()["connections"] == 1; }, 5s));
  }

  TEST_CASE("connz shows a stalled consumer's backlog, by lane, and the window it used up") {
    monitored m;
    raw_peer slow(m.port());
    slow.join("stalled", {"st.x"}, 5); // a window of 5 that it never grants back
    transport::client pub(client_opts(m.port(), "st-pub"));
    REQUIRE(pub.connect() == errc::ok);
    actors::send_options low;
    low.prio = codec::priority::low;
    for (int i = 0; i < 20; ++i)
      REQUIRE(pub.publish("st.x", "n") == errc::ok);
    for (int i = 0; i < 10; ++i)
      REQUIRE(pub.publish("st.x", "l", low) == errc::ok);
    json c;
    REQUIRE(eventually([&] {
      c = m.get("/connz?sort=pending&limit=1").j();
      return c["connections"][0]["pending"] == 25;
    }, 5s));
    const json& s = c["connections"][0];
    CHECK(s["name"] == "stalled");
    CHECK(s["out_msgs"] == 5);
    CHECK(s["window"] == 5);
    CHECK(s["credit"] == 0);
    CHECK(s["lanes"]["normal"].get<int>() + s["lanes"]["low"].get<int>() == 25);
    CHECK(s["lanes"]["low"].get<int>() >= 8); // (weighted round-robin: at most 2 LOW among the 5 written)
    CHECK(m.get("/varz").j()["pending"] == 25);
    const std::string depth = "flowbus_lane_depth{lane=\"low\"} " + std::to_string(s["lanes"]["low"].get<int>()) + "\n";
    CHECK(m.get("/metrics").body.find(depth) != std::string::npos);
  }

  TEST_CASE("subsz tests a topic against the routing table, queue groups included") {
    monitored m;
    transport::client a(client_opts(m.port(), "sz-a")), b(client_opts(m.port(), "sz-b")), c(client_opts(m.port(), "sz-c"));
    REQUIRE(a.connect() == errc::ok);
    REQUIRE(b.connect() == errc::ok);
    REQUIRE(c.connect() == errc::ok);
    REQUIRE(a.subscribe("orders.*.created").get() == errc::ok);
    REQUIRE(b.subscribe("orders.>", {}, "billing").get() == errc::ok);
    REQUIRE(c.subscribe("orders.>", {}, "billing").get() == errc::ok);

    const json hit = m.get("/subsz?topic=orders.eu.created").j();
    CHECK(hit["num_subscriptions"].get<std::uint64_t>() >= 2);
    CHECK(hit["num_queue_groups"] == 1);
    CHECK(hit["test"]["valid"] == true);
    CHECK(hit["test"]["subscribers"] == json::array({"sz-a"}));
    REQUIRE(hit["test"]["queue_groups"].size() == 1);
    CHECK(hit["test"]["queue_groups"][0] == json::array({"sz-b", "sz-c"}));
    CHECK(hit["test"]["fanout"] == 2);

    const json other = m.get("/subsz?test=orders.eu.paid").j(); // NATS's parameter name
    CHECK(other["test"]["subscribers"].empty());
    CHECK(other["test"]["fanout"] == 1);
    const json bad = m.get("/subsz?topic=orders..x").j();
    CHECK(bad["test"]["valid"] == false);
    CHECK(bad["test"]["fanout"] == 0);

    const json connz = m.get("/connz?subs=1").j();
    const json* bc = connection_named(connz, "sz-b");
    REQUIRE(bc);
    CHECK((*bc)["subscriptions_list"] == json::array({"orders.> billing"}));
    const json listed = m.get("/subsz?subs=1").j();
    CHECK(listed["num_patterns"] == 2);
    CHECK(listed["patterns"] == json::array({"orders.*.created", "orders.>"}));
  }

  TEST_CASE("agentz lists the directory: actor agents and connections, with capabilities and subscriptions") {
    monitored m;
    actors::agent_spec spec{"az-actor", "summarizer"};
    spec.capabilities = {"summarize"};
    spec.subscriptions = {"docs.>"};
    REQUIRE(m.node.spawn(spec, [](actors::agent_context&, const actors::delivery&) {}));
    transport::client ws(client_opts(m.port(), "az-ws"));
    REQUIRE(ws.connect() == errc::ok);
    REQUIRE(ws.subscribe("jobs.*", {}, "workers").get() == errc::ok);
    json az;
    const auto named = [&](const std::string& id) -> const json* {
      for (const json& a : az["agents"])
        if (a["id"] == id) return &a;
      return nullptr;
    };
    REQUIRE(eventually([&] {
      az = m.get("/agentz").j();
      const json* a = named("az-actor");
      return a && (*a)["subscriptions"].size() == 1;
    }, 5s));
    CHECK(az["num_agents"] == az["agents"].size());
    const json* a = named("az-actor");
    CHECK((*a)["type"] == "summarizer");
    CHECK((*a)["capabilities"] == json::array({"summarize"}));
    CHECK((*a)["subscriptions"] == json::array({"docs.>"}));
    CHECK((*a)["breaker"] == "closed");
    const json* w = named("az-ws");
    REQUIRE(w);
    CHECK((*w)["subscriptions"] == json::array({"jobs.* workers"}));
    CHECK_FALSE(named("az-nobody"));
  }

  TEST_CASE("dlqz shows dead letters by reason, newest first, with their route") {
    monitored m;
    transport::client a(client_opts(m.port(), "dl-a"));
    REQUIRE(a.connect() == errc::ok);
    for (int i = 0; i < 3; ++i)
      a.send(actors::destination::agent("nobody-" + std::to_string(i)), "lost?");
    REQUIRE(eventually([&] { return m.node.dead().count(actors::dead_reason::agent_unavailable) == 3; }, 5s));
    const json d = m.get("/dlqz?limit=2").j();
    CHECK(d["total"] == 3);
    CHECK(d["by_reason"]["agent_unavailable"] == 3);
    CHECK(d["by_reason"]["poison"] == 0);
    REQUIRE(d["recent"].size() == 2);
    CHECK(d["recent"][0]["recipient"] == "nobody-2");
    CHECK(d["recent"][1]["recipient"] == "nobody-1");
    CHECK(d["recent"][0]["reason"] == "agent_unavailable");
    CHECK(d["recent"][0]["source"] == "dl-a");
    CHECK(d["recent"][0]["payload_size"] == 5);
    CHECK(m.get("/dlqz?reason=poison").j()["recent"].empty());
    CHECK(m.get("/varz").j()["dead_letters"]["by_reason"]["agent_unavailable"] == 3);
  }

  TEST_CASE("dlqz?depth=1 counts the live entries of each queue file") {
    char dir[] = "/tmp/flowbus-dlqz-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    actors::node_config c = small_node();
    c.dlq_directory = dir;
    {
      edge e({}, c);
      transport::monitor_options mo;
      mo.port = 0;
      transport::monitor mon(e.node, &e.server, mo);
      transport::client a(client_opts(e.port(), "dd-a"));
      REQUIRE(a.connect() == errc::ok);
      for (int i = 0; i < 4; ++i)
        a.send(actors::destination::agent("gone-" + std::to_string(i)), "x");
      REQUIRE(eventually([&] { return e.node.dead().total() == 4; }, 5s));
      const json d = get(mon.port(), "/dlqz?depth=1").j();
      CHECK(d["depth"]["agent_unavailable"] == 4);
      CHECK(d["depth"]["poison"] == 0);
      CHECK(d["directory"] == std::string(dir));
      REQUIRE(e.node.dlq_purge(actors::dlq_kind::agent_unavailable) == std::error_code{});
      CHECK(get(mon.port(), "/dlqz?depth=1").j()["depth"]["agent_unavailable"] == 0);
      CHECK(get(mon.port(), "/dlqz").j()["depth"].is_null()); // not asked: the files are not read
    }
    std::filesystem::remove_all(dir); // once the node is gone
  }

  TEST_CASE("latency histograms are kept per lane, in Prometheus's text format") {
    monitored m;
    inbox in;
    transport::client sub(client_opts(m.port(), "lat-sub")), pub(client_opts(m.port(), "lat-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("lat.x", in.handler()).get() == errc::ok);
    actors::send_options high;
    high.prio = codec::priority::high;
    for (int i = 0; i < 7; ++i)
      REQUIRE(pub.publish("lat.x", "h", high) == errc::ok);
    for (int i = 0; i < 5; ++i)
      REQUIRE(pub.publish("lat.x", "n") == errc::ok);
    REQUIRE(eventually([&] { return in.size() == 12; }, 5s));
    const transport::edge_latency l = m.server.latency();
    CHECK(l.queued[1].count == 7); // high
    CHECK(l.queued[2].count == 5); // normal
    CHECK(l.queued[0].count == 0);
    CHECK(l.age[1].count == 7);

    const http_answer metrics = m.get("/metrics");
    CHECK(metrics.status == 200);
    CHECK(metrics.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
    const std::string& t = metrics.body;
    CHECK(t.find("# TYPE flowbus_queued_seconds histogram\n") != std::string::npos);
    CHECK(t.find("flowbus_queued_seconds_count{lane=\"high\"} 7\n") != std::string::npos);
    CHECK(t.find("flowbus_queued_seconds_bucket{lane=\"high\",le=\"+Inf\"} 7\n") != std::string::npos);
    CHECK(t.find("flowbus_delivery_age_seconds_count{lane=\"normal\"} 5\n") != std::string::npos);
    CHECK(t.find("flowbus_connections 2\n") != std::string::npos);
    CHECK(t.find("flowbus_dead_letters_total{reason=\"poison\"} 0\n") != std::string::npos);
    CHECK(t.back() == '\n');
  }

  TEST_CASE("healthz: ok, then 503 with the reason while draining; unknown paths and methods are refused") {
    monitored m;
    http_answer h = m.get("/healthz");
    CHECK(h.status == 200);
    CHECK(h.j()["status"] == "ok");
    m.mon.set_draining();
    h = m.get("/healthz");
    CHECK(h.status == 503);
    CHECK(h.j()["error"].get<std::string>().find("draining") != std::string::npos);
    CHECK(m.get("/nope").status == 404);
    const http_answer page = m.get("/");
    CHECK(page.status == 200);
    CHECK(page.content_type.rfind("text/html", 0) == 0);
    CHECK(page.body.find("/varz") != std::string::npos); // the dashboard polls the JSON endpoints
    CHECK(page.body.find("://") == std::string::npos); // nothing fetched from elsewhere (no CDN)
    CHECK(m.get("/varz").j()["http_req_stats"]["/healthz"] == 2);
  }

  TEST_CASE("actor agents' handler times are recorded per message") {
    monitored m;
    std::atomic<int> handled{0};
    actors::agent_spec spec("worker", "test");
    spec.subscriptions = {"work.x"};
    REQUIRE(m.node.spawn(spec, [&](actors::agent_context&, const actors::delivery&) {
      std::this_thread::sleep_for(200us);
      ++handled;
    }));
    transport::client pub(client_opts(m.port(), "h-pub"));
    REQUIRE(pub.connect() == errc::ok);
    for (int i = 0; i < 40; ++i)
      REQUIRE(pub.publish("work.x", "job") == errc::ok);
    REQUIRE(eventually([&] { return handled == 40; }, 5s));
    REQUIRE(eventually([&] { return m.node.handler_times().count == 40; }, 2s)); // (recorded after the handler returns)
    const scheduling::bucket_snapshot h = m.node.handler_times();
    CHECK(h.sum_ns >= 40 * 200'000.0); // each slept 200 µs
    CHECK(m.get("/metrics").body.find("flowbus_handler_seconds_count 40\n") != std::string::npos);
    CHECK(m.get("/varz").j()["latency"]["handler"]["count"] == 40);
  }

  TEST_CASE("healthz: a required cluster peer that is not linked is a 503") {
    actors::node n(small_node());
    transport::monitor_options o;
    o.port = 0;
    o.required_peers = {"node-b"};
    transport::monitor mon(n, nullptr, o);
    const http_answer h = get(mon.port(), "/healthz");
    CHECK(h.status == 503);
    CHECK(h.j()["error"] == "cluster peer node-b is down");
    CHECK(get(mon.port(), "/routez").j()["num_routes"] == 0);
    CHECK(get(mon.port(), "/varz").j()["connections"] == 0); // no edge: zeros, not a failure
  }

  TEST_CASE("tracing: 1 in N messages carries its hops; the node keeps them, newest first, for /tracez") {
    transport::server_options so;
    so.trace_sample = 10;
    so.trace_keep = 5;
    edge e(so);
    transport::monitor_options mo;
    mo.port = 0;
    transport::monitor mon(e.node, &e.server, mo);
    struct traced_inbox {
      std::mutex m;
      std::vector<std::string> traces;
    } got;
    transport::client sub(client_opts(e.port(), "tr-sub")), pub(client_opts(e.port(), "tr-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("tr.x", [&](const transport::incoming& in) {
                 std::lock_guard<std::mutex> g(got.m);
                 got.traces.emplace_back(in.trace);
               }).get() == errc::ok);
    for (int i = 0; i < 30; ++i)
      REQUIRE(pub.publish("tr.x", std::to_string(i)) == errc::ok);
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> g(got.m);
      return got.traces.size() == 30;
    }, 5s));
    {
      std::lock_guard<std::mutex> g(got.m);
      std::size_t traced = 0;
      for (std::size_t i = 0; i < got.traces.size(); ++i)
        if (!got.traces[i].empty()) {
          ++traced;
          CHECK(i % 10 == 9); // the 10th, 20th, 30th
          // the recipient sees the hops so far: its sender's send time and the node's receive time
          REQUIRE(got.traces[i].size() == 2 * codec::trace_record_size);
          CHECK(codec::hop_kind(got.traces[i], 0) == codec::hop::client_send);
          CHECK(codec::hop_kind(got.traces[i], 1) == codec::hop::node_in);
        }
      CHECK(traced == 3);
    }
    std::vector<transport::trace_record> t = e.server.traces();
    REQUIRE(t.size() == 3);
    for (const auto& r : t) {
      CHECK(r.recipient == "tr-sub");
      CHECK(r.source == "tr-pub");
      CHECK(r.topic == "tr.x");
      REQUIRE(r.hops.size() == 3);
      CHECK(r.hops[0].first == codec::hop::client_send);
      CHECK(r.hops[1].first == codec::hop::node_in);
      CHECK(r.hops[2].first == codec::hop::node_out);
      CHECK(r.hops[0].second <= r.hops[1].second); // one host, one wall clock
      CHECK(r.hops[1].second <= r.hops[2].second);
    }
    CHECK(t[0].hops[2].second >= t[2].hops[2].second); // newest first

    // an agent may ask for a trace itself: continued whatever the sampling, and bounded
    actors::send_options o;
    std::string mine;
    codec::append_hop(mine, codec::hop::client_send, codec::wall_clock_ns());
    o.trace = mine;
    for (int i = 0; i < 4; ++i)
      REQUIRE(pub.publish("tr.x", "asked", o) == errc::ok);
    REQUIRE(eventually([&] { return e.server.traces().size() == 5; }, 5s)); // trace_keep
    t = e.server.traces();
    CHECK(t[0].hops.size() == 3);

    const http_answer z = get(mon.port(), "/tracez?limit=2");
    const json tz = z.j();
    CHECK(tz["sample"] == 10);
    CHECK(tz["kept"] == 5);
    CHECK(tz["traces"].size() == 2);
    CHECK(tz["traces"][0]["hops"][2]["hop"] == "node_out");
    CHECK(tz["traces"][0]["recipient"] == "tr-sub");
    REQUIRE(tz["segments"].size() == 2);
    CHECK(tz["segments"][1]["segment"] == "node_in -> node_out");
    CHECK(tz["segments"][1]["count"] == 5);
    CHECK(tz["slowest_hop"]["segment"].is_string());
  }

  TEST_CASE("tracing: exactly 1 in N, also when the node runs out of buffers and messages are retried") {
    actors::node_config c = small_node();
    c.buffers = {{{256, 256}}, -1, false, false, 0}; // 256 frames in all: the publisher is paused often
    transport::server_options so;
    so.trace_sample = 10;
    so.trace_keep = 10000;
    edge e(so, c);
    raw_peer sub(e.port(), 4096); // reads nothing until the end: the buffers run out
    sub.join("tb-sub", {"tb.x"});
    transport::client pub(client_opts(e.port(), "tb-pub"));
    REQUIRE(pub.connect() == errc::ok);
    constexpr int n = 5000;
    int sent = 0;
    while (sent < n)
      if (pub.publish("tb.x", std::string(100, 'p')) == errc::ok) ++sent;
      else std::this_thread::sleep_for(100us);
    REQUIRE(eventually([&] { return e.server.stats().paused > 0; }));
    int got = 0;
    while (got < n && sub.next(5s))
      ++got;
    CHECK(got == n);
    REQUIRE(eventually([&] { return e.server.traces().size() >= n / 10; }, 5s));
    CHECK(e.server.traces().size() == n / 10); // a sampled message that waited for a buffer is traced when retried
    CHECK(e.node.dead().total() == 0);
  }

  TEST_CASE("the sampler turns counters into rates") {
    monitored m;
    inbox in;
    transport::client sub(client_opts(m.port(), "r-sub")), pub(client_opts(m.port(), "r-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("r.x", in.handler()).get() == errc::ok);
    m.mon.sample();
    for (int i = 0; i < 1000; ++i)
      REQUIRE(pub.publish("r.x", "x") == errc::ok);
    REQUIRE(eventually([&] { return in.size() == 1000; }, 5s));
    std::this_thread::sleep_for(50ms);
    m.mon.sample();
    const json h = m.get("/historyz").j();
    REQUIRE(h["samples"].size() >= 2);
    const json last = h["samples"].back();
    CHECK(last["out_msgs_per_s"].get<double>() > 0);
    CHECK(last["connections"] == 2);
    CHECK(m.get("/varz").j()["out_msgs_per_s"].get<double>() > 0);
  }
}
