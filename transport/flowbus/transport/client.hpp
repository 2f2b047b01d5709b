// The C++ client library: an agent in another process, connected to a node over WebSocket.
//
//   transport::client_options o;
//   o.id = "worker-1"; o.type = "worker"; o.port = 8081;
//   transport::client c(o);
//   c.connect();                                           // REGISTER, wait for WELCOME
//   c.subscribe("tasks.>", [](const transport::incoming& m) { ... }).get();
//   c.publish("agent.worker.1.status", "ready");
//   auto r = c.request(transport::destination::capability("summarize"), "text", 500ms).get();
//
// One I/O thread per client runs the connection and calls the handlers (keep them short, or hand
// the work to another thread). Sending is thread-safe, takes no lock and never blocks on the
// network: the calling thread encodes the frame straight into the send queue, a lock-free ring
// shared by all sending threads (strings literal, so queued
// frames stay valid across reconnects; a frame above max_message is refused with too_large), and
// the I/O thread writes at once when the socket is idle, or gathers while a write is in flight —
// one BATCH frame of up to 32 per write (smart batching). When the connection
// drops, the client reconnects with exponential backoff and full jitter, registers again and
// re-subscribes; messages queued meanwhile are sent after the WELCOME. A message that was in a
// write when the connection dropped may be lost: delivery is at most once (acknowledged delivery
// is the reliability layer's).
#pragma once

#include <flowbus/scheduling/agent_messages.hpp>
#include <flowbus/scheduling/errc.hpp>
#include <flowbus/transport/tls.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::transport {

// What every agent shares with the node's actor agents (scheduling/agent_messages.hpp): the same
// types as actors::errc, actors::destination, ... without the actors layer (CAF) being needed.
using scheduling::balance;
using scheduling::destination;
using scheduling::errc;
using scheduling::received;
using scheduling::send_options;
using scheduling::to_string;

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8081;
  // the REGISTER frame
  std::string id;
  std::string type;
  /// Credentials for a node that requires them (docs/security.md: `flowbus token issue`). A node
  /// that refuses them answers connect() with errc::unauthenticated, and the client does not
  /// reconnect with them (nor after the token expires and the node closes the connection).
  std::string token;
  /// Or a public-key agent: an Ed25519 private key (PEM; `flowbus key gen`). The node's
  /// CHALLENGE nonce is signed in REGISTER. Throws std::runtime_error from the constructor if the
  /// file holds no such key. A node that refuses the key answers connect() with unauthenticated.
  std::string key_file;
  std::vector<std::string> capabilities;
  std::vector<std::string> subscriptions; ///< at registration; their messages go to on_message
  std::chrono::milliseconds heartbeat{1000};
  codec::priority priority = codec::priority::normal;
  // the connection
  bool reconnect = true;
  std::chrono::milliseconds backoff_initial{50}, backoff_max{2000};
  std::uint32_t max_message = 64 * 1024;
  std::size_t max_batch = 32;
  std::size_t max_queued = 65536; ///< messages waiting to be written; beyond, sends are refused
  /// The send queue's bytes: a ring that sending threads encode into without a lock (rounded up
  /// to a power of two, and to at least twice max_message). Full, it refuses or blocks sends as
  /// max_queued does. Its pages become resident as the queue first reaches them (all of them
  /// once that much has been sent). 4 MiB holds a burst of ~20 000 small messages; 1 MiB is as
  /// fast, 256 KiB 10-17 % slower (docs/benchmarks.md).
  std::size_t send_buffer = 4 << 20;
  /// A send that finds max_queued messages waiting (or send_buffer full) blocks up to this long
  /// for the queue to drain to half (Kafka's max.block.ms) before it is refused with
  /// mailbox_full; 0: refused at once.
  /// Blocking costs the sender one sleep per half queue drained, where retrying costs one per try.
  std::chrono::milliseconds max_block{0};
  /// close() writes what is queued first, for at most this long; what is left is counted in
  /// client_stats::unsent.
  std::chrono::milliseconds close_timeout{5000};
  /// Acknowledged delivery, receiving side: the node keeps every frame it wrote to us until we
  /// acknowledge it (an ACK after each message read, once its handlers returned), and
  /// dead-letters what we never acknowledged if the connection dies (docs/reliability.md).
  bool acks = false;
  /// Acknowledged delivery, sending side (publish_acked): a message not acknowledged within
  /// ack_timeout is sent again (flagged redelivery, same message id) up to ack_attempts in all.
  std::chrono::milliseconds ack_timeout{1000};
  std::uint32_t ack_attempts = 5;
  /// SO_RCVBUF in bytes (0: the kernel's autotuning, up to MBs on loopback). A small buffer keeps
  /// a backlog at the node, where priority lanes order it, instead of in this socket.
  std::uint32_t receive_buffer = 0;
  /// Receive window in data messages (0: none, TCP alone): the node writes at most this many
  /// ahead of what our handlers have finished, and we grant more with CREDIT every half window.
  /// What waits beyond it stays in the node's priority lanes, where a CRITICAL message overtakes
  /// it, instead of in the socket buffers in arrival order (docs/reliability.md, *Receive window*).
  std::uint32_t receive_window = 1024;
  /// Writing from the sending thread: while messages come at least this far apart on average
  /// (over the last few) and the connection is idle (nothing queued, no write in flight), the
  /// sending thread writes each itself — one send() — instead of handing it to the I/O thread,
  /// whose wake-up costs ~25-40 µs of latency on a VM. Denser traffic goes through the I/O thread,
  /// which gathers it into fewer writes (a burst costs one system call, not one per message;
  /// docs/benchmarks.md measures where the two cross). A negative value: never.
  std::chrono::microseconds direct_write_gap{50};
  /// Same host: ask the node for shared memory in the handshake (docs/protocol.md §13). If it
  /// offers a channel and this process can open it, every FLOW message goes through its rings —
  /// no system call per message while both sides are busy, the sending thread writing its message
  /// into the ring itself — and the WebSocket carries only pings, doorbells and the close. If not
  /// (another host or user, an older node, shm off there), the connection is plain WebSocket.
  bool shared_memory = false;
  /// After the node's ring runs dry, the I/O thread keeps looking for this long before it parks
  /// and waits for a doorbell (a busy-poll: one core kept busy while messages flow; 0: park).
  std::chrono::microseconds shm_spin{0};
  /// wss://: TLS 1.2+ to the node, its certificate checked against tls.server_name (or host).
  /// Over TLS the sending thread never writes itself (direct_write_gap) and shared memory is not
  /// asked for: every message goes through the I/O thread. (docs/security.md)
  tls_client_options tls;
};

