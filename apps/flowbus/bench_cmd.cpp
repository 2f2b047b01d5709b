// The load generator. Latency is measured like nats-io/latency-tests and Aeron's load-test rig:
// messages are offered at fixed intervals and each carries its *intended* send time (steady clock,
// shared by processes on one host), so a publisher that falls behind is charged for it (no
// coordinated omission). Throughput counts what the subscribers received between their first and
// last message.
#include "bench_cmd.hpp"

#include "node_cmd.hpp"

#include <flowbus/actors/node.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>
#include <flowbus/scheduling/numa.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <sys/prctl.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace flowbus::app {
namespace {

using clk = std::chrono::steady_clock;
using scheduling::histogram;
using namespace std::chrono_literals;
constexpr const char* topic = "bench.ws.data";
constexpr const char* stream_out = "bench.stream.out"; ///< --through-stream: the consumer's deliver_to

struct stamp {
  std::uint64_t seq, intended_ns;
};
constexpr std::uint64_t bulk_bit = std::uint64_t{1} << 63; ///< in stamp.seq: load traffic, not measured

/// Whether the node holds the publisher for a slow subscriber (a lossless topic) rather than
/// isolating the subscriber (the default, which sheds what overflows its queue): asked for, or a
/// throughput run, which measures what is delivered as fast as the slowest side takes it.
bool holds_publisher(const bench_options& o) { return o.lossless || o.scenario == "throughput"; }

/// A node started as a child process (`flowbus node --port 0`), stopped with SIGTERM.
struct node_process {
  pid_t pid = -1;
  std::uint16_t port = 0;
  int out_fd = -1; ///< the node's standard output (its listening line, then its stop line)

  std::uint16_t cluster_port = 0;

