// In-process publish -> subscribe through a flowbus node, against the same traffic through plain
// CAF messaging, in one run so the ratios hold on a noisy machine (issue 4).
//
//   inproc_pubsub_latency   a client thread publishes 128-byte messages at a fixed rate to a
//                           topic; an actor agent subscribed to it records, per message,
//                           now - the message's *intended* send time (no coordinated omission)
//   inproc_pubsub_latency_spin  the same with the subscriber's idle_spin at 500 µs (it polls
//                           its mailbox between messages instead of yielding its worker)
//   caf_pubsub_latency      the same through anon_send of a 128-byte std::string to a CAF actor
//   inproc_pubsub_1to1      msgs/s delivered, one publisher thread -> one actor agent
//   inproc_pubsub_1to1_spin the same with the subscriber's idle_spin at 500 µs
//   caf_pubsub_1to1         msgs/s, one thread anon_send -> one CAF actor
//   inproc_fanout_1to10     deliveries/s, one publisher -> 10 subscribed actor agents
//   inproc_fanout_1to1000   deliveries/s, one publisher -> 1000 subscribed actor agents
//   inproc_publish_100k_subs  ns per publish with 100K subscriptions (exact + wildcard) in the
//                           node, topics drawn from 1000 hot ones (route cache) and from 100K
//
// Each runs --runs times (default 3); one JSON line per benchmark gives the median run with the
// spread, and ratio lines compare flowbus with CAF within each run.
#include <flowbus/actors/node.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace flowbus::actors;
using flowbus::scheduling::histogram;
using clk = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct options {
  int runs = 3;
  double rate = 10000; ///< messages/s offered in the latency benchmarks
  double seconds = 2;  ///< duration of a latency run
  std::uint64_t messages = 1000000;
  scheduler_policy policy = scheduler_policy::stealing;
  std::size_t workers = 0; ///< 0: the node's default (one per CPU)
  long idle_poll_us = -1;  ///< -1: the node's default
  std::string only;
};

std::string payload_with(std::uint64_t stamp) {
  std::string p(128, 'x');
  std::memcpy(p.data(), &stamp, sizeof stamp);
  return p;
}
std::uint64_t stamp_of(std::string_view p) {
  std::uint64_t s = 0;
  std::memcpy(&s, p.data(), sizeof s);
  return s;
}

node_config bench_node(const options& o, std::size_t mailbox = 8192) {
  node_config c;
  c.policy = o.policy;
  c.mailbox_capacity = mailbox;
  c.drain_timeout = 30s;
  c.workers = o.workers;
  if (o.idle_poll_us >= 0) c.idle_poll = std::chrono::microseconds(o.idle_poll_us);
  return c;
}

/// The sender's pacing loop: message i is due at start + i / rate; late messages go at once
/// (their latency still counts from when they were due).
template <class Send> void paced(const options& o, std::uint64_t count, Send&& send) {
  const double period = 1e9 / o.rate;
  const std::uint64_t start = flowbus::scheduling::steady_ns() + 1000000;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t due = start + static_cast<std::uint64_t>(static_cast<double>(i) * period);
    while (flowbus::scheduling::steady_ns() < due) {
    }
    send(due);
  }
}

struct result {
  histogram h;
  double rate = 0; ///< msgs (or deliveries) per second
  std::uint64_t refused = 0; ///< copies dead-lettered (mailbox full)
};

result inproc_latency(const options& o, std::chrono::microseconds spin) {
  result r;
  const auto count = static_cast<std::uint64_t>(o.rate * o.seconds);
  alignas(128) std::atomic<std::uint64_t> seen{0}; // its own lines: the publisher's locals sit next to it
  node n(bench_node(o));
  agent_spec sub("sub", "bench");
  sub.subscriptions = {"bench.latency"};
  sub.idle_spin = spin;
  (void)n.spawn(sub, [&](agent_context&, const delivery& d) {
    r.h.record(flowbus::scheduling::steady_ns() - stamp_of(d.payload));
    seen.fetch_add(1, std::memory_order_release);
  });
  auto pub = std::move(n.connect(agent_spec("pub", "bench")).value());
  paced(o, count, [&](std::uint64_t due) {
    const std::string p = payload_with(due);
    while (pub->publish("bench.latency", p).code == errc::mailbox_full) {
    }
  });
  while (seen.load(std::memory_order_acquire) < count)
    std::this_thread::yield();
  n.shutdown();
  return r;
}

