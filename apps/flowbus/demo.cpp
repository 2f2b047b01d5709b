// The demo: a dispatcher (a client thread) offers tasks at a fixed rate to a queue group of worker
// agents — actors in the node and WebSocket clients connected over loopback, all with capability
// "summarize"; each worker answers with a result on
// agent.coordinator.task.result, which the coordinator agent collects. Latency is measured from
// each task's *intended* send time to the coordinator's receipt of its result: two hops through
// the node, no coordinated omission (a dispatcher that falls behind still stamps the time the task
// was due). Every second: that second's p50/p95/p99/max and msgs/s; at the end a summary.
#include "demo.hpp"

#include <flowbus/actors/node.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/server.hpp>

#include <spdlog/spdlog.h>

#include <sys/prctl.h>

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

/// A task's payload starts with its number and its intended send time (steady clock, ns).
struct task_head {
  std::uint64_t seq;
  std::uint64_t intended_ns;
};
/// A result: the task's head, which kind of worker did it, and the "work".
struct result_body {
  task_head head;
  std::uint64_t via_websocket;
  std::uint64_t fold;
};

/// What the coordinator saw, read by the printing thread every second.
struct tally {
  std::mutex m;
  histogram second, all, inproc, ws; // all results; by the kind of worker that answered
  std::uint64_t results = 0, bad = 0;
};

std::uint64_t fold_of(std::string_view payload) {
  std::uint64_t fold = 0;
  for (unsigned char c : payload)
    fold = fold * 31 + c;
  return fold;
}

void print_line(const char* label, const histogram& h, double secs) {
  std::printf("%s %8.0f msgs/s  task->result p50 %7.1f us  p95 %7.1f us  p99 %7.1f us  max %8.1f us\n", label,
              static_cast<double>(h.count()) / secs, h.percentile(50) / 1e3, h.percentile(95) / 1e3,
              h.percentile(99) / 1e3, static_cast<double>(h.max()) / 1e3);
  std::fflush(stdout);
}

} // namespace

