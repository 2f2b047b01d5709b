// The cluster as its users run it: `flowbus node --name --cluster-port --join` processes on
// loopback, agents connected over WebSocket to different nodes. Delivery across nodes, then the
// faults: kill -9 of a node mid-stream (detected at once, every frame for it acknowledged by it or
// dead-lettered — counted from the stop line — and it rejoins when restarted) and SIGSTOP (a hung
// node: detected within the connection timeout; after SIGCONT it rejoins).
#include "transport/node_process.hpp"
#include "transport/transport_support.hpp"

#include <flowbus/codec/trace.hpp>

#include <flowbus/transport/client.hpp>
#include <flowbus/transport/monitor.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <future>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;

namespace {

/// SIGSTOPs the process and waits until every one of its threads is stopped: kill() returns before
/// that, and a sleeping thread stops only once the scheduler runs it again (on a busy machine it
/// may still handle what arrives meanwhile).
void stop_process(pid_t pid) {
  REQUIRE(kill(pid, SIGSTOP) == 0);
  const auto until = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    bool all = true;
    for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
      std::ifstream in(t.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto close = stat.rfind(')'); // "pid (comm) S ..."
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') all = false;
    }
    if (all) return;
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(1ms);
  }
}

constexpr int timeout_ms = 1200; // --cluster-timeout-ms of every node here (heartbeats every 200 ms): loose enough for a loaded CI machine

std::vector<std::string> member_args(const std::string& name, std::uint16_t cluster_port, const std::string& join) {
  std::vector<std::string> a = {"--name", name, "--cluster-port", std::to_string(cluster_port),
                                "--cluster-heartbeat-ms", "200", "--cluster-timeout-ms", std::to_string(timeout_ms)};
  if (!join.empty()) {
    a.push_back("--join");
    a.push_back(join);
  }
  return a;
}

std::string at(const node_process& n) { return "127.0.0.1:" + std::to_string(n.cluster_port); }

/// `c` as a cluster member of this process (an edge's node): any free cluster port.
actors::node_config in_process_member(actors::node_config c, const std::string& name, std::vector<std::string> join) {
  c.cluster.port = 0;
  c.cluster.name = name;
  c.cluster.join = std::move(join);
  c.cluster.heartbeat_interval = 200ms;
  c.cluster.connection_timeout = 1500ms;
  return c;
}

/// Calls `probe` every 20 ms until `box` holds something (the route across the cluster is up).
template <class Probe> bool arrives(Probe probe, inbox& box) {
  return eventually(
      [&] {
        if (box.size() > 0) return true;
        probe();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return box.size() > 0;
      },
      std::chrono::milliseconds(15000));
}

bool reaches(transport::client& from, const actors::destination& to, inbox& box) {
  return arrives([&] { from.send(to, "probe"); }, box);
}

/// A number after `label` in `text` ("... 12 dead letters ..." with label " dead letters": 12).
std::uint64_t number_before(const std::string& text, const std::string& label) {
  const auto at_label = text.find(label);
  REQUIRE(at_label != std::string::npos);
  auto start = text.rfind(' ', at_label - 1);
  return std::strtoull(text.c_str() + start + 1, nullptr, 10);
}