struct caf_sink_state {
  histogram* h;
  std::atomic<std::uint64_t>* seen;
};

caf::actor_system_config& caf_config(caf::actor_system_config& cfg, const options& o) {
  cfg.set("scheduler.policy", o.policy == scheduler_policy::sharing ? caf::atom("sharing") : caf::atom("stealing"));
  cfg.set("scheduler.max-threads", o.workers ? o.workers : std::max<std::size_t>(1, std::thread::hardware_concurrency()));
  cfg.set("logger.console", caf::atom("none"));
  return cfg;
}

caf::behavior caf_sink(caf::stateful_actor<caf_sink_state>* self, histogram* h, std::atomic<std::uint64_t>* seen) {
  self->state = {h, seen};
  return {[=](const std::string& p) {
    if (self->state.h) self->state.h->record(flowbus::scheduling::steady_ns() - stamp_of(p));
    self->state.seen->fetch_add(1, std::memory_order_release);
  }};
}

result caf_latency(const options& o) {
  result r;
  const auto count = static_cast<std::uint64_t>(o.rate * o.seconds);
  alignas(128) std::atomic<std::uint64_t> seen{0}; // its own lines: the publisher's locals sit next to it
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{caf_config(cfg, o)};
    auto sink = sys.spawn(caf_sink, &r.h, &seen);
    paced(o, count, [&](std::uint64_t due) { caf::anon_send(sink, payload_with(due)); });
    while (seen.load(std::memory_order_acquire) < count)
      std::this_thread::yield();
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }
  return r;
}

result inproc_throughput(const options& o, std::size_t fanout, std::uint64_t messages,
                         std::chrono::microseconds spin = std::chrono::microseconds{0}) {
  result r;
  struct alignas(128) counter { // one per subscriber, on its own lines
    std::atomic<std::uint64_t> n{0};
  };
  std::vector<counter> seen(fanout);
  auto total = [&] {
    std::uint64_t t = 0;
    for (const counter& c : seen)
      t += c.n.load(std::memory_order_acquire);
    return t;
  };
  auto slowest = [&] {
    std::uint64_t m = ~std::uint64_t{0};
    for (const counter& c : seen)
      m = std::min(m, c.n.load(std::memory_order_acquire));
    return m;
  };
  node n(bench_node(o, fanout > 100 ? 1024 : 8192));
  for (std::size_t i = 0; i < fanout; ++i) {
    agent_spec s("sub-" + std::to_string(i), "bench");
    s.subscriptions = {"bench.throughput"};
    s.idle_spin = spin;
    std::atomic<std::uint64_t>* mine = &seen[i].n;
    (void)n.spawn(s, [mine](agent_context&, const delivery&) {
      mine->store(mine->load(std::memory_order_relaxed) + 1, std::memory_order_release); // one writer
    });
  }
  auto pub = std::move(n.connect(agent_spec("pub", "bench")).value());
  const std::string p(128, 'x');
  const std::uint64_t expected = messages * fanout;
  const auto t0 = clk::now();
  // credit: at most half a mailbox in flight to the slowest subscriber, so no copy is refused (a
  // refused copy would be a dead letter; they are counted and reported)
  const std::uint64_t window = (fanout > 100 ? 1024 : 8192) / 2;
  for (std::uint64_t i = 0; i < messages; ++i) {
    if (i % (window / 8) == 0) // read the consumers' counters rarely: they are their hot lines
      while (i - slowest() > window)
        std::this_thread::yield();
    while (pub->publish("bench.throughput", p).code == errc::no_buffer)
      std::this_thread::yield();
  }
  while (total() + n.dead().total() < expected)
    std::this_thread::yield();
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  r.rate = static_cast<double>(total()) / secs;
  r.refused = n.dead().total();
  n.shutdown();
  return r;
}

