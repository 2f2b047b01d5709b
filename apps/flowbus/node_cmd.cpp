#include "node_cmd.hpp"

#include <flowbus/actors/node.hpp>
#include <flowbus/actors/stream_settings.hpp>
#include <flowbus/transport/monitor.hpp>
#include <flowbus/transport/server.hpp>
#include <flowbus/transport/structured_file.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <sys/prctl.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace flowbus::app {

std::uint64_t raise_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

void split_host_port(const std::string& s, std::string& host, std::uint16_t& port, std::uint16_t default_port) {
  const auto colon = s.rfind(':');
  host = s.substr(0, colon);
  port = colon == std::string::npos ? default_port : static_cast<std::uint16_t>(std::atoi(s.c_str() + colon + 1));
}

/// The token keys of --auth token (null for --auth none); throws std::runtime_error with the reason.
std::shared_ptr<const transport::token_keys> auth_keys(const node_options& o) {
  if (o.auth != "token") {
    if (!o.auth_keys.empty()) throw std::runtime_error("--auth-key is given but --auth is not token");
    return nullptr;
  }
  auto keys = std::make_shared<transport::token_keys>();
  for (const std::string& kv : o.auth_keys) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size())
      throw std::runtime_error("--auth-key '" + kv + "' is not KID=FILE");
    try {
      keys->add(kv.substr(0, eq), transport::read_key_file(kv.substr(eq + 1)));
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(e.what());
    }
  }
  if (keys->empty()) throw std::runtime_error("--auth token needs at least one --auth-key KID=FILE");
  return keys;
}

/// The public keys of --auth-agent-keys (null without it); throws std::runtime_error with the reason.
std::shared_ptr<const transport::agent_keys> agent_keys(const node_options& o) {
  if (o.auth == "key" && o.auth_agent_keys.empty()) throw std::runtime_error("--auth key needs --auth-agent-keys FILE");
  if (o.auth_agent_keys.empty()) return nullptr;
  if (o.auth == "none") throw std::runtime_error("--auth-agent-keys is given but --auth is none");
  auto keys = std::make_shared<const transport::agent_keys>(transport::read_agent_keys_file(o.auth_agent_keys));
  if (keys->empty()) throw std::runtime_error("--auth-agent-keys " + o.auth_agent_keys + " lists no agent");
  return keys;
}

/// The roles of --auth-roles (null without it); throws std::runtime_error with the reason.
std::shared_ptr<const transport::role_table> auth_roles(const node_options& o) {
  if (o.auth_roles.empty()) return nullptr;
  if (o.auth == "none") throw std::runtime_error("--auth-roles is given but --auth is none");
  return std::make_shared<const transport::role_table>(transport::read_roles_file(o.auth_roles));
}

bool loopback(const std::string& address) {
  return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

namespace {

/// `%*` in the JSON log pattern: the message as the inside of a JSON string.
class json_message_flag : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string quoted = nlohmann::json(std::string(msg.payload.data(), msg.payload.size()))
                                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(quoted.data() + 1, quoted.data() + quoted.size() - 1); // without its quotes
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_message_flag>(); }
};

} // namespace

/// What /varz shows under "config": the options that shape the node (no secrets: key files are
/// named, never read out).
std::string config_json(const node_options& o) {
  nlohmann::json j = {{"address", o.address},
                      {"port", o.port},
                      {"io_threads", o.io_threads},
                      {"threads", o.threads},
                      {"max_connections", o.max_connections},
                      {"max_message", o.max_message},
                      {"mailbox", o.mailbox},
                      {"idle_timeout_ms", o.idle_timeout_ms},
                      {"shared_memory", o.shared_memory},
                      {"auth", o.auth},
                      {"tls", !o.tls_cert.empty()},
                      {"tls_client_ca", !o.tls_client_ca.empty()},
                      {"allow_origin", o.allow_origin},
                      {"limit_msgs_per_s", o.limit_msgs},
                      {"limit_bytes_per_s", o.limit_bytes},
                      {"limit_connections_per_s", o.limit_connections},
                      {"limit_action", o.limit_action},
                      {"dlq_dir", o.dlq_dir},
                      {"lossless", o.lossless},
                      {"streams", o.streams},
                      {"streams_file", o.streams_file},
                      {"stream_dir", o.stream_dir},
                      {"stream_fsync", o.stream_fsync},
                      {"stream_storage", o.stream_storage},
                      {"max_subscriptions", o.max_subscriptions},
                      {"name", o.name},
                      {"cluster_port", o.cluster_port},
                      {"join", o.join},
                      {"monitor_port", o.monitor_port},
                      {"trace_sample", o.trace_sample},
                      {"log_level", o.log_level},
                      {"log_format", o.log_format}};
  return j.dump();
}

