// The C++ client's state (private to transport/). Units:
//   client.cpp             the public API (client.hpp) over client::impl;
//   client_send.cpp        the sending side: senders encode into the queue (client_queue.hpp), a
//                          sparse sender writes itself, the I/O thread gathers and writes;
//   client_connection.cpp  the connection: dial, REGISTER, reading, heartbeats, loss and
//                          reconnect with backoff, the timers' sweep, the graceful close;
//   client_receive.cpp     what the node sends: decode, dispatch to handlers, ACK/NACK/ERROR,
//                          CREDIT, replies (subscriptions and receipts: client_receiver.hpp;
//                          what is waited for: client_pending.hpp);
//   client_shm.cpp         a same-host connection's shared-memory rings (shm_link.hpp).
// docs/threading.md says which thread may touch what; `m` guards everything marked "under m".
#pragma once

#include "buffered_stream.hpp"
#include "edge_stream.hpp"
#include "tls_context.hpp"
#include "client_pending.hpp"
#include "client_queue.hpp"
#include "client_receiver.hpp"
#include "shm_link.hpp"

#include <flowbus/scheduling/mpsc_byte_ring.hpp>

#include <flowbus/codec/decoder.hpp>
#include <flowbus/transport/auth.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/outbound.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

namespace flowbus::transport {

struct client::impl : std::enable_shared_from_this<client::impl> {
  using errc = scheduling::errc;
  using clk = std::chrono::steady_clock;

  client_options opt;
  // ---- the I/O thread's ----
  detail::net::io_context ioc{1};
  detail::net::executor_work_guard<detail::net::io_context::executor_type> work = detail::net::make_work_guard(ioc);
  std::thread thread;
  detail::tcp::resolver resolver{ioc};
  std::unique_ptr<boost::asio::ssl::context> tls; ///< opt.tls made into a context (null: plain)
  std::optional<agent_identity> identity; ///< opt.key_file's key (none: no public-key auth)
  bool awaiting_challenge = false; ///< connected with a key: REGISTER waits for the node's nonce
  std::optional<detail::websocket::stream<detail::buffered_stream<detail::edge_stream>>> ws;
  detail::net::steady_timer heartbeat_timer{ioc}, sweep_timer{ioc}, retry_timer{ioc};
  detail::beast::flat_buffer in;
  std::optional<codec::decoder> dec;
  outbound_batch batch;
  std::vector<unsigned char> wire; ///< what the write in flight carries: masked WebSocket frames back to back
  detail::frame_queue front;       ///< frames that go before everything queued: re-subscriptions, control
  detail::frame_queue express;     ///< CRITICAL messages taken from `urgent`: after front, before the ring
  detail::frame_queue resend;      ///< acknowledged publishes sent again (the sweep's): before the ring
  bool bye_sent = false;           ///< close(): GOODBYE is queued, after everything else was written
  std::uint64_t close_claims = 0;  ///< close(): the ring's claims when closing was set (GOODBYE follows them)
  bool writing = false;
  std::uint64_t next_out = 0;
  std::uint64_t generation = 0;   ///< connection attempts: stale completions are ignored
  std::uint32_t failed_dials = 0; ///< since the last registration: the backoff's exponent
  std::mt19937_64 rng{std::random_device{}()};
  detail::receipts receipts;      ///< duplicates, the ACK and CREDIT owed
  clk::time_point close_by{};     ///< close() stops writing then
  bool direct_on = false;         ///< its copy of direct_ok (turning it off takes m)
  // shared memory (client_shm.cpp)
  std::optional<detail::websocket::response_type> upgrade; ///< the node's 101 (its Flowbus-Shm header)
  /// The connection's channel, if the node offered one and we opened it. Its reading side is the
  /// I/O thread's; its writing side the I/O thread's, or a sending thread's while direct_ok (under
  /// m). Kept until the next dial (a drain in progress may still hold a record of it).
  std::unique_ptr<detail::shm_link> shm;
  bool shm_on = false;       ///< from REGISTER on, FLOW messages go through `shm`
  bool shm_blocked = false;  ///< `writing` waits for the node to free ring space (its doorbell)
  bool shm_posted = false;   ///< a drain is posted (busy-poll, the rest of a pass)

