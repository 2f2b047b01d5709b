// The cluster in process: nodes in one process, each with its own CAF system and middleman,
// linked over loopback TCP exactly as node processes are (BASP). Membership (a seed is enough,
// names, refusals), interest (a frame crosses a link only where someone waits), every delivery
// mode across a hop, and what happens to frames when a peer goes.
#include <flowbus/actors/node.hpp>

#include "actors/src/cluster_wire.hpp"
#include "actors/actors_support.hpp"
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <vector>

using namespace flowbus::actors;
using namespace std::chrono_literals;
using flowbus::test::address;
using flowbus::test::connect;
using flowbus::test::eventually;
using flowbus::test::member;
using flowbus::test::spec;

namespace {

/// The peers of `n` that are up, by name.
std::set<std::string> up_peers(const node& n) {
  std::set<std::string> out;
  for (const peer_status& p : n.peers())
    if (p.up) out.insert(p.name);
  return out;
}

std::optional<peer_status> peer_of(const node& n, const std::string& name) {
  for (const peer_status& p : n.peers())
    if (p.name == name) return p;
  return std::nullopt;
}

/// Nodes a and b, linked (b joined a).
struct linked_pair {
  node a{member("a")};
  node b{member("b", {address(a)})};
  linked_pair() { REQUIRE(eventually([&] { return up_peers(a).size() == 1 && up_peers(b).size() == 1; })); }
};

/// Payloads received by `c` within `t` (stops at `want`).
std::vector<std::string> drain(client& c, std::size_t want, std::chrono::milliseconds t = 3000ms) {
  std::vector<std::string> out;
  const auto until = std::chrono::steady_clock::now() + t;
  while (out.size() < want && std::chrono::steady_clock::now() < until)
    if (auto r = c.receive(50ms)) out.emplace_back(r->msg.payload);
  return out;
}

} // namespace

