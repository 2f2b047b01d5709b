// A node's place in a cluster: its name, where it listens for other nodes, whom it joins, and
// how fast it notices a peer that is gone. Nodes link over CAF's middleman (BASP over TCP, one
// connection per pair), learn each other from any one they reach (each link exchanges the
// addresses it knows) and form a full mesh; each tells the others which topics its agents want
// (interest) and which agents it serves, so a frame crosses a link only where someone waits for
// it, once. docs/cluster.md tells the whole story.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace flowbus::actors {

struct cluster_config {
  /// -1: no cluster (the default). 0: any free port (node::cluster_port() tells which).
  int port = -1;
  std::string address = "127.0.0.1"; ///< where to listen for other nodes
  /// This node's name, unique in the cluster (CAF's node id is a hash of MAC addresses and pid:
  /// not a name a person can read). Required with a port.
  std::string name;
  /// host:port others dial to reach this node (default: address:port).
  std::string advertise;
  std::vector<std::string> join; ///< host:port of nodes to link with (any one is enough)
  /// Heartbeats on every link, and how long a silent link lives: CAF 0.17 has both off by default,
  /// and then a hung peer (SIGSTOP, a partition without FIN) is never noticed. Both are required,
  /// on every node, with timeout >= 3 x interval: a node that sends none would see its healthy
  /// links dropped by the others.
  std::chrono::milliseconds heartbeat_interval{250};
  std::chrono::milliseconds connection_timeout{1500};
  /// A connection attempt (TCP connect and BASP handshake) that takes longer fails (CAF's blocking
  /// remote_actor() would wait forever on a peer that accepts TCP and never answers).
  std::chrono::milliseconds connect_timeout{2000};
  /// Redial a lost or unreachable peer after 100 ms, doubling up to this, with full jitter.
  std::chrono::milliseconds max_backoff{5000};
  std::size_t link_capacity = 65536;    ///< frames queued for one peer before senders are refused
  /// frames per CAF message on a link. batch_frames x batches_in_flight is the slack of a lossless
  /// topic across the link: a held recipient's queue needs that much room above its high water
  /// mark (512 fits the default queue of 4096 with its 80 % mark)
  std::size_t batch_frames = 128;
  std::size_t batches_in_flight = 4;    ///< unacknowledged batches per link
  std::string app_id = "flowbus-v1";    ///< BASP application identifier: foreign CAF systems are refused
  /// TLS on the links (CAF's openssl module), mutual: each node presents its certificate (PEM, with
  /// its chain) and accepts only peers whose certificate the CA file signs. All three, or none:
  /// with none, CAF's TLS falls back to an anonymous cipher (encrypted, nobody authenticated), so
  /// a node with only some of them refuses to start. Every node of a cluster must use TLS or none.
  std::string tls_certificate, tls_key, tls_ca;
  std::string tls_passphrase; ///< of the key, if it is encrypted
  bool tls() const noexcept { return !tls_certificate.empty() || !tls_key.empty() || !tls_ca.empty(); }
};

/// One other node as this node sees it.
struct peer_status {
  std::string name;
  std::string address;      ///< what it advertises
  bool up = false;
  std::uint64_t frames_out = 0, frames_in = 0;
  std::uint64_t pending = 0;      ///< frames queued for it or sent and not yet acknowledged
  std::uint64_t dead_lettered = 0; ///< frames for it that went to the dead letters (link lost, refused)
  std::uint64_t remote_agents = 0;
  std::uint64_t interest = 0;      ///< its subscription patterns (plain and queue groups)
  std::chrono::microseconds rtt{0}; ///< of its last acknowledged batch
};

/// Over the node's life, all links together (peer_status counts one link, which a lost peer takes
/// with it).
struct cluster_totals {
  std::uint64_t frames_acknowledged = 0; ///< sent to other nodes and taken by them
  std::uint64_t frames_in = 0;           ///< received from other nodes
  std::uint64_t dead_lettered = 0;       ///< meant for other nodes, dead-lettered here (link lost, refused)
  std::uint64_t links_lost = 0;
  /// agents taken down here because the same id was registered on a node with a smaller name at
  /// the same moment (or across a partition) — that node kept it
  std::uint64_t duplicates_taken_down = 0;
};

} // namespace flowbus::actors
