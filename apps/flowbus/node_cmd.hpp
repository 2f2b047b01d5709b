// `flowbus node`: a node with its WebSocket edge, serving until SIGINT / SIGTERM, then draining.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace flowbus::app {

struct node_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8081;     ///< 0: any free port (printed)
  std::size_t io_threads = 1;
  std::size_t threads = 0;       ///< CAF scheduler threads (0: one per CPU)
  bool pin = false;              ///< pin CAF's worker threads, one CPU each
  std::vector<int> pin_io;       ///< CPUs for the I/O threads
  std::size_t max_connections = 100000;
  std::uint32_t max_message = 64 * 1024;
  std::size_t mailbox = 0;       ///< frames queued per connection (0: the node's default)
  std::uint32_t idle_timeout_ms = 30000;
  std::uint32_t stats_seconds = 0; ///< log a stats line this often (0: never)
  std::string log_level = "info";
  std::string log_format = "text"; ///< text | json (one JSON object per line, for log shippers)
  int monitor_port = -1;           ///< the monitoring port (docs/monitoring.md); -1: none, 0: any free port (printed)
  std::string monitor_address = "127.0.0.1";
  bool monitor_per_agent = false;  ///< /metrics: series per connected agent
  std::vector<std::string> monitor_required_peers; ///< /healthz: 503 while a link to one of these is down
  std::uint32_t trace_sample = 0;  ///< trace 1 in N data messages per connection (0: none; docs/monitoring.md)
  std::size_t trace_keep = 256;    ///< traces kept for /tracez
  bool shared_memory = true;     ///< offer same-host agents shared-memory rings (docs/protocol.md §13)
  std::uint32_t shm_spin_us = 0; ///< sessions busy-poll their agent's ring this long before parking
  std::vector<std::string> allow_origin; ///< browser page origins allowed to connect (`*`: any; docs/security.md)
  std::string auth = "none";             ///< none | token (docs/security.md)
  std::vector<std::string> auth_keys;    ///< KID=FILE, the token signing keys
  std::string auth_agent_keys;           ///< a JSON file of agents' Ed25519 public keys (--auth key)
  std::string auth_roles;                ///< a JSON file of roles and their permissions (with --auth token)
  std::string tls_cert, tls_key;         ///< wss:// with this certificate and key (PEM)
  std::string tls_client_ca;
  // rate limits (transport::rate_limits; 0: none)
  double limit_msgs = 0, limit_burst_msgs = 0, limit_bytes = 0, limit_burst_bytes = 0;
  double limit_connections = 0, limit_burst_connections = 0;
  std::string limit_action = "hold";     ///< hold | refuse             ///< require client certificates signed by this CA (their CN: the agent ids)
  std::string dlq_dir;           ///< dead-letter queues on disk here (empty: in memory only)
  std::string idle_workers = "park"; ///< CAF's idle workers: "park" (sleep at once) or "backoff" (CAF's polling)
  std::size_t max_subscriptions = 100000;  ///< per agent
  std::vector<std::string> lossless;       ///< topic patterns whose slow subscribers hold publishers
  // durable streams (docs/streams.md)
  std::vector<std::string> streams;        ///< NAME=PATTERN[,PATTERN...]
  std::string streams_file;                ///< streams each with its own settings (TOML or JSON)
  std::string stream_dir;                  ///< where their logs go (required with --stream)
  std::string stream_fsync = "group";      ///< always | group | never
  std::string stream_storage = "file";     ///< file | memory
  std::uint32_t stream_group_ms = 5;
  std::uint64_t stream_segment_mb = 64, stream_max_bytes = 0, stream_max_records = 0, stream_max_age_s = 0;
  // the cluster (docs/cluster.md): on with --cluster-port
  std::string name;                        ///< this node's name in the cluster
  int cluster_port = -1;                   ///< -1: no cluster; 0: any free port (printed)
  std::string cluster_address = "127.0.0.1";
  std::string cluster_advertise;           ///< host:port the others dial (default: address:port)
  std::vector<std::string> join;           ///< host:port of nodes to link with
  std::uint32_t cluster_heartbeat_ms = 250;
  std::uint32_t cluster_timeout_ms = 1500;
  std::string cluster_tls_cert, cluster_tls_key, cluster_tls_ca; ///< TLS links: all three, or none
};

/// Serves until a signal; 0 after a clean drain. Prints "flowbus node: listening on ws://A:P" (wss:// with TLS).
int run_node(const node_options& options);

/// Sets spdlog's default logger's pattern: "text" (the default) or "json" (one object per line:
/// time, level, logger, msg; the message escaped as a JSON string).
void set_log_format(const std::string& format);

/// Raises the soft open-file limit to the hard one; returns the new soft limit.
std::uint64_t raise_file_limit();

/// Splits a `--connect` value "host:port"; without ":port" the port is `default_port`.
void split_host_port(const std::string& s, std::string& host, std::uint16_t& port, std::uint16_t default_port = 8081);

} // namespace flowbus::app