TEST_SUITE("cluster") {

TEST_CASE("a link batch carries frames as they are, each with the group it was picked for; a torn one is refused") {
  namespace wire = flowbus::actors::wire;
  const std::vector<std::string> keys = {std::string("jobs.*") + '\x1f' + "pool"};
  wire::batch_writer w(keys);
  const std::uint8_t f1[] = {1, 2, 3}, f2[] = {9};
  w.add(0, f1, sizeof f1);
  w.add(1, f2, sizeof f2);
  CHECK(w.frames() == 2);
  const std::vector<char> bytes = w.bytes();
  wire::batch_reader r(bytes);
  std::string_view f, g;
  REQUIRE(r.next(f, g));
  CHECK(f == std::string_view("\x01\x02\x03", 3));
  CHECK(g.empty());
  REQUIRE(r.next(f, g));
  CHECK(f == "\x09");
  CHECK(g == keys[0]);
  CHECK(!r.next(f, g));
  CHECK(r.ok());
  for (std::size_t cut = 1; cut < bytes.size(); ++cut) { // every truncation: refused, never read past
    const std::vector<char> torn(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    wire::batch_reader t(torn);
    std::size_t n = 0;
    while (t.next(f, g))
      ++n;
    CHECK((!t.ok() || n < 2));
  }
  std::vector<char> bad_tag = bytes; // the second frame names group 2 of 1
  REQUIRE(bad_tag.size() > 3);
  bad_tag.at(bad_tag.size() - 3) = 2;
  wire::batch_reader b(bad_tag);
  REQUIRE(b.next(f, g));
  CHECK(!b.next(f, g));
  CHECK(!b.ok());
}

TEST_CASE("a node in a cluster needs a name and both heartbeat settings") {
  auto c = member("");
  CHECK_THROWS_AS(node{c}, std::system_error);
  c = member("a");
  c.cluster.heartbeat_interval = 0ms; // the timeout alone would drop the peers' healthy idle links
  CHECK_THROWS_AS(node{c}, std::system_error);
  c = member("a");
  c.cluster.connection_timeout = 200ms; // below three intervals
  CHECK_THROWS_AS(node{c}, std::system_error);
}

TEST_CASE("nodes that know one seed form a full mesh") {
  node a(member("a"));
  REQUIRE(a.cluster_port() != 0);
  node b(member("b", {address(a)}));
  node c(member("c", {address(a)})); // c never hears of b but from a
  CHECK(eventually([&] { return up_peers(a) == std::set<std::string>{"b", "c"}; }));
  CHECK(eventually([&] { return up_peers(b) == std::set<std::string>{"a", "c"}; }));
  CHECK(eventually([&] { return up_peers(c) == std::set<std::string>{"a", "b"}; }));
  CHECK(peer_of(b, "c")->address == address(c));
}

TEST_CASE("a late joiner gets the interest and the agents that were there before it") {
  node a(member("a"));
  auto sub = connect(a, spec("early-sub", {"early.>"}));
  auto s = spec("early-agent");
  s.capabilities = {"ocr"};
  auto agent = connect(a, s);
  node b(member("b", {address(a)})); // joins after: learns them from a's snapshot, not from deltas
  REQUIRE(eventually([&] { return up_peers(b).size() == 1; }));
  REQUIRE(eventually([&] { return peer_of(b, "a")->interest == 1 && peer_of(b, "a")->remote_agents == 2; }));
  auto pub = connect(b, spec("late-pub"));
  CHECK(pub->publish("early.x", "1").delivered == 1);
  CHECK(pub->send_to("early-agent", "2").delivered == 1);
  CHECK(pub->send_to_capability("ocr", "3").delivered == 1);
  CHECK(drain(*sub, 1) == std::vector<std::string>{"1"});
  CHECK(drain(*agent, 2) == std::vector<std::string>{"2", "3"});
}

TEST_CASE("a second node with a taken name is refused") {
  node a(member("a"));
  node twin(member("a", {address(a)}));
  std::this_thread::sleep_for(300ms);
  CHECK(up_peers(a).empty());
  CHECK(up_peers(twin).empty());
}

TEST_CASE("publish and subscribe across a hop, with wildcards, only where interest is") {
  linked_pair p;
  node& a = p.a;
  node& b = p.b;
  auto sub = connect(b, spec("sub", {"news.*.tech", "alerts.>"}));
  auto pub = connect(a, spec("pub"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->interest == 2; }));
  CHECK(pub->publish("news.eu.tech", "1").delivered == 1);
  CHECK(pub->publish("alerts.disk.full", "2").delivered == 1);
  CHECK(pub->publish("news.eu.sport", "x").delivered == 0); // no interest: nothing crosses
  CHECK(drain(*sub, 2) == std::vector<std::string>{"1", "2"});
  CHECK(peer_of(a, "b")->frames_out == 2);
  CHECK(eventually([&] { return peer_of(b, "a")->frames_in == 2; }));
  // the interest leaves with the subscription
  REQUIRE(sub->unsubscribe("alerts.>") == errc::ok);
  CHECK(eventually([&] { return peer_of(a, "b")->interest == 1; }));
  CHECK(pub->publish("alerts.disk.full", "3").delivered == 0);
}

TEST_CASE("a subscriber on each node gets each message once; a frame from a peer is not forwarded again") {
  node a(member("a"));
  node b(member("b", {address(a)}));
  node c(member("c", {address(a)}));
  REQUIRE(eventually([&] { return up_peers(a).size() == 2 && up_peers(b).size() == 2 && up_peers(c).size() == 2; }));
  auto sa = connect(a, spec("sa", {"t.>"}));
  auto sb = connect(b, spec("sb", {"t.>"}));
  auto sc = connect(c, spec("sc", {"t.>"}));
  auto pub = connect(b, spec("pub"));
  REQUIRE(eventually([&] { return peer_of(b, "a")->interest == 1 && peer_of(b, "c")->interest == 1; }));
  for (int i = 0; i < 100; ++i)
    REQUIRE(pub->publish("t.x", std::to_string(i)).delivered == 3);
  CHECK(drain(*sa, 100).size() == 100);
  CHECK(drain(*sb, 100).size() == 100);
  CHECK(drain(*sc, 100).size() == 100);
  // nothing more: a and c did not pass b's frames on to each other
  CHECK(drain(*sa, 1, 200ms).empty());
  CHECK(drain(*sc, 1, 200ms).empty());
  CHECK(peer_of(a, "c")->frames_in == 0);
  CHECK(peer_of(c, "a")->frames_in == 0);
}

TEST_CASE("unicast, request/reply and broadcast reach agents on another node") {
  linked_pair p;
  node& a = p.a;
  node& b = p.b;
  auto worker = connect(b, spec("worker"));
  auto boss = connect(a, spec("boss"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->remote_agents >= 1 && peer_of(b, "a")->remote_agents >= 1; }));
  CHECK(boss->send_to("worker", "task").delivered == 1);
  auto got = worker->receive(3000ms);
  REQUIRE(got);
  CHECK(got->msg.payload == "task");
  CHECK(got->msg.source == "boss");
  CHECK(worker->send_to("boss", "done").delivered == 1);
  auto back = boss->receive(3000ms);
  REQUIRE(back);
  CHECK(back->msg.payload == "done");
  // a broadcast goes to every agent on every node (one copy crosses each link)
  CHECK(boss->broadcast("all").code == errc::ok);
  auto b1 = worker->receive(3000ms);
  REQUIRE(b1);
  CHECK(b1->msg.payload == "all");
  // unicast to an id no node serves: a typed refusal, and the frame in the dead letters
  CHECK(boss->send_to("nobody", "x").code == errc::agent_unavailable);
}

