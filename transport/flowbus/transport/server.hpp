// The WebSocket edge of a node: a Boost.Beast listener whose sessions are gateway agents of the
// node (actors/gateway.hpp). Each connection: binary FLOW frames only, one per WebSocket message
// (a BATCH counts as one); the first frame must be REGISTER, answered by WELCOME; frames from the
// agent are routed on the I/O thread that read them; frames for the agent are taken from its
// mailbox and written out as one frame when the socket is idle, or gathered into BATCH frames
// (up to 32) while a write is in flight. A defective frame gets an ERROR frame with a typed reason
// (reasons.hpp) and a close code, and only that connection closes.
#pragma once

#include <flowbus/actors/node.hpp>
#include <flowbus/codec/trace.hpp>
#include <flowbus/scheduling/circuit_breaker.hpp>
#include <flowbus/scheduling/retry.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/tls.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace flowbus::transport {

/// Rate limits (docs/security.md, "Rate limits"). A rate of 0 is no limit; a burst of 0 is one
/// second's worth.
struct rate_limits {
  /// Per agent: the data messages it sends (publish, unicast, broadcast, request, reply), and
  /// their payload bytes. Both must have room.
  double msgs_per_s = 0, burst_msgs = 0;
  double bytes_per_s = 0, burst_bytes = 0;
  /// What happens to a message over the rate: `hold` — the node stops reading the agent until
  /// its buckets have room, then routes it (TCP holds the agent back: nothing is lost, the
  /// agent's sends slow down or block); `refuse` — NACK (with a message id) or ERROR
  /// rate_limited (96 + 18), the message is not routed, the connection stays.
  enum class over : std::uint8_t { hold, refuse } action = over::hold;
  /// Per source IP address: new connections. Over it a connection is `hold`: its handshake
  /// waits until the bucket has room (at most the handshake timeout, else refused); `refuse`:
  /// refused at once with ERROR connection_rate_limited (80) after the WebSocket handshake.
  double connections_per_s = 0, burst_connections = 0;
};