result caf_throughput(const options& o, std::uint64_t messages) {
  result r;
  alignas(128) std::atomic<std::uint64_t> seen{0}; // its own lines: the publisher's locals sit next to it
  caf::actor_system_config cfg;
  caf::actor_system sys{caf_config(cfg, o)};
  auto sink = sys.spawn(caf_sink, nullptr, &seen);
  const std::string p(128, 'x');
  const auto t0 = clk::now();
  for (std::uint64_t i = 0; i < messages; ++i)
    caf::anon_send(sink, p);
  while (seen.load(std::memory_order_acquire) < messages)
    std::this_thread::yield();
  r.rate = static_cast<double>(messages) / std::chrono::duration<double>(clk::now() - t0).count();
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  return r;
}

/// Publish cost with 100K subscriptions: 50K exact topics, 50K wildcard patterns, spread over
/// 1000 agents (clients that never read: a small mailbox, refusals counted not waited for).
result publish_100k(const options& o, bool hot) {
  result r;
  const std::uint64_t publishes = 200000;
  node_config c = bench_node(o, 4096);
  c.dead_letter_capacity = 0; // count refusals only
  // every published frame stays queued at its (client) subscriber, which never receives: the
  // pool holds them all, so the publisher measures encode + route + push and never waits
  c.buffers.classes = {{256, publishes + 8192}};
  c.buffers.huge_pages = false;
  node n(c);
  std::vector<std::unique_ptr<client>> subs;
  for (int a = 0; a < 1000; ++a) {
    agent_spec s("agent-" + std::to_string(a), "bench");
    s.heartbeat_interval = 3600s; // they never call receive(): keep them alive anyway
    for (int k = 0; k < 50; ++k) {
      const int i = a * 50 + k;
      s.subscriptions.push_back("fleet.region" + std::to_string(i % 100) + ".agent" + std::to_string(i) + ".status");
      s.subscriptions.push_back("fleet.region" + std::to_string(i % 100) + ".*.task" + std::to_string(i) + ".>");
    }
    subs.push_back(std::move(n.connect(s).value()));
  }
  auto pub = std::move(n.connect(agent_spec("pub", "bench")).value());
  std::vector<std::string> topics;
  const int distinct = hot ? 1000 : 100000;
  for (int i = 0; i < distinct; ++i) {
    const int k = static_cast<int>((static_cast<std::uint64_t>(i) * 2654435761u) % 50000);
    topics.push_back(i % 2 ? "fleet.region" + std::to_string(k % 100) + ".agent" + std::to_string(k) + ".status"
                           : "fleet.region" + std::to_string(k % 100) + ".x.task" + std::to_string(k) + ".done");
  }
  std::uint64_t delivered = 0;
  const auto t0 = clk::now();
  for (std::uint64_t i = 0; i < publishes; ++i) {
    send_result sr;
    sr = pub->publish(topics[i % topics.size()], "x");
    delivered += sr.delivered;
  }
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  r.rate = static_cast<double>(publishes) / secs;
  r.refused = n.dead().total();
  if (delivered != publishes) std::fprintf(stderr, "publish_100k: %llu of %llu publishes delivered once\n",
                                           static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(publishes));
  subs.clear();
  n.shutdown();
  return r;
}

