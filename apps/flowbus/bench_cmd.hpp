// `flowbus bench`: a load generator for the WebSocket edge. By default it starts its own node
// process (`flowbus node --port 0`), runs the subscribers in a second process and publishes from
// its own — publisher → node → subscriber across three processes; `--connect` targets a running
// node instead, `--embedded` runs everything in one process, `--clients-together` the publisher and
// subscribers in one process beside the node's, `--cluster-nodes N` N linked node processes with
// the publisher and the subscribers on different nodes. Progress goes to stderr, one JSON line
// per result to stdout (bench/README.md format).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace flowbus::app {

struct bench_options {
  std::string scenario = "latency"; ///< latency | throughput | request | connections | priority | subscriptions | stall | store
  std::string connect;              ///< host:port of a running node; empty: start one
  bool embedded = false;            ///< node, publisher and subscribers in this process
  bool clients_together = false;    ///< publisher and subscribers in this process, the node in its own (as NATS's latency tests run)
  double rate = 10000;              ///< latency, priority: messages offered per second (fixed intervals)
  double seconds = 10;              ///< latency, priority: how long
  std::size_t size = 128;           ///< payload bytes
  std::size_t subscribers = 1;      ///< throughput: 1 (1->1) or more (fan-out)
  std::uint64_t messages = 1000000; ///< throughput: messages published
  std::size_t connections = 10000;  ///< connections: how many to open
  std::size_t subscriptions = 100000; ///< subscriptions: distinct topics one connection subscribes
  double stall_at = 2;              ///< stall: when the last subscriber stops reading, s
  bool lossless = false;            ///< the started node holds publishers for slow subscribers (--lossless)
  std::size_t node_mailbox = 16384; ///< the started node's per-connection queue
  std::size_t node_io_threads = 1;
  std::uint32_t receive_buffer = 0; ///< subscribers' SO_RCVBUF (0: the kernel's autotuning)
  std::uint32_t receive_window = 0; ///< subscribers' receive window (0: none; main sets the client's default)
  std::int64_t direct_write_gap_us = 0; ///< the publisher's client_options::direct_write_gap (main sets the default)
  bool shm = false;                 ///< clients ask for shared memory (same host: docs/protocol.md §13)
  std::uint32_t shm_spin_us = 0;    ///< with shm: clients and the started node busy-poll their rings this long
  std::size_t client_batch = 32;    ///< the publisher's messages per WebSocket message (1: unbatched, as most clients send)
  std::size_t publisher_threads = 1; ///< throughput: threads sending through the one publishing client at once
  std::size_t send_buffer = 0;      ///< the publisher's client_options::send_buffer (0: the client's default)
  std::string token;                ///< every bench client registers with it (a node with --auth token)
  std::string tls_ca;               ///< clients connect with TLS, trusting this CA (a node with --tls-cert)
  /// latency, throughput: start this many linked node processes (a cluster, docs/cluster.md) with
  /// the publisher on the first and the subscribers on the others (fan-out: spread over all)
  std::size_t cluster_nodes = 1;
  std::vector<std::string> node_args; ///< more options for the started node processes (e.g. --idle-workers backoff)
  std::string name;                 ///< the JSON `bench` name (default from the scenario)
  /// latency, throughput: through a durable stream (docs/streams.md) with this policy (always,
  /// group, never, or memory): the node stores what is published, and the subscribers get it from
  /// a consumer of the stream, acknowledging each. Empty: straight from the topic.
  std::string through_stream;
  bool catch_up = false; ///< throughput through a stream: the consumer starts once all is published
  std::size_t in_flight = 4096; ///< store: acknowledged publishes not yet confirmed, at most
  bool unacked = false;         ///< store: plain publishes, timed until the stream has the last one durable
  std::string stream_dir; ///< (set by the bench: the started node's --stream-dir)
};

int run_bench(const bench_options& options);

} // namespace flowbus::app