struct server_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8081; ///< 0: any free port (see server::port())
  std::size_t io_threads = 1;
  std::vector<int> pin_cpus;              ///< pin I/O thread i to pin_cpus[i % size]; empty: no pinning
  std::uint32_t max_message = 64 * 1024;  ///< largest WebSocket message (and FLOW frame) accepted
  std::size_t max_connections = 100000;   ///< beyond: ERROR too_many_connections, close 1013
  std::size_t max_batch = 32;             ///< frames per outbound BATCH
  std::chrono::milliseconds handshake_timeout{5000}; ///< WebSocket upgrade, then REGISTER
  std::chrono::milliseconds idle_timeout{30000};     ///< silent this long (pings unanswered): close
  std::chrono::milliseconds write_timeout{5000};     ///< a write blocked this long: slow consumer
  std::chrono::milliseconds heartbeat_default{10000}; ///< for a REGISTER without heartbeat_ms
  std::size_t mailbox_capacity = 0; ///< frames queued per connection (0: the node's default)
  /// Outbound priority lanes (scheduling::lane_scheduler): frames per round for CRITICAL … BACKGROUND.
  std::array<std::uint32_t, 5> lane_weights{16, 8, 4, 2, 1};
  /// TCP_NOTSENT_LOWAT: unsent bytes the kernel may hold per connection (0: no limit). A backlog
  /// then waits in the priority lanes, where urgent frames can still overtake it, instead of in
  /// a FIFO socket buffer several MB deep.
  std::uint32_t notsent_lowat = 128 * 1024;
  /// Agents that acknowledge (REGISTER with ack_requested) report a failed handler with NACK:
  /// the message is queued again after a full-jitter backoff up to `retry.max_attempts`, then
  /// dead-lettered as poison; failures in the window open the agent's circuit breaker.
  scheduling::retry_policy retry{3, std::chrono::milliseconds(20), std::chrono::milliseconds(1000)};
  bool breaker_enabled = true;
  scheduling::breaker_options breaker;
  /// Same-host agents (docs/protocol.md §13): a client on the loopback interface that asks for it
  /// in its WebSocket handshake gets a shared-memory channel of two rings of this many bytes each
  /// (at least 4 x max_message), and exchanges its FLOW messages through them — no system call
  /// per message while both sides are busy. false: never offered.
  bool shared_memory = true;
  std::size_t shm_ring_bytes = 1 << 20;
  /// After its ring runs dry, a session keeps looking for this long (re-posting itself on the I/O
  /// thread, which serves other connections in between) before it parks and waits for a doorbell:
  /// a busy-poll that buys ~10-20 µs a hop for a core kept busy while agents talk (0: park at once).
  std::chrono::microseconds shm_spin{0};
  /// Browser pages allowed to connect, by origin (`https://app.example:8443`; `*`: any). A browser
  /// sends Origin with every WebSocket handshake and lets any page connect anywhere: a handshake
  /// with an Origin not listed here is refused (HTTP 403), so a page on another site cannot drive
  /// a node on its visitor's machine. Programs send no Origin and are not affected. (docs/security.md)
  std::vector<std::string> allowed_origins;
  /// Null: any agent may register as any free id (auth = none). Else every REGISTER must carry a
  /// token (field `token`) signed by one of these keys whose claims allow its id and type; the
  /// connection is closed when the token expires. (docs/security.md)
  std::shared_ptr<const token_keys> auth;
  /// With auth: the roles a token may name, and the role of a token that names none and carries
  /// no `permissions` claim. Null (or no default role): such an agent may publish and subscribe to
  /// anything. A refused publish or subscription gets NACK/ERROR not_permitted and is counted; the
  /// connection stays. (docs/security.md)
  std::shared_ptr<const role_table> roles;
  /// Public-key agents: with keys, the node sends CHALLENGE (a nonce) on every connection, and a
  /// REGISTER with `public_key` must carry its Ed25519 `signature` of that nonce; the key's entry
  /// says which ids (and type, role) it allows. Alone, or beside `auth` (tokens): a REGISTER with
  /// `public_key` is checked by key, one without by token. (docs/security.md)
  std::shared_ptr<const agent_keys> public_keys;
  /// wss://: with a certificate, every connection is TLS 1.2+ (a plain one fails its handshake,
  /// counted in tls_failed); optionally with client certificates naming the agent ids.
  /// Shared memory is not offered over TLS. (docs/security.md)
  tls_server_options tls;
  rate_limits limits;
  /// The latency histograms of server::latency() (docs/monitoring.md): a clock read per read pass
  /// and per write, two relaxed adds per frame written. false: not recorded (the histograms stay empty).
  bool latency_metrics = true;
  /// Sampled tracing (docs/monitoring.md, protocol.md §14): 1 in `trace_sample` data messages an
  /// agent sends (per connection; 0: none) is traced — the node writes the agent's send time and
  /// its own receive time into the message's `trace` field, other nodes add their arrival, and the
  /// node that writes it to a recipient keeps the trace with its write time (server::traces()).
  /// A message that arrives with a trace is always continued.
  std::uint32_t trace_sample = 0;
  std::size_t trace_keep = 256; ///< the most recent traces kept
};