/// Two network namespaces, each behind a veth pair routed through this one (10.199.1.2 and
/// 10.199.2.2): nodes in them talk over a real link that a test can cut (link down: no FIN, no RST,
/// as in a partition). ok() is false, with why(), where the machine does not allow it.
class netns_lab {
public:
  netns_lab() {
    const std::string tag = "fb" + std::to_string(getpid() % 100000);
    ns_ = {tag + "a", tag + "b"};
    if (geteuid() != 0) {
      why_ = "not root (network namespaces need CAP_NET_ADMIN)";
      return;
    }
    if (!sh("ip -V")) {
      why_ = "no ip command (iproute2)";
      return;
    }
    forward_ = read_file("/proc/sys/net/ipv4/ip_forward");
    bool up = sh("sysctl -q -w net.ipv4.ip_forward=1");
    for (int i = 0; i < 2 && up; ++i) {
      const std::string n = ns_[static_cast<std::size_t>(i)], v = n + "v", net = "10.199." + std::to_string(i + 1);
      up = sh("ip netns add " + n) && sh("ip link add " + v + "0 type veth peer name " + v) &&
           sh("ip link set " + v + " netns " + n) && sh("ip addr add " + net + ".1/24 dev " + v + "0") &&
           sh("ip link set " + v + "0 up") && sh(in(n) + "ip addr add " + net + ".2/24 dev " + v) &&
           sh(in(n) + "ip link set " + v + " up") && sh(in(n) + "ip link set lo up") &&
           sh(in(n) + "ip route add default via " + net + ".1");
    }
    if (!up) {
      why_ = "could not set up the namespaces";
      return;
    }
    ok_ = true;
  }
  /// Whether namespace i reaches host:port (a TCP connect): false where forwarding or a firewall
  /// stands in the way (then the test says so and skips).
  bool reaches_port(int i, const std::string& host, std::uint16_t port) {
    if (sh("timeout 3 " + in(ns_[static_cast<std::size_t>(i)]) + "bash -c 'exec 3<>/dev/tcp/" + host + "/" +
           std::to_string(port) + "'"))
      return true;
    why_ = "the namespaces do not reach each other (forwarding or a firewall in the way)";
    return false;
  }
  ~netns_lab() {
    for (const std::string& n : ns_) {
      sh("ip link del " + n + "v0");
      sh("ip netns del " + n);
    }
    if (!forward_.empty()) sh("sysctl -q -w net.ipv4.ip_forward=" + forward_.substr(0, 1));
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  /// The prefix that runs a command in namespace i (0 or 1).
  std::vector<std::string> prefix(int i) const { return {"/usr/sbin/ip", "netns", "exec", ns_[static_cast<std::size_t>(i)]}; }
  static std::string address(int i) { return "10.199." + std::to_string(i + 1) + ".2"; }
  /// Cuts (or restores) namespace i's link: nothing passes either way, and nobody is told.
  bool cut(int i, bool down) { return sh("ip link set " + ns_[static_cast<std::size_t>(i)] + "v0 " + (down ? "down" : "up")); }

private:
  static bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }
  static std::string in(const std::string& n) { return "ip netns exec " + n + " "; }
  static std::string read_file(const char* path) {
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
  }
  std::vector<std::string> ns_;
  std::string why_, forward_;
  bool ok_ = false;
};

} // namespace