  /// `cluster`: the node's cluster arguments (--name, --cluster-port, --join ...).
  bool start(const bench_options& o, const std::vector<std::string>& cluster = {}) {
    int out[2];
    if (pipe(out) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    const std::string mailbox = std::to_string(o.node_mailbox), io = std::to_string(o.node_io_threads);
    std::vector<std::string> args = {"flowbus", "node", "--port", "0", "--log-level", "warn",
                                     "--mailbox", mailbox, "--io-threads", io,
                                     "--max-subscriptions", std::to_string(std::max<std::size_t>(o.subscriptions, 100000))};
    if (holds_publisher(o)) args.insert(args.end(), {"--lossless", topic});
    if (!o.through_stream.empty()) {
      args.insert(args.end(), {"--stream-dir", o.stream_dir, "--stream", std::string("bench=") + topic});
      if (o.through_stream == "memory") args.insert(args.end(), {"--stream-storage", "memory"});
      else args.insert(args.end(), {"--stream-fsync", o.through_stream});
    }
    if (o.shm) args.insert(args.end(), {"--shm-spin-us", std::to_string(o.shm_spin_us)});
    args.insert(args.end(), cluster.begin(), cluster.end());
    args.insert(args.end(), o.node_args.begin(), o.node_args.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      return false;
    }
    // "flowbus node: listening on ws://127.0.0.1:PORT (...)" (wss:// with TLS)
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n')
      line += c;
    out_fd = out[0]; // kept open: the node prints its stop line there when it exits
    const auto at = line.find("://"); // ws:// or wss://
    if (at == std::string::npos) return false;
    const auto colon = line.find(':', at + 3);
    port = static_cast<std::uint16_t>(std::atoi(line.c_str() + colon + 1));
    if (const auto cn = line.find("cluster node "); cn != std::string::npos) // "... at HOST:PORT; ..."
      cluster_port = static_cast<std::uint16_t>(std::atoi(line.c_str() + line.find(':', line.find(" at ", cn)) + 1));
    return port != 0 && (cluster.empty() || cluster_port != 0);
  }
  /// SIGTERM, then waits for the exit; its status.
  int stop() {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    return st;
  }
  ~node_process() {
    stop();
    if (out_fd >= 0) close(out_fd);
  }
};

/// CPU time (user + system) a process has used, in ms (/proc/PID/stat).
double cpu_ms(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return 0;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')'); // the command may hold spaces; fields 14, 15 follow
  unsigned long long utime = 0, stime = 0;
  if (!p || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return 0;
  return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}


/// A bench client of host:port with this id (type "bench"); shared memory as the options say.
transport::client_options bench_client(const std::string& host, std::uint16_t port, std::string id,
                                       const bench_options& o) {
  transport::client_options co;
  co.host = host;
  co.port = port;
  co.id = std::move(id);
  co.type = "bench";
  co.max_queued = 1 << 16;
  co.shared_memory = o.shm;
  co.shm_spin = std::chrono::microseconds(o.shm_spin_us);
  co.token = o.token;
  if (!o.tls_ca.empty()) {
    co.tls.enabled = true;
    co.tls.ca_file = o.tls_ca;
  }
  return co;
}

/// The subscribing side: `count` clients on `topic`, each with its own connection.
class subscribers {
public:
  /// Subscriber i connects to ports[i % ports.size()]. `via_stream`: they read the consumer of
  /// --through-stream's stream (acking each record); else they subscribe to the topic itself.
  subscribers(std::string host, const std::vector<std::uint16_t>& ports, std::size_t count, std::uint64_t expected_each,
              const bench_options& o, bool via_stream)
      : expected_(expected_each * count), boxes_(count) {
    for (std::size_t i = 0; i < count; ++i) {
      const std::string id = std::string(via_stream || o.through_stream.empty() ? "bench-sub-" : "bench-direct-") +
                             std::to_string(getpid()) + "-" + std::to_string(i);
      transport::client_options co = bench_client(host, ports[i % ports.size()], id, o);
      co.subscriptions = {via_stream ? stream_out : topic};
      co.max_queued = 1 << 20;
      co.receive_buffer = o.receive_buffer;
      co.receive_window = o.receive_window;
      clients_.push_back(std::make_unique<transport::client>(co));
      box& b = boxes_[i];
      transport::client* self = clients_.back().get();
      const bool ack = via_stream;
      clients_.back()->on_message([&b, this, self, ack](const transport::incoming& in) {
        const std::uint64_t now = scheduling::steady_ns();
        if (ack) self->respond(in, ""); // a stream consumer's record: acknowledged
        stamp s{};
        if (in.payload.size() >= sizeof s) std::memcpy(&s, in.payload.data(), sizeof s);
        if (s.seq & bulk_bit) { // load traffic (priority bench): counted, not measured
          bulk_.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        std::lock_guard<std::mutex> g(b.m);
        if (b.received == 0) b.first = now;
        b.last = now;
        ++b.received;
        b.second.record(now > s.intended_ns ? now - s.intended_ns : 0);
        total_.fetch_add(1, std::memory_order_relaxed);
      });
    }
  }

  bool connect() {
    for (auto& c : clients_)
      if (c->connect(10s) != actors::errc::ok) return false;
    return true;
  }

  /// --through-stream: the consumer of the node's stream `bench` that delivers to the subscribers
  /// (a queue group would share; here every subscriber is on the topic: one subscriber).
  bool start_consumer() {
    const std::string req = std::string(R"({"op":"consumer.add","stream":"bench","consumer":{"name":"bench",)") +
                            R"("deliver_to":")" + stream_out + R"(","max_in_flight":4096,"ack_wait_ms":30000}})";
    const auto r = clients_[0]->request(transport::destination::agent("$streams"), req, 5s).get();
    if (r.code != actors::errc::ok || r.payload.find("\"error\"") != std::string::npos) {
      std::fprintf(stderr, "bench: the stream's consumer: %s %s\n", actors::to_string(r.code), r.payload.c_str());
      return false;
    }
    return true;
  }

  /// Waits for every message or the deadline, printing a progress line per second to stderr.
  void wait(clk::time_point deadline, bool latency_lines) {
    auto last = clk::now();
    while (total_.load() < expected_ && clk::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      if (clk::now() - last < 1s) continue;
      const histogram h = take_second();
      const double secs = std::chrono::duration<double>(clk::now() - last).count();
      last = clk::now();
      if (h.count()) { // a whole second with traffic: is anything queueing up over the run?
        if (seconds_++ == 0) first_second_p50_ = h.percentile(50);
        last_second_p50_ = h.percentile(50);
      }
      if (latency_lines)
        std::fprintf(stderr, "  %8.0f msgs/s  p50 %7.1f us  p95 %7.1f us  p99 %7.1f us  max %8.1f us\n",
                     static_cast<double>(h.count()) / secs, h.percentile(50) / 1e3, h.percentile(95) / 1e3,
                     h.percentile(99) / 1e3, static_cast<double>(h.max()) / 1e3);
      else
        std::fprintf(stderr, "  %8.0f msgs/s received (%" PRIu64 " of %" PRIu64 ")\n",
                     static_cast<double>(h.count()) / secs, total_.load(), expected_);
    }
    take_second();
  }

  /// p50 (ns) of the first and of the last whole second with traffic (0 if none): equal when
  /// nothing queues up over the run, growing when the offered rate is more than the path carries.
  double first_second_p50() const { return first_second_p50_; }
  double last_second_p50() const { return last_second_p50_; }
  std::uint64_t received() const { return total_.load(); }
  std::uint64_t bulk() const { return bulk_.load(); }
  std::uint64_t expected() const { return expected_; }
  const histogram& all() const { return all_; }
  /// Deliveries per second over the window from the first to the last message (all subscribers).
  double rate() {
    std::uint64_t first = UINT64_MAX, last = 0, n = 0;
    for (auto& b : boxes_) {
      std::lock_guard<std::mutex> g(b.m);
      if (!b.received) continue;
      first = std::min(first, b.first);
      last = std::max(last, b.last);
      n += b.received;
    }
    return last > first ? static_cast<double>(n) * 1e9 / static_cast<double>(last - first) : 0;
  }
  void close() {
    for (auto& c : clients_)
      c->close();
  }

private:
  struct box {
    std::mutex m;
    histogram second;
    std::uint64_t received = 0, first = 0, last = 0;
  };
  histogram take_second() {
    histogram h;
    for (auto& b : boxes_) {
      std::lock_guard<std::mutex> g(b.m);
      h.merge(b.second);
      b.second.reset();
    }
    all_.merge(h);
    return h;
  }

  std::uint64_t expected_;
  std::size_t seconds_ = 0;
  double first_second_p50_ = 0, last_second_p50_ = 0;
  std::vector<box> boxes_;
  std::vector<std::unique_ptr<transport::client>> clients_;
  std::atomic<std::uint64_t> total_{0}, bulk_{0};
  histogram all_;
};

/// `extra`: more fields (each with its leading comma).
void print_result(const bench_options& o, const std::string& name, subscribers& subs, double offered_rate,
                  const std::string& extra = {}) {
  const histogram& h = subs.all();
  std::printf("{\"bench\":\"%s\",\"transport\":\"websocket\",\"processes\":%zu,\"nodes\":%zu,\"payload_bytes\":%zu,"
              "\"subscribers\":%zu,\"offered_per_s\":%.0f,\"received\":%" PRIu64 ",\"expected\":%" PRIu64
              ",\"msgs_per_s\":%.0f,\"p50_first_s_us\":%.3f,\"p50_last_s_us\":%.3f,%s%s}\n",
              name.c_str(), o.embedded ? std::size_t{1} : (o.clients_together ? 1 : 2) + o.cluster_nodes, o.cluster_nodes, o.size,
              o.scenario == "latency" ? std::size_t{1} : o.subscribers, offered_rate,
              subs.received(), subs.expected(), subs.rate(), subs.first_second_p50() / 1e3, subs.last_second_p50() / 1e3,
              h.json_fields("us", 1e3).c_str(), extra.c_str());
  std::fflush(stdout);
}

/// latency --through-stream: a second subscriber on the topic itself, in the same run (so under
/// the same load, the same disk syncs), is what the stream's latency is compared with.
struct subscriber_sides {
  subscribers main;
  std::unique_ptr<subscribers> direct; ///< latency --through-stream only