struct server_stats {
  std::uint64_t accepted = 0, active = 0, refused = 0; ///< connections
  std::uint64_t frames_in = 0, frames_out = 0, writes = 0, batches = 0;
  /// WebSocket payload bytes read from agents, and of every message written to them.
  std::uint64_t bytes_in = 0, bytes_out = 0;
  std::uint64_t protocol_errors = 0, slow_consumers = 0;
  std::uint64_t sequence_gaps = 0, sequence_repeats = 0;
  /// Times a connection stopped reading because the node had no frame buffer for what it sent
  /// (backpressure: the frame waits in the session and TCP holds back the rest, nothing is dropped).
  std::uint64_t paused = 0;
  /// Times a publisher's connection was held (CREDIT 0, no reading for a while) because a message
  /// of it met a recipient connection above its high water mark (docs/reliability.md).
  std::uint64_t holds = 0;
  /// Frames acknowledged by agents that registered for acknowledged delivery (delivered for sure).
  std::uint64_t acked = 0;
  /// Times frames waited because their agent's receive window was used up (its CREDIT pending).
  std::uint64_t window_waits = 0;
  /// Connections that attached a shared-memory channel (in all), and doorbells sent to agents.
  std::uint64_t shm_attached = 0, shm_doorbells = 0;
  /// WebSocket handshakes refused for their Origin (server_options::allowed_origins).
  std::uint64_t origins_refused = 0;
  /// TLS handshakes that failed (a plain client, an untrusted or missing client certificate…).
  std::uint64_t tls_failed = 0;
  /// REGISTERs refused for their credentials (server_options::auth), and connections closed when
  /// their token expired.
  std::uint64_t auth_refused = 0, tokens_expired = 0;
  /// Publishes and subscriptions refused by the agent's permissions (not_permitted).
  std::uint64_t not_permitted = 0;
  /// Data messages over their agent's rate (held or refused), and connections over their source
  /// address's rate (held or refused).
  std::uint64_t rate_limited = 0, connections_limited = 0;
};

/// One connection as the monitoring sees it (server::connections(), /connz). Counters are read
/// while the connection runs: each is exact at some moment of the read.
struct connection_info {
  std::uint64_t cid = 0;          ///< numbered from 1 in the order connections were accepted
  std::string ip;
  std::uint16_t port = 0;
  std::string agent_id, agent_type; ///< empty until REGISTER is answered
  std::string state;              ///< handshake, registering, open, closing
  bool tls = false, shared_memory = false;
  std::uint64_t start_ns = 0;         ///< wall clock, ns since the Unix epoch
  std::uint64_t last_activity_ns = 0; ///< the last bytes from the agent, or written to it (±4 ms)
  std::uint64_t msgs_in = 0, bytes_in = 0;   ///< FLOW messages from the agent (a BATCH's each), WebSocket payload bytes
  std::uint64_t msgs_out = 0, bytes_out = 0; ///< its data frames written, and the bytes of every message written
  std::array<std::uint32_t, 5> lanes{};      ///< frames waiting in each priority lane (CRITICAL first)
  std::uint64_t pending = 0;                 ///< waiting in all (lanes + the gateway's mailbox)
  std::uint32_t window = 0;                  ///< the agent's receive window (0: none)
  std::int64_t credit = 0;                   ///< of it, what is left
};

/// The edge's latency histograms, per priority lane (CRITICAL first): how long a frame waited in
/// the node (from the I/O thread that read it to the write that sends it on), and its age when
/// written (from the sender's timestamp, so it includes the sender's side and clock offset).
struct edge_latency {
  std::array<scheduling::bucket_snapshot, 5> queued, age;
};

/// A traced message as written to one recipient (server::traces(), /tracez).
struct trace_record {
  std::string recipient;         ///< the agent it was written to
  std::string source, topic, target;
  std::uint8_t type = 0, priority = 0;
  std::vector<std::pair<codec::hop, std::uint64_t>> hops; ///< in order; the last is node_out here
};

class server {
public:
  /// Binds and listens; throws std::system_error if the address cannot be bound.
  server(actors::node& node, server_options options);
  ~server(); ///< stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const noexcept;
  /// Stops accepting, lets every session write what it has queued (bounded by `drain`), says
  /// GOODBYE, closes, and joins the I/O threads. Idempotent.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(2000));
  server_stats stats() const;
  /// Every connection past its TCP accept, in cid order.
  std::vector<connection_info> connections() const;
  edge_latency latency() const;
  /// The most recent traces (server_options::trace_keep), newest first.
  std::vector<trace_record> traces() const;
  const server_options& options() const noexcept;

  struct core;

private:
  std::shared_ptr<core> core_;
};

} // namespace flowbus::transport