TEST_SUITE("cluster") {

TEST_CASE("a partition (network namespaces, the link cut without a FIN): both sides notice, then heal") {
  netns_lab lab;
  if (!lab.ok()) {
    MESSAGE("skipped: " << lab.why());
    return;
  }
  auto in_ns = [&](int i, const std::string& name, const std::string& join) {
    auto args = member_args(name, 7411, join);
    args.insert(args.end(), {"--address", netns_lab::address(i), "--cluster-address", netns_lab::address(i)});
    return std::make_unique<node_process>(0, args, lab.prefix(i));
  };
  auto a = in_ns(0, "a", "");
  if (!lab.reaches_port(1, netns_lab::address(0), a->port)) {
    MESSAGE("skipped: " << lab.why());
    return;
  }
  auto b = in_ns(1, "b", netns_lab::address(0) + ":7411");
  auto opts = [](const node_process& n, int i, const std::string& id) {
    auto o = quick_reconnect_opts(n.port, id);
    o.host = netns_lab::address(i);
    return o;
  };
  inbox got;
  transport::client agent_b(opts(*b, 1, "pb"));
  agent_b.on_message(got.handler());
  REQUIRE(agent_b.connect() == errc::ok);
  transport::client pub(opts(*a, 0, "pa"));
  REQUIRE(pub.connect() == errc::ok);
  REQUIRE(reaches(pub, actors::destination::agent("pb"), got));

  REQUIRE(lab.cut(1, true));
  const auto cut_at = std::chrono::steady_clock::now();
  bool refused = false;
  while (!refused && std::chrono::steady_clock::now() - cut_at < 10s)
    refused = pub.request(actors::destination::agent("pb"), "?", 200ms).get().code == errc::agent_unavailable;
  const auto detected = std::chrono::steady_clock::now() - cut_at;
  MESSAGE("partition detected after " << std::chrono::duration_cast<std::chrono::milliseconds>(detected).count() << " ms");
  REQUIRE(refused);
  CHECK(detected < std::chrono::milliseconds(timeout_ms + 1500));

  REQUIRE(lab.cut(1, false));
  got.clear();
  CHECK(reaches(pub, actors::destination::agent("pb"), got)); // redialled, interest and agents exchanged again
}


TEST_CASE("three node processes: pub/sub, a queue group exactly once, request/reply, ids cluster-wide") {
  node_process a(0, member_args("a", 0, ""));
  REQUIRE(a.cluster_port != 0);
  node_process b(0, member_args("b", 0, at(a)));
  node_process c(0, member_args("c", 0, at(b))); // knows only b: meets a through b

  inbox on_b, on_c;
  transport::client sb(client_opts(b.port, "sb", {"news.>"}));
  sb.on_message(on_b.handler());
  REQUIRE(sb.connect() == errc::ok);
  transport::client sc(client_opts(c.port, "sc", {"news.*"}));
  sc.on_message(on_c.handler());
  REQUIRE(sc.connect() == errc::ok);
  transport::client pub(client_opts(a.port, "pub"));
  REQUIRE(pub.connect() == errc::ok);
  REQUIRE(reaches(pub, actors::destination::topic("news.x"), on_b));
  REQUIRE(reaches(pub, actors::destination::topic("news.x"), on_c));
  on_b.clear();
  on_c.clear();
  for (int i = 0; i < 200; ++i)
    REQUIRE(pub.publish("news.x", std::to_string(i)) == errc::ok);
  REQUIRE(eventually([&] { return on_b.size() == 200 && on_c.size() == 200; }));
  CHECK(on_b.all().back() == "199"); // in order across the hop
  CHECK(on_c.all().front() == "0");

  // a queue group with members on b and c, publisher on a: each job to exactly one member
  inbox wb, wc;
  transport::client gb(client_opts(b.port, "gb"));
  REQUIRE(gb.connect() == errc::ok);
  REQUIRE(gb.subscribe("jobs", wb.handler(), "workers").get() == errc::ok);
  transport::client gc(client_opts(c.port, "gc"));
  REQUIRE(gc.connect() == errc::ok);
  REQUIRE(gc.subscribe("jobs", wc.handler(), "workers").get() == errc::ok);
  REQUIRE(eventually( // probes until both members' interest has reached a (each probe goes to one of them)
      [&] {
        pub.publish("jobs", "-1");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return wb.size() > 0 && wc.size() > 0;
      },
      15000ms));
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the last probes land
  wb.clear();
  wc.clear();
  for (int i = 0; i < 300; ++i)
    REQUIRE(pub.publish("jobs", std::to_string(i)) == errc::ok);
  REQUIRE(eventually([&] { return wb.size() + wc.size() == 300; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(wb.size() + wc.size() == 300);
  std::vector<int> seen(300, 0);
  for (const auto& s : wb.all())
    ++seen[static_cast<std::size_t>(std::stoi(s))];
  for (const auto& s : wc.all())
    ++seen[static_cast<std::size_t>(std::stoi(s))];
  for (int i = 0; i < 300; ++i)
    CHECK(seen[static_cast<std::size_t>(i)] == 1);

  // request/reply across two hops' worth of nodes, and no_responders when no node has one
  REQUIRE(sc.subscribe("svc.echo", [&](const transport::incoming& req) { sc.respond(req, "echo:" + std::string(req.payload)); })
              .get() == errc::ok);
  REQUIRE(eventually([&] { return pub.request(actors::destination::topic("svc.echo"), "hi", 500ms).get().code == errc::ok; },
                     5000ms));
  const auto r = pub.request(actors::destination::topic("svc.echo"), "hi", 2s).get();
  CHECK(r.payload == "echo:hi");
  CHECK(r.source == "sc");
  CHECK(pub.request(actors::destination::topic("svc.nobody"), "?", 2s).get().code == errc::no_responders);

  // an id live on one node is refused on another
  transport::client twin(client_opts(a.port, "sc"));
  CHECK(twin.connect() == errc::duplicate_agent);
}

TEST_CASE("kill -9 of a node mid-stream: detected, every frame for it acknowledged or dead-lettered, it rejoins") {
  node_process a(0, member_args("a", 0, ""));
  auto b = std::make_unique<node_process>(0, member_args("b", 0, at(a)));
  const std::uint16_t b_ws = b->port, b_cluster = b->cluster_port;
  inbox got;
  auto kb_opts = quick_reconnect_opts(b_ws, "kb");
  transport::client kb(kb_opts);
  kb.on_message(got.handler());
  REQUIRE(kb.connect() == errc::ok);
  transport::client pub(client_opts(a.port, "pub"));
  REQUIRE(pub.connect() == errc::ok);
  std::atomic<std::uint64_t> sent{0}; // the stream thread and this one send
  auto send_one = [&](const char* what) {
    if (pub.send(actors::destination::agent("kb"), what) == errc::ok) ++sent;
  };
  REQUIRE(arrives([&] { send_one("probe"); }, got));

  // a stream of unicasts to kb; b dies in the middle of it
  std::atomic<bool> streaming{true};
  std::thread stream([&] {
    while (streaming.load()) {
      for (int i = 0; i < 20; ++i)
        send_one("data");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::this_thread::sleep_for(300ms);
  const auto killed = std::chrono::steady_clock::now();
  b->stop(SIGKILL);
  // detected: a request to kb is refused at once (agent_unavailable) instead of timing out
  bool refused = false;
  while (!refused && std::chrono::steady_clock::now() - killed < 10s) {
    const auto rr = pub.request(actors::destination::agent("kb"), "?", 300ms).get();
    ++sent;
    refused = rr.code == errc::agent_unavailable;
  }
  const auto detected = std::chrono::steady_clock::now() - killed;
  REQUIRE(refused);
  CHECK(detected < std::chrono::milliseconds(timeout_ms + 1500));
  std::this_thread::sleep_for(200ms);
  streaming = false;
  stream.join();

  // it comes back at the same addresses: a redials it, kb reconnects, unicasts reach it again
  b = std::make_unique<node_process>(b_ws, member_args("b", b_cluster, at(a)));
  got.clear();
  REQUIRE(arrives([&] { send_one("again"); }, got));

  // nothing unaccounted: every frame pub sent went to b's node (acknowledged by it) or is a dead letter on a
  pub.close();
  kb.close();
  std::string stop;
  a.stop(SIGTERM, &stop);
  INFO(stop);
  const std::uint64_t acked = number_before(stop, " frames to other nodes acknowledged");
  const std::uint64_t dead = number_before(stop, " dead letters (");
  CHECK(number_before(stop, " links lost") >= 1);
  CHECK(dead > 0); // the frames refused or in flight when b died
  MESSAGE("sent " << sent.load() << ", acknowledged by b " << acked << ", dead letters on a " << dead << ", detected after " << std::chrono::duration_cast<std::chrono::milliseconds>(detected).count() << " ms");
  CHECK(acked + dead == sent.load());
}

TEST_CASE("a hung node (SIGSTOP) is detected within the connection timeout and rejoins after SIGCONT") {
  node_process a(0, member_args("a", 0, ""));
  node_process b(0, member_args("b", 0, at(a)));
  inbox got;
  transport::client kb(quick_reconnect_opts(b.port, "hb"));
  kb.on_message(got.handler());
  REQUIRE(kb.connect() == errc::ok);
  transport::client pub(client_opts(a.port, "pub"));
  REQUIRE(pub.connect() == errc::ok);
  REQUIRE(reaches(pub, actors::destination::agent("hb"), got));

  // a request open across the link when b hangs: failed once the link is declared lost, not at its 8 s timeout
  REQUIRE(kb.subscribe("svc.never", [](const transport::incoming&) {}).get() == errc::ok); // takes it, never answers
  std::future<transport::reply_result> open;
  REQUIRE(eventually([&] { // b's interest in svc.never has reached a
    open = pub.request(actors::destination::topic("svc.never"), "?", 8s);
    return open.wait_for(100ms) == std::future_status::timeout; // not refused (no_responders): it went to b
  }));
  stop_process(b.pid);
  const auto stopped = std::chrono::steady_clock::now();
  bool refused = false;
  while (!refused && std::chrono::steady_clock::now() - stopped < 10s)
    refused = pub.request(actors::destination::agent("hb"), "?", 200ms).get().code == errc::agent_unavailable;
  const auto detected = std::chrono::steady_clock::now() - stopped;
  REQUIRE(refused);
  MESSAGE("hung node detected after " << std::chrono::duration_cast<std::chrono::milliseconds>(detected).count() << " ms");
  CHECK(detected >= std::chrono::milliseconds(timeout_ms / 2)); // by the heartbeats, not by TCP
  CHECK(detected < std::chrono::milliseconds(timeout_ms + 1500));

  REQUIRE(open.wait_for(3s) == std::future_status::ready);
  CHECK(open.get().code == errc::agent_unavailable);
  CHECK(std::chrono::steady_clock::now() - stopped < 5s);

  REQUIRE(kill(b.pid, SIGCONT) == 0);
  got.clear();
  CHECK(reaches(pub, actors::destination::agent("hb"), got));
}

TEST_CASE("a lossless topic's slow subscriber on another node holds the publisher, as on one node") {
  // two nodes in this process, both with lossless topics; the subscriber's connection on b reads
  // nothing (its queue of 4096 fills: throttled from 3277 queued — room for the 4 x 256 frames a
  // link has in flight beyond that), the publisher is on a, whose link to b holds 2048 frames
  auto cluster_node = [](const std::string& name, std::vector<std::string> join) {
    actors::node_config c = in_process_member(lossless_node(), name, std::move(join));
    c.cluster.link_capacity = 2048;
    return c;
  };
  transport::server_options tight;
  tight.mailbox_capacity = 4096;
  tight.notsent_lowat = 16 * 1024;
  edge ea(tight, cluster_node("a", {}));
  edge eb(tight, cluster_node("b", {"127.0.0.1:" + std::to_string(ea.node.cluster_port())}));
  raw_peer sub(eb.port(), 4096); // the kernel takes little: the backlog stays in b's lanes
  sub.join("sub", {"bulk"});
  REQUIRE(eventually([&] {
    for (const actors::peer_status& p : ea.node.peers())
      if (p.name == "b" && p.up && p.interest == 1) return true;
    return false;
  }));
  transport::client pub(client_opts(ea.port(), "wspub"));
  REQUIRE(pub.connect() == errc::ok);
  const std::string payload(100, 'p');
  constexpr std::uint64_t n = 20000;
  for (std::uint64_t i = 0; i < n; ++i)
    REQUIRE(pub.publish("bulk", payload) == errc::ok);
  // b answers a's batches only once its subscriber catches up: a's link fills, a holds the publisher
  const bool held = eventually([&] { return ea.server.stats().holds > 0 && pub.stats().holds > 0; });
  INFO("a holds " << ea.server.stats().holds << " client holds " << pub.stats().holds << ", b shed "
                  << eb.node.dead().count(actors::dead_reason::shed) << " overflow "
                  << eb.node.dead().count(actors::dead_reason::overflow));
  REQUIRE(held);
  std::uint64_t got = 0; // now the subscriber reads: everything is delivered or shed, never lost
  const auto until = std::chrono::steady_clock::now() + 60s;
  auto shed = [&] { return eb.node.dead().count(actors::dead_reason::shed) + ea.node.dead().count(actors::dead_reason::shed); };
  while (got + shed() < n && std::chrono::steady_clock::now() < until)
    if (auto f = sub.next(2s); f && f->payload == payload) ++got;
  INFO("got " << got << " shed " << shed());
  CHECK(got + shed() == n);
  CHECK(got > n / 2); // holding kept most of it from being shed
  CHECK(ea.node.cluster_stats().dead_lettered == 0);
  CHECK(eb.node.dead().count(actors::dead_reason::overflow) == 0);
  CHECK(eventually([&] { return !pub.held(); }));
}

TEST_CASE("a traced message across two nodes: the second adds its arrival, and keeps the whole trace") {
  transport::server_options traced;
  traced.trace_sample = 1; // every message
  edge ea(traced, in_process_member(small_node(), "a", {}));
  edge eb({}, in_process_member(small_node(), "b", {"127.0.0.1:" + std::to_string(ea.node.cluster_port())}));
  inbox box;
  transport::client sub(client_opts(eb.port(), "tsub")), pub(client_opts(ea.port(), "tpub"));
  REQUIRE(sub.connect() == errc::ok);
  REQUIRE(pub.connect() == errc::ok);
  REQUIRE(sub.subscribe("trace.x", box.handler()).get() == errc::ok);
  REQUIRE(arrives([&] { pub.publish("trace.x", "probe"); }, box));
  REQUIRE(eventually([&] { return !eb.server.traces().empty(); }));
  const transport::trace_record r = eb.server.traces().front();
  CHECK(r.recipient == "tsub");
  CHECK(r.source == "tpub");
  REQUIRE(r.hops.size() == 4);
  CHECK(r.hops[0].first == codec::hop::client_send);
  CHECK(r.hops[1].first == codec::hop::node_in);    // a took it from tpub
  CHECK(r.hops[2].first == codec::hop::cluster_in); // b took it from a's link
  CHECK(r.hops[3].first == codec::hop::node_out);   // b wrote it to tsub
  for (std::size_t i = 1; i < r.hops.size(); ++i)
    CHECK(r.hops[i - 1].second <= r.hops[i].second);
  CHECK(ea.server.traces().empty()); // a wrote it to nobody on its edge

  // b's monitoring sees a: /routez, /metrics, and a /healthz that requires it
  transport::monitor_options mo;
  mo.port = 0;
  mo.required_peers = {"a"};
  transport::monitor mon(eb.node, &eb.server, mo);
  REQUIRE(mon.render("/healthz").status == 200);
  const std::string routez = mon.render("/routez").body;
  CHECK(routez.find("\"remote_name\": \"a\"") != std::string::npos);
  CHECK(routez.find("\"up\": true") != std::string::npos);
  CHECK(mon.render("/metrics").body.find("flowbus_peer_up{peer=\"a\"} 1\n") != std::string::npos);
}

TEST_CASE("a WebSocket agent whose id another node kept (both registered it before they linked) gets ERROR 72") {
  edge ea({}, in_process_member(small_node(), "a", {}));
  edge eb({}, in_process_member(small_node(), "b", {}));
  transport::client on_a(client_opts(ea.port(), "twin"));
  REQUIRE(on_a.connect() == errc::ok);
  raw_peer on_b(eb.port());
  on_b.join("twin");
  eb.node.join("127.0.0.1:" + std::to_string(ea.node.cluster_port())); // now they hear of each other
  const auto frames = on_b.until_closed(10s);
  bool told = false;
  for (const auto& f : frames)
    if (f.type == codec::msg_type::error && f.error_code == 72) told = f.reason.find("another node") != std::string::npos;
  CHECK(told);
  CHECK(on_b.closed());
  CHECK(eb.node.cluster_stats().duplicates_taken_down == 1);
  CHECK(on_a.connected()); // a ("a" < "b") kept its agent
}

TEST_CASE("an acknowledged publish to a subscriber on another node is ACKed once that node took it") {
  node_process a(0, member_args("a", 0, ""));
  node_process b(0, member_args("b", 0, at(a)));
  inbox got;
  transport::client sub(client_opts(b.port, "acked-sub", {"acked.>"}));
  sub.on_message(got.handler());
  REQUIRE(sub.connect() == errc::ok);
  auto po = client_opts(a.port, "acked-pub");
  po.ack_timeout = 6s; // one attempt: the answer is the node's, not a retry's
  po.ack_attempts = 1;
  transport::client pub(po);
  REQUIRE(pub.connect() == errc::ok);
  REQUIRE(reaches(pub, actors::destination::topic("acked.x"), got));
  CHECK(pub.publish_acked("acked.x", "one").get() == errc::ok);

  // b hangs: the ACK waits for b (before, a ACKed once the frame was queued for the link), and
  // when a declares the link lost the frame is dead-lettered and the publish NACKed with the reason
  stop_process(b.pid);
  const auto stopped = std::chrono::steady_clock::now();
  auto pending = pub.publish_acked("acked.x", "two");
  CHECK(pending.wait_for(200ms) == std::future_status::timeout);
  REQUIRE(pending.wait_for(5s) == std::future_status::ready);
  const errc outcome = pending.get();
  INFO("the publish ended " << std::string(actors::to_string(outcome)));
  CHECK(outcome == errc::agent_unavailable);
  CHECK(std::chrono::steady_clock::now() - stopped < 4s);
  REQUIRE(kill(b.pid, SIGCONT) == 0);
}

TEST_CASE("the [cluster] section of the config file (with TLS links), and refusals to start") {
  char dir[] = "/tmp/flowbus-cluster-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string first = std::string(dir) + "/a.toml", second = std::string(dir) + "/b.toml";
  const std::string certs = std::string(FLOWBUS_SOURCE_DIR) + "/tests/data/tls/";
  const std::string tls = "tls-cert = \"" + certs + "node.pem\"\ntls-key = \"" + certs + "node.key\"\ntls-ca = \"" + certs +
                          "ca.pem\"\n";
  std::ofstream(first) << "[cluster]\nname = \"ta\"\nport = 0\nheartbeat-ms = 100\ntimeout-ms = 600\n" << tls;
  node_process a(0, {"--config", first});
  REQUIRE(a.cluster_port != 0);
  std::ofstream(second) << "[cluster]\nname = \"tb\"\nport = 0\njoin = [\"" << at(a) << "\"]\nheartbeat-ms = 100\ntimeout-ms = 600\n"
                         << tls;
  node_process b(0, {"--config", second});
  inbox got;
  transport::client on_b(client_opts(b.port, "on-b"));
  on_b.on_message(got.handler());
  REQUIRE(on_b.connect() == errc::ok);
  transport::client on_a(client_opts(a.port, "on-a"));
  REQUIRE(on_a.connect() == errc::ok);
  CHECK(reaches(on_a, actors::destination::agent("on-b"), got));
  // the node says why and exits 1: a cluster port without a name; TLS with a certificate only
  // (CAF would fall back to an anonymous cipher)
  auto refused = [](const std::string& args) {
    const std::string cmd = std::string(FLOWBUS_EXE) + " node --port 0 --cluster-port 0 " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p))
      out += buf;
    CHECK(WEXITSTATUS(pclose(p)) == 1);
    return out;
  };
  CHECK(refused("").find("needs a name") != std::string::npos);
  CHECK(refused("--name x --cluster-tls-cert " + certs + "node.pem").find("anonymous") != std::string::npos);
  std::remove(first.c_str());
  std::remove(second.c_str());
  rmdir(dir);
}

} // TEST_SUITE
