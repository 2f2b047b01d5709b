// The in-process demo: a dispatcher (a client thread) offers tasks at a fixed rate to a queue
// group of worker agents (actors, capability "summarize"); each worker answers with a result on
// agent.coordinator.task.result, which the coordinator agent collects. Latency is measured from
// each task's *intended* send time to the coordinator's receipt of its result: two hops through
// the node, no coordinated omission (a dispatcher that falls behind still stamps the time the task
// was due). Every second: that second's p50/p95/p99/max and msgs/s; at the end a summary.
#include "demo.hpp"

#include <flowbus/actors/node.hpp>
#include <flowbus/scheduling/histogram.hpp>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace flowbus::app {
namespace {

using namespace flowbus::actors;
using clk = std::chrono::steady_clock;
using scheduling::histogram;

constexpr std::string_view assign_topic = "agent.coordinator.task.assign";
constexpr std::string_view result_topic = "agent.coordinator.task.result";
constexpr std::size_t task_size = 128; // payload bytes

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count());
}

/// A task's payload starts with its number and its intended send time (steady clock, ns).
struct task_head {
  std::uint64_t seq;
  std::uint64_t intended_ns;
};

/// What the coordinator saw, read by the printing thread every second.
struct tally {
  std::mutex m;
  histogram second, all;
  std::uint64_t results = 0, bad = 0;
};

void print_line(const char* label, const histogram& h, double secs) {
  std::printf("%s %8.0f msgs/s  task->result p50 %7.1f us  p95 %7.1f us  p99 %7.1f us  max %8.1f us\n", label,
              static_cast<double>(h.count()) / secs, h.percentile(50) / 1e3, h.percentile(95) / 1e3,
              h.percentile(99) / 1e3, static_cast<double>(h.max()) / 1e3);
  std::fflush(stdout);
}

} // namespace

int run_demo(const demo_options& o) {
  node_config cfg;
  cfg.workers = o.threads;
  node n(cfg);
  tally t;

  for (std::size_t i = 0; i < o.workers; ++i) {
    agent_spec w("worker-" + std::to_string(i), "worker");
    w.capabilities = {"summarize"};
    w.queue_groups = {{std::string(assign_topic), "workers"}};
    auto spawned = n.spawn(w, [](agent_context& ctx, const delivery& d) {
      // the "work": fold the task's bytes; the result carries the task's head back
      std::uint64_t fold = 0;
      for (unsigned char c : d.payload)
        fold = fold * 31 + c;
      char out[sizeof(task_head) + sizeof fold];
      std::memcpy(out, d.payload.data(), sizeof(task_head));
      std::memcpy(out + sizeof(task_head), &fold, sizeof fold);
      send_options so;
      so.type = codec::msg_type::task_result;
      ctx.publish(result_topic, std::string_view(out, sizeof out), so);
    });
    if (!spawned) return std::fprintf(stderr, "demo: spawning %s: %s\n", w.id.c_str(), to_string(spawned.error())), 1;
  }

  agent_spec coordinator("coordinator", "coordinator");
  coordinator.subscriptions = {std::string(result_topic)};
  auto coord = n.spawn(coordinator, [&t](agent_context&, const delivery& d) {
    const std::uint64_t now = now_ns();
    task_head h{};
    std::lock_guard<std::mutex> lock(t.m);
    if (d.payload.size() < sizeof h) {
      ++t.bad;
      return;
    }
    std::memcpy(&h, d.payload.data(), sizeof h);
    t.second.record(now - h.intended_ns);
    ++t.results;
  });
  if (!coord) return std::fprintf(stderr, "demo: spawning the coordinator: %s\n", to_string(coord.error())), 1;

  auto connected = n.connect(agent_spec("dispatcher", "dispatcher"));
  if (!connected) return std::fprintf(stderr, "demo: connecting: %s\n", to_string(connected.error())), 1;
  client& dispatcher = **connected;

  std::printf("flowbus demo: %zu workers (queue group on %.*s), %.0f tasks/s for %.0f s, %zu scheduler threads\n",
              o.workers, int(assign_topic.size()), assign_topic.data(), o.rate, o.seconds, n.workers());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0}, refused{0};
  std::thread offer([&] {
    const auto period = std::chrono::duration<double>(1.0 / o.rate);
    const auto total = static_cast<std::uint64_t>(o.rate * o.seconds);
    std::string payload(task_size, 't');
    send_options so;
    so.type = codec::msg_type::task_assignment;
    const auto t0 = clk::now();
    for (std::uint64_t i = 0; i < total && !stop.load(std::memory_order_relaxed);) {
      const auto due = t0 + std::chrono::duration_cast<clk::duration>(period * static_cast<double>(i));
      if (clk::now() < due) {
        std::this_thread::sleep_until(due);
        continue;
      }
      // everything due by now goes out, each stamped with its own intended time
      const task_head h{i, static_cast<std::uint64_t>(
                               std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count())};
      std::memcpy(payload.data(), &h, sizeof h);
      if (dispatcher.publish(assign_topic, payload, so).delivered == 1)
        sent.fetch_add(1, std::memory_order_relaxed);
      else
        refused.fetch_add(1, std::memory_order_relaxed);
      ++i;
      dispatcher.heartbeat();
    }
  });

  const auto start = clk::now();
  auto last = start;
  histogram all;
  for (int s = 1; clk::now() - start < std::chrono::duration<double>(o.seconds); ++s) {
    std::this_thread::sleep_until(start + std::chrono::seconds(s));
    histogram second;
    {
      std::lock_guard<std::mutex> lock(t.m);
      second = t.second;
      t.second.reset();
    }
    const auto now = clk::now();
    all.merge(second);
    char label[32];
    std::snprintf(label, sizeof label, "[%3ds]", s);
    print_line(label, second, std::chrono::duration<double>(now - last).count());
    last = now;
  }
  offer.join();
  // the last results are still on their way: wait for them (bounded)
  for (auto until = clk::now() + std::chrono::seconds(2); clk::now() < until;) {
    {
      std::lock_guard<std::mutex> lock(t.m);
      if (t.results >= sent.load()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::uint64_t results, bad;
  {
    std::lock_guard<std::mutex> lock(t.m);
    all.merge(t.second);
    results = t.results;
    bad = t.bad;
  }
  connected->reset();
  const shutdown_report rep = n.shutdown();
  const std::uint64_t dead = n.dead().total();
  const double secs = std::chrono::duration<double>(clk::now() - start).count();
  std::printf("summary: %" PRIu64 " tasks sent, %" PRIu64 " results, %" PRIu64 " refused, %" PRIu64
              " dead letters, shutdown %s\n",
              sent.load(), results, refused.load(), dead, rep.drained ? "drained" : "NOT drained");
  print_line("all   ", all, secs);
  if (o.json)
    std::printf("{\"bench\":\"demo_inproc_task_result\",\"rate\":%.0f,\"workers\":%zu,\"msgs_per_s\":%.0f,%s}\n",
                o.rate, o.workers, static_cast<double>(all.count()) / secs, all.json_fields("us", 1e3).c_str());
  const bool ok = results == sent.load() && refused.load() == 0 && bad == 0 && dead == 0 && rep.drained;
  if (!ok) std::fprintf(stderr, "demo: FAILED — not every task was answered cleanly\n");
  return ok ? 0 : 1;
}

} // namespace flowbus::app
