// A flowbus node embedded in an application: it owns a CAF actor system (scheduler policy,
// worker count and thread pinning from node_config), the directory actor that knows every agent,
// the routing table the data path reads, the frame buffer pool and the dead letters.
//
//   flowbus::actors::node n;
//   agent_spec printer{"printer", "sink"};
//   printer.subscriptions = {"news.>"};
//   n.spawn(printer, [](agent_context&, const delivery& d) { ... });
//   auto c = n.connect({"writer", "source"});      // an agent driven by this thread
//   (*c)->publish("news.tech", "hello");
//   n.shutdown();                                  // drain, then stop (also in ~node)
//
// Users who know CAF reach the actors: system(), directory(), and agent_handle::actor.
#pragma once

#include <flowbus/actors/stream.hpp>
#include <flowbus/actors/agent.hpp>
#include <flowbus/actors/client.hpp>
#include <flowbus/actors/cluster.hpp>
#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/actors/dlq.hpp>
#include <flowbus/actors/expected.hpp>
#include <flowbus/actors/gateway.hpp>
#include <flowbus/actors/thread_pinning.hpp>
#include <flowbus/scheduling/buffer_pool.hpp>
#include <flowbus/scheduling/metrics.hpp>

#include <caf/actor.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace flowbus::actors {

enum class scheduler_policy : std::uint8_t { stealing, sharing };

struct node_config {
  std::size_t workers = 0; ///< CAF scheduler threads; 0: one per CPU
  scheduler_policy policy = scheduler_policy::stealing;
  pinning_options pinning = [] { // off unless asked
    pinning_options p;
    p.enabled = false;
    return p;
  }();
  /// 0: CAF's own back-off for idle work-stealing workers (sleep 50 µs between polls, 10 ms once
  /// idle for a while). > 0: idle workers poll at this period forever — a bound on the latency
  /// of waking an idle agent, paid for with CPU that a 2-core machine's other threads then lack
  /// (docs/benchmarks.md measures both).
  std::chrono::microseconds idle_poll{0};
  /// Idle workers go to sleep on their condition variable right after a short spin (woken when a
  /// job is enqueued from outside) instead of CAF's back-off, which after every job keeps each
  /// worker waking every 50 µs for ~25 ms. For a node whose traffic bypasses CAF (the WebSocket
  /// edge, `flowbus node`) that polling is pure cost: on this VM ~20 µs of CPU per wake-up, taken
  /// from the I/O threads. In-process actor agents may lose some parallelism: a job one worker
  /// queues for another actor waits for that worker (or a steal within 10 ms). Ignored with idle_poll.
  bool park_idle_workers = false;
  std::chrono::nanoseconds timer_slack{1000}; ///< for CAF's threads (Linux default: 50 µs)
  std::size_t mailbox_capacity = 4096;             ///< per agent, rounded up to a power of two
  unsigned missed_heartbeats = 3;                  ///< intervals an agent may miss before it is down
  std::size_t route_cache = 1024;                  ///< resolved topics each sender keeps
  std::size_t dead_letter_capacity = 10000;       ///< in memory (dead()): the most recent
  /// Dead-letter queues on disk: a directory for the six typed DLQ files (dlq.hpp); empty: none.
  std::string dlq_directory;
  std::size_t dlq_pending_bound = 65536; ///< per kind, waiting for the disk; beyond: counted, not kept
  std::chrono::milliseconds drain_timeout{5000}; ///< shutdown waits this long for in-flight messages
  /// Backpressure on a multicast topic. By default a plain subscriber that falls behind is
  /// isolated, as in NATS: the publisher is not held for it, the others go on at full rate, and
  /// what it cannot take is shed to its dead letters (counted) until it catches up or the write
  /// timeout cuts it. For topics matching these patterns a subscriber above its high water mark
  /// holds the publisher instead (lossless, at the pace of the slowest subscriber).
  /// Unicast, capability routing, queue groups and broadcasts always hold (lossless).
  std::vector<std::string> lossless_topics;
  /// Durable streams (stream.hpp, docs/streams.md), opened and recovered as the node starts.
  std::vector<stream_config> streams;
  /// Where streams created at run time keep their logs; the streams found in it (a directory with
  /// a stream.json) reopen as the node starts. Set, the agent `$streams` serves the stream API
  /// (docs/streams.md); empty: no such agent, only `streams` above.
  std::string stream_directory;
  /// Topic actors: each owns the subscriber sets of the patterns that hash to it (topic_actor.cpp).
  std::size_t topic_shards = 16;
  /// Patterns one agent may be subscribed to at once (plain or in queue groups); a subscription
  /// beyond is refused with errc::too_many_subscriptions (REGISTER's own list included).
  std::size_t max_subscriptions = 100000;
  scheduling::buffer_pool_options buffers = {{{256, 16384}, {1024, 4096}, {4096, 1024}, {65536, 64}}, -1, true, true};
  /// Other nodes: off unless cluster.port is set (cluster.hpp). The node then refuses to start
  /// (std::system_error) without a name, with a heartbeat interval or timeout of zero, or a
  /// timeout below three intervals, and if it cannot listen.
  cluster_config cluster;
  /// Kept for CRITICAL frames when `buffers` is exhausted (emergency mode: a flood of bulk traffic
  /// that uses up every buffer cannot refuse the urgent ones). ~1.5 MiB.
  scheduling::buffer_pool_options critical_buffers = {{{256, 1024}, {1024, 256}, {4096, 64}, {65536, 8}}, -1, false, true, 0};
};

struct agent_handle {
  std::string id;
  subscriber_id handle = 0;
  caf::actor actor; ///< the agent's actor
};