void set_log_format(const std::string& format) {
  if (format == "json")
    // %v is the message, %! the function: spdlog escapes neither, so the message goes through
    // json_escaped below (a custom flag); the rest are fixed characters
    spdlog::set_formatter([] {
      auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
      f->add_flag<json_message_flag>('*');
      f->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","thread":%t,"msg":"%*"})");
      return f;
    }());
}

int run_node(const node_options& o) {
  // sleeps and timed waits wake within 1 µs of their deadline, not Linux's default 50 µs: this
  // process's threads (and children) inherit it
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  set_log_format(o.log_format);
  // signals are taken by sigwait below: blocked in every thread, so block them before any starts
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  const std::uint64_t files = raise_file_limit();
  std::shared_ptr<const transport::token_keys> keys;
  std::shared_ptr<const transport::role_table> roles;
  std::shared_ptr<const transport::agent_keys> public_keys;
  try {
    keys = auth_keys(o);
    public_keys = agent_keys(o);
    roles = auth_roles(o);
    if (o.tls_cert.empty() != o.tls_key.empty()) throw std::runtime_error("--tls-cert and --tls-key go together");
    if (!o.tls_client_ca.empty() && o.tls_cert.empty()) throw std::runtime_error("--tls-client-ca needs --tls-cert");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus node: cannot start: %s\n", e.what());
    return 1;
  }
  if (!keys && !public_keys && !loopback(o.address))
    spdlog::warn("flowbus node: LISTENING ON {} WITH --auth none: anyone who reaches this address can register as "
                 "any agent, read every topic and publish. Use --auth token, or a loopback address "
                 "(docs/security.md)",
                 o.address);
  if (o.tls_cert.empty() && !loopback(o.address))
    spdlog::warn("flowbus node: listening on {} without TLS: messages and tokens cross the network in clear "
                 "(--tls-cert, docs/security.md)",
                 o.address);

  actors::node_config cfg;
  cfg.workers = o.threads;
  cfg.pinning.enabled = o.pin;
  if (o.mailbox) cfg.mailbox_capacity = o.mailbox;
  cfg.dlq_directory = o.dlq_dir;
  cfg.max_subscriptions = o.max_subscriptions;
  cfg.lossless_topics = o.lossless;
  cfg.stream_directory = o.stream_dir; // streams created by agents ($streams), and those kept there, reopen
  for (const std::string& s : o.streams) { // NAME=PATTERN[,PATTERN...]
    const std::size_t eq = s.find('=');
    if (eq == std::string::npos || o.stream_dir.empty()) {
      std::fprintf(stderr, "flowbus node: --stream %s: NAME=PATTERN[,PATTERN...], with --stream-dir\n", s.c_str());
      return 2;
    }
    actors::stream_config sc;
    sc.name = s.substr(0, eq);
    for (std::size_t at = eq + 1; at <= s.size();) {
      const std::size_t comma = std::min(s.find(',', at), s.size());
      sc.subjects.push_back(s.substr(at, comma - at));
      at = comma + 1;
    }
    sc.directory = o.stream_dir;
    sc.log.sync = o.stream_fsync == "always" ? actors::fsync_policy::always
                  : o.stream_fsync == "never" ? actors::fsync_policy::never
                                              : actors::fsync_policy::group;
    sc.log.in_memory = o.stream_storage == "memory";
    sc.log.group_interval = std::chrono::milliseconds(o.stream_group_ms);
    sc.log.segment_bytes = o.stream_segment_mb << 20;
    sc.log.max_bytes = o.stream_max_bytes;
    sc.log.max_records = o.stream_max_records;
    sc.log.max_age = std::chrono::seconds(o.stream_max_age_s);
    cfg.streams.push_back(std::move(sc));
  }
  if (!o.streams_file.empty()) { // each with its own settings
    if (o.stream_dir.empty()) {
      std::fprintf(stderr, "flowbus node: --streams-file %s: with --stream-dir\n", o.streams_file.c_str());
      return 2;
    }
    try {
      // (a name also given by --stream: the node refuses to start, "stream NAME exists")
      for (actors::stream_config& sc :
           actors::streams_from_document(transport::read_json_or_toml(o.streams_file, "streams file"), o.stream_dir))
        cfg.streams.push_back(std::move(sc));
    } catch (const std::invalid_argument& e) { // a bad setting: named
      std::fprintf(stderr, "flowbus node: streams file %s: %s\n", o.streams_file.c_str(), e.what());
      return 2;
    } catch (const std::runtime_error& e) { // not readable, not TOML/JSON: read_json_or_toml names the file
      std::fprintf(stderr, "flowbus node: %s\n", e.what());
      return 2;
    }
  }
  cfg.park_idle_workers = o.idle_workers == "park"; // the edge's traffic bypasses CAF: no polling workers
  cfg.cluster.port = o.cluster_port;
  cfg.cluster.name = o.name;
  cfg.cluster.address = o.cluster_address;
  cfg.cluster.advertise = o.cluster_advertise;
  cfg.cluster.join = o.join;
  cfg.cluster.heartbeat_interval = std::chrono::milliseconds(o.cluster_heartbeat_ms);
  cfg.cluster.connection_timeout = std::chrono::milliseconds(o.cluster_timeout_ms);
  cfg.cluster.tls_certificate = o.cluster_tls_cert;
  cfg.cluster.tls_key = o.cluster_tls_key;
  cfg.cluster.tls_ca = o.cluster_tls_ca;
  std::optional<actors::node> node;
  try {
    node.emplace(cfg);
  } catch (const std::system_error& e) { // e.g. --dlq-dir not a writable directory
    std::fprintf(stderr, "flowbus node: cannot start: %s\n", e.what()); // what() ends with the code's message
    return 1;
  } catch (const std::invalid_argument& e) { // e.g. a stream's bad name or subject
    std::fprintf(stderr, "flowbus node: cannot start: %s\n", e.what());
    return 2;
  }
  for (const actors::stream_status& s : node->streams())
    spdlog::info("flowbus node: stream {} ({} records, {} bytes, sequence {}..{}; recovery cut {} torn bytes)", s.name,
                 s.records, s.bytes, s.first, s.last, s.recovered.torn_bytes);
  actors::node& n = *node;
  transport::server_options so;
  so.address = o.address;
  so.port = o.port;
  so.io_threads = o.io_threads;
  so.pin_cpus = o.pin_io;
  so.max_connections = o.max_connections;
  so.max_message = o.max_message;
  so.mailbox_capacity = o.mailbox;
  so.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  so.shared_memory = o.shared_memory;
  so.shm_spin = std::chrono::microseconds(o.shm_spin_us);
  so.allowed_origins = o.allow_origin;
  so.auth = keys;
  so.roles = roles;
  so.public_keys = public_keys;
  so.tls.cert_file = o.tls_cert;
  so.tls.key_file = o.tls_key;
  so.tls.client_ca_file = o.tls_client_ca;
  so.limits.msgs_per_s = o.limit_msgs;
  so.limits.burst_msgs = o.limit_burst_msgs;
  so.limits.bytes_per_s = o.limit_bytes;
  so.limits.burst_bytes = o.limit_burst_bytes;
  so.limits.connections_per_s = o.limit_connections;
  so.limits.burst_connections = o.limit_burst_connections;
  so.limits.action = o.limit_action == "refuse" ? transport::rate_limits::over::refuse : transport::rate_limits::over::hold;
  so.latency_metrics = o.monitor_port >= 0; // recorded for the monitoring port only: no clock reads without it
  so.trace_sample = o.trace_sample;
  so.trace_keep = o.trace_keep;
  std::unique_ptr<transport::server> server;
  try {
    server = std::make_unique<transport::server>(n, so);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowbus node: cannot listen on %s:%u: %s\n", o.address.c_str(), unsigned(o.port), e.what());
    return 1;
  }
  std::string cluster;
  if (o.cluster_port >= 0)
    cluster = "cluster node " + o.name + " at " + o.cluster_address + ":" + std::to_string(n.cluster_port()) +
              (o.cluster_tls_cert.empty() ? "" : " (TLS)") + "; ";
  std::printf("flowbus node: listening on %s://%s:%u (%s%zu scheduler threads, %zu I/O threads, open-file limit %llu)\n",
              o.tls_cert.empty() ? "ws" : "wss", o.address.c_str(), unsigned(server->port()), cluster.c_str(), n.workers(), o.io_threads,
              static_cast<unsigned long long>(files));
  std::unique_ptr<transport::monitor> monitor;
  if (o.monitor_port >= 0) {
    transport::monitor_options mo;
    mo.address = o.monitor_address;
    mo.port = static_cast<std::uint16_t>(o.monitor_port);
    mo.server_name = o.name;
    mo.per_agent_metrics = o.monitor_per_agent;
    mo.required_peers = o.monitor_required_peers;
    mo.config_json = config_json(o);
    try {
      monitor = std::make_unique<transport::monitor>(n, server.get(), mo);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowbus node: cannot serve monitoring on %s:%d: %s\n", o.monitor_address.c_str(), o.monitor_port, e.what());
      return 1;
    }
    std::printf("flowbus node: monitoring on http://%s:%u\n", o.monitor_address.c_str(), unsigned(monitor->port()));
  }
  std::fflush(stdout);

  std::atomic<bool> done{false};
  std::thread stats;
  if (o.stats_seconds)
    stats = std::thread([&] {
      while (!done.load()) {
        for (std::uint32_t i = 0; i < o.stats_seconds * 10 && !done.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto s = server->stats();
        spdlog::info("flowbus node: {} connections, {} frames in, {} out, {} writes ({} batched), {} shm doorbells, "
                     "{} protocol errors, {} slow consumers, {} origins refused, {} dead letters ({} not persisted)",
                     s.active, s.frames_in, s.frames_out, s.writes, s.batches, s.shm_doorbells, s.protocol_errors,
                     s.slow_consumers, s.origins_refused,
                     n.dead().total(), n.dead().not_persisted());
        for (const actors::peer_status& p : n.peers())
          spdlog::info("flowbus node: peer {} at {} {}, rtt {} us, {} frames out, {} in, {} pending, {} dead-lettered, "
                       "{} agents, {} patterns",
                       p.name, p.address, p.up ? "up" : "DOWN", p.rtt.count(), p.frames_out, p.frames_in, p.pending,
                       p.dead_lettered, p.remote_agents, p.interest);
      }
    });
  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("flowbus node: signal {}: draining", sig);
  if (monitor) monitor->set_draining(); // /healthz: 503 while the edge drains
  done = true;
  if (stats.joinable()) stats.join();
  server->stop(std::chrono::milliseconds(2000));
  const auto s = server->stats();
  monitor.reset();
  server.reset();
  const actors::shutdown_report rep = n.shutdown();
  using ull = unsigned long long;
  // with a DLQ directory, a dead letter that did not reach the disk is a lost message: said, and rc 1
  const std::uint64_t lost = cfg.dlq_directory.empty() ? 0 : n.dead().not_persisted();
  std::printf("flowbus node: stopped; %llu connections served (%llu over shared memory), %llu frames in, %llu out in "
              "%llu writes, %llu dead letters (%llu NOT persisted), %s; flow control: %llu holds, %llu window waits, %llu "
              "buffer pauses\n",
              static_cast<ull>(s.accepted), static_cast<ull>(s.shm_attached), static_cast<ull>(s.frames_in),
              static_cast<ull>(s.frames_out),
              static_cast<ull>(s.writes), static_cast<ull>(n.dead().total()), static_cast<ull>(lost),
              rep.drained ? "drained" : "NOT drained", static_cast<ull>(s.holds), static_cast<ull>(s.window_waits),
              static_cast<ull>(s.paused));
  if (o.cluster_port >= 0) {
    const actors::cluster_totals c = n.cluster_stats();
    std::printf("flowbus node: cluster: %llu frames to other nodes acknowledged, %llu received, %llu dead-lettered "
                "here, %llu links lost\n",
                static_cast<ull>(c.frames_acknowledged), static_cast<ull>(c.frames_in), static_cast<ull>(c.dead_lettered),
                static_cast<ull>(c.links_lost));
  }
  if (lost) std::fprintf(stderr, "flowbus node: %llu dead letters could not be written to %s\n", static_cast<ull>(lost),
                         cfg.dlq_directory.c_str());
  return rep.drained && lost == 0 ? 0 : 1;
}

} // namespace flowbus::app
