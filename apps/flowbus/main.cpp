// flowbus — the command line:
//   flowbus node   a node with its WebSocket edge, until SIGINT/SIGTERM
//   flowbus demo   in-process and WebSocket agents exchanging tasks, live latency (the README's main job)
//   flowbus bench  a load generator against a running node, a node process it starts, or in process
//   flowbus dlq    list, replay or purge the dead-letter queues a node keeps on disk
//   flowbus top    a node's monitoring figures in a terminal (its --monitor-port)
//   flowbus pub / sub / req / reply / agents / topics   a running node from the shell (docs/cli.md)
// Options may also come from a TOML/INI file: `flowbus --config flowbus.toml node` ([node] section,
// and [cluster] for the node's cluster options: name, port, address, advertise, join, heartbeat-ms,
// timeout-ms, tls-cert, tls-key, tls-ca).
// Standard output carries results (the node's listening and stop lines, the bench's JSON lines);
// logs go to standard error.
#include "bench_cmd.hpp"
#include "certs_cmd.hpp"
#include "client_cmd.hpp"
#include "stream_cmd.hpp"
#include "demo.hpp"
#include "dlq_cmd.hpp"
#include "top_cmd.hpp"
#include "token_cmd.hpp"
#include "node_cmd.hpp"

#include <flowbus/transport/client.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace {
/// The [cluster] section of the --config file fills the node's cluster options that the command
/// line did not give (CLI11 maps sections to subcommands; this one is the node's).
void apply_cluster_section(const CLI::App& app, const CLI::App& node_cmd, flowbus::app::node_options& o) {
  const CLI::Option* config = app.get_config_ptr();
  if (!config || config->count() == 0) return;
  for (const CLI::ConfigItem& item : CLI::ConfigTOML().from_file(config->as<std::string>())) {
    if (item.parents != std::vector<std::string>{"cluster"} || item.inputs.empty()) continue;
    const std::string flag = item.name == "port" ? "--cluster-port"
                             : item.name == "address"      ? "--cluster-address"
                             : item.name == "advertise"    ? "--cluster-advertise"
                             : item.name == "heartbeat-ms" ? "--cluster-heartbeat-ms"
                             : item.name == "timeout-ms"   ? "--cluster-timeout-ms"
                             : item.name == "tls-cert"     ? "--cluster-tls-cert"
                             : item.name == "tls-key"      ? "--cluster-tls-key"
                             : item.name == "tls-ca"       ? "--cluster-tls-ca"
                                                           : "--" + item.name;
    const CLI::Option* given = node_cmd.get_option_no_throw(flag);
    if (!given) throw CLI::ConfigError("[cluster] " + item.name + ": no such option");
    if (given->count() > 0) continue; // the command line wins
    const std::string& v = item.inputs.front();
    if (flag == "--name") o.name = v;
    else if (flag == "--cluster-port") o.cluster_port = std::stoi(v);
    else if (flag == "--cluster-address") o.cluster_address = v;
    else if (flag == "--cluster-advertise") o.cluster_advertise = v;
    else if (flag == "--join") o.join = item.inputs;
    else if (flag == "--cluster-heartbeat-ms") o.cluster_heartbeat_ms = static_cast<std::uint32_t>(std::stoul(v));
    else if (flag == "--cluster-timeout-ms") o.cluster_timeout_ms = static_cast<std::uint32_t>(std::stoul(v));
    else if (flag == "--cluster-tls-cert") o.cluster_tls_cert = v;
    else if (flag == "--cluster-tls-key") o.cluster_tls_key = v;
    else if (flag == "--cluster-tls-ca") o.cluster_tls_ca = v;
  }
}
} // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("flowbus")); // stdout is for results
  CLI::App app{"flowbus: real-time messaging between software agents"};
  app.require_subcommand(1);
  app.fallthrough(); // `flowbus node --config f.toml` as well as `flowbus --config f.toml node`
  app.set_config("--config", "", "read options from a TOML/INI file ([node], [demo], [bench] sections)");

  flowbus::app::node_options node;
  CLI::App* node_cmd = app.add_subcommand("node", "run a node with its WebSocket edge until SIGINT/SIGTERM");
  node_cmd->add_option("--address", node.address, "listen address")->capture_default_str();
  node_cmd->add_option("--port", node.port, "listen port (0: any free port, printed)")->capture_default_str();
  node_cmd->add_option("--io-threads", node.io_threads, "Asio I/O threads")->capture_default_str()->check(CLI::Range(1, 64));
  node_cmd->add_option("--threads", node.threads, "CAF scheduler threads (0: one per CPU)")->capture_default_str();
  node_cmd->add_flag("--pin", node.pin, "pin CAF's worker threads, one CPU each");
  node_cmd->add_option("--pin-io", node.pin_io, "CPUs for the I/O threads (round-robin)")->delimiter(',');
  node_cmd->add_option("--max-connections", node.max_connections, "connection limit")->capture_default_str();
  node_cmd->add_option("--max-message", node.max_message, "largest WebSocket message / frame, bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024, 16 * 1024 * 1024));
  node_cmd->add_option("--mailbox", node.mailbox, "frames queued per connection (0: the node's default, 4096)")->capture_default_str();
  node_cmd->add_option("--idle-timeout-ms", node.idle_timeout_ms, "close a connection silent this long")->capture_default_str();
  node_cmd->add_option("--stats-seconds", node.stats_seconds, "log a stats line this often (0: never)")->capture_default_str();
  node_cmd->add_option("--dlq-dir", node.dlq_dir, "keep the dead-letter queues on disk in this directory");
  node_cmd->add_option("--lossless", node.lossless,
                       "topic pattern whose slow subscribers hold the publisher instead of being isolated (repeatable)");
  node_cmd->add_option("--stream", node.streams, "a durable stream NAME=PATTERN[,PATTERN...]: the messages of those "
                       "topics kept in a log under --stream-dir; acknowledged publishes to it are ACKed once stored "
                       "(repeatable; docs/streams.md)");
  node_cmd->add_option("--streams-file", node.streams_file, "streams each with its own settings, as stream.add takes "
                       "them: [[streams]] tables in TOML (a name ending in .toml), {\"streams\": [...]} in JSON "
                       "(with --stream-dir; docs/streams.md)");
  node_cmd->add_option("--stream-dir", node.stream_dir, "the streams' directory (one sub-directory per "
                       "stream): the streams kept there reopen, and agents may add streams through $streams");
  node_cmd->add_option("--stream-fsync", node.stream_fsync, "always (an fdatasync per batch: survives power loss), "
                       "group (every --stream-group-ms) or never (the kernel's write-back)")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "group", "never"}));
  node_cmd->add_option("--stream-storage", node.stream_storage, "file (a log on disk) or memory (lost with the "
                       "process, nothing synced)")
      ->capture_default_str()
      ->check(CLI::IsMember({"file", "memory"}));
  node_cmd->add_option("--stream-group-ms", node.stream_group_ms, "group commit: at most this long between syncs")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  node_cmd->add_option("--stream-segment-mb", node.stream_segment_mb, "a stream's segment files' size")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  node_cmd->add_option("--stream-max-bytes", node.stream_max_bytes, "retention: bytes kept per stream (0: no limit)");
  node_cmd->add_option("--stream-max-records", node.stream_max_records, "retention: records kept per stream (0: no limit)");
  node_cmd->add_option("--stream-max-age-s", node.stream_max_age_s, "retention: seconds kept (0: no limit)");
  node_cmd->add_option("--max-subscriptions", node.max_subscriptions,
                       "subscriptions one agent may hold; beyond: refused (too_many_subscriptions)")->capture_default_str();
  node_cmd->add_option("--idle-workers", node.idle_workers,
                       "idle CAF workers: park (sleep at once; the edge bypasses CAF) or backoff (CAF's 50 us polling)")
      ->capture_default_str()
      ->check(CLI::IsMember({"park", "backoff"}));
  node_cmd->add_option("--name", node.name, "this node's name in the cluster (required with --cluster-port)");
  node_cmd->add_option("--cluster-port", node.cluster_port, "listen for other nodes here (0: any free port, printed; "
                       "default: no cluster)")->check(CLI::Range(0, 65535));
  node_cmd->add_option("--cluster-address", node.cluster_address, "listen address for other nodes")->capture_default_str();
  node_cmd->add_option("--cluster-advertise", node.cluster_advertise, "host:port the other nodes dial (default: address:port)");
  node_cmd->add_option("--join", node.join, "host:port of other nodes (comma-separated; one is enough)")->delimiter(',');
  node_cmd->add_option("--cluster-heartbeat-ms", node.cluster_heartbeat_ms, "heartbeat on every node link")
      ->capture_default_str()->check(CLI::PositiveNumber);
  node_cmd->add_option("--cluster-timeout-ms", node.cluster_timeout_ms,
                       "a link silent this long is down (>= 3 heartbeats)")->capture_default_str()->check(CLI::PositiveNumber);
  node_cmd->add_option("--cluster-tls-cert", node.cluster_tls_cert, "TLS on node links: this node's certificate (PEM; "
                       "with --cluster-tls-key and --cluster-tls-ca, all three or none)");
  node_cmd->add_option("--cluster-tls-key", node.cluster_tls_key, "TLS on node links: the certificate's private key (PEM)");
  node_cmd->add_option("--cluster-tls-ca", node.cluster_tls_ca, "TLS on node links: the CA that signs every node's certificate");
  node_cmd->add_option("--shared-memory", node.shared_memory,
                       "offer shared-memory rings to agents on this host that ask (docs/protocol.md §13)")
      ->capture_default_str();
  node_cmd->add_option("--shm-spin-us", node.shm_spin_us,
                       "a session busy-polls its agent's ring this long after it runs dry, then parks "
                       "(0: park at once; a spinning session keeps an I/O thread busy)")
      ->capture_default_str();
  node_cmd->add_option("--allow-origin", node.allow_origin,
                       "a browser page's origin allowed to connect, e.g. https://app.example:8443 (repeatable; "
                       "`*`: any page). Handshakes with another Origin are refused (403); programs send none");
  node_cmd->add_option("--auth", node.auth, "none: any agent registers as any free id; token: REGISTER needs a token "
                       "signed by an --auth-key (or a key of --auth-agent-keys); key: an Ed25519 signature by a key of "
                       "--auth-agent-keys (docs/security.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "token", "key"}));
  node_cmd->add_option("--auth-key", node.auth_keys, "KID=FILE: a token signing key and its id (repeatable: rotation)");
  node_cmd->add_option("--auth-agent-keys", node.auth_agent_keys, "public-key agents: a JSON file {\"agents\": "
                       "[{\"public_key\": K, \"id\": \"worker-*\", \"role\": R}]} (with --auth key; or with --auth "
                       "token, beside tokens)");
  node_cmd->add_option("--auth-roles", node.auth_roles, "a JSON file of roles: {\"default_role\": R, \"roles\": {R: "
                       "{\"publish\": {\"allow\": [...], \"deny\": [...]}, \"subscribe\": {...}}}} (docs/security.md)");
  node_cmd->add_option("--tls-cert", node.tls_cert, "wss://: the node's certificate chain (PEM; with --tls-key). "
                       "`flowbus certs` writes a development one (docs/security.md)");
  node_cmd->add_option("--tls-key", node.tls_key, "wss://: the certificate's private key (PEM)");
  node_cmd->add_option("--tls-client-ca", node.tls_client_ca, "require a client certificate signed by this CA (PEM); "
                       "its common name is the agent id (or pattern with *) the client may register as");
  node_cmd->add_option("--limit-msgs-per-s", node.limit_msgs, "per agent: data messages a second (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  node_cmd->add_option("--limit-burst-msgs", node.limit_burst_msgs, "per agent: messages at once (0: a second's worth)")
      ->check(CLI::NonNegativeNumber);
  node_cmd->add_option("--limit-bytes-per-s", node.limit_bytes, "per agent: payload bytes a second (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  node_cmd->add_option("--limit-burst-bytes", node.limit_burst_bytes, "per agent: payload bytes at once (0: a second's worth)")
      ->check(CLI::NonNegativeNumber);
  node_cmd->add_option("--limit-connections-per-s", node.limit_connections,
                       "per source address: new connections a second (0: no limit)")->check(CLI::NonNegativeNumber);
  node_cmd->add_option("--limit-burst-connections", node.limit_burst_connections,
                       "per source address: new connections at once (0: a second's worth)")->check(CLI::NonNegativeNumber);
  node_cmd->add_option("--limit-action", node.limit_action, "over a limit: hold (slow the agent down, delay the "
                       "handshake; nothing lost) or refuse (NACK/ERROR rate_limited, ERROR 80 for a connection)")
      ->capture_default_str()
      ->check(CLI::IsMember({"hold", "refuse"}));
  node_cmd->add_option("--log-level", node.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  node_cmd->add_option("--log-format", node.log_format, "text, or json: one JSON object per line for log shippers")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  node_cmd->add_option("--monitor-port", node.monitor_port, "serve the monitoring endpoints and the dashboard on this "
                       "port (0: any free port, printed; default: none; docs/monitoring.md)")->check(CLI::Range(0, 65535));
  node_cmd->add_option("--monitor-address", node.monitor_address, "the monitoring port's address (no authentication: "
                       "keep it on loopback or a private network)")->capture_default_str();
  node_cmd->add_flag("--monitor-per-agent", node.monitor_per_agent, "/metrics: also series labelled by agent id "
                     "(one set per connection)");
  node_cmd->add_option("--trace-sample", node.trace_sample, "trace 1 in N data messages of each connection: per-hop "
                       "times, kept for /tracez (0: none)")->capture_default_str();
  node_cmd->add_option("--trace-keep", node.trace_keep, "traces kept for /tracez")->capture_default_str()->check(CLI::PositiveNumber);
  node_cmd->add_option("--monitor-require-peer", node.monitor_required_peers, "/healthz answers 503 while the link to "
                       "this node (by name) is down (repeatable)");

  flowbus::app::demo_options demo;
  CLI::App* demo_cmd = app.add_subcommand("demo", "run a node with agents exchanging tasks; print live latency");
  demo_cmd->add_option("--seconds", demo.seconds, "how long tasks are offered")->capture_default_str()->check(CLI::PositiveNumber);
  demo_cmd->add_option("--rate", demo.rate, "tasks offered per second (fixed rate)")->capture_default_str()->check(CLI::PositiveNumber);
  demo_cmd->add_option("--workers", demo.workers, "in-process worker agents in the queue group")->capture_default_str()->check(CLI::Range(0, 1024));
  demo_cmd->add_option("--ws-workers", demo.ws_workers, "WebSocket worker agents in the queue group")->capture_default_str()->check(CLI::Range(0, 256));
  demo_cmd->add_option("--port", demo.port, "the demo node's WebSocket port (0: any free one)")->capture_default_str();
  demo_cmd->add_option("--threads", demo.threads, "scheduler threads (0: one per CPU)")->capture_default_str();

  flowbus::app::bench_options bench;
  bench.receive_window = flowbus::transport::client_options{}.receive_window;
  bench.direct_write_gap_us = flowbus::transport::client_options{}.direct_write_gap.count();
  CLI::App* bench_cmd = app.add_subcommand("bench", "load generator: latency at a fixed rate, throughput, idle connections, stream stores");
  bench_cmd->add_option("scenario", bench.scenario, "latency | throughput | request | connections | priority | subscriptions | stall | store")
      ->capture_default_str()
      ->check(CLI::IsMember({"latency", "throughput", "request", "connections", "priority", "subscriptions", "stall", "store"}));
  bench_cmd->add_option("--connect", bench.connect, "host:port of a running node (default: start a node process)");
  bench_cmd->add_option("--token", bench.token, "every client registers with this token (a node with --auth token: "
                        "its sub must allow bench-*; pass the node's --auth options with --node-arg)");
  bench_cmd->add_option("--tls-ca", bench.tls_ca, "clients connect with TLS and trust this CA (pass the node's "
                        "--tls-cert and --tls-key with --node-arg)");
  bench_cmd->add_flag("--embedded", bench.embedded, "node, publisher and subscribers in this process");
  bench_cmd->add_flag("--clients-together", bench.clients_together,
                      "publisher and subscribers in this process, beside the node's (two processes, as NATS's latency "
                      "tests run; default: three)");
  bench_cmd->add_option("--rate", bench.rate, "latency, request: messages per second, at fixed intervals")->capture_default_str()->check(CLI::PositiveNumber);
  bench_cmd->add_option("--seconds", bench.seconds, "latency, request: how long")->capture_default_str()->check(CLI::PositiveNumber);
  bench_cmd->add_option("--size", bench.size, "payload bytes")->capture_default_str()->check(CLI::Range(16, 60000));
  bench_cmd->add_option("--subscribers", bench.subscribers, "throughput: subscriber connections")->capture_default_str()->check(CLI::Range(1, 1000));
  bench_cmd->add_option("--messages", bench.messages, "throughput, store: messages published")->capture_default_str();
  bench_cmd->add_option("--in-flight", bench.in_flight, "store: acknowledged publishes not yet confirmed, at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  bench_cmd->add_flag("--unacked", bench.unacked, "store: plain publishes, timed until the stream says the last one is durable");
  bench_cmd->add_option("--connections", bench.connections, "connections: how many to open")->capture_default_str();
  bench_cmd->add_option("--stall-at", bench.stall_at, "stall: when the last subscriber stops reading, s")->capture_default_str();
  bench_cmd->add_option("--through-stream", bench.through_stream, "latency, throughput, store: through a durable stream "
                        "with this fsync policy (or memory): subscribers read a consumer of it, acking each; "
                        "latency: a second subscriber on the topic itself, in the same run, is the line *_direct")
      ->check(CLI::IsMember({"always", "group", "never", "memory"}));
  bench_cmd->add_flag("--catch-up", bench.catch_up, "throughput --through-stream: the consumer starts once all is "
                      "stored (its catch-up rate)");
  bench_cmd->add_flag("--lossless", bench.lossless, "the started node holds publishers for slow subscribers instead of isolating them");
  bench_cmd->add_option("--subscriptions", bench.subscriptions, "subscriptions: distinct topics one connection holds")
      ->capture_default_str();
  bench_cmd->add_option("--node-mailbox", bench.node_mailbox, "the started node's per-connection queue")->capture_default_str();
  bench_cmd->add_option("--node-io-threads", bench.node_io_threads, "the started node's I/O threads")->capture_default_str();
  bench_cmd->add_option("--receive-buffer", bench.receive_buffer,
                        "the subscribers' socket receive buffer in bytes (0: the kernel's autotuning)")
      ->capture_default_str();
  bench_cmd->add_option("--receive-window", bench.receive_window,
                        "the subscribers' receive window in messages (0: none, TCP alone)")
      ->capture_default_str();
  bench_cmd->add_option("--direct-write-gap-us", bench.direct_write_gap_us,
                        "the publisher writes a message itself (not through its I/O thread) when it follows the "
                        "previous one by at least this many microseconds and nothing is queued; -1: never")
      ->capture_default_str();
  bench_cmd->add_flag("--shm", bench.shm,
                      "the clients ask the node for shared-memory rings (same host; docs/protocol.md §13)");
  bench_cmd->add_option("--shm-spin-us", bench.shm_spin_us,
                        "with --shm: the clients and the started node busy-poll their rings this long before parking")
      ->capture_default_str();
  bench_cmd->add_option("--client-batch", bench.client_batch,
                        "the publisher's messages per WebSocket message: 32 packs a burst into BATCH frames, 1 sends "
                        "each message as its own WebSocket message (several per write), as most clients do")
      ->capture_default_str()->check(CLI::Range(1, 32));
  bench_cmd->add_option("--send-buffer", bench.send_buffer, "the publisher's send queue in bytes (0: the client's default)")
      ->capture_default_str();
  bench_cmd->add_option("--publisher-threads", bench.publisher_threads,
                        "throughput: threads publishing through the one client at once (each its share)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  bench_cmd->add_option("--cluster-nodes", bench.cluster_nodes,
                        "latency, throughput: start this many linked node processes; the publisher on the first, the "
                        "subscribers on the others (fan-out: spread over all)")->capture_default_str()->check(CLI::Range(1, 16));
  bench_cmd->add_option("--node-arg", bench.node_args, "pass this option on to the started node processes (repeatable; "
                        "e.g. --node-arg=--idle-workers --node-arg=backoff)")->allow_extra_args(false);
  bench_cmd->add_option("--name", bench.name, "the JSON `bench` name");

  flowbus::app::top_options top;
  CLI::App* top_cmd = app.add_subcommand("top", "a node's monitoring figures in a terminal, redrawn every second");
  top_cmd->add_option("--monitor", top.monitor, "host:port of the node's --monitor-port")->capture_default_str();
  top_cmd->add_option("--sort", top.sort, "connections by: msgs_to, msgs_from, bytes_to, bytes_from, pending, subs, "
                      "idle, uptime, cid")->capture_default_str()
      ->check(CLI::IsMember({"cid", "start", "subs", "pending", "msgs_to", "msgs_from", "bytes_to", "bytes_from", "last",
                             "idle", "uptime"}));
  top_cmd->add_option("--rows", top.rows, "connections shown")->capture_default_str();
  top_cmd->add_option("--interval", top.interval_s, "seconds between screens")->capture_default_str()->check(CLI::PositiveNumber);
  top_cmd->add_flag("--once", top.once, "print one screen (no escape codes) and exit");

  flowbus::app::dlq_options dlq;
  flowbus::app::token_options token;
  CLI::App* token_cmd = app.add_subcommand("token", "issue a signed token for an agent (a node with --auth token)");
  token_cmd->add_option("action", token.action, "issue")->capture_default_str()->check(CLI::IsMember({"issue"}));
  token_cmd->add_option("--key-file", token.key_file, "the signing key: its bytes, or hex:<digits> (at least 32 bytes)")
      ->required();
  token_cmd->add_option("--kid", token.key_id, "the key's id, as the node knows it (--auth-key KID=FILE)")->required();
  token_cmd->add_option("--id", token.id, "the agent id it allows, or a pattern with * (worker-*)")->required();
  token_cmd->add_option("--type", token.type, "the agent type it must register with (default: any)");
  token_cmd->add_option("--role", token.role, "a role of the node's --auth-roles");
  token_cmd->add_option("--permissions", token.permissions,
                        "the agent's own permissions, in place of a role: {\"publish\": {\"allow\": [...], "
                        "\"deny\": [...]}, \"subscribe\": {...}}");
  token_cmd->add_option("--ttl", token.ttl, "valid for: 90s, 30m, 12h, 7d")->capture_default_str();

  flowbus::app::certs_options certs;
  CLI::App* certs_cmd = app.add_subcommand("certs", "write a development CA and TLS certificates (node, clients)");
  certs_cmd->add_option("--dir", certs.dir, "where to write them")->capture_default_str()->check(CLI::ExistingDirectory);
  certs_cmd->add_option("--host", certs.hosts, "the node certificate's DNS names and IP addresses (repeatable)")
      ->capture_default_str();
  certs_cmd->add_option("--client", certs.clients, "also a client certificate for this agent id or pattern (repeatable)");

  flowbus::app::key_options key;
  CLI::App* key_cmd = app.add_subcommand("key", "an agent's Ed25519 key (a node with --auth key): gen writes one and "
                                         "prints its public key; pub prints the public key of one");
  key_cmd->add_option("action", key.action, "gen | pub")->capture_default_str()->check(CLI::IsMember({"gen", "pub"}));
  key_cmd->add_option("--out,--key-file", key.file, "the private key file (PEM; gen writes it, owner-only)")->required();

  CLI::App* dlq_cmd = app.add_subcommand("dlq", "list, replay or purge the dead-letter queues of a --dlq-dir");
  dlq_cmd->add_option("action", dlq.action, "list | replay | purge")->required()->check(CLI::IsMember({"list", "replay", "purge"}));
  dlq_cmd->add_option("--dir", dlq.dir, "the node's --dlq-dir")->required();
  dlq_cmd->add_option("--kind", dlq.kinds, "network_timeout, agent_unavailable, corruption, circuit_open, poison, unknown (default: all)")
      ->check(CLI::IsMember({"network_timeout", "agent_unavailable", "corruption", "circuit_open", "poison", "unknown"}));
  dlq_cmd->add_option("--id", dlq.ids, "replay only these entry ids");
  dlq_cmd->add_option("--connect", dlq.connect, "replay: host:port of the node to send them to")->capture_default_str();
  dlq_cmd->add_flag("--json", dlq.json, "list: one JSON object per entry");

  const flowbus::app::client_commands client_cmds(app);
  const flowbus::app::stream_commands stream_cmds(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : flowbus::app::exit_usage; // --help: 0; a usage error: 2, said on stderr
  }
  if (const std::optional<int> rc = client_cmds.run()) return *rc;
  if (const std::optional<int> rc = stream_cmds.run()) return *rc;
  if (node_cmd->parsed()) {
    try {
      apply_cluster_section(app, *node_cmd, node);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowbus: --config: %s\n", e.what());
      return 2;
    }
  }
  if (dlq_cmd->parsed()) return flowbus::app::run_dlq(dlq);
  if (top_cmd->parsed()) return flowbus::app::run_top(top);
  if (token_cmd->parsed()) return flowbus::app::run_token(token);
  if (certs_cmd->parsed()) return flowbus::app::run_certs(certs);
  if (key_cmd->parsed()) return flowbus::app::run_key(key);
  if (node_cmd->parsed()) return flowbus::app::run_node(node);
  if (demo_cmd->parsed()) return flowbus::app::run_demo(demo);
  if (bench_cmd->parsed()) return flowbus::app::run_bench(bench);
  return 2;
}