/// One agent as the directory sees it.
struct agent_status {
  std::string id, type;
  subscriber_id handle;
  std::vector<std::string> capabilities;
  std::uint64_t in_flight, handled;
  scheduling::breaker_state breaker; ///< its circuit breaker as senders see it
  bool throttled;                    ///< its queue is above its high water mark (flow control)
};

/// The routing state at a moment, for the monitoring (node::routing()).
struct routing_summary {
  std::size_t agents = 0, remote_agents = 0;
  std::size_t subscriptions = 0; ///< (pattern, subscriber) pairs: agents', queue groups', other nodes'
  std::size_t queue_groups = 0;
  /// Topics senders looked up, and how many their route caches answered (counted by each sender
  /// in steps of 256 lookups: a quiet sender's last few are not in yet).
  std::uint64_t route_lookups = 0, route_cache_hits = 0;
};

/// Who a message published to a topic would reach now (node::match()).
struct match_result {
  std::vector<std::string> subscribers; ///< plain subscribers' agent ids (other nodes: "node:<handle>")
  std::vector<std::vector<std::string>> groups; ///< per matching queue group: its members (one is picked)
};

struct dlq_replay_result {
  std::size_t replayed = 0; ///< sent again and removed from the queue
  std::size_t failed = 0;   ///< could not be sent (corrupt frame, refused): still queued
  std::error_code error;
};

struct shutdown_report {
  bool drained = true;          ///< every message handed to an actor agent was handled in time
  std::uint64_t handled = 0;    ///< messages actor agents handled over the node's life
  std::uint64_t dead_lettered = 0; ///< messages left in mailboxes at the deadline (reason shutdown)
};

class node {
public:
  node(); ///< the default node_config
  /// Throws std::system_error if config.dlq_directory is set but unusable (not a directory, not
  /// writable, a queue file that does not open): a node that would fail at its first dead letter
  /// refuses to start instead. Torn tails of the queue files are cut here (dlq.hpp, recovery).
  /// Also throws std::system_error if a stream's log cannot be opened, std::invalid_argument for
  /// a stream's bad name or subject.
  explicit node(node_config config);
  ~node(); ///< shutdown()
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Spawns an actor agent: registered (with its subscriptions in the routing table) before this
  /// returns; `on_start` runs first in the actor, then `handler` for each message.
  expected<agent_handle, errc> spawn(agent_spec spec, agent_handler handler, start_handler on_start = {});
  /// Registers an agent driven by the calling application thread.
  expected<std::unique_ptr<client>, errc> connect(agent_spec spec);
  /// Registers an agent served by a gateway (a WebSocket session, ...), without blocking:
  /// `on_attach` runs on a node thread with the gateway or the refusal (gateway.hpp).
  void attach(agent_spec spec, gateway_events events, attach_handler on_attach);

  /// Refuses new agents, waits (up to drain_timeout) until every message handed to an actor agent
  /// has been handled — including messages those handlers send meanwhile — then stops the agents
  /// and the directory. Idempotent.
  shutdown_report shutdown();

  std::vector<agent_status> agents() const;
  /// Adds a durable stream at run time (as node_config::streams at start). Throws as the
  /// constructor does; a second stream of the same name is std::invalid_argument.
  void add_stream(stream_config config);
  /// Stops a stream (what reached it is stored and confirmed first) and deletes its log; false if
  /// there is no such stream.
  bool remove_stream(std::string_view name);
  std::vector<stream_status> streams() const;
  /// One agent's circuit breaker as senders see it; agent_unavailable if there is no such agent.
  expected<scheduling::breaker_state, errc> breaker(std::string_view agent_id) const;
  routing_summary routing() const;
  /// Who a publish to `topic` would reach now; empty for an invalid topic.
  match_result match(std::string_view topic) const;
  /// What the agent subscribed to (interest_of in routing_table.hpp); empty if there is no such agent.
  std::vector<std::string> interest_of(std::string_view agent_id) const;
  /// How long actor agents' handlers took, per message (steady clock; recorded for every message).
  scheduling::bucket_snapshot handler_times() const;
  /// The subscription patterns that have a topic actor now (owning their subscriber sets), sorted.
  std::vector<std::string> topics() const;
  dead_letters& dead() noexcept;

  /// Dead-letter queues on disk (node_config::dlq_directory). dlq_flush waits until everything
  /// dead-lettered so far is on disk (false: no directory configured).
  bool dlq_flush();
  /// The live entries of one queue, oldest first (after a flush).
  std::error_code dlq_list(dlq_kind kind, std::vector<dlq_entry>& out);
  /// Re-sends entries (all when `ids` is empty) through an internal agent "flowbus.dlq.replay" and
  /// removes those sent; one that fails again comes back as a new entry.
  dlq_replay_result dlq_replay(dlq_kind kind, const std::vector<std::uint64_t>& ids = {});
  std::error_code dlq_purge(dlq_kind kind);
  /// The other nodes of the cluster this node has linked with or is dialling, by name.
  std::vector<peer_status> peers() const;
  cluster_totals cluster_stats() const noexcept;
  /// Where this node listens for other nodes (0: no cluster).
  std::uint16_t cluster_port() const noexcept;
  /// Links with the node at host:port (and, through it, with every node it knows), as an address
  /// given in cluster_config::join: redialled until it answers. Without a cluster: nothing.
  void join(const std::string& host_port);
  std::size_t workers() const noexcept;
  const node_config& config() const noexcept;
  std::shared_ptr<pinning_report> pinning() const;

  caf::actor_system& system() noexcept;
  caf::actor directory() const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace flowbus::actors
