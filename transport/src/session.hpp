// One WebSocket connection of the node: a gateway agent (private to transport/). Everything of a
// session runs on its Asio strand. The class is the glue of four units:
//   session.cpp          the I/O skeleton: handshake, reading and parsing WebSocket messages in
//                        place, keep-alive;
//   session_close.cpp    closing: close frames both ways, ERROR for defects, teardown;
//   session_ingress.cpp  what the agent sends: REGISTER, decoding, dispatch, routing (forward);
//   session_flow.cpp     CREDIT/ACK/NACK from the agent, holds and pauses (flow_control.hpp);
//   session_egress.cpp   what the agent receives: the mailbox into the lanes (egress_queue.hpp),
//                        gathering and writing, acknowledged delivery (delivery_tracker.hpp), the
//                        slow-consumer watchdog;
//   session_shm.cpp      a same-host agent's shared-memory rings (shm_link.hpp): the offer, the
//                        attach at REGISTER, reading records, writing them, doorbells;
//   listener.cpp         the server: accepting, the connection limit, stopping, its counters.
// docs/threading.md says who may touch what.
#pragma once

#include "buffered_stream.hpp"
#include "delivery_tracker.hpp"
#include "edge_stream.hpp"
#include "connection_record.hpp"
#include "egress_queue.hpp"
#include "flow_control.hpp"
#include "response_grants.hpp"
#include "shm_link.hpp"
#include "ws_reader.hpp"

#include <flowbus/actors/endpoint.hpp>
#include <flowbus/actors/gateway.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/token_bucket.hpp>
#include <flowbus/transport/outbound.hpp>
#include <flowbus/transport/reasons.hpp>
#include <flowbus/transport/server.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace flowbus::transport {

namespace detail {

class session;

/// Lets node threads post to sessions while the I/O context runs, and never after: the node's
/// callbacks (doorbells, subscription answers, attach) can outlive the server.
struct post_gate {
  std::mutex m;
  bool open = true;
};
} // namespace detail

struct server::core {
  actors::node& node;
  server_options opt;
  // declared before the I/O context: sessions it still holds at destruction use them
  std::mutex m; ///< guards sessions
  std::unordered_set<detail::session*> sessions;
  std::atomic<bool> stopping{false};
  /// New connections per source address (opt.limits); the acceptor's strand only.
  std::unordered_map<std::string, scheduling::token_bucket> connection_rates;
  std::atomic<std::uint64_t> next_cid{0};
  /// The edge's latency histograms per lane (server::latency(); written in egress_queue::gather).
  detail::edge_metrics metrics;
  std::atomic<std::uint64_t> accepted{0}, active{0}, refused{0}, frames_in{0}, frames_out{0}, bytes_in{0}, bytes_out{0}, writes{0}, batches{0},
      protocol_errors{0}, slow_consumers{0}, gaps{0}, repeats{0}, paused{0}, holds{0}, acked{0},
      window_waits{0}, shm_attached{0}, shm_doorbells{0}, origins_refused{0}, tls_failed{0}, rate_limited{0}, connections_limited{0}, auth_refused{0}, tokens_expired{0}, not_permitted{0};
  std::shared_ptr<detail::post_gate> gate = std::make_shared<detail::post_gate>();
  std::unique_ptr<detail::net::ssl::context> tls; ///< opt.tls made into a context (null: plain)
  detail::net::io_context ioc;
  detail::tcp::acceptor acceptor;
  std::vector<std::thread> threads;

  core(actors::node& n, server_options o);
  void accept();
  /// For a new connection from `peer`: whether it is refused for the connection limit or its
  /// address's rate, or held (`delay`).
  std::optional<reason> admit_connection(const detail::tcp::socket& s, std::chrono::steady_clock::duration& delay);
  scheduling::lane_options lane_options() const;
};