/// A received message, the same as an in-process agent's delivery (frame unset). Views are valid
/// during the handler call only.
using incoming = scheduling::delivery;
using message_handler = std::function<void(const incoming&)>;

struct reply_result {
  errc code = errc::ok; ///< ok, timeout, no_responders, agent_unavailable, ...
  std::string source;
  std::string payload;
};

struct client_stats {
  std::uint64_t sent = 0, received = 0, writes = 0, batches = 0, connects = 0, refused = 0;
  std::uint64_t holds = 0; ///< CREDIT 0 from the node: a recipient of ours was above its high water mark
  std::uint64_t unsent = 0; ///< accepted by a send but still queued when close() gave up (close_timeout)
  std::uint64_t acked = 0;       ///< publish_acked messages the node acknowledged
  std::uint64_t redelivered = 0; ///< publish_acked messages sent again after ack_timeout
  std::uint64_t duplicates = 0;  ///< received messages dropped as already seen (same source and message id)
  std::uint64_t handler_failures = 0; ///< handlers that threw (with acks: NACKed, the node retries)
  std::uint64_t blocked_sends = 0;    ///< sends that found the queue full and waited (max_block)
  std::uint64_t direct_writes = 0;    ///< messages the sending thread wrote itself (direct_write_gap)
  std::uint64_t shm_connects = 0;     ///< connections that went through shared memory
  std::uint64_t doorbells = 0;        ///< doorbells sent to the node (it had parked, or waited for space)
};

class client {
public:
  explicit client(client_options options);
  ~client(); ///< close()
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Connects and registers; returns once the node's WELCOME arrived (ok), the node refused the
  /// registration (its reason), or `timeout` passed (timeout; with reconnect on, it keeps trying).
  errc connect(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  bool connected() const noexcept;
  /// For messages no subscription handler takes (unicast, broadcast, initial subscriptions).
  /// Set it before connect().
  void on_message(message_handler h);

  /// Subscribes (again after every reconnect); the future tells whether the node accepted.
  std::future<errc> subscribe(std::string pattern, message_handler h = {}, std::string group = {});
  std::future<errc> unsubscribe(std::string pattern, std::string group = {});

  errc publish(std::string_view topic, std::string_view payload, const send_options& opts = {});
  /// At least once: the node acknowledges once the message is in the queue of every current
  /// recipient (ok), or refuses it (its NACK's reason; refused copies are dead letters). Without
  /// an answer within ack_timeout it is sent again, same message id, up to ack_attempts (then
  /// timeout). The attempts are spent by time whether or not the frame could be written (the node
  /// gone, a hold): the future resolves within ack_attempts x ack_timeout, reconnecting or not;
  /// timeout means "not confirmed" (a copy still queued may arrive later). With reconnect off, a
  /// lost connection answers node_stopped at once. Receivers drop the duplicates this can make (a
  /// window of ids per source).
  /// opts.message_id is chosen by the client.
  std::future<errc> publish_acked(std::string_view topic, std::string_view payload,
                                          send_options opts = {});
  /// publish_acked answering `done` instead of a future, for publishers with many in flight: a
  /// future costs a std::promise per message, whose set_value (std::call_once) makes a system
  /// call. `done` runs on the client's I/O thread (on this one if the message is refused at once),
  /// outside the client's lock: it may publish again, it must not block.
  void publish_acked(std::string_view topic, std::string_view payload, send_options opts,
                     std::function<void(errc)> done);
  errc send(const destination& to, std::string_view payload, const send_options& opts = {});
  errc broadcast(std::string_view payload, std::string_view agent_type = {}, const send_options& opts = {});
  /// The reply, or a typed error: the node's refusal (no_responders, agent_unavailable, ...) or timeout.
  std::future<reply_result> request(const destination& to, std::string_view payload,
                                    std::chrono::milliseconds timeout);
  void request(const destination& to, std::string_view payload, std::chrono::milliseconds timeout,
               std::function<void(reply_result)> done);
  /// Answers a REQUEST received in a handler.
  errc respond(const incoming& req, std::string_view payload);

  /// Says GOODBYE, closes, stops reconnecting and joins the I/O thread. Idempotent.
  void close();
  client_stats stats() const;
  /// Whether the node last asked us to hold (CREDIT 0): a recipient is above its high water mark and
  /// the node is not reading from us for a few ms. publish() still queues; a publisher that can
  /// wait should (the node holds it back through TCP anyway).
  bool held() const noexcept;
  const client_options& options() const noexcept;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace flowbus::transport