TEST_CASE("request/reply across a hop") {
  linked_pair p;
  node& a = p.a;
  node& b = p.b;
  auto server = connect(b, spec("server", {"svc.echo"}));
  auto asker = connect(a, spec("asker"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->interest == 1 && peer_of(b, "a")->remote_agents >= 1; }));
  std::thread answer([&] {
    auto r = server->receive(3000ms);
    REQUIRE(r);
    send_options o;
    o.type = flowbus::codec::msg_type::reply;
    o.correlation_id = r->msg.correlation_id;
    server->send_to(r->msg.reply_to, "pong:" + std::string(r->msg.payload), o);
  });
  const reply rep = asker->request(destination::topic("svc.echo"), "ping", 3000ms);
  answer.join();
  REQUIRE(rep.code == errc::ok);
  CHECK(rep.response.msg.payload == "pong:ping");
}

TEST_CASE("an agent id live on another node is refused as a duplicate") {
  linked_pair p;
  node& a = p.a;
  node& b = p.b;
  auto first = connect(a, spec("unique"));
  REQUIRE(eventually([&] { return peer_of(b, "a")->remote_agents >= 1; }));
  auto second = b.connect(spec("unique"));
  REQUIRE(!second.has_value());
  CHECK(second.error() == errc::duplicate_agent);
  first->leave(); // gone from a: the id is free on b
  CHECK(eventually([&] { return b.connect(spec("unique")).has_value(); }));
}

TEST_CASE("one id registered on two nodes before they heard of each other: the smaller name keeps it") {
  // two nodes apart (as on two sides of a partition), the same id on both, then they link
  node a(member("a"));
  node b(member("b"));
  auto on_a = connect(a, spec("twin"));
  auto on_b = connect(b, spec("twin"));
  auto asker = connect(b, spec("asker"));
  auto has = [](const node& n, const std::string& id) {
    for (const agent_status& s : n.agents())
      if (s.id == id) return true;
    return false;
  };
  b.join(address(a));
  REQUIRE(eventually([&] { return up_peers(a).size() == 1 && up_peers(b).size() == 1; }));
  // exactly one stays: the one on a ("a" < "b"); b's is taken down and counted
  CHECK(eventually([&] { return !has(b, "twin"); }));
  CHECK(has(a, "twin"));
  CHECK(b.cluster_stats().duplicates_taken_down == 1);
  CHECK(a.cluster_stats().duplicates_taken_down == 0);
  // the id now means a's agent from everywhere
  REQUIRE(eventually([&] { return peer_of(b, "a")->remote_agents >= 1; }));
  CHECK(asker->send_to("twin", "hello").delivered == 1);
  auto got = on_a->receive(3000ms);
  REQUIRE(got);
  CHECK(got->msg.payload == "hello");
  CHECK(!on_b->receive(200ms)); // the agent taken down gets nothing more
  // and b refuses the id while a holds it
  auto again = b.connect(spec("twin"));
  REQUIRE(!again.has_value());
  CHECK(again.error() == errc::duplicate_agent);
}

