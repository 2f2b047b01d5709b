// The node's shared state and the vocabulary of its control messages (internal).
//
// Ownership: node::impl is shared by the node and its clients; actor agents hold a raw pointer
// (the node outlives them: shutdown stops them before the system goes). Member order is
// destruction order reversed: the buffer pool is declared first so it outlives every buffer
// held by the dead letters and the endpoints in the routing table.
#pragma once

#include <flowbus/actors/node.hpp>
#include <flowbus/actors/routing_table.hpp>
#include <flowbus/scheduling/left_right.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <unordered_map>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace flowbus::actors {

// Control atoms (CAF 0.17: at most 10 characters).
using register_atom = caf::atom_constant<caf::atom("fb_reg")>;
using deregister_atom = caf::atom_constant<caf::atom("fb_unreg")>;
using heartbeat_atom = caf::atom_constant<caf::atom("fb_hb")>;
using subscribe_atom = caf::atom_constant<caf::atom("fb_sub")>;
using unsubscribe_atom = caf::atom_constant<caf::atom("fb_unsub")>;
using tick_atom = caf::atom_constant<caf::atom("fb_tick")>;
using start_atom = caf::atom_constant<caf::atom("fb_start")>;
using down_atom = caf::atom_constant<caf::atom("fb_down")>;
using stop_atom = caf::atom_constant<caf::atom("fb_stop")>;
using timeout_atom = caf::atom_constant<caf::atom("fb_tmo")>;
using beat_atom = caf::atom_constant<caf::atom("fb_beat")>;
using forget_atom = caf::atom_constant<caf::atom("fb_forget")>;
using flush_atom = caf::atom_constant<caf::atom("fb_flush")>;
using topics_atom = caf::atom_constant<caf::atom("fb_topics")>;
using retry_atom = caf::atom_constant<caf::atom("fb_retry")>;
using breaker_atom = caf::atom_constant<caf::atom("fb_brk")>;
using trim_atom = caf::atom_constant<caf::atom("fb_trim")>;
/// link -> directory: (agent id, node name): an id registered here is live on that node too
using duplicate_atom = caf::atom_constant<caf::atom("fb_dup")>;

/// REGISTER as the directory receives it (local only: carries pointers).
struct registration {
  agent_spec spec;
  caf::actor actor;             ///< the agent's actor, a gateway's connection actor, or none for a client
  std::shared_ptr<void> waiter; ///< a client's or gateway's doorbell context
  endpoint::box_type::doorbell_fn ring = nullptr; ///< set: the actor (if any) is not drained by drain_atom
};
struct registered {
  errc code = errc::ok;
  std::shared_ptr<endpoint> ep;
};

/// Acknowledged sends waiting for other nodes (send_options::confirm), keyed by the frame's buffer:
/// the links confirm each frame of theirs as its batch is answered (or fail it), and the sender's
/// callback runs when every link it went to has. A frame stays referenced by its links until they
/// confirm it, so its buffer (the key) cannot be reused meanwhile. @threadsafe
class remote_confirmations {
public:
  /// Before the frame is handed to anyone: links may confirm it from then on.
  void open(const void* frame);
  /// After the routing: `links` took it. Returns the outcome if it is settled already (no link,
  /// or all have answered: the caller answers itself), else keeps `done` for the last link.
  std::optional<errc> arm(const void* frame, std::uint32_t links,
                          const std::function<void(std::uint64_t, errc)>& done, std::uint64_t message_id);
  /// A link took the frame (ok) or could not carry it (its reason).
  void settle(const void* frame, errc e);
  bool idle() const noexcept { return open_.load(std::memory_order_acquire) == 0; }
  /// Whether the frame has an entry (an acknowledged send waits for it): opened before any
  /// recipient could see the frame, so a recipient asking finds it.
  bool tracks(const void* frame);

private:
  struct entry {
    std::int64_t pending = 0; ///< links that have not answered (below zero until armed)
    bool armed = false;
    errc result = errc::ok;
    std::uint64_t message_id = 0;
    std::function<void(std::uint64_t, errc)> done;
  };
  std::mutex m_;
  std::unordered_map<const void*, entry> entries_;
  std::atomic<std::size_t> open_{0};
};

class stream_writer;
class stream_admin;
class dlq_stream;

struct node::impl {
  explicit impl(node_config c);
  ~impl();