int run_demo(const demo_options& o) {
  // sleeps and timed waits wake within 1 µs of their deadline, not Linux's default 50 µs: this
  // process's threads (and children) inherit it
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  spdlog::set_level(spdlog::level::warn);
  node_config cfg;
  cfg.workers = o.threads;
  node n(cfg);
  tally t;
  send_options as_result;
  as_result.type = codec::msg_type::task_result;

  for (std::size_t i = 0; i < o.workers; ++i) {
    agent_spec w("worker-" + std::to_string(i), "worker");
    w.capabilities = {"summarize"};
    w.queue_groups = {{std::string(assign_topic), "workers"}};
    auto spawned = n.spawn(w, [as_result](agent_context& ctx, const delivery& d) {
      // the "work": fold the task's bytes; the result carries the task's head back
      result_body r{};
      std::memcpy(&r.head, d.payload.data(), sizeof r.head);
      r.fold = fold_of(d.payload);
      ctx.publish(result_topic, std::string_view(reinterpret_cast<const char*>(&r), sizeof r), as_result);
    });
    if (!spawned) return std::fprintf(stderr, "demo: spawning %s: %s\n", w.id.c_str(), to_string(spawned.error())), 1;
  }

  // WebSocket workers: other agents in the same queue group, connected over loopback
  std::unique_ptr<transport::server> edge;
  std::vector<std::unique_ptr<transport::client>> ws_workers;
  if (o.ws_workers) {
    transport::server_options so;
    so.port = o.port;
    try {
      edge = std::make_unique<transport::server>(n, so);
    } catch (const std::exception& e) {
      return std::fprintf(stderr, "demo: cannot listen on port %u: %s\n", unsigned(o.port), e.what()), 1;
    }
    for (std::size_t i = 0; i < o.ws_workers; ++i) {
      transport::client_options co;
      co.port = edge->port();
      co.id = "ws-worker-" + std::to_string(i);
      co.type = "worker";
      co.capabilities = {"summarize"};
      ws_workers.push_back(std::make_unique<transport::client>(co));
      transport::client& c = *ws_workers.back();
      if (c.connect() != errc::ok) return std::fprintf(stderr, "demo: %s cannot connect\n", co.id.c_str()), 1;
      auto joined = c.subscribe(std::string(assign_topic), [&c, as_result](const transport::incoming& in) {
        result_body r{};
        std::memcpy(&r.head, in.payload.data(), sizeof r.head);
        r.via_websocket = 1;
        r.fold = fold_of(in.payload);
        c.publish(result_topic, std::string_view(reinterpret_cast<const char*>(&r), sizeof r), as_result);
      }, "workers");
      if (joined.get() != errc::ok) return std::fprintf(stderr, "demo: %s cannot join the group\n", co.id.c_str()), 1;
    }
  }

  agent_spec coordinator("coordinator", "coordinator");
  coordinator.subscriptions = {std::string(result_topic)};
  auto coord = n.spawn(coordinator, [&t](agent_context&, const delivery& d) {
    const std::uint64_t now = scheduling::steady_ns();
    result_body r{};
    std::lock_guard<std::mutex> lock(t.m);
    if (d.payload.size() != sizeof r) {
      ++t.bad;
      return;
    }
    std::memcpy(&r, d.payload.data(), sizeof r);
    t.second.record(now - r.head.intended_ns);
    (r.via_websocket ? t.ws : t.inproc).record(now - r.head.intended_ns);
    ++t.results;
  });
  if (!coord) return std::fprintf(stderr, "demo: spawning the coordinator: %s\n", to_string(coord.error())), 1;

  auto connected = n.connect(agent_spec("dispatcher", "dispatcher"));
  if (!connected) return std::fprintf(stderr, "demo: connecting: %s\n", to_string(connected.error())), 1;
  client& dispatcher = **connected;

  std::printf("flowbus demo: %zu in-process + %zu WebSocket workers (queue group on %.*s), %.0f tasks/s for %.0f s, "
              "%zu scheduler threads\n",
              o.workers, o.ws_workers, int(assign_topic.size()), assign_topic.data(), o.rate, o.seconds, n.workers());
  if (edge) std::printf("  WebSocket edge on ws://127.0.0.1:%u\n", unsigned(edge->port()));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0}, refused{0};
  std::thread offer([&] {
    std::string payload(task_size, 't');
    send_options so;
    so.type = codec::msg_type::task_assignment;
    // everything due by now goes out, each stamped with its own intended time
    scheduling::offer_at_fixed_rate(
        o.rate, static_cast<std::uint64_t>(o.rate * o.seconds),
        [&](std::uint64_t i, std::uint64_t intended_ns) {
          const task_head h{i, intended_ns};
          std::memcpy(payload.data(), &h, sizeof h);
          if (dispatcher.publish(assign_topic, payload, so).delivered == 1)
            sent.fetch_add(1, std::memory_order_relaxed);
          else
            refused.fetch_add(1, std::memory_order_relaxed);
          dispatcher.heartbeat();
        },
        [&] { return stop.load(std::memory_order_relaxed); });
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
  histogram by_inproc, by_ws;
  {
    std::lock_guard<std::mutex> lock(t.m);
    by_inproc = t.inproc;
    by_ws = t.ws;
  }
  for (auto& c : ws_workers)
    c->close();
  if (edge) edge->stop();
  connected->reset();
  const shutdown_report rep = n.shutdown();
  const std::uint64_t dead = n.dead().total();
  const double secs = std::chrono::duration<double>(clk::now() - start).count();
  std::printf("summary: %" PRIu64 " tasks sent, %" PRIu64 " results, %" PRIu64 " refused, %" PRIu64
              " dead letters, shutdown %s\n",
              sent.load(), results, refused.load(), dead, rep.drained ? "drained" : "NOT drained");
  print_line("all   ", all, secs);
  if (o.ws_workers) {
    print_line("  in-process workers", by_inproc, secs);
    print_line("  WebSocket workers ", by_ws, secs);
  }
  if (o.json)
    std::printf("{\"bench\":\"demo_task_result\",\"rate\":%.0f,\"workers\":%zu,\"ws_workers\":%zu,\"msgs_per_s\":%.0f,%s}\n",
                o.rate, o.workers, o.ws_workers, static_cast<double>(all.count()) / secs, all.json_fields("us", 1e3).c_str());
  const bool ok = results == sent.load() && refused.load() == 0 && bad == 0 && dead == 0 && rep.drained;
  if (!ok) std::fprintf(stderr, "demo: FAILED — not every task was answered cleanly\n");
  return ok ? 0 : 1;
}

} // namespace flowbus::app