struct bench {
  std::string name;
  bool latency;
  std::function<result()> run;
};

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      o.runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--rate" && i + 1 < argc)
      o.rate = std::atof(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc)
      o.seconds = std::atof(argv[++i]);
    else if (a == "--quick") {
      o.runs = 1;
      o.seconds = 0.5;
      o.messages = 100000;
    } else if (a == "--sharing")
      o.policy = scheduler_policy::sharing;
    else if (a == "--workers" && i + 1 < argc)
      o.workers = static_cast<std::size_t>(std::atoi(argv[++i]));
    else if (a == "--idle-poll-us" && i + 1 < argc)
      o.idle_poll_us = std::atol(argv[++i]);
    else if (a == "--only" && i + 1 < argc)
      o.only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--runs N] [--rate MSGS_PER_S] [--seconds S] [--quick] [--sharing] [--workers N] [--idle-poll-us US] [--only NAME]\n",
                   argv[0]);
      return 2;
    }
  }
  const std::vector<bench> benches = {
      {"inproc_pubsub_latency", true, [&] { return inproc_latency(o, 0us); }},
      {"inproc_pubsub_latency_spin", true, [&] { return inproc_latency(o, 500us); }},
      {"caf_pubsub_latency", true, [&] { return caf_latency(o); }},
      {"inproc_pubsub_1to1", false, [&] { return inproc_throughput(o, 1, o.messages); }},
      {"inproc_pubsub_1to1_spin", false, [&] { return inproc_throughput(o, 1, o.messages, 500us); }},
      {"caf_pubsub_1to1", false, [&] { return caf_throughput(o, o.messages); }},
      {"inproc_fanout_1to10", false, [&] { return inproc_throughput(o, 10, o.messages / 5); }},
      {"inproc_fanout_1to1000", false, [&] { return inproc_throughput(o, 1000, o.messages / 200); }},
      {"inproc_publish_100k_subs_hot", false, [&] { return publish_100k(o, true); }},
      {"inproc_publish_100k_subs_cold", false, [&] { return publish_100k(o, false); }},
  };
  std::map<std::string, std::vector<result>> all;
  for (int run = 0; run < o.runs; ++run)
    for (const bench& b : benches)
      if (o.only.empty() || b.name.find(o.only) != std::string::npos) all[b.name].push_back(b.run());
  const char* policy = o.policy == scheduler_policy::sharing ? "sharing" : "stealing";
  for (const bench& b : benches) {
    auto it = all.find(b.name);
    if (it == all.end()) continue;
    std::vector<result>& rs = it->second;
    auto key = [&](const result& x) { return b.latency ? static_cast<double>(x.h.percentile(50)) : x.rate; };
    std::vector<std::size_t> order(rs.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return key(rs[x]) < key(rs[y]); });
    const result& med = rs[order[order.size() / 2]];
    const double lo = key(rs[order.front()]), hi = key(rs[order.back()]);
    if (b.latency)
      std::printf("{\"bench\":\"%s\",%s,\"rate\":%.0f,\"p50_us_min\":%.2f,\"p50_us_max\":%.2f,\"runs\":%zu,\"scheduler\":\"%s\"}\n",
                  b.name.c_str(), med.h.json_fields("us", 1000.0).c_str(), o.rate, lo / 1000, hi / 1000, rs.size(), policy);
    else if (b.name.find("100k") != std::string::npos)
      std::printf("{\"bench\":\"%s\",\"msgs_per_s\":%.0f,\"ns_per_publish\":%.1f,\"ns_per_publish_min\":%.1f,"
                  "\"ns_per_publish_max\":%.1f,\"refused\":%llu,\"runs\":%zu}\n",
                  b.name.c_str(), med.rate, 1e9 / med.rate, 1e9 / hi, 1e9 / lo, static_cast<unsigned long long>(med.refused),
                  rs.size());
    else
      std::printf("{\"bench\":\"%s\",\"msgs_per_s\":%.0f,\"msgs_per_s_min\":%.0f,\"msgs_per_s_max\":%.0f,\"refused\":%llu,\"runs\":%zu,\"scheduler\":\"%s\"}\n",
                  b.name.c_str(), med.rate, lo, hi, static_cast<unsigned long long>(med.refused), rs.size(), policy);
  }
  auto ratio = [&](const char* name, const char* a, const char* b, bool latency) {
    if (!all.count(a) || !all.count(b)) return;
    std::vector<double> rs;
    for (std::size_t i = 0; i < std::min(all[a].size(), all[b].size()); ++i)
      rs.push_back(latency ? static_cast<double>(all[b][i].h.percentile(50)) / static_cast<double>(all[a][i].h.percentile(50))
                           : all[a][i].rate / all[b][i].rate);
    std::sort(rs.begin(), rs.end());
    std::printf("{\"bench\":\"%s\",\"ratio\":%.2f,\"ratio_min\":%.2f,\"ratio_max\":%.2f,\"runs\":%zu}\n", name,
                rs[rs.size() / 2], rs.front(), rs.back(), rs.size());
  };
  ratio("ratio_caf_over_inproc_p50_latency", "inproc_pubsub_latency", "caf_pubsub_latency", true);
  ratio("ratio_inproc_over_caf_1to1_rate", "inproc_pubsub_1to1", "caf_pubsub_1to1", false);
  return 0;
}