  node_config cfg;
  scheduling::buffer_pool pool;
  scheduling::buffer_pool critical_pool; ///< CRITICAL frames, when `pool` is exhausted
  dead_letters dead;
  scheduling::left_right<routing_table> routes;
  std::shared_ptr<pinning_report> pins;
  std::unique_ptr<caf::actor_system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor dir;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  std::mutex m; ///< guards actor_endpoints
  std::vector<std::weak_ptr<endpoint>> actor_endpoints;
  std::array<caf::actor, dlq_kind_count> dlqs; ///< with a dlq_directory: one DLQ actor per kind
  /// each kind's file as open_dlq recovered it: the DLQ actors start from copies, and
  /// persist_remaining writes through them, so none reads a whole file again to find its end
  std::vector<dlq_file> dlq_files;
  std::atomic<bool> dlq_live{false};           ///< the DLQ actors take flushes
  /// each queue read as a stream, `$dlq.<kind>` (dlq_stream.hpp): made before the DLQ actors
  /// (which wake them), started with the node, stopped with the streams
  std::array<std::unique_ptr<dlq_stream>, dlq_kind_count> dlq_streams;
  // the cluster (cluster.cpp), when cfg.cluster.port >= 0
  caf::actor cluster;                          ///< takes local interest and agents, links other nodes
  std::uint16_t cluster_port = 0;
  std::atomic<subscriber_id> next_link_id{0x70000000u}; ///< link endpoints' ids (agents' are far below)
  struct peer_entry {
    std::string address;
    std::shared_ptr<struct link_stats> stats;
  };
  remote_confirmations confirmations;
  // durable streams (stream.cpp)
  std::mutex streams_m; ///< guards streams
  std::vector<std::unique_ptr<stream_writer>> streams;
  /// the agent $streams (node_config::stream_directory or dlq_directory)
  std::unique_ptr<stream_admin> stream_api;
  std::atomic<bool> has_streams{false}; ///< acknowledged sends then track confirmations without a cluster
  std::atomic<std::uint64_t> cluster_acked{0}, cluster_in{0}, cluster_dead{0}, links_lost{0}, ///< cluster_totals
      duplicates_taken_down{0};
  // the monitoring (node::routing, node::handler_times)
  std::atomic<std::uint64_t> route_lookups{0}, route_hits{0}; ///< added by each port in steps
  scheduling::bucket_histogram handler_time;
  std::mutex peers_m; ///< guards peers (written by the cluster actor, read by node::peers)
  std::map<std::string, peer_entry> peers;
};

class dlq_file;
/// Checks and recovers the DLQ directory (open_dlq_directory); throws std::system_error if unusable.
void open_dlq(node::impl* core);
/// DLQ actors (dlq_actor.cpp): spawned hidden (shutdown's await does not wait for them), flushed
/// and stopped by shutdown after the agents; persist_remaining writes late arrivals without CAF.
void spawn_dlq_actors(node::impl* core);
std::uint64_t flush_dlq_actors(node::impl* core);
void stop_dlq_actors(node::impl* core);
void persist_remaining(node::impl* core);
std::uint64_t persist_dead_letters(dead_letters& dead, dlq_file& file);

errc to_errc(directory_errc e) noexcept;
errc to_errc(topic_errc e, bool pattern) noexcept;

/// Checks the cluster's options (throws std::system_error) and sets CAF's middleman up.
void configure_cluster(const cluster_config& c, caf::actor_system_config& sys_cfg);
/// Starts the cluster actor and listens for other nodes (cluster.cpp); throws std::system_error.
void start_cluster(node::impl* core);
/// Tells the cluster actor to close its links (queued frames: dead letters, reason shutdown).
void stop_cluster(node::impl* core);

/// Spawns the directory actor (directory_actor.cpp).
caf::actor spawn_directory(node::impl* core);
/// An actor agent (agent_actor.cpp).
struct agent_boot {
  node::impl* core;
  agent_handler handler;
  start_handler on_start;
  std::chrono::milliseconds heartbeat;
  codec::priority prio;
  std::chrono::microseconds idle_spin;
  scheduling::retry_policy retry;
  std::optional<scheduling::breaker_options> breaker;
};

/// A client thread's doorbell: the mailbox rings it, receive() sleeps on it.
struct client_waiter {
  std::mutex m;
  std::condition_variable cv;
  bool rung = false;
  /// A stream's (stream_writer::ring_inline, set before the endpoint is registered): tried first,
  /// true when the ringing thread served what it pushed, so there is no thread to wake.
  bool (*try_inline)(void* context) noexcept = nullptr;
  std::shared_ptr<void> inline_context;
  /// Wakes the thread that waits on it (never an inline round).
  void wake() noexcept {
    {
      std::lock_guard<std::mutex> g(m);
      rung = true;
    }
    cv.notify_one();
  }
  static void ring(void* self) noexcept {
    auto* w = static_cast<client_waiter*>(self);
    if (w->try_inline && w->try_inline(w->inline_context.get())) return;
    w->wake();
  }
};
/// An actor's doorbell (an actor agent's, a cluster link's): a drain_atom. Weak: the endpoint
/// must not keep a finished actor alive.
struct actor_doorbell {
  caf::weak_actor_ptr target;
  static void ring(void* self) noexcept;
};

/// A topic actor (topic_actor.cpp): one shard of the patterns' subscriber sets.
caf::actor spawn_topic_shard(caf::local_actor* parent, node::impl* core);
/// Spawns an actor agent (agent_actor.cpp); it starts when the directory sends it its endpoint.
caf::actor spawn_agent(node::impl* core, std::shared_ptr<agent_boot> boot);

} // namespace flowbus::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flowbus::actors::registration)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flowbus::actors::registered)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<flowbus::actors::endpoint>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<flowbus::actors::agent_boot>)