  subscriber_sides(const std::string& host, const std::vector<std::uint16_t>& ports, std::size_t n, std::uint64_t count,
                   const bench_options& o)
      : main(host, ports, n, count, o, !o.through_stream.empty()) {
    if (o.scenario == "latency" && !o.through_stream.empty())
      direct = std::make_unique<subscribers>(host, ports, 1, count, o, false);
  }
  bool connect() { return main.connect() && (!direct || direct->connect()); }
  void wait(clk::time_point deadline, bool latency_lines) {
    main.wait(deadline, latency_lines);
    if (direct) direct->wait(deadline, false);
  }
  /// The stream's line says its p99 against the direct one's, the direct one's line comes first.
  void print(const bench_options& o, const std::string& name, const std::string& direct_name, double offered_rate) {
    std::string extra;
    if (direct) {
      print_result(o, direct_name, *direct, offered_rate, ",\"beside\":\"" + name + "\"");
      const double d99 = direct->all().percentile(99), s99 = main.all().percentile(99);
      char buf[160];
      std::snprintf(buf, sizeof buf, ",\"direct_p99_us\":%.3f,\"p99_to_direct\":%.2f", d99 / 1e3, d99 > 0 ? s99 / d99 : 0.0);
      extra = buf;
    }
    print_result(o, name, main, offered_rate, extra);
  }
  bool complete() const {
    return main.received() == main.expected() && (!direct || direct->received() == direct->expected());
  }
  void close() {
    main.close();
    if (direct) direct->close();
  }
};

/// Publishes: at fixed intervals (latency) or as fast as the client takes them (throughput).
int publish(const bench_options& o, const std::string& host, std::uint16_t port, std::uint64_t count,
            const actors::send_options& opts = {}, const char* id_suffix = "") {
  transport::client_options co = bench_client(host, port, "bench-pub-" + std::to_string(getpid()) + id_suffix, o);
  co.max_block = std::chrono::milliseconds(100); // a full queue: sleep until half of it is written, then go on
  co.direct_write_gap = std::chrono::microseconds(o.direct_write_gap_us);
  co.max_batch = o.client_batch;
  if (o.send_buffer) co.send_buffer = o.send_buffer;
  transport::client pub(co);
  if (pub.connect(10s) != actors::errc::ok) return std::fprintf(stderr, "bench: the publisher cannot connect\n"), 1;
  std::atomic<std::uint64_t> refused{0};
  auto sender = [&] {
    return [&, payload = std::string(std::max(o.size, sizeof(stamp)), 'b')](std::uint64_t i,
                                                                          std::uint64_t intended_ns) mutable {
      const stamp s{i, intended_ns};
      std::memcpy(payload.data(), &s, sizeof s);
      while (pub.publish(topic, payload, opts) != actors::errc::ok) {
        // still full after max_block (the node holds us): try again
        refused.fetch_add(1, std::memory_order_relaxed);
      }
    };
  };
  const auto t0 = clk::now();
  if (o.scenario == "latency" || o.scenario == "priority") {
    scheduling::offer_at_fixed_rate(o.rate, count, sender());
  } else {
    // throughput: one thread, or several sending through the one client at once (each its share)
    const std::size_t threads = std::max<std::size_t>(1, o.publisher_threads);
    std::vector<std::thread> ts;
    for (std::size_t t = 0; t < threads; ++t)
      ts.emplace_back([&, t, send = sender()]() mutable {
        for (std::uint64_t i = t; i < count; i += threads)
          send(i, scheduling::steady_ns());
      });
    for (auto& th : ts)
      th.join();
  }
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  std::fprintf(stderr, "bench: published %" PRIu64 " in %.2f s (%.0f msgs/s offered; %" PRIu64
               " waits for a full send queue, %" PRIu64 " of them past max_block; %" PRIu64 " writes, %" PRIu64
               " of them direct)\n",
               count, secs, static_cast<double>(count) / secs, pub.stats().blocked_sends, refused.load(), pub.stats().writes,
               pub.stats().direct_writes);
  std::this_thread::sleep_for(200ms); // let the last writes leave before GOODBYE
  pub.close();
  return 0;
}

/// Starts the bench's node processes: one, or a cluster of `cluster_nodes` (n1, n2, ... join n0).
bool start_nodes(const bench_options& o, std::vector<std::unique_ptr<node_process>>& nodes) {
  for (std::size_t i = 0; i < std::max<std::size_t>(1, o.cluster_nodes); ++i) {
    std::vector<std::string> cluster;
    if (o.cluster_nodes > 1) {
      cluster = {"--name", "n" + std::to_string(i), "--cluster-port", "0"};
      if (i > 0) cluster.insert(cluster.end(), {"--join", "127.0.0.1:" + std::to_string(nodes[0]->cluster_port)});
    }
    nodes.push_back(std::make_unique<node_process>());
    if (!nodes.back()->start(o, cluster)) return false;
  }
  return true;
}

/// --through-stream: the started node's --stream-dir, a fresh directory removed at the end.
struct stream_directory {
  std::string path;
  stream_directory() = default;
  stream_directory(const stream_directory&) = delete;
  stream_directory& operator=(const stream_directory&) = delete;
  ~stream_directory() {
    if (!path.empty()) std::filesystem::remove_all(path);
  }
  /// Makes it and names it in o.stream_dir; false if it cannot.
  bool make(bench_options& o) {
    char tmpl[] = "/tmp/flowbus-bench-stream-XXXXXX";
    if (!mkdtemp(tmpl)) return false;
    o.stream_dir = path = tmpl;
    return true;
  }
};

/// latency and throughput: subscribers in a child process (or this one), the publisher here.
int run_pubsub(const bench_options& given) {
  bench_options o = given;
  stream_directory stream_dir;
  if (!o.through_stream.empty()) {
    if (!o.connect.empty() || o.embedded || o.cluster_nodes > 1 || (o.catch_up && o.scenario != "throughput"))
      return std::fprintf(stderr, "bench: --through-stream needs the started node (one), and --catch-up throughput\n"), 2;
    if (!stream_dir.make(o)) return 1;
  }
  const bool latency = o.scenario == "latency";
  const std::uint64_t count = latency ? static_cast<std::uint64_t>(o.rate * o.seconds) : o.messages;
  const std::size_t nsubs = latency ? 1 : o.subscribers;
  const std::string unbatched = std::string(o.shm ? "_shm" : "") + (o.shm && o.shm_spin_us ? "_spin" : "") +
                                (o.client_batch == 1 ? "_unbatched" : "") + (o.clients_together ? "_2proc" : "") +
                                (!latency && o.publisher_threads > 1 ? "_" + std::to_string(o.publisher_threads) + "threads" : "") +
                                (o.cluster_nodes > 1 ? "_cluster" + std::to_string(o.cluster_nodes) : "") +
                                (o.through_stream.empty() ? "" : "_stream_" + o.through_stream) +
                                (o.catch_up ? "_catch_up" : "");
  const std::string name = !o.name.empty() ? o.name
                           : latency ? "ws_latency_" + std::to_string(static_cast<long>(o.rate)) + unbatched
                           : nsubs == 1 ? "ws_pubsub_1to1" + unbatched
                                        : "ws_fanout_1to" + std::to_string(nsubs) + unbatched;
  const std::string direct_name = name + "_direct"; ///< latency --through-stream: the topic's own subscriber
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::vector<std::uint16_t> sub_ports; // where the subscribers connect (default: the publisher's node)
  std::vector<std::unique_ptr<node_process>> child_nodes;
  std::unique_ptr<actors::node> node;
  std::unique_ptr<transport::server> server;
  if (!o.connect.empty()) {
    split_host_port(o.connect, host, port);
  } else if (!o.embedded) {
    if (!start_nodes(o, child_nodes)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
    port = child_nodes[0]->port;
    // cross-node: the subscriber on another node; fan-out: spread over all of them
    const std::size_t first = nsubs == 1 && child_nodes.size() > 1 ? 1 : 0;
    for (std::size_t i = first; i < child_nodes.size(); ++i)
      sub_ports.push_back(child_nodes[i]->port);
  }
  const auto deadline_after = latency ? std::chrono::duration<double>(o.seconds + 10) : std::chrono::duration<double>(120);
  std::fprintf(stderr, "bench %s: %" PRIu64 " messages of %zu bytes%s, %zu subscriber(s), node %s\n", name.c_str(),
               count, o.size, latency ? (" at " + std::to_string(static_cast<long>(o.rate)) + " msgs/s").c_str() : "",
               nsubs, !o.connect.empty() ? o.connect.c_str() : o.embedded ? "in this process" : "in a child process");

  if (o.embedded) {
    actors::node_config cfg;
    cfg.mailbox_capacity = o.node_mailbox;
    if (holds_publisher(o)) cfg.lossless_topics = {topic};
    node = std::make_unique<actors::node>(cfg);
    transport::server_options so;
    so.port = 0;
    so.io_threads = o.node_io_threads;
    server = std::make_unique<transport::server>(*node, so);
    port = server->port();
  }
  if (sub_ports.empty()) sub_ports.push_back(port);
  // across nodes: the subscribers' interest reaches the publisher's node over the links first
  const auto settle = [&] {
    if (o.cluster_nodes > 1) std::this_thread::sleep_for(1s);
  };
  if (o.embedded || o.clients_together) { // subscribers and publisher here
    subscriber_sides subs(host, sub_ports, nsubs, count, o);
    if (!subs.connect()) return std::fprintf(stderr, "bench: subscribers cannot connect\n"), 1;
    if (!o.through_stream.empty() && !subs.main.start_consumer()) return 1;
    settle();
    std::thread pub([&] { publish(o, host, port, count); });
    subs.wait(clk::now() + std::chrono::duration_cast<clk::duration>(deadline_after), latency);
    pub.join();
    subs.print(o, name, direct_name, latency ? o.rate : 0);
    subs.close();
    return subs.complete() ? 0 : 1;
  }

  // subscribers in a child forked before this process starts any thread
  int ready[2], published[2]; // the child says it is ready; --catch-up: the parent, that all is published
  if (pipe(ready) != 0 || pipe(published) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    close(published[1]);
    subscriber_sides subs(host, sub_ports, nsubs, count, o);
    const bool ok = subs.connect() && (o.through_stream.empty() || o.catch_up || subs.main.start_consumer());
    const char r = ok ? 'R' : 'F';
    (void)!write(ready[1], &r, 1);
    close(ready[1]);
    if (!ok) _exit(1);
    if (o.catch_up) { // the stream holds everything: now a consumer reads it from the first
      char p = 0;
      if (read(published[0], &p, 1) != 1 || !subs.main.start_consumer()) _exit(1);
    }
    close(published[0]);
    subs.wait(clk::now() + std::chrono::duration_cast<clk::duration>(deadline_after), latency);
    subs.print(o, name, direct_name, latency ? o.rate : 0);
    subs.close();
    _exit(subs.complete() ? 0 : 3);
  }
  close(ready[1]);
  close(published[0]);
  char r = 0;
  const bool up = read(ready[0], &r, 1) == 1 && r == 'R';
  close(ready[0]);
  if (up) settle();
  int rc = up ? publish(o, host, port, count) : 1;
  if (o.catch_up && rc == 0) std::this_thread::sleep_for(500ms); // the last batch stored
  (void)!write(published[1], "P", 1);
  close(published[1]);
  int st = 0;
  waitpid(child, &st, 0);
  if (!up) std::fprintf(stderr, "bench: the subscribers could not connect\n");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "bench: the subscribers did not get every message (status %d)\n", WEXITSTATUS(st));
    rc = rc ? rc : 1;
  }
  return rc;
}

/// The stream `bench`'s status from the stream API (stream.info): null if it did not answer.
nlohmann::json stream_info(transport::client& c) {
  const auto r = c.request(transport::destination::agent("$streams"), R"({"op":"stream.info","name":"bench"})", 5s).get();
  if (r.code != actors::errc::ok) return nullptr;
  nlohmann::json j = nlohmann::json::parse(r.payload, nullptr, false);
  return j.is_object() && j.contains("stream") && j["stream"].contains("durable") ? j["stream"] : nlohmann::json(nullptr);
}

/// store: publishes into the started node's stream (--through-stream P), nobody subscribing, one
/// publisher as fast as it is let. Acknowledged (the default): the node ACKs each once its record
/// is as durable as P says (docs/streams.md), --in-flight unconfirmed at once, and the rate is of
/// ACKs. --unacked: plain publishes, and the rate is up to the moment the stream says the last one
/// is durable (its stream.info, asked every 2 ms).
int run_store(const bench_options& given) {
  bench_options o = given;
  if (o.through_stream.empty() || !o.connect.empty() || o.embedded || o.cluster_nodes > 1)
    return std::fprintf(stderr, "bench store: needs --through-stream POLICY and the started node (one)\n"), 2;
  stream_directory stream_dir;
  if (!stream_dir.make(o)) return 1;
  std::vector<std::unique_ptr<node_process>> nodes;
  if (!start_nodes(o, nodes)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
  const std::string name = !o.name.empty() ? o.name
                                           : std::string(o.unacked ? "ws_store_" : "ws_store_acked_") + "stream_" + o.through_stream;
  transport::client_options co = bench_client("127.0.0.1", nodes[0]->port, "bench-store-" + std::to_string(getpid()), o);
  co.max_block = std::chrono::milliseconds(100);
  co.max_batch = o.client_batch;
  co.ack_timeout = std::chrono::seconds(30); // a slow sync is waited for, not answered by a second copy
  co.ack_attempts = 1;
  transport::client pub(co);
  if (pub.connect(10s) != actors::errc::ok) return std::fprintf(stderr, "bench: the publisher cannot connect\n"), 1;
  std::fprintf(stderr, "bench %s: %" PRIu64 " %s messages of %zu bytes into a %s stream\n", name.c_str(), o.messages,
               o.unacked ? "plain" : ("acknowledged (" + std::to_string(o.in_flight) + " in flight)").c_str(), o.size,
               o.through_stream.c_str());
  const std::string payload(o.size, 's');
  // acknowledged: the callback form (no promise per message), at most in_flight unanswered
  std::mutex m;
  std::condition_variable room;
  std::atomic<std::uint64_t> answered{0}, acked_n{0};
  std::atomic<bool> waiting{false};
  std::uint64_t failed = 0, retried = 0;      // failed: under m
  actors::errc first_failure = actors::errc::ok; // under m
  const auto on_answer = [&](actors::errc e) {
    if (e == actors::errc::ok) {
      acked_n.fetch_add(1, std::memory_order_relaxed);
    } else {
      std::lock_guard<std::mutex> g(m);
      if (failed++ == 0) first_failure = e;
    }
    answered.fetch_add(1);
    if (waiting.load()) { // the publisher sleeps (or is about to, holding m): wake it
      std::lock_guard<std::mutex> g(m);
      room.notify_one();
    }
  };
  const auto wait_until_answered = [&](auto&& enough) {
    if (enough()) return;
    std::unique_lock<std::mutex> g(m);
    waiting.store(true);
    room.wait(g, enough);
    waiting.store(false);
  };
  const auto t0 = clk::now();
  for (std::uint64_t i = 0; i < o.messages; ++i) {
    if (o.unacked) {
      while (pub.publish(topic, payload) != actors::errc::ok) // still full after max_block: the node holds us
        ++retried;
      continue;
    }
    wait_until_answered([&] { return i - answered.load() < o.in_flight; });
    pub.publish_acked(topic, payload, {}, on_answer);
  }
  if (!o.unacked) wait_until_answered([&] { return answered.load() == o.messages; });
  std::uint64_t acked = acked_n.load();
  nlohmann::json info = stream_info(pub);
  if (o.unacked) { // until the stream has the last one, durable
    const auto give_up = clk::now() + 60s;
    while (!info.is_null() && info["durable"].get<std::uint64_t>() < o.messages && clk::now() < give_up) {
      std::this_thread::sleep_for(2ms);
      info = stream_info(pub);
    }
    acked = info.is_null() ? 0 : std::min<std::uint64_t>(info["durable"].get<std::uint64_t>(), o.messages);
    failed = o.messages - acked;
  }
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  const std::uint64_t syncs = info.is_null() ? 0 : info["syncs"].get<std::uint64_t>();
  pub.close();
  if (failed && !o.unacked)
    std::fprintf(stderr, "bench: %" PRIu64 " not acknowledged (the first: %s)\n", failed, actors::to_string(first_failure));
  if (failed && o.unacked) std::fprintf(stderr, "bench: %" PRIu64 " not durable in the stream\n", failed);
  std::printf("{\"bench\":\"%s\",\"transport\":\"websocket\",\"payload_bytes\":%zu,\"policy\":\"%s\",\"in_flight\":%zu,"
              "\"messages\":%" PRIu64 ",\"%s\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"syncs\":%" PRIu64
              ",\"held\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.0f}\n",
              name.c_str(), o.size, o.through_stream.c_str(), o.unacked ? std::size_t{0} : o.in_flight, o.messages,
              o.unacked ? "durable" : "acked", acked, failed, syncs, retried, secs, static_cast<double>(acked) / secs);
  std::fflush(stdout);
  return failed ? 1 : 0;
}

/// request: request/reply latency at a fixed rate. A responder (its own process) answers on the
/// last node — across a hop in a cluster — and the requester here sends requests on the first,
/// without waiting for replies (open loop), measuring each from its intended send time to its reply.
int run_request(const bench_options& o) {
  constexpr const char* rpc_topic = "bench.ws.rpc";
  const std::uint64_t count = static_cast<std::uint64_t>(o.rate * o.seconds);
  const std::string name = !o.name.empty() ? o.name
                                           : "ws_request_reply_" + std::to_string(static_cast<long>(o.rate)) +
                                                 (o.shm ? (o.shm_spin_us ? "_shm_spin" : "_shm") : "") +
                                                 (o.cluster_nodes > 1 ? "_cluster" + std::to_string(o.cluster_nodes) : "") +
                                (o.through_stream.empty() ? "" : "_stream_" + o.through_stream) +
                                (o.catch_up ? "_catch_up" : "");
  std::vector<std::unique_ptr<node_process>> nodes;
  if (!start_nodes(o, nodes)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
  const std::uint16_t req_port = nodes.front()->port, resp_port = nodes.back()->port;
  std::fprintf(stderr, "bench %s: %" PRIu64 " requests of %zu bytes at %.0f/s, responder on node %zu of %zu\n",
               name.c_str(), count, o.size, o.rate, nodes.size(), nodes.size());
  int ready[2], done[2];
  if (pipe(ready) != 0 || pipe(done) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) { // the responder: echoes every request until the parent closes `done`
    close(ready[0]);
    close(done[1]);
    transport::client c(bench_client("127.0.0.1", resp_port, "bench-responder-" + std::to_string(getpid()), o));
    transport::client* cp = &c;
    const bool ok = c.connect(10s) == actors::errc::ok &&
                    c.subscribe(rpc_topic, [cp](const transport::incoming& in) { cp->respond(in, in.payload); })
                            .get() == actors::errc::ok;
    const char r = ok ? 'R' : 'F';
    (void)!write(ready[1], &r, 1);
    char x = 0;
    if (ok) (void)!read(done[0], &x, 1);
    c.close();
    _exit(ok ? 0 : 1);
  }
  close(ready[1]);
  close(done[0]);
  char r = 0;
  const bool up = read(ready[0], &r, 1) == 1 && r == 'R';
  close(ready[0]);
  int rc = 1;
  if (up) {
    transport::client c(bench_client("127.0.0.1", req_port, "bench-requester-" + std::to_string(getpid()), o));
    // in a cluster the responder's interest takes a while to reach n0 (longer on a loaded
    // machine): probe until a request is answered, so the measured ones do not meet no_responders
    const auto reachable = [&] {
      const auto until = clk::now() + 20s;
      transport::errc last = transport::errc::ok;
      do {
        last = c.request(transport::destination::topic(rpc_topic), "probe", 1000ms).get().code;
        if (last == transport::errc::ok) return true;
        std::this_thread::sleep_for(50ms);
      } while (clk::now() < until);
      std::fprintf(stderr, "bench: the responder is not reachable from node 1 (%s)\n", transport::to_string(last));
      return false;
    };
    if (c.connect(10s) == actors::errc::ok && reachable()) {
      std::mutex m;
      histogram h;
      std::uint64_t answered = 0, failed = 0;
      std::string payload(o.size, 'r');
      const auto t0 = clk::now();
      scheduling::offer_at_fixed_rate(o.rate, count, [&](std::uint64_t, std::uint64_t intended_ns) {
        c.request(actors::destination::topic(rpc_topic), payload, 5000ms, [&, intended_ns](transport::reply_result rr) {
          const std::uint64_t now = scheduling::steady_ns();
          std::lock_guard<std::mutex> g(m);
          if (rr.code != actors::errc::ok) {
            if (failed++ == 0) std::fprintf(stderr, "bench: a request failed: %s\n", transport::to_string(rr.code));
            return;
          }
          ++answered;
          h.record(now > intended_ns ? now - intended_ns : 0);
        });
      });
      const auto deadline = clk::now() + 10s;
      for (;;) {
        {
          std::lock_guard<std::mutex> g(m);
          if (answered + failed == count) break;
        }
        if (clk::now() > deadline) break;
        std::this_thread::sleep_for(10ms);
      }
      std::lock_guard<std::mutex> g(m);
      const double secs = std::chrono::duration<double>(clk::now() - t0).count();
      std::printf("{\"bench\":\"%s\",\"transport\":\"websocket\",\"processes\":%zu,\"nodes\":%zu,\"payload_bytes\":%zu,"
                  "\"offered_per_s\":%.0f,\"requests\":%" PRIu64 ",\"answered\":%" PRIu64 ",\"failed\":%" PRIu64
                  ",\"msgs_per_s\":%.0f,%s}\n",
                  name.c_str(), 2 + nodes.size(), std::max<std::size_t>(1, o.cluster_nodes), o.size, o.rate, count,
                  answered, failed, static_cast<double>(answered) / secs, h.json_fields("us", 1e3).c_str());
      std::fflush(stdout);
      rc = answered == count ? 0 : 1;
    }
    c.close();
  }
  close(done[1]); // the responder goes
  int st = 0;
  waitpid(child, &st, 0);
  if (!up) std::fprintf(stderr, "bench: the responder could not connect\n");
  return rc;
}

/// priority: probes offered at a fixed rate while a flood from a second connection saturates the
/// same subscriber connection, in two runs on fresh nodes: probes CRITICAL / flood BACKGROUND, then
/// everything NORMAL. The subscriber (its own process, a 64 KiB receive buffer so the backlog waits
/// in the node's lanes rather than in its socket) measures the probes only. Prints both results and
/// the ratio of their p99s.
int run_priority(const bench_options& o) {
  const std::uint64_t count = static_cast<std::uint64_t>(o.rate * o.seconds);
  double p99[2] = {0, 0};
  const char* names[2] = {"ws_priority_critical_vs_background", "ws_priority_all_normal"};
  for (int mode = 0; mode < 2; ++mode) {
    node_process child_node;
    if (!child_node.start(o)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
    const std::uint16_t port = child_node.port;
    std::fprintf(stderr, "bench %s: %" PRIu64 " probes at %.0f msgs/s under a flood\n", names[mode], count, o.rate);
    int fds[2], ready[2];
    if (pipe(fds) != 0 || pipe(ready) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(fds[0]);
      close(ready[0]);
      subscribers subs("127.0.0.1", {port}, 1, count, o, false);
      const bool ok = subs.connect();
      const char r = ok ? 'R' : 'F';
      (void)!write(ready[1], &r, 1);
      if (!ok) _exit(1);
      subs.wait(clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.seconds + 20)), true);
      const histogram& h = subs.all();
      std::printf("{\"bench\":\"%s\",\"transport\":\"websocket\",\"payload_bytes\":%zu,\"offered_per_s\":%.0f,"
                  "\"received\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"flood_received\":%" PRIu64 ",%s}\n",
                  names[mode], o.size, o.rate, subs.received(), subs.expected(), subs.bulk(), h.json_fields("us", 1e3).c_str());
      std::fflush(stdout);
      const double v = static_cast<double>(h.percentile(99)) / 1e3;
      (void)!write(fds[1], &v, sizeof v);
      subs.close();
      _exit(subs.received() == subs.expected() ? 0 : 3);
    }
    close(fds[1]);
    close(ready[1]);
    char r = 0;
    if (read(ready[0], &r, 1) != 1 || r != 'R') return std::fprintf(stderr, "bench: the subscriber could not connect\n"), 1;
    close(ready[0]);
    std::atomic<bool> done{false};
    std::thread flood([&] { // as fast as the client takes them, until the probes are through
      transport::client_options co;
      co.port = port;
      co.id = "bench-flood-" + std::to_string(getpid());
      co.type = "bench";
      transport::client c(co);
      if (c.connect(10s) != actors::errc::ok) return;
      actors::send_options fo;
      fo.prio = mode == 0 ? codec::priority::background : codec::priority::normal;
      std::string payload(std::max(o.size, sizeof(stamp)), 'f');
      for (std::uint64_t i = 0; !done.load(std::memory_order_relaxed); ++i) {
        const stamp st{i | bulk_bit, 0};
        std::memcpy(payload.data(), &st, sizeof st);
        if (c.publish(topic, payload, fo) != actors::errc::ok) std::this_thread::sleep_for(50us);
      }
      c.close();
    });
    std::this_thread::sleep_for(300ms); // the flood is on
    actors::send_options po;
    po.prio = mode == 0 ? codec::priority::critical : codec::priority::normal;
    int rc = publish(o, "127.0.0.1", port, count, po, "-probe");
    done = true;
    flood.join();
    if (read(fds[0], &p99[mode], sizeof(double)) != sizeof(double)) rc = 1;
    close(fds[0]);
    int st = 0;
    waitpid(child, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "bench: the subscriber did not get every probe (status %d)\n", WEXITSTATUS(st));
      rc = rc ? rc : 1;
    }
    if (rc) return rc;
  }
  std::printf("{\"bench\":\"ws_priority_ratio\",\"critical_p99_us\":%.1f,\"all_normal_p99_us\":%.1f,"
              "\"p99_ratio\":%.3f}\n", p99[0], p99[1], p99[1] > 0 ? p99[0] / p99[1] : 0);
  return 0;
}

/// connections: N idle agents, registered; the node's resident memory before and after.
int run_connections(const bench_options& o) {
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  namespace net = boost::asio;
  const std::uint64_t files = raise_file_limit();
  if (o.connections + 64 > files)
    std::fprintf(stderr, "bench: the open-file limit is %" PRIu64 ": at most about %" PRIu64 " connections\n", files,
                 files - 64);
  node_process np;
  if (!np.start(o)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
  struct conn {
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer in;
    std::vector<codec::byte> reg;
    explicit conn(net::io_context& ioc) : ws(ioc) {}
  };
  net::io_context ioc;
  std::vector<std::unique_ptr<conn>> conns;
  std::size_t welcomed = 0, failed = 0;
  const net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), np.port);
  auto open_one = [&](std::size_t i) {
    conns.push_back(std::make_unique<conn>(ioc));
    conn& c = *conns.back();
    codec::encoder enc;
    codec::message m;
    m.type = codec::msg_type::register_agent;
    const std::string id = "idle-" + std::to_string(i);
    m.set(codec::field::source, id);
    m.set(codec::field::heartbeat_ms, std::uint64_t{600000});
    c.reg.resize(enc.literal_size(m));
    c.reg.resize(enc.encode(m, c.reg.data(), c.reg.size()).size);
    c.ws.next_layer().async_connect(ep, [&c, &welcomed, &failed](beast::error_code ec) {
      if (ec) return void(++failed);
      c.ws.async_handshake("127.0.0.1", "/", [&c, &welcomed, &failed](beast::error_code ec2) {
        if (ec2) return void(++failed);
        c.ws.binary(true);
        c.ws.async_write(net::buffer(c.reg), [&c, &welcomed, &failed](beast::error_code ec3, std::size_t) {
          if (ec3) return void(++failed);
          c.ws.async_read(c.in, [&welcomed, &failed](beast::error_code ec4, std::size_t) {
            if (ec4) return void(++failed);
            ++welcomed;
          });
        });
      });
    });
  };
  open_one(0); // the first one warms up what every connection shares
  ioc.run();
  ioc.restart();
  std::this_thread::sleep_for(500ms);
  const std::uint64_t before = scheduling::resident_kib(np.pid);
  const auto t0 = clk::now();
  for (std::size_t i = 1; i < o.connections; ++i) {
    open_one(i);
    if (i % 500 == 0) { // in waves: the listen backlog is finite
      ioc.run();
      ioc.restart();
      std::fprintf(stderr, "  %zu connections registered\n", welcomed);
    }
  }
  ioc.run();
  ioc.restart();
  const double secs = std::chrono::duration<double>(clk::now() - t0).count();
  std::this_thread::sleep_for(1s);
  const std::uint64_t after = scheduling::resident_kib(np.pid);
  const std::size_t n = welcomed > 1 ? welcomed - 1 : 1;
  const double per = static_cast<double>(after - before) * 1024.0 / static_cast<double>(n);
  const std::string name = !o.name.empty() ? o.name : "ws_idle_connections_" + std::to_string(o.connections);
  std::printf("{\"bench\":\"%s\",\"requested\":%zu,\"registered\":%zu,\"failed\":%zu,\"open_file_limit\":%" PRIu64
              ",\"node_rss_before_kib\":%" PRIu64 ",\"node_rss_after_kib\":%" PRIu64
              ",\"bytes_per_connection\":%.0f,\"connects_per_s\":%.0f}\n",
              name.c_str(), o.connections, welcomed, failed, files, before, after, per,
              static_cast<double>(welcomed) / secs);
  std::fflush(stdout);
  for (auto& c : conns) {
    beast::error_code ignored;
    c->ws.next_layer().socket().close(ignored);
  }
  return welcomed == o.connections ? 0 : 1;
}

/// Subscription churn at scale: one connection subscribes `subscriptions` distinct topics, closes
/// (how long until the node has taken it down: its id registers again), then another subscribes
/// and unsubscribes them all, and the node is stopped (how long after all that churn).
int run_subscriptions(const bench_options& o) {
  node_process np;
  if (!np.start(o)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
  const std::size_t n = o.subscriptions;
  auto opts = [&](const std::string& id) {
    transport::client_options co;
    co.port = np.port;
    co.id = id;
    co.type = "bench";
    co.reconnect = false;
    co.max_queued = 1 << 22;
    return co;
  };
  // subscribes (or unsubscribes) every topic; the rate of answered requests
  auto all = [&](transport::client& c, bool sub) {
    const auto t0 = clk::now();
    std::size_t refused = 0;
    for (std::size_t at = 0; at < n; at += 10000) { // answers in chunks: bounded memory here
      std::vector<std::future<actors::errc>> answers;
      for (std::size_t i = at; i < std::min(n, at + 10000); ++i) {
        const std::string t = "_inbox.bench." + std::to_string(i);
        answers.push_back(sub ? c.subscribe(t) : c.unsubscribe(t));
      }
      for (auto& a : answers)
        if (a.get() != actors::errc::ok) ++refused;
    }
    if (refused) std::fprintf(stderr, "bench: %zu refused\n", refused);
    return static_cast<double>(n) / std::chrono::duration<double>(clk::now() - t0).count();
  };
  double sub_rate = 0, close_ms = 0, close_cpu = 0;
  {
    transport::client holder(opts("bench-holder"));
    if (holder.connect() != actors::errc::ok) return std::fprintf(stderr, "bench: cannot connect\n"), 1;
    sub_rate = all(holder, true);
    std::this_thread::sleep_for(200ms);
    const double cpu0 = cpu_ms(np.pid);
    const auto t0 = clk::now();
    holder.close();
    for (;;) { // the id is free once the node has taken the old connection down
      transport::client again(opts("bench-holder"));
      if (again.connect() == actors::errc::ok) break;
      if (clk::now() - t0 > 300s) return std::fprintf(stderr, "bench: the close never finished\n"), 1;
      std::this_thread::sleep_for(1ms);
    }
    close_ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
    close_cpu = cpu_ms(np.pid) - cpu0;
  }
  transport::client churner(opts("bench-churner"));
  if (churner.connect() != actors::errc::ok) return std::fprintf(stderr, "bench: cannot connect\n"), 1;
  all(churner, true);
  const double unsub_rate = all(churner, false);
  churner.close();
  const std::uint64_t rss = scheduling::resident_kib(np.pid);
  const auto t0 = clk::now();
  const int st = np.stop();
  const double stop_ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
  const std::string name = !o.name.empty() ? o.name : "ws_subscriptions_" + std::to_string(n);
  std::printf("{\"bench\":\"%s\",\"subscriptions\":%zu,\"subscribe_per_s\":%.0f,\"unsubscribe_per_s\":%.0f,"
              "\"close_ms\":%.1f,\"close_node_cpu_ms\":%.0f,\"stop_after_churn_ms\":%.1f,\"node_rss_kib\":%" PRIu64 "}\n",
              name.c_str(), n, sub_rate, unsub_rate, close_ms, close_cpu, stop_ms, rss);
  std::fflush(stdout);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/// One stall run: `n` subscribers on `topic` in this process, `rate` msgs/s for `seconds`; with
/// `stall`, the last subscriber stops reading at `stall_at` s (its handler blocks its connection's
/// thread: no reads, no CREDIT, no HEARTBEAT). The JSON line covers the other subscribers.
int stall_run(const bench_options& o, bool stall, const std::string& name) {
  node_process np;
  if (!np.start(o)) return std::fprintf(stderr, "bench: cannot start a node process\n"), 1;
  const std::size_t n = std::max<std::size_t>(o.subscribers, 2);
  const std::uint64_t count = static_cast<std::uint64_t>(o.rate * o.seconds);
  std::atomic<bool> stalled{false}, done{false};
  struct box {
    std::mutex m;
    histogram h;
    std::uint64_t received = 0;
  };
  std::vector<box> boxes(n);
  std::vector<std::unique_ptr<transport::client>> subs;
  for (std::size_t i = 0; i < n; ++i) {
    transport::client_options co;
    co.port = np.port;
    co.id = "stall-sub-" + std::to_string(i);
    co.type = "bench";
    co.subscriptions = {topic};
    co.reconnect = false;
    subs.push_back(std::make_unique<transport::client>(co));
    const bool victim = stall && i == n - 1;
    box& b = boxes[i];
    subs.back()->on_message([&b, &stalled, &done, victim](const transport::incoming& in) {
      if (victim && stalled.load())
        while (!done.load()) std::this_thread::sleep_for(10ms); // stops reading until the end
      const std::uint64_t now = scheduling::steady_ns();
      stamp s{};
      if (in.payload.size() >= sizeof s) std::memcpy(&s, in.payload.data(), sizeof s);
      std::lock_guard<std::mutex> g(b.m);
      ++b.received;
      b.h.record(now > s.intended_ns ? now - s.intended_ns : 0);
    });
    if (subs.back()->connect(10s) != actors::errc::ok) return std::fprintf(stderr, "bench: a subscriber cannot connect\n"), 1;
  }
  transport::client_options po;
  po.port = np.port;
  po.id = "stall-pub";
  po.type = "bench";
  po.max_queued = 1 << 20;
  transport::client pub(po);
  if (pub.connect(10s) != actors::errc::ok) return std::fprintf(stderr, "bench: the publisher cannot connect\n"), 1;
  std::string payload(std::max(o.size, sizeof(stamp)), 'b');
  std::uint64_t refused = 0;
  const std::uint64_t stall_after = static_cast<std::uint64_t>(o.rate * o.stall_at);
  scheduling::offer_at_fixed_rate(o.rate, count, [&](std::uint64_t i, std::uint64_t intended_ns) {
    if (i == stall_after) stalled = true;
    const stamp s{i, intended_ns};
    std::memcpy(payload.data(), &s, sizeof s);
    if (pub.publish(topic, payload) != actors::errc::ok) ++refused;
  });
  const std::size_t healthy = stall ? n - 1 : n;
  auto all_in = [&] {
    for (std::size_t i = 0; i < healthy; ++i) {
      std::lock_guard<std::mutex> g(boxes[i].m);
      if (boxes[i].received < count) return false;
    }
    return true;
  };
  const auto deadline = clk::now() + 15s;
  while (!all_in() && clk::now() < deadline) std::this_thread::sleep_for(50ms);
  histogram h;
  std::uint64_t got = 0;
  for (std::size_t i = 0; i < healthy; ++i) {
    std::lock_guard<std::mutex> g(boxes[i].m);
    h.merge(boxes[i].h);
    got += boxes[i].received;
  }
  std::uint64_t victim_got = 0;
  if (stall) {
    std::lock_guard<std::mutex> g(boxes[n - 1].m);
    victim_got = boxes[n - 1].received;
  }
  done = true; // the victim's thread goes on: it sees whether the node cut its connection
  std::this_thread::sleep_for(300ms);
  const bool victim_cut = stall && !subs.back()->connected();
  std::printf("{\"bench\":\"%s\",\"subscribers\":%zu,\"stalled\":%d,\"lossless\":%d,\"offered_per_s\":%.0f,"
              "\"healthy_received\":%" PRIu64 ",\"healthy_expected\":%" PRIu64 ",\"healthy_pct\":%.2f,"
              "\"stalled_received\":%" PRIu64 ",\"stalled_cut\":%d,\"publisher_refused\":%" PRIu64 ",%s}\n",
              name.c_str(), n, stall ? 1 : 0, o.lossless ? 1 : 0, o.rate, got, count * healthy,
              100.0 * static_cast<double>(got) / static_cast<double>(count * healthy), victim_got, victim_cut ? 1 : 0,
              refused, h.json_fields("us", 1e3).c_str());
  std::fflush(stdout);
  pub.close();
  for (auto& c : subs) c->close();
  return got == count * healthy ? 0 : 1;
}

/// Ten subscribers, one of which stops reading: the others' delivery and latency with and without it.
int run_stall(const bench_options& o) {
  const std::string base = !o.name.empty() ? o.name : std::string("ws_stall") + (o.lossless ? "_lossless" : "");
  const int a = stall_run(o, false, base + "_none_stopped");
  const int b = stall_run(o, true, base + "_one_stopped");
  return a || b;
}

} // namespace

int run_bench(const bench_options& o) {
  // sleeps and timed waits wake within 1 µs of their deadline, not Linux's default 50 µs: this
  // process's threads (and children) inherit it
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  spdlog::set_level(spdlog::level::warn);
  signal(SIGPIPE, SIG_IGN);
  if (o.scenario == "connections") return run_connections(o);
  if (o.scenario == "latency" || o.scenario == "throughput") return run_pubsub(o);
  if (o.scenario == "priority") return run_priority(o);
  if (o.scenario == "request") return run_request(o);
  if (o.scenario == "subscriptions") return run_subscriptions(o);
  if (o.scenario == "stall") return run_stall(o);
  if (o.scenario == "store") return run_store(o);
  std::fprintf(stderr, "bench: unknown scenario %s (latency, throughput, request, connections, priority, subscriptions, stall)\n",
               o.scenario.c_str());
  return 2;
}

} // namespace flowbus::app