  // ---- shared with sending threads ----
  /// Frames waiting, in send order: each sending thread claims a record, encodes its frame into it
  /// and commits it, without a lock; the I/O thread reads them in place and releases them — or a
  /// sending thread does, while direct_ok lends it the writing side (under m).
  scheduling::mpsc_byte_ring send_ring;
  std::uint64_t ring_taken = 0; ///< where the last take_ring() ended (the reading side's, as above)
  mutable std::mutex m;
  /// CRITICAL messages, written ahead of the ring — and while the node holds us (CREDIT 0) (under m)
  detail::frame_queue urgent;
  std::atomic<std::size_t> urgent_frames{0};
  std::atomic<std::size_t> queued{0}; ///< frames in the ring, `urgent` and `resend` not yet written
  std::condition_variable room;       ///< senders blocked on a full queue (max_block) wait here
  std::atomic<std::uint32_t> blocked{0};
  /// The I/O thread will look at the queue again without being told (a flush is posted, or a
  /// write is in flight and its completion flushes): senders then skip the post and its wake-up.
  /// A sender commits, then sets it; the I/O thread clears it, then looks at the ring once more.
  std::atomic<bool> io_awake{false};
  /// The connection is open and the I/O thread idle — nothing queued, nothing in flight — so a
  /// sender holding m may write itself (write_now_locked): the socket (if the layer lets it), the
  /// ring's reading side and next_out are then the sender's. Only the I/O thread changes it
  /// (see direct_on), under m; senders read it without m first, as a hint.
  std::atomic<bool> direct_ok{false};
  bool shm_direct = false; ///< direct writes go into the ring: every send may write itself (under m)
  detail::send_pacing pacing;  ///< (under m)
  outbound_batch direct_batch; ///< a sender's direct write: the frames numbered and checksummed
  std::vector<unsigned char> direct_wire; ///< ... and masked
  std::mt19937_64 direct_rng{std::random_device{}()};
  detail::subscription_table subs;  ///< (under m)
  detail::handler_cache handlers;   ///< what subs gave per topic (I/O thread only)
  detail::pending_answers answers;  ///< subscription acks, requests, acknowledged publishes (under m)
  std::optional<std::promise<errc>> welcome;
  std::atomic<bool> registered{false}, closing{false}, started{false};
  /// reconnect off and the connection lost: nothing will be written any more, sends say node_stopped
  std::atomic<bool> gone{false};
  /// the node refused our token (ERROR 76-79): no reconnecting with it (lost() gives up)
  std::atomic<bool> credentials_refused{false};
  std::atomic<std::uint64_t> next_corr{1}, next_token{1};
  std::atomic<std::uint64_t> sent{0}, received{0}, writes{0}, batches{0}, connects{0}, refused{0}, holds{0}, unsent{0},
      acked{0}, redelivered{0}, duplicates{0}, handler_failures{0}, blocked_sends{0}, direct_writes{0},
      shm_connects{0}, doorbells{0};
  std::atomic<bool> held{false}; ///< the node's last CREDIT was 0

  explicit impl(client_options o);

  // client_send.cpp: any thread
  errc enqueue(codec::message& msg);
  errc enqueue_urgent(codec::message& msg);
  errc claim(std::size_t bytes, scheduling::mpsc_byte_ring::claim& c);
  void wake_io();
  bool direct_now(const codec::message& msg);
  bool write_now_locked();
  std::size_t take_ring(outbound_batch& b);
  errc send_data(const scheduling::destination& to, bool broadcast, std::string_view agent_type, std::string_view payload,
                 const scheduling::send_options& opts, std::string_view reply_to = {}, std::uint8_t flags = 0,
                 std::vector<codec::byte>* copy = nullptr);
  /// Both forms of client::publish_acked: `done` answered once the node does (or at once if refused).
  void publish_acked(std::string_view topic, std::string_view payload, scheduling::send_options opts,
                     detail::answer_to done);
  std::future<errc> change(codec::msg_type type, const std::string& pattern, const std::string& group,
                           message_handler h = {});
  static codec::message subscription_frame(codec::msg_type type, std::string_view pattern, std::string_view group,
                                           std::uint64_t token);
  // client_send.cpp: the I/O thread
  void take_direct();
  static codec::message control_frame(codec::msg_type type);
  void send_control(codec::message& c);
  void flush();
  bool gather();
  bool take_data();
  bool go_idle();
  void append_batch();
  static void append_message(outbound_batch& b, std::uint64_t& seq, std::vector<unsigned char>& out,
                             std::mt19937_64& keys);
  void taken_out(std::size_t frames);
  bool room_for_blocked() const;
  void wake_blocked();
  void write_wire(std::uint64_t gen);

  // client_connection.cpp
  void start();
  void dial();
  void upgrade_ws(std::uint64_t gen);
  void on_open(std::uint64_t gen);
  void send_register(std::uint64_t gen, std::string_view nonce);
  void read(std::uint64_t gen);
  void heartbeat(std::uint64_t gen);
  void sweep();
  void lost(const std::string& why);
  void shutdown();
  void fail_pending(errc e);
  bool joined_within(std::chrono::milliseconds d);
  void closing_flush();
  void drain_then_close();
  void stop_io();

  // client_shm.cpp
  void open_shm();
  void start_shm(std::uint64_t gen);
  bool write_direct_shm(codec::bytes_view frame);
  void write_shm(std::uint64_t gen);
  void drain_shm(std::uint64_t gen, bool last = false);
  void post_drain(std::uint64_t gen);
  void on_doorbell();
  void ring_node();
  std::size_t out_bytes() const { return shm_on ? shm->staged_bytes() : wire.size(); }

  // client_receive.cpp
  bool on_frame();
  bool on_message(codec::bytes_view bytes);
  void dispatch(const codec::message& msg);
  void handler_failed(const codec::message& msg, const char* what);
  static errc to_errc(std::uint64_t code);
  void complete(std::uint64_t corr, reply_result r);
  void on_welcome();
  void answer_welcome(errc e);
  void send_ack(std::uint64_t seq);
  void send_credit(std::uint32_t n);
};

} // namespace flowbus::transport