TEST_CASE("a queue group gets each message exactly once cluster-wide, local members first") {
  linked_pair p;
  node& a = p.a;
  node& b = p.b;
  auto wa = connect(a, spec("wa"));
  auto wb1 = connect(b, spec("wb1"));
  auto wb2 = connect(b, spec("wb2"));
  REQUIRE(wa->subscribe_group("jobs.*", "workers") == errc::ok);
  REQUIRE(wb1->subscribe_group("jobs.*", "workers") == errc::ok);
  REQUIRE(wb2->subscribe_group("jobs.*", "workers") == errc::ok);
  auto pub = connect(a, spec("pub"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->interest == 1; }));
  for (int i = 0; i < 50; ++i)
    REQUIRE(pub->publish("jobs.x", std::to_string(i)).delivered == 1);
  CHECK(drain(*wa, 50).size() == 50); // the local member takes them all
  CHECK(drain(*wb1, 1, 200ms).empty());
  CHECK(drain(*wb2, 1, 200ms).empty());
  // no local member: each message to exactly one member on b
  wa->leave();
  REQUIRE(eventually([&] { return a.agents().size() == 1; })); // only pub
  for (int i = 0; i < 50; ++i)
    REQUIRE(pub->publish("jobs.x", std::to_string(i)).delivered == 1);
  auto g1 = drain(*wb1, 50, 1000ms);
  auto g2 = drain(*wb2, 50 - g1.size(), 2000ms);
  CHECK(g1.size() + g2.size() == 50);
  CHECK(!g1.empty());
  CHECK(!g2.empty());
  std::multiset<std::string> all(g1.begin(), g1.end());
  all.insert(g2.begin(), g2.end());
  for (int i = 0; i < 50; ++i)
    CHECK(all.count(std::to_string(i)) == 1);
}

TEST_CASE("capability routing reaches a capable agent on another node") {
  linked_pair p;
  node& a = p.a;
  node& b = p.b;
  auto s = spec("gpu-box");
  s.capabilities = {"gpu"};
  auto gpu = connect(b, s);
  auto pub = connect(a, spec("pub"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->remote_agents >= 1; }));
  CHECK(pub->send_to_capability("gpu", "render").delivered == 1);
  auto r = gpu->receive(3000ms);
  REQUIRE(r);
  CHECK(r->msg.payload == "render");
  CHECK(pub->send_to_capability("tpu", "x").code == errc::no_capable_agent);
}

TEST_CASE("a node that stops: its interest and agents leave, frames for it are dead letters, it can come back") {
  node a(member("a"));
  auto b = std::make_unique<node>(member("b", {address(a)}));
  const std::string b_address = address(*b);
  REQUIRE(eventually([&] { return up_peers(a).size() == 1; }));
  auto sub = connect(*b, spec("sub", {"t.>"}));
  auto pub = connect(a, spec("pub"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->interest == 1; }));
  const auto before = a.dead().total();
  sub.reset();
  b.reset(); // shutdown: b's links close
  REQUIRE(eventually([&] { return up_peers(a).empty(); }));
  CHECK(pub->publish("t.x", "gone").delivered == 0); // its interest left with it
  CHECK(pub->send_to("sub", "gone").code == errc::agent_unavailable);
  CHECK(a.dead().total() == before + 1); // the unicast's frame; the publish had no recipient
  // it comes back under its name (a dials it again): linked, interest exchanged again
  auto again = member("b");
  again.cluster.port = std::stoi(b_address.substr(b_address.rfind(':') + 1));
  node b2(again);
  REQUIRE(eventually([&] { return up_peers(a) == std::set<std::string>{"b"}; }, 10000ms));
  auto sub2 = connect(b2, spec("sub", {"t.>"}));
  REQUIRE(eventually([&] { return peer_of(a, "b")->interest == 1; }));
  CHECK(pub->publish("t.x", "back").delivered == 1);
  CHECK(drain(*sub2, 1) == std::vector<std::string>{"back"});
}

TEST_CASE("a request open across a link that is lost fails at once, not at its timeout") {
  node a(member("a"));
  auto b = std::make_unique<node>(member("b", {address(a)}));
  REQUIRE(eventually([&] { return up_peers(a).size() == 1; }));
  auto silent = connect(*b, spec("silent", {"svc.slow"})); // takes requests, never answers
  auto asker = connect(a, spec("asker"));
  REQUIRE(eventually([&] { return peer_of(a, "b")->interest == 1; }));
  std::atomic<bool> taken{false};
  std::thread node_b_goes([&] {
    REQUIRE(silent->receive(3000ms)); // the request reached b
    taken = true;
    silent.reset();
    b.reset();
  });
  const auto start = std::chrono::steady_clock::now();
  const reply r = asker->request(destination::topic("svc.slow"), "?", 10000ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  node_b_goes.join();
  CHECK(taken);
  CHECK(r.code == errc::agent_unavailable);
  CHECK(waited < 5000ms);
}

} // TEST_SUITE
