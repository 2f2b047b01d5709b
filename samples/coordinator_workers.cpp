// A coordinator assigns tasks to a pool of workers (a queue group: each task goes to one worker)
// and collects their results. Worker load is balanced least-loaded; the summary shows how the
// tasks were shared.
#include <flowbus/actors/node.hpp>

#include <cstdio>
#include <map>
#include <string>

using namespace flowbus::actors;
using namespace std::chrono_literals;

int main() {
  constexpr int workers = 4, tasks = 200;
  node n;
  for (int w = 0; w < workers; ++w) {
    agent_spec s{"worker-" + std::to_string(w), "worker"};
    s.queue_groups = {{"tasks.>", "pool"}};
    s.group_balance = balance::least_loaded;
    auto ok = n.spawn(s, [](agent_context& ctx, const delivery& d) {
      // the work: sum the digits of the task number, report to the coordinator
      int sum = 0;
      for (char ch : d.payload)
        sum += ch - '0';
      flowbus::actors::send_options o;
      o.type = flowbus::codec::msg_type::task_result;
      ctx.send_to(d.source, std::string(d.payload) + ":" + std::to_string(sum), o);
    });
    if (!ok) return std::fprintf(stderr, "spawn: %s\n", to_string(ok.error())), 1;
  }
  auto c = n.connect({"coordinator", "coordinator"});
  if (!c) return 1;
  client& coord = **c;
  flowbus::actors::send_options assign;
  assign.type = flowbus::codec::msg_type::task_assignment;
  for (int i = 0; i < tasks; ++i)
    if (coord.publish("tasks.digits", std::to_string(i), assign).delivered != 1) return 1;

  std::map<std::string, int> per_worker;
  int results = 0;
  while (results < tasks) {
    auto m = coord.receive(5s);
    if (!m) return std::fprintf(stderr, "only %d results\n", results), 1;
    if (m->msg.type != flowbus::codec::msg_type::task_result) continue;
    ++results;
    ++per_worker[std::string(m->msg.source)];
  }
  std::printf("%d tasks, %d results\n", tasks, results);
  for (const auto& [w, k] : per_worker)
    std::printf("  %s: %d\n", w.c_str(), k);
  return results == tasks && per_worker.size() >= 2 ? 0 : 1;
}
