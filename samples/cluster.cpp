// A three-node cluster in one program: nodes "a", "b" and "c" link over loopback (c knows only b
// and meets a through it). A coordinator on a hands tasks to a queue group whose workers live on
// b and c (each task to exactly one of them), the workers publish their results on a topic the
// coordinator subscribes to, and a request to a service on c is answered across the hop.
// The same nodes as processes: flowbus node --name a --cluster-port 7001, then
// flowbus node --name b --cluster-port 7002 --join 127.0.0.1:7001 (docs/cluster.md).
#include <flowbus/actors/node.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace flowbus::actors;
using namespace std::chrono_literals;

namespace {
node_config member(const std::string& name, std::vector<std::string> join) {
  node_config c;
  c.cluster.port = 0; // any free port; node::cluster_port() says which
  c.cluster.name = name;
  c.cluster.join = std::move(join);
  return c;
}

std::string address(const node& n) { return "127.0.0.1:" + std::to_string(n.cluster_port()); }

bool wait_for(const std::function<bool()>& ok) {
  for (int i = 0; i < 500 && !ok(); ++i)
    std::this_thread::sleep_for(10ms);
  return ok();
}
} // namespace

int main() {
  node a(member("a", {}));
  node b(member("b", {address(a)}));
  node c(member("c", {address(b)}));
  auto meshed = [](const node& n) {
    std::size_t up = 0;
    for (const peer_status& p : n.peers())
      up += p.up ? 1 : 0;
    return up == 2;
  };
  if (!wait_for([&] { return meshed(a) && meshed(b) && meshed(c); })) return std::fprintf(stderr, "no mesh\n"), 1;
  std::printf("cluster: a, b and c linked\n");

  // workers on b and c: one queue group across the cluster; each publishes its result
  for (node* n : {&b, &c})
    for (int i = 0; i < 2; ++i) {
      agent_spec w{std::string(n == &b ? "b" : "c") + "-worker-" + std::to_string(i), "worker"};
      w.queue_groups = {{"tasks.>", "workers"}};
      auto h = n->spawn(w, [id = w.id](agent_context& ctx, const delivery& d) {
        ctx.publish("results." + id, std::string(d.payload) + " done by " + id);
      });
      if (!h) return std::fprintf(stderr, "spawn: %s\n", to_string(h.error())), 1;
    }
  agent_spec svc{"clock", "service"};
  svc.subscriptions = {"svc.time"};
  if (!c.spawn(svc, [](agent_context& ctx, const delivery& d) { ctx.respond(d, "noon on c"); }))
    return 1;

  agent_spec boss{"coordinator", "coordinator"};
  boss.subscriptions = {"results.>"};
  auto coordinator = a.connect(boss);
  if (!coordinator) return 1;
  client& co = **coordinator;
  // interest crosses the links as it changes, like NATS's subscription propagation: wait until the
  // workers' groups are known on a and the coordinator's results.> on b and c (a result published
  // before that would have no subscriber there: not an error, and not delivered)
  auto knows_interest_of = [](const node& n, const std::string& peer) {
    for (const peer_status& p : n.peers())
      if (p.name == peer) return p.interest > 0;
    return false;
  };
  if (!wait_for([&] {
        return knows_interest_of(a, "b") && knows_interest_of(a, "c") && knows_interest_of(b, "a") &&
               knows_interest_of(c, "a");
      }))
    return std::fprintf(stderr, "interest did not arrive\n"), 1;

  constexpr int tasks = 20;
  for (int i = 0; i < tasks; ++i)
    co.publish("tasks.render", "task " + std::to_string(i));
  std::set<std::string> done;
  int results = 0;
  while (results < tasks)
    if (auto r = co.receive(3s)) {
      ++results;
      done.insert(std::string(r->msg.payload.substr(r->msg.payload.find(" done by ") + 9)));
    } else {
      break;
    }
  std::printf("%d of %d tasks done, by %zu workers on b and c\n", results, tasks, done.size());

  const reply r = co.request(destination::topic("svc.time"), "time?", 2s);
  std::printf("request to svc.time on c -> %s %.*s\n", to_string(r.code), int(r.response.msg.payload.size()),
              r.response.msg.payload.data());
  return results == tasks && r ? 0 : 1;
}