namespace detail {

class session : public std::enable_shared_from_this<session> {
public:
  /// `refuse`: the connection is refused with this ERROR once its WebSocket handshake is done.
  session(tcp::socket&& s, server::core& c, std::optional<reason> refuse);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Starts the handshake, after `delay` (a connection held for its address's rate).
  void run(std::chrono::steady_clock::duration delay = {});
  /// Graceful: write what is queued, GOODBYE, close. From any thread.
  void stop();

private:
  enum class state : std::uint8_t { handshake, awaiting_register, registering, open, closing, closed };
  void set_state(state s) noexcept {
    state_ = s;
    connection_record::set(rec_.state, s);
  }

public:
  /// Read by the monitoring (server::connections()) while the session is in core::sessions.
  const connection_record& record() const noexcept { return rec_; }
  static const char* state_name(std::uint8_t s) noexcept;

private:

  /// Binds a member continuation to this session's lifetime and strand.
  template <class F> auto bind(F f) {
    return net::bind_executor(ws_.get_executor(), [self = shared_from_this(), f](auto&&... args) {
      f(*self, std::forward<decltype(args)>(args)...);
    });
  }
  edge_stream& edge() { return ws_.next_layer().next_layer(); }
  tcp::socket& socket() { return edge().next_layer().socket(); }

  // session.cpp: the I/O skeleton; session_close.cpp: closing
  void begin();
  void set_response_headers(std::string shm_name = {});
  void read_request();
  void on_tls_handshake(beast::error_code ec);
  void on_request(beast::error_code ec);
  void refuse_origin(const std::string& origin);
  /// With auth: false if REGISTER `m` (as `id`, `type`) is refused (the connection failing).
  bool admit(const codec::message& m, const std::string& id, const std::string& type);
  void arm_expiry(std::int64_t expires_s);
  /// With permissions: whether the agent may publish to `topic` (decided once per topic).
  bool may_publish(std::string_view topic);
  /// With perms_: false (and refused) if `m` is a broadcast, or a message by id, they do not allow.
  bool permitted_by_id(const codec::message& m);
  /// A frame taken for the agent: a REQUEST grants it its REPLYs (allow_responses).
  void note_request(const scheduling::buffer_ref& frame);
  /// A publish or subscription the permissions refuse: NACK (with a message id) or ERROR (with
  /// the request's correlation id, or alone), naming the permission; the connection stays.
  void refuse_permission(const codec::message& m, const char* what, std::string_view topic);
  /// A message or subscription refused, the connection staying: NACK `e` (with a message id), or
  /// ERROR `e` with `why` (with a REQUEST's correlation id, or alone).
  void refuse(const codec::message& m, actors::errc e, const std::string& why);
  bool over_rate(const codec::message& m, bool& go_on);
  void on_accept(beast::error_code ec);
  void keep_handshake_leftover();
  void ensure_room(std::size_t n);
  void read();
  void on_bytes(beast::error_code ec, std::size_t n);
  void parse();
  void parse_pass();
  void report_in();
  void yield();
  void on_peer_close(std::uint16_t code);
  void fail_websocket(std::uint16_t code, const char* why);
  void send_control(std::vector<unsigned char> frame, bool last, bool end_sending = false);
  void send_close();
  void arm_idle();
  void fail_codec(codec::decode_status st);
  void fail(reason r, const std::string& why, websocket::close_code cc = websocket::close_code::policy_error);
  void fail_code(std::uint64_t code, const std::string& why, websocket::close_code cc);
  void begin_close(websocket::close_code cc);
  void teardown(const std::string& why);

  // session_ingress.cpp: what the agent sends; session_flow.cpp: flow control
  bool on_message();
  void read_while_closing();
  bool handle(codec::message& m);
  void received(const codec::message& m);
  bool handle_one(codec::message& m);
  bool forward(const codec::message& m);
  bool on_flow_control(const codec::message& m);
  bool read_while_held() const;
  void update_stalled();
  void start_hold();
  void recheck_hold();
  void send_credit(std::uint64_t n);
  void pause();
  void maybe_heartbeat();
  void start_register(const codec::message& m);
  void on_attached(actors::expected<std::unique_ptr<actors::gateway>, actors::errc> r);
  void on_done(std::uint64_t token, actors::errc e);
  void on_down(actors::errc e);

  // session_egress.cpp: what the agent receives
  template <class Fill> void queue_control(codec::msg_type type, Fill&& fill) {
    codec::message m;
    m.type = type;
    m.prio = codec::priority::critical;
    fill(m);
    push_control(m);
  }
  void push_control(codec::message& m);
  void queue_error(std::uint64_t code, std::string_view why, std::optional<std::uint64_t> correlation = std::nullopt);
  void answer(std::uint64_t id, actors::errc e);
  void flush();
  bool gather(bool delivering);
  void admit_from_mailbox();
  void update_throttle();
  void on_agent_ack(std::uint64_t seq);
  void on_agent_nack(std::uint64_t seq);
  void arm_retries();
  void arm_breaker(const actors::agent_breaker::arm_after& after);
  void arm_watchdog(std::chrono::steady_clock::duration after);
  void cut_starved();

  // session_shm.cpp: a same-host agent's rings
  void offer_shm();
  void attach_shm();
  void shm_drain();
  bool shm_drained_for_close();
  void shm_write();
  void post_drain();
  bool shm_read_all();
  void on_doorbell();
  void ring_agent();
  /// Reading again after a pause or hold: parse() if no read is in flight, else the rings.
  void resume();
  std::size_t out_bytes() const { return shm_on_ ? shm_->staged_bytes() : wire_.size(); }

  /// The HTTP upgrade request, read here (not by Beast's accept) so that whatever follows it in
  /// the same read stays ours; freed once the handshake is done.
  struct upgrade {
    beast::flat_buffer buf;
    beast::http::request<beast::http::empty_body> req;
  };

  /// A pass of parse() handles at most pass_budget FLOW messages (one BATCH), then lets the I/O
  /// thread run the other connections — the recipients' writes, which drain their mailboxes and
  /// raise their water marks before a fast publisher overruns them — and goes on (reading_
  /// meanwhile: nobody else resumes it). A larger budget overruns lanes near their mark: with 256
  /// (8 BATCHes, as Beast's inline reads allowed before) a lossless topic's lanes of 512 shed
  /// (lanes.test.cpp, the starved-subscriber case); with 32 a batching publisher costs one post per
  /// BATCH, and its 1->1 rate was not lower for it (docs/benchmarks.md).
  static constexpr std::uint32_t pass_budget = 32;

  websocket::stream<buffered_stream<edge_stream>> ws_;
  server::core& core_;
  std::optional<reason> refuse_;
  net::steady_timer timer_; ///< the handshake and REGISTER deadline, then holds and pauses
  net::steady_timer write_timer_;
  net::steady_timer idle_timer_;
  std::unique_ptr<net::steady_timer> expiry_; ///< the token's exp (with auth only)
  std::shared_ptr<const permissions> perms_;  ///< null: anything (no auth, or no role)
  std::unordered_map<std::string, bool> may_publish_; ///< perms_ decided per topic (bounded)
  scheduling::rate_limiter rate_; ///< the agent's data messages (server_options::limits; set at REGISTER)
  /// perms_ restrict unicast and allow responses: the REQUESTs written to the agent, answerable
  std::unique_ptr<response_grants> grants_;
  std::unique_ptr<codec::decoder> grant_dec_; ///< reads those REQUESTs' requester and correlation id
  std::unique_ptr<upgrade> up_ = std::make_unique<upgrade>(); ///< until the handshake is done
  // reading (parse()): WebSocket frames parsed in place; none held while the connection is quiet
  unsigned char first_[256]; ///< a quiet connection's read: the next message (or its first bytes)
  std::unique_ptr<unsigned char[]> rbuf_;
  std::size_t rcap_ = 0, rbeg_ = 0, rend_ = 0;
  std::size_t need_ = 0;     ///< bytes the frame at rbeg_ needs in all (0: unknown yet)
  std::uint32_t pass_ = 0;   ///< messages handled in this pass of parse()
  std::uint32_t unreported_in_ = 0; ///< messages counted, not yet added to core_.frames_in
  std::uint64_t unreported_bytes_ = 0; ///< their bytes, likewise for rec_
  std::uint64_t ingress_ns_ = 0;    ///< this pass's steady clock, stamped on what it routes (0: not read yet)
  std::uint32_t untraced_ = 0;      ///< data messages since the last one traced (server_options::trace_sample)
  std::string trace_;               ///< scratch: the trace of the message being routed
  connection_record rec_;
  ws_reader wsr_;
  codec::bytes_view msg_;    ///< the message being handled (in rbuf_; kept while paused)
  std::string close_reason_; ///< in our close frame
  codec::decoder dec_;
  codec::encoder enc_;
  std::string agent_id_;     ///< (before the units that name it in dead letters)
  std::string cert_id_;      ///< TLS with client certificates: the ids its common name allows
  std::string nonce_;        ///< with agent keys: the CHALLENGE sent, to be signed in REGISTER
  // writing
  outbound_batch batch_;
  std::vector<unsigned char> wire_; ///< what the write in flight carries: WebSocket frames back to back
  egress_queue egress_;
  /// acknowledged delivery: made iff the agent registered with ack_requested (an idle connection
  /// that does not acknowledge holds none of it)
  std::unique_ptr<delivery_tracker> acks_;
  struct ack_timers {
    explicit ack_timers(const net::any_io_executor& ex) : retry(ex), breaker(ex) {}
    net::steady_timer retry, breaker;
  };
  std::unique_ptr<ack_timers> ack_timers_;
  std::vector<scheduling::buffer_ref> taken_; ///< scratch for take()
  std::unique_ptr<actors::gateway> gw_;
  std::function<void(std::uint64_t, actors::errc)> remote_answer_; ///< posts a cluster ACK/NACK to this session
  std::string key_;         ///< scratch: a topic looked up in may_publish_
  state state_ = state::handshake;
  websocket::close_code close_code_ = websocket::close_code::normal;
  flow_control flow_;
  std::weak_ptr<actors::endpoint> held_by_; ///< the recipient whose water mark holds this publisher
  bool writing_ = false, close_after_flush_ = false, registered_in_set_ = false, watchdog_armed_ = false;
  bool reading_ = false;    ///< a read is in flight
  bool busy_ = false;       ///< the last read filled a quarter of the buffer: keep it
  bool heard_ = false;      ///< bytes came since the idle timer last looked
  bool pinged_ = false;     ///< the idle timer sent a ping and waits for anything
  bool close_sent_ = false; ///< our close frame is written (or queued): the peer's answer ends it
  bool discard_ = false;    ///< the WebSocket stream is broken or closed: bytes are not parsed
  bool hold_armed_ = false; ///< timer_ waits for recheck_hold()
  bool throttling_ = false; ///< this connection's lanes told senders to slow down
  bool deliver_ = true;     ///< false once failed: what is still queued goes to the dead letters
  bool goodbye_ = false;    ///< a graceful stop: GOODBYE once the agent's frames are written
  std::uint32_t resume_at_ = 0; ///< of a paused BATCH: the inner messages before this were handled
  std::chrono::steady_clock::time_point write_began_{};
  std::uint64_t next_in_ = 0, next_out_ = 0;
  std::chrono::milliseconds heartbeat_{10000};
  std::chrono::steady_clock::time_point last_beat_{};
  // shared memory (session_shm.cpp)
  std::unique_ptr<shm_link> shm_;         ///< offered in the handshake; kept if the agent attached
  scheduling::shm_endpoint::record shm_rec_{}; ///< the record msg_ shows, until released
  bool shm_on_ = false;      ///< from REGISTER on, FLOW messages go both ways through the rings
  bool shm_in_msg_ = false;  ///< msg_ is shm_rec_ (released once msg_ is handled)
  bool shm_blocked_ = false; ///< writing_ waits for the agent to free ring space (its doorbell)
  bool shm_posted_ = false;  ///< a drain (busy-poll, the rest of a pass) is posted
  std::optional<std::uint16_t> shm_close_; ///< the agent's close frame, waiting for its ring to be read
};

} // namespace detail
} // namespace flowbus::transport
