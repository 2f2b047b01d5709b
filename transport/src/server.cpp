#include <flowbus/transport/server.hpp>

#include "buffered_stream.hpp"
#include "receive_window.hpp"
#include "ws_reader.hpp"

#include <flowbus/codec/clock.hpp>

#include <flowbus/actors/agent_directory.hpp> // max_heartbeat_interval
#include <flowbus/actors/endpoint.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/actors/agent_breaker.hpp>
#include <flowbus/scheduling/fixed_rate.hpp> // steady_ns
#include <flowbus/scheduling/lanes.hpp>
#include <flowbus/scheduling/retry.hpp>
#include <flowbus/scheduling/numa.hpp>
#include <flowbus/transport/outbound.hpp>
#include <flowbus/transport/reasons.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <deque>
#include <map>
#include <random>
#include <unordered_set>

namespace flowbus::transport {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

class session;

/// Lets node threads post to sessions while the I/O context runs, and never after: the node's
/// callbacks (doorbells, subscription answers, attach) can outlive the server.
struct post_gate {
  std::mutex m;
  bool open = true;
};

struct server::core {
  actors::node& node;
  server_options opt;
  // declared before the I/O context: sessions it still holds at destruction use them
  std::mutex m; ///< guards sessions
  std::unordered_set<session*> sessions;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> accepted{0}, active{0}, refused{0}, frames_in{0}, frames_out{0}, writes{0}, batches{0},
      protocol_errors{0}, slow_consumers{0}, gaps{0}, repeats{0}, paused{0}, holds{0}, acked{0},
      window_waits{0};
  std::shared_ptr<post_gate> gate = std::make_shared<post_gate>();
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;

  core(actors::node& n, server_options o)
      : node(n), opt(std::move(o)), ioc(static_cast<int>(opt.io_threads ? opt.io_threads : 1)),
        acceptor(net::make_strand(ioc)) {}
  void accept();
};

namespace {

codec::encoder_options node_encoder() {
  codec::encoder_options o;
  o.pool_strings = false; // what the node sends is literal: frames from other agents are written as they are
  return o;
}

} // namespace

/// One WebSocket connection: a gateway agent of the node. Everything runs on its strand.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& s, server::core& c, bool refuse)
      : ws_(std::move(s)), core_(c), refuse_(refuse), timer_(ws_.get_executor()),
        dec_(decoder_options(c.opt.max_message)), enc_(node_encoder()),
        batch_(c.opt.max_message, c.opt.max_batch) {}

  ~session() {
    if (registered_in_set_) {
      std::lock_guard<std::mutex> g(core_.m);
      core_.sessions.erase(this);
      core_.active.fetch_sub(1, std::memory_order_relaxed);
    }
    // frames taken from the mailbox and never written are accounted for, not dropped
    auto gone = [&](scheduling::buffer_ref&& f) {
      core_.node.dead().add(actors::dead_reason::agent_unavailable, std::move(f), agent_id_);
    };
    if (held_) gone(std::move(held_));
    if (rel_) // waiting for another attempt
      for (auto& r : rel_->retries) gone(std::move(r.second));
    if (unacked_) // written, never acknowledged: the agent may not have them
      for (auto& f : *unacked_) gone(std::move(f.second));
    if (lanes_) lanes_->clear([&](scheduling::buffer_ref&& f, std::size_t) { gone(std::move(f)); });
  }

  static scheduling::lane_options lane_options_for(const server::core& c) {
    scheduling::lane_options o;
    o.weights = c.opt.lane_weights;
    o.capacity = c.opt.mailbox_capacity ? c.opt.mailbox_capacity : c.node.config().mailbox_capacity;
    return o;
  }

  /// Binds a member continuation to this session's lifetime and strand.
  template <class F> auto bind(F f) {
    return net::bind_executor(ws_.get_executor(), [self = shared_from_this(), f](auto&&... args) {
      f(*self, std::forward<decltype(args)>(args)...);
    });
  }

  void run() {
    {
      std::lock_guard<std::mutex> g(core_.m);
      core_.sessions.insert(this);
    }
    registered_in_set_ = true;
    websocket::stream_base::timeout t;
    t.handshake_timeout = core_.opt.handshake_timeout;
    t.idle_timeout = websocket::stream_base::none(); // after the handshake: arm_idle()
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.read_message_max(core_.opt.max_message);
    ws_.binary(true);
    ws_.auto_fragment(false);
    ws_.next_layer().capacity(0); // the handshake reads straight; then parse() has its own buffer
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "flowbus"); }));
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
    if (core_.opt.notsent_lowat) {
      const int lowat = static_cast<int>(core_.opt.notsent_lowat);
      ::setsockopt(beast::get_lowest_layer(ws_).socket().native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat,
                   sizeof lowat);
    }
    // REGISTER must come within the handshake timeout too
    timer_.expires_after(core_.opt.handshake_timeout);
    timer_.async_wait(bind([](session& s, beast::error_code ec) {
      if (!ec && s.state_ < state::open) s.fail(reason::expected_register, "no REGISTER within the handshake timeout");
    }));
    beast::http::async_read(ws_.next_layer(), up_->buf, up_->req,
                            bind([](session& s, beast::error_code ec, std::size_t) { s.on_request(ec); }));
  }

  /// Graceful: write what is queued, GOODBYE, close. From any thread.
  void stop() {
    net::dispatch(ws_.get_executor(), [self = shared_from_this()] {
      if (self->state_ >= state::closing) return;
      self->goodbye_ = true; // after what is queued for the agent
      self->begin_close(websocket::close_code::going_away);
    });
  }

private:
  enum class state : std::uint8_t { handshake, awaiting_register, registering, open, closing, closed };

  static codec::decoder_options decoder_options(std::uint32_t max) {
    codec::decoder_options o;
    o.max_frame_size = max;
    return o;
  }

  /// The HTTP upgrade request, read here (not by Beast's accept) so that whatever follows it in
  /// the same read stays ours; freed once the handshake is done.
  struct upgrade {
    beast::flat_buffer buf;
    beast::http::request<beast::http::empty_body> req;
  };

  void on_request(beast::error_code ec) {
    if (ec) return teardown("handshake: " + ec.message());
    ws_.async_accept(up_->req, bind([](session& s, beast::error_code e) { s.on_accept(e); }));
  }

  void on_accept(beast::error_code ec) {
    if (ec) return teardown("handshake: " + ec.message());
    state_ = state::awaiting_register;
    // From here the session reads the socket itself (ws_reader.hpp) and keeps the connection
    // alive itself (arm_idle): Beast's timers and read buffers are done with.
    ws_.set_option(websocket::stream_base::timeout{websocket::stream_base::none(), websocket::stream_base::none(), false});
    socket().non_blocking(true, ec);
    keep_handshake_leftover();
    arm_idle();
    if (refuse_) {
      core_.refused.fetch_add(1, std::memory_order_relaxed);
      return fail(reason::too_many_connections, "the node's connection limit is reached",
                  websocket::close_code::try_again_later);
    }
    parse();
  }

  tcp::socket& socket() { return beast::get_lowest_layer(ws_).socket(); }

  /// Bytes that came behind the upgrade request (a client that did not wait for the 101, or a
  /// read that took more): the start of the WebSocket stream. (The layer under Beast holds none:
  /// its read-ahead is off from run() on.)
  void keep_handshake_leftover() {
    if (const std::size_t n = up_->buf.size()) {
      ensure_room(n);
      rend_ += net::buffer_copy(net::buffer(rbuf_.get() + rend_, n), up_->buf.data());
    }
    up_.reset();
  }

  /// Makes room for `n` more bytes behind what is buffered (moving a partial message to the front,
  /// growing the buffer up to the largest whole WebSocket frame allowed).
  void ensure_room(std::size_t n) {
    const std::size_t have = rend_ - rbeg_;
    if (rbuf_ && rcap_ - rend_ >= n) return;
    if (rbuf_ && rcap_ - have >= n) {
      std::memmove(rbuf_.get(), rbuf_.get() + rbeg_, have);
    } else {
      const std::size_t cap = std::max(detail::read_ahead_bytes, have + n);
      std::unique_ptr<unsigned char[]> bigger(new unsigned char[cap]); // not value-initialised
      if (have) std::memcpy(bigger.get(), rbuf_.get() + rbeg_, have);
      rbuf_ = std::move(bigger);
      rcap_ = cap;
    }
    rbeg_ = 0;
    rend_ = have;
  }

  /// Reads more: straight into the buffer while the peer keeps sending (a speculative recv, no
  /// poll). A quiet connection holds no buffer (100 000 idle agents must stay small): it reads the
  /// next message's first bytes into a small array of its own, then makes the buffer, and takes
  /// the rest the socket holds without blocking. (Waiting for readability instead, `async_wait`,
  /// cost an epoll_ctl per message.)
  void read() {
    reading_ = true;
    if (!rbuf_) {
      socket().async_read_some(net::buffer(first_), bind([](session& s, beast::error_code ec, std::size_t n) {
        if (ec) return s.on_bytes(ec, 0);
        s.ensure_room(std::max(s.need_, sizeof first_));
        std::memcpy(s.rbuf_.get() + s.rend_, s.first_, n);
        s.rend_ += n;
        if (n == sizeof first_) { // more is likely there
          const std::size_t more = s.socket().read_some(net::buffer(s.rbuf_.get() + s.rend_, s.rcap_ - s.rend_), ec);
          if (ec == net::error::would_block || ec == net::error::eof) ec = {}; // (the end: the next read sees it)
          if (ec) return s.on_bytes(ec, 0);
          n = more;
        } else {
          n = 0;
        }
        s.on_bytes(ec, n);
      }));
      return;
    }
    ensure_room(need_ > rend_ - rbeg_ ? need_ - (rend_ - rbeg_) : 1);
    socket().async_read_some(net::buffer(rbuf_.get() + rend_, rcap_ - rend_),
                             bind([](session& s, beast::error_code ec, std::size_t n) { s.on_bytes(ec, n); }));
  }

  void on_bytes(beast::error_code ec, std::size_t n) {
    reading_ = false;
    if (state_ == state::closed) return;
    if (ec) {
      if (ec == net::error::eof)
        return teardown(close_sent_ ? "closed" : "the peer closed the connection without a close frame");
      return teardown("read: " + ec.message());
    }
    heard_ = true;
    rend_ += n;
    busy_ = n >= rcap_ / 4; // keep the buffer while the peer sends this much (see parse())
    parse();
  }

  /// Handles every whole WebSocket message buffered, in one pass — no completion or post per
  /// message — then reads more, unless a message must wait (registering, paused, held) or the
  /// connection is done. The messages' bytes are parsed and unmasked in place (ws_reader.hpp).
  void parse() {
    while (state_ != state::closed) {
      if (discard_) { // a broken WebSocket stream: nothing more is parsed, the close follows
        rbeg_ = rend_;
        break;
      }
      const detail::ws_reader::result r = wsr_.next(rbuf_.get() + rbeg_, rend_ - rbeg_);
      if (r.what == detail::ws_reader::kind::need_more) {
        need_ = r.need;
        break;
      }
      rbeg_ += r.used;
      using k = detail::ws_reader::kind;
      switch (r.what) {
        case k::fragment:
        case k::pong:
        case k::need_more: continue;
        case k::ping:
          if (!close_sent_) send_control(detail::control_frame(detail::ws_opcode::pong, r.data, r.size), false);
          continue;
        case k::close: return on_peer_close(r.code);
        case k::refused: return fail_websocket(r.code, r.why);
        case k::text:
          if (state_ >= state::closing) continue;
          return fail(reason::text_message, "FLOW frames travel in binary messages only");
        case k::message:
          msg_ = codec::bytes_view(r.data, r.size);
          if (!on_message()) return; // it resumes parse() when it may go on
          if (pass_ >= pass_budget) return yield();
          continue;
      }
    }
    if (state_ == state::closed) return;
    if (rbeg_ == rend_) {
      rbeg_ = rend_ = 0;
      if (!busy_) { // quiet: an idle connection holds no read buffer
        rbuf_.reset();
        rcap_ = 0;
      }
    }
    if (!reading_) read();
  }

  /// A pass of parse() handles at most pass_budget FLOW messages (one BATCH), then lets the I/O
  /// thread run the other connections — the recipients' writes, which drain their mailboxes and
  /// raise their water marks before a fast publisher overruns them — and goes on (reading_
  /// meanwhile: nobody else resumes it). A larger budget overruns lanes near their mark: with 256
  /// (8 BATCHes, as Beast's inline reads allowed before) a lossless topic's lanes of 512 shed
  /// (lanes.test.cpp, the starved-subscriber case); with 32 a batching publisher costs one post per
  /// BATCH, and its 1->1 rate was not lower for it (docs/benchmarks.md).
  static constexpr std::uint32_t pass_budget = 32;
  void yield() {
    pass_ = 0;
    reading_ = true;
    net::post(ws_.get_executor(), bind([](session& s) {
      s.reading_ = false;
      s.parse();
    }));
  }

  /// The WebSocket message in msg_ — again after a pause, skipping what was handled. True: go on
  /// with the next message; false: parse() is resumed later (or the connection is done).
  bool on_message() {
    if (state_ == state::closing) {
      if (deliver_) read_while_closing();
      return true;
    }
    if (state_ > state::closing) return false;
    codec::message m;
    const codec::decode_status st = dec_.decode(msg_, m);
    if (!st) {
      core_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
      fail_codec(st);
      return false;
    }
    if (state_ == state::open) maybe_heartbeat(); // whatever an agent sends shows it alive
    const bool more = handle(m);
    if (paused_) return pause(), false;
    msg_ = {};
    if (!more || state_ != state::open) return false;
    if (hold_) {
      hold_ = false;
      if (!holding_) start_hold();
    }
    if (holding_) {
      if (!hold_armed_) recheck_hold(); // (a pause used the timer meanwhile)
      update_stalled();
      if (!read_while_held()) return false; // not read until the recipient is below its low water mark
    }
    return true;
  }

  /// Draining: what the agent sends now is not routed (it has left), but its CREDIT and ACK are
  /// what lets the node write the rest of its frames.
  void read_while_closing() {
    codec::message m;
    if (dec_.decode(msg_, m)) {
      if (m.type == codec::msg_type::batch) {
        codec::batch_reader r(dec_, m);
        codec::message inner;
        while (!r.done() && r.next(inner)) on_flow_control(inner);
      } else {
        on_flow_control(m);
      }
    }
    msg_ = {};
  }

  /// The peer closes. If we closed first this is its answer; else answer with its code (RFC 6455
  /// §5.5.1). Either way the connection is torn down once our close frame is written.
  void on_peer_close(std::uint16_t code) {
    if (close_sent_) return teardown("closed");
    if (state_ < state::closing) {
      state_ = state::closing;
      if (gw_) gw_->leave();
    }
    close_sent_ = true;
    discard_ = true;
    send_control(detail::close_frame_with(code == 1005 ? 1000 : code), true);
  }

  /// A WebSocket-level violation (ws_reader refused the stream): nothing after it can be parsed.
  /// A message above the maximum is the node's own refusal (ERROR 73, close 1009); the others
  /// are the WebSocket layer's: the close frame says which, with the reason in words.
  void fail_websocket(std::uint16_t code, const char* why) {
    discard_ = true;
    if (code == static_cast<std::uint16_t>(detail::ws_close::too_big))
      return fail(reason::message_too_large, why, websocket::close_code::too_big);
    core_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("flowbus: closing {} (WebSocket {}): {}", agent_id_.empty() ? std::string("connection") : agent_id_,
                 code, why);
    deliver_ = false;
    close_reason_ = why;
    if (state_ < state::closing) return begin_close(static_cast<websocket::close_code>(code));
    close_code_ = static_cast<websocket::close_code>(code); // draining already: closes with this code instead
    flush();
  }

  /// Writes a WebSocket control frame (pong, close) behind what is being written; `last`: tear the
  /// connection down once it is written; `end_sending`: shut our sending side down then.
  void send_control(std::vector<unsigned char> frame, bool last, bool end_sending = false) {
    auto f = std::make_shared<std::vector<unsigned char>>(std::move(frame));
    ws_.next_layer().write_frames(net::buffer(*f), bind([f, last, end_sending](session& s, beast::error_code ec,
                                                                               std::size_t) {
      if (ec) return s.teardown("write: " + ec.message());
      if (last) return s.teardown("closed");
      if (end_sending) s.socket().shutdown(tcp::socket::shutdown_send, ec);
    }));
  }

  /// Our close frame, once: then the peer's close frame (or the end of the stream) is awaited,
  /// reading on — CREDIT and ACK still count, other messages are not routed — for at most the
  /// handshake timeout.
  void send_close() {
    if (close_sent_) return;
    close_sent_ = true;
    auto frame = detail::close_frame_with(static_cast<std::uint16_t>(close_code_));
    const std::size_t room = 125 - 2; // a control frame's body: the code, then the reason in UTF-8
    const std::string_view why = std::string_view(close_reason_).substr(0, room); // (not a temporary)
    if (!why.empty() && detail::valid_utf8(reinterpret_cast<const unsigned char*>(why.data()), why.size())) {
      frame[1] = static_cast<unsigned char>(2 + why.size());
      frame.insert(frame.end(), why.begin(), why.end());
    }
    // a broken stream cannot be parsed for the peer's answer: our side of the TCP connection ends
    // after the close frame (the peer sees it, then the end), and what comes is read until it ends
    send_control(std::move(frame), false, discard_);
    timer_.expires_after(core_.opt.handshake_timeout);
    timer_.async_wait(bind([](session& s, beast::error_code ec) {
      if (!ec) s.teardown("no close frame from the peer in time");
    }));
    if (!reading_) parse();
  }

  /// Keep-alive: a connection that sent nothing for half the idle timeout gets a ping; one that
  /// then still sends nothing (not even the pong) is closed at the idle timeout. The time the
  /// node itself does not read (registering, paused, held) does not count.
  void arm_idle() {
    idle_timer_.expires_after(core_.opt.idle_timeout / 2);
    idle_timer_.async_wait(bind([](session& s, beast::error_code ec) {
      if (ec || s.state_ == state::closed) return;
      if (s.heard_ || !s.reading_) {
        s.heard_ = s.pinged_ = false;
        return s.arm_idle();
      }
      if (s.pinged_) return s.teardown("silent for the idle timeout (a ping unanswered)");
      s.pinged_ = true;
      s.send_control(detail::control_frame(detail::ws_opcode::ping, nullptr, 0), false);
      s.arm_idle();
    }));
  }

  /// CREDIT, ACK or NACK from the agent; false for any other type.
  bool on_flow_control(const codec::message& m) {
    using t = codec::msg_type;
    switch (m.type) {
      case t::ack:
        if (unacked_) on_agent_ack(m.message_id());
        return true;
      case t::nack:
        if (unacked_) on_agent_nack(m.message_id());
        return true;
      case t::credit: // the agent's receive window: it handled this many more data messages
        if (window_.enabled()) {
          window_.grant(m.num(codec::field::credit));
          flush();
        }
        return true;
      default: return false;
    }
  }

  /// A held publisher is read on only to break a cycle: the node waits for this agent's own
  /// CREDIT or ACK (behind its data in TCP), and the recipient holding it is in the same state
  /// (or gone). Two agents publishing to each other would otherwise wait for each other for ever.
  bool read_while_held() const {
    if (!waits_for_agent()) return false;
    const auto ep = held_by_.lock();
    return !ep || !ep->open() || ep->stalled();
  }
  void update_stalled() {
    const bool on = holding_ && waits_for_agent();
    if (on == stalled_ || !gw_) return;
    stalled_ = on;
    gw_->stalled(on);
  }

  /// Frames wait for the agent: its receive window is used up, or its acknowledgements are
  /// behind — until it says so (CREDIT, ACK), which comes by reading.
  bool waits_for_agent() const {
    const bool backlog = held_ || (lanes_ && !lanes_->empty());
    return backlog && (window_.used_up() || (unacked_ && unacked_->size() >= ack_window()));
  }
  std::size_t ack_window() const { return lane_options_for(core_).capacity; }

  /// A message of this publisher met a recipient above its high water mark: CREDIT 0 (hold) and
  /// no reading until that recipient is below its low water mark (or gone), looked at every
  /// 100 µs doubling to 5 ms; then CREDIT 1 (go on) and reading again. A publisher that ignores
  /// the CREDIT is held back by TCP all the same (a compliant one writes only control frames
  /// and CRITICAL messages until CREDIT 1). See read_while_held() for the one exception.
  void start_hold() {
    holding_ = true;
    core_.holds.fetch_add(1, std::memory_order_relaxed);
    send_credit(0);
    hold_for_ = std::chrono::microseconds(100);
  }

  void recheck_hold() {
    hold_armed_ = true;
    timer_.expires_after(hold_for_);
    hold_for_ = std::min<std::chrono::microseconds>(hold_for_ * 2, std::chrono::microseconds(5000));
    timer_.async_wait(bind([](session& s, beast::error_code ec) {
      s.hold_armed_ = false;
      if (ec || s.state_ != state::open || !s.holding_) return;
      // we do not read it while we hold it, so we cannot see its HEARTBEATs: the node's own hold
      // must not take it down for liveness (issue 17.4). Bounded: the hold ends when its
      // recipient drains or is cut (write_timeout), and then we read it again.
      s.maybe_heartbeat();
      const bool idle = !s.reading_ && !s.paused_;
      s.update_stalled();
      // catch_up() first: a recipient with its own water marks (an actor agent, a link) clears
      // its mark as it drains, but a sender's push that read the backlog just before that drain
      // can set it again after it — with this publisher held, nothing would clear it then
      if (auto ep = s.held_by_.lock(); ep && ep->open() && (ep->catch_up(), ep->throttled())) {
        s.recheck_hold();
        if (idle && s.read_while_held()) s.parse();
        return;
      }
      s.holding_ = false;
      s.update_stalled();
      s.held_by_.reset();
      s.send_credit(1);
      if (idle) s.parse();
    }));
  }

  void send_credit(std::uint64_t n) {
    queue_control(codec::msg_type::credit, [&](codec::message& c) { c.set(codec::field::credit, n); });
    flush();
  }

  /// The node had no frame buffer for a message: stop reading (TCP holds back the peer) and try
  /// the same message again shortly — backoff from 100 µs to 5 ms while the pool stays empty.
  void pause() {
    core_.paused.fetch_add(1, std::memory_order_relaxed);
    pause_for_ = std::min<std::chrono::microseconds>(pause_for_ * 2, std::chrono::microseconds(5000));
    timer_.expires_after(pause_for_);
    timer_.async_wait(bind([](session& s, beast::error_code ec) {
      if (ec || s.state_ != state::open) return;
      s.maybe_heartbeat(); // not read while paused: alive as far as the node can tell (see recheck_hold)
      s.paused_ = false;
      const bool go_on = s.on_message();
      if (!s.paused_) s.pause_for_ = std::chrono::microseconds(50);
      if (go_on) s.parse();
    }));
  }

  /// One decoded frame. Returns false if reading must pause (registration pending) or stop.
  bool handle(codec::message& m) {
    if (state_ == state::awaiting_register) {
      received(m);
      if (m.type != codec::msg_type::register_agent)
        return fail(reason::expected_register, "the first frame must be REGISTER"), false;
      start_register(m);
      return false;
    }
    if (m.type == codec::msg_type::batch) {
      codec::batch_reader r(dec_, m);
      codec::message inner;
      for (std::uint32_t i = 0; !r.done(); ++i) {
        const codec::decode_status st = r.next(inner);
        if (!st) return fail_codec(st), false;
        if (i < resume_at_) continue; // handled before a pause
        if (!handle_one(inner)) {
          if (paused_) resume_at_ = i;
          return false;
        }
      }
      resume_at_ = 0;
      return true;
    }
    return handle_one(m);
  }

  /// Counts a message from the peer, and gaps and repeats in its numbering (protocol.md §7): one
  /// number per message, a BATCH's inner messages each taking theirs.
  void received(const codec::message& m) {
    core_.frames_in.fetch_add(1, std::memory_order_relaxed);
    ++pass_;
    if (m.sequence != next_in_) {
      (m.sequence < next_in_ ? core_.repeats : core_.gaps).fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("flowbus: {} sequence {} where {} was expected", agent_id_, m.sequence, next_in_);
    }
    next_in_ = m.sequence + 1;
  }

  bool handle_one(codec::message& m) {
    received(m);
    using t = codec::msg_type;
    switch (m.type) {
      case t::task_assignment:
      case t::task_result:
      case t::coordination:
      case t::publish:
      case t::request:
      case t::reply: return forward(m);
      case t::heartbeat: gw_->heartbeat(); return true;
      case t::subscribe:
        gw_->subscribe(m.topic(), m.str(codec::field::queue_group), m.message_id());
        return true;
      case t::unsubscribe:
        gw_->unsubscribe(m.topic(), m.str(codec::field::queue_group), m.message_id());
        return true;
      case t::goodbye:
        gw_->leave();
        begin_close(websocket::close_code::normal);
        return false;
      case t::ack:
      case t::nack:
      case t::credit: return on_flow_control(m);
      case t::error:
        spdlog::info("flowbus: {} sent ERROR {} ({})", agent_id_, m.num(codec::field::error_code),
                     describe_code(m.num(codec::field::error_code)));
        begin_close(websocket::close_code::normal);
        return false;
      case t::register_agent:
        fail(reason::already_registered, "REGISTER on a registered connection");
        return false;
      case t::batch:
      case t::welcome: break;
    }
    fail(reason::unexpected_type, "a frame type only the node sends");
    return false;
  }

  /// Routes one message. False: the node has no frame buffer for it now (paused_ is set, and the
  /// message is taken back: it is counted again when retried).
  bool forward(const codec::message& m) {
    actors::send_options o;
    o.timestamp_ns = m.timestamp_ns; // the agent's send time travels on (protocol.md §2)
    o.type = m.type;
    o.prio = static_cast<codec::priority>(m.prio);
    o.correlation_id = m.correlation_id();
    o.message_id = m.message_id();
    o.deadline_ns = m.deadline_ns();
    o.max_attempts = actors::max_attempts_of(m);
    const bool acked = (m.flags & codec::flag::ack_requested) && m.has(codec::field::message_id);
    if (acked) o.confirm = &remote_answer_; // recipients on other nodes: the ACK waits for their nodes (docs/cluster.md)
    const std::string_view payload = m.payload.as_string();
    actors::send_result r;
    if (m.flags & codec::flag::broadcast) {
      r = gw_->forward_broadcast(payload, m.str(codec::field::agent_type), o);
    } else if (m.has(codec::field::topic)) {
      r = gw_->forward(actors::destination::topic(m.topic()), payload, o);
    } else if (m.has(codec::field::target)) {
      r = gw_->forward(actors::destination::agent(m.str(codec::field::target)), payload, o);
    } else {
      std::string_view cap;
      for (const codec::repeated_entry& e : m.repeated)
        if (e.id == codec::field::capability) {
          cap = e.key;
          break;
        }
      r = gw_->forward(actors::destination::capability(cap), payload, o);
    }
    if (r.code == actors::errc::no_buffer) {
      paused_ = true;
      core_.frames_in.fetch_sub(1, std::memory_order_relaxed);
      next_in_ = m.sequence;
      return false;
    }
    // CRITICAL traffic is never held: emergency mode protects it
    if (r.throttled && m.prio != codec::priority::critical) {
      hold_ = true;
      held_by_ = r.throttled_by;
    }
    if (acked) {
      // acknowledged delivery: ACK once every current recipient has it queued — on another node of
      // the cluster, once that node took it (then the link answers later, through remote_answer_);
      // otherwise NACK with the reason (refused copies are dead letters; no recipient at all:
      // no_responders)
      if (r.confirm_pending && r.code == actors::errc::ok) return true;
      answer(m.message_id(), r.code != actors::errc::ok ? r.code
                             : r.delivered == 0     ? actors::errc::no_responders
                                                    : actors::errc::ok);
      flush();
      return true;
    }
    const bool unanswerable = m.type == codec::msg_type::request && r.delivered == 0;
    if (unanswerable || (r.delivered == 0 && r.code != actors::errc::ok)) {
      // the sender learns at once: a request fails fast instead of timing out
      const actors::errc why = r.code != actors::errc::ok ? r.code : actors::errc::no_responders;
      if (m.type == codec::msg_type::request)
        queue_control(codec::msg_type::error, [&](codec::message& e) {
          e.set(codec::field::error_code, code_of(why));
          e.set(codec::field::correlation_id, m.correlation_id());
        });
      else if (m.has(codec::field::message_id))
        answer(m.message_id(), why);
      flush();
    }
    return true;
  }

  void maybe_heartbeat() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_beat_ < heartbeat_ / 2) return;
    last_beat_ = now;
    gw_->heartbeat();
  }

  void start_register(const codec::message& m) {
    state_ = state::registering;
    actors::agent_spec spec(std::string(m.str(codec::field::source)), std::string(m.str(codec::field::agent_type)));
    for (const codec::repeated_entry& e : m.repeated) {
      if (e.id == codec::field::capability) spec.capabilities.emplace_back(e.key);
      if (e.id == codec::field::subscription) spec.subscriptions.emplace_back(e.key);
      if (e.id == codec::field::header) spec.metadata.emplace_back(std::string(e.key), std::string(e.value));
    }
    // the directory refuses an interval above max_heartbeat_interval (typed: invalid_agent); our
    // own clock never holds more than that, so nothing overflows meanwhile (2^42 ms did)
    const std::uint64_t hb = m.num(codec::field::heartbeat_ms);
    constexpr auto most = static_cast<std::uint64_t>(actors::max_heartbeat_interval.count());
    spec.heartbeat_interval = hb ? std::chrono::milliseconds(std::min<std::uint64_t>(hb, most + 1))
                                 : core_.opt.heartbeat_default;
    heartbeat_ = std::min(spec.heartbeat_interval, actors::max_heartbeat_interval);
    spec.priority = static_cast<codec::priority>(m.prio);
    spec.mailbox_capacity = core_.opt.mailbox_capacity;
    agent_id_ = spec.id;
    // a receive window: at most this many data messages written and not yet granted back by CREDIT
    window_.open(m.num(codec::field::credit));
    if (m.flags & codec::flag::ack_requested) // this agent acknowledges what it receives
      unacked_ = std::make_unique<std::deque<std::pair<std::uint64_t, scheduling::buffer_ref>>>();
    // The node calls these from its threads, possibly after the server stopped: they hold no
    // executor (its I/O context may be gone), only the session's weak pointer and the gate.
    auto to_session = [weak = weak_from_this(), gate = core_.gate](auto f) {
      std::lock_guard<std::mutex> g(gate->m);
      if (!gate->open) return;
      if (auto s = weak.lock()) {
        auto exec = s->ws_.get_executor();
        net::post(exec, [s = std::move(s), f = std::move(f)]() mutable { f(*s); });
      }
    };
    actors::gateway_events ev;
    ev.wake = [to_session] { to_session([](session& s) { s.flush(); }); };
    ev.done = [to_session](std::uint64_t token, actors::errc e) {
      to_session([token, e](session& s) { s.on_done(token, e); });
    };
    ev.down = [to_session](actors::errc e) { to_session([e](session& s) { s.on_down(e); }); };
    // acknowledged publishing in a cluster: the other nodes' confirmation arrives from a link actor
    remote_answer_ = [to_session](std::uint64_t id, actors::errc e) {
      to_session([id, e](session& s) {
        s.answer(id, e);
        s.flush();
      });
    };
    core_.node.attach(std::move(spec), std::move(ev),
                      [to_session](actors::expected<std::unique_ptr<actors::gateway>, actors::errc> r) {
                        auto shared = std::make_shared<decltype(r)>(std::move(r));
                        to_session([shared](session& s) { s.on_attached(std::move(*shared)); });
                        // not delivered (session gone, server stopped): the gateway leaves as `shared` dies
                      });
  }

  void on_attached(actors::expected<std::unique_ptr<actors::gateway>, actors::errc> r) {
    if (!r) {
      // every ERROR says why in words (protocol.md §9), this one too, ahead of ERROR 66
      queue_control(codec::msg_type::error, [&](codec::message& e) {
        e.set(codec::field::error_code, code_of(r.error()));
        reason_kv_ = codec::repeated_entry{codec::field::header, "reason", actors::to_string(r.error())};
        e.repeated = codec::repeated_fields(&reason_kv_, 1);
      });
      return fail(reason::registration_refused, std::string("REGISTER refused: ") + actors::to_string(r.error()));
    }
    gw_ = std::move(*r);
    if (state_ >= state::closing) return; // closed meanwhile: the gateway leaves with us
    state_ = state::open;
    timer_.cancel();
    last_beat_ = std::chrono::steady_clock::now();
    queue_control(codec::msg_type::welcome, [&](codec::message& w) { w.set(codec::field::target, agent_id_); });
    flush();
    parse(); // what came behind the REGISTER, then the socket
  }

  void on_done(std::uint64_t token, actors::errc e) {
    if (state_ >= state::closing) return;
    answer(token, e);
    flush();
  }

  /// ACK for `id` (ok), else NACK with the reason.
  void answer(std::uint64_t id, actors::errc e) {
    if (e == actors::errc::ok)
      return queue_control(codec::msg_type::ack, [&](codec::message& a) { a.set(codec::field::message_id, id); });
    queue_control(codec::msg_type::nack, [&](codec::message& a) {
      a.set(codec::field::message_id, id);
      a.set(codec::field::error_code, code_of(e));
    });
  }

  void on_down(actors::errc e) {
    if (e == actors::errc::node_stopped) {
      if (state_ < state::closing) stop();
      return;
    }
    if (e == actors::errc::duplicate_agent)
      fail(reason::agent_down, "the node took the agent down: its id was registered on another node at the same "
                               "moment, and that node keeps it");
    else
      fail(reason::agent_down, "the node took the agent down: heartbeats missed");
  }

  template <class Fill> void queue_control(codec::msg_type type, Fill&& fill) {
    codec::message m;
    m.type = type;
    m.prio = codec::priority::critical;
    m.timestamp_ns = codec::wall_clock_ns();
    fill(m);
    std::vector<codec::byte> out(enc_.literal_size(m));
    const codec::encode_result r = enc_.encode(m, out.data(), out.size());
    if (!r) {
      spdlog::error("flowbus: encoding a {} frame failed: {}", static_cast<int>(type), codec::to_string(r.code));
      return;
    }
    out.resize(r.size);
    control_.push_back(std::move(out));
  }

  /// Writes what waits — control frames first, then the agent's frames by lane — unless a write
  /// is in flight (its completion calls flush again): as many WebSocket messages (each one frame
  /// or one BATCH of up to 32) as come to `write_gather_bytes`, framed here and written with one
  /// system call (Beast would make one per message).
  void flush() {
    if (state_ == state::closed || state_ < state::awaiting_register) return;
    const bool delivering = gw_ && deliver_ && (state_ == state::open || state_ == state::closing);
    if (writing_) {
      // keep the mailbox drained into the lanes while the socket is busy: a CRITICAL frame must
      // find room behind a backlog (the lanes shed the least urgent), not a full FIFO ring
      if (delivering) admit_from_mailbox();
      return;
    }
    wire_.clear();
    bool any = false;
    while (wire_.size() < detail::write_gather_bytes && gather(delivering))
      any = true;
    // a consumer that keeps its window (or ack window) used up while messages wait is as slow as
    // one that reads nothing: the same write_timeout cuts it (the watchdog looks at both clocks)
    if (waits_for_agent() && state_ == state::open) {
      if (!starved_since_) {
        starved_since_ = std::chrono::steady_clock::now();
        if (!watchdog_armed_) arm_watchdog(core_.opt.write_timeout);
      }
    } else {
      starved_since_.reset();
    }
    if (!any) {
      const bool drained = !held_ && (!lanes_ || lanes_->empty());
      if (goodbye_ && drained) {
        goodbye_ = false;
        queue_control(codec::msg_type::goodbye, [](codec::message&) {});
        return flush();
      }
      if (wire_.capacity() > detail::write_gather_bytes / 4) wire_ = {}; // quiet now: an idle connection holds none
      // a failed connection writes nothing more of its backlog (the destructor dead-letters it):
      // once its ERROR is out, it closes
      if (close_after_flush_ && (drained || !deliver_)) {
        close_after_flush_ = false;
        send_close();
      }
      return;
    }
    core_.writes.fetch_add(1, std::memory_order_relaxed);
    writing_ = true;
    write_began_ = std::chrono::steady_clock::now();
    if (!watchdog_armed_) arm_watchdog(core_.opt.write_timeout);
    ws_.next_layer().write_frames(net::buffer(wire_), bind([](session& s, beast::error_code ec, std::size_t) {
      s.writing_ = false;
      if (ec) return s.teardown("write: " + ec.message());
      s.flush();
    }));
  }

  /// Appends one WebSocket message to wire_ — control frames first, then frames by lane, as one
  /// frame or one BATCH — numbering its frames; false if nothing waits to go.
  bool gather(bool delivering) {
    batch_.clear();
    std::size_t controls = 0;
    while (controls < control_.size() && batch_.fits(control_[controls].size())) {
      batch_.add(codec::bytes_view(control_[controls].data(), control_[controls].size()));
      ++controls;
    }
    control_.erase(control_.begin(), control_.begin() + static_cast<std::ptrdiff_t>(controls));
    const std::size_t controls_in_batch = batch_.count();
    sent_.clear();
    if (delivering) {
      admit_from_mailbox();
      if (lanes_ && lanes_->earliest_deadline()) expire(codec::wall_clock_ns());
      std::size_t used = 0;
      // acknowledged delivery: at most a lanes' capacity written and not yet acknowledged
      const std::size_t window = unacked_ ? ack_window() : 0;
      for (;;) {
        if (unacked_ && unacked_->size() + sent_.size() >= window) break;
        if (!held_) {
          if (!lanes_) break;
          auto next = next_frame();
          if (!next) break;
          if (!breaker_allows(*next)) continue;
          held_ = std::move(*next);
        }
        if (!batch_.fits(held_.size())) break; // leads the next message
        batch_.add(codec::bytes_view(held_.data(), held_.size()));
        if (codec::is_data(static_cast<codec::msg_type>(held_.data()[codec::offset::type]))) window_.wrote_data();
        if (unacked_) sent_.push_back(std::move(held_)); // kept until the agent acknowledges it
        held_ = {};
        ++used;
      }
      core_.frames_out.fetch_add(used, std::memory_order_relaxed);
      if (used) update_throttle();
    }
    if (batch_.empty()) return false;
    if (batch_.count() > 1) core_.batches.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t first = next_out_;
    const codec::bytes_view out = batch_.finish(next_out_);
    for (std::size_t i = 0; i < sent_.size(); ++i)
      unacked_->emplace_back(first + controls_in_batch + i, std::move(sent_[i]));
    sent_.clear();
    detail::append_frame(wire_, out.data(), out.size());
    return true;
  }

  /// The next frame for the agent by lane; with its receive window used up only CRITICAL, and no
  /// more than one window beyond it (the window bounds what waits unread at the agent, the lanes
  /// keep the rest — where urgent frames can still overtake it).
  std::optional<scheduling::buffer_ref> next_frame() {
    const auto may = window_.may_send();
    if (may == detail::receive_window::lanes::any) return lanes_->next();
    if (may == detail::receive_window::lanes::critical_only)
      if (auto f = lanes_->next_from(0)) return f;
    if (!lanes_->empty()) core_.window_waits.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }

  /// Moves everything in the gateway's mailbox into the priority lanes (so a CRITICAL frame behind
  /// a BACKGROUND backlog is next, not last); what the lanes shed or evict is dead-lettered.
  void admit_from_mailbox() {
    for (;;) {
      taken_.clear();
      const auto r = gw_->take(taken_, 256);
      for (auto& f : taken_) admit(std::move(f));
      if (!r.more) break;
    }
    taken_.clear();
    update_throttle();
  }

  /// Queues one frame in its lane (by priority, EDF by deadline); what the lanes shed or evict is
  /// dead-lettered.
  void admit(scheduling::buffer_ref&& f) {
    const std::size_t lane = f.size() > codec::offset::priority ? f.data()[codec::offset::priority] : 2;
    std::uint64_t deadline = 0;
    codec::message m;
    if (f.size() > codec::offset::flags && (f.data()[codec::offset::flags] & codec::flag::has_deadline) &&
        decode_stored(f, m))
      deadline = m.deadline_ns();
    if (!lanes_) lanes_ = std::make_unique<scheduling::lane_scheduler<scheduling::buffer_ref>>(lane_options_for(core_));
    auto a = lanes_->push(std::move(f), lane, deadline);
    if (a.rejected) core_.node.dead().add(actors::dead_reason::shed, std::move(*a.rejected), agent_id_);
    if (a.evicted) core_.node.dead().add(actors::dead_reason::shed, std::move(*a.evicted), agent_id_);
  }

  /// The agent's handler failed the frame with sequence `seq` (NACK): count it in the agent's
  /// breaker, and queue the message again after a full-jitter backoff — or, after the retry
  /// policy's attempts, dead-letter it as poison.
  void on_agent_nack(std::uint64_t seq) {
    const auto it = std::lower_bound(unacked_->begin(), unacked_->end(), seq,
                                     [](const auto& e, std::uint64_t s) { return e.first < s; });
    if (it == unacked_->end() || it->first != seq) return; // not ours, or already acknowledged
    reliability& r = rel();
    scheduling::buffer_ref frame = it->second;
    r.failed.insert(seq); // its ACK then counts no success
    if (r.breaker) arm_breaker(r.breaker->record(true, scheduling::steady_ns()));
    const std::uint32_t made = ++r.attempts[frame.data()];
    const scheduling::retry_policy& rp = core_.opt.retry;
    if (made >= retry_budget(frame)) {
      r.attempts.erase(frame.data());
      core_.node.dead().add(actors::dead_reason::poison, std::move(frame), agent_id_, made);
      return;
    }
    const auto due = std::chrono::steady_clock::now() + scheduling::full_jitter(made, rp.initial, rp.max, r.rng);
    r.retries.emplace(due, std::move(frame));
    arm_retries();
  }

  /// Deliveries a failing message gets: the sender's max_attempts if it set one, else the server's policy.
  std::uint32_t retry_budget(const scheduling::buffer_ref& f) const {
    codec::message m;
    const std::uint32_t own = decode_stored(f, m) ? actors::max_attempts_of(m) : 0;
    return own ? own : core_.opt.retry.max_attempts;
  }

  /// Decodes a frame the node made (literal strings: no connection's pool needed), for one of its
  /// fields; the views in `m` point into `f`.
  static bool decode_stored(const scheduling::buffer_ref& f, codec::message& m) {
    codec::decoder d;
    return static_cast<bool>(d.decode(codec::bytes_view(f.data(), f.size()), m));
  }

  /// Per-agent reliability of an acknowledging agent: made on its first NACK.
  struct reliability {
    reliability(const server::core& c, net::any_io_executor ex, actors::gateway& gw) : retry_timer(ex), breaker_timer(ex) {
      if (c.opt.breaker_enabled) // shown on the endpoint: senders fail fast while it is open
        breaker.emplace(c.opt.breaker, [&gw](scheduling::breaker_state s) { gw.breaker(s); });
    }
    std::optional<actors::agent_breaker> breaker;
    std::unordered_map<const void*, std::uint32_t> attempts; ///< by buffer: attempts failed so far
    std::unordered_set<std::uint64_t> failed;                ///< sequences NACKed, not yet acknowledged
    std::multimap<std::chrono::steady_clock::time_point, scheduling::buffer_ref> retries;
    net::steady_timer retry_timer, breaker_timer;
    std::minstd_rand rng{std::random_device{}()};
  };
  reliability& rel() {
    if (!rel_) rel_ = std::make_unique<reliability>(core_, ws_.get_executor(), *gw_);
    return *rel_;
  }

  void arm_retries() {
    reliability& r = *rel_;
    if (r.retries.empty()) return;
    r.retry_timer.expires_at(r.retries.begin()->first);
    r.retry_timer.async_wait(bind([](session& s, beast::error_code ec) {
      if (ec || s.state_ != state::open) return;
      reliability& rr = *s.rel_;
      const auto now = std::chrono::steady_clock::now();
      while (!rr.retries.empty() && rr.retries.begin()->first <= now) {
        s.admit(std::move(rr.retries.begin()->second));
        rr.retries.erase(rr.retries.begin());
      }
      s.arm_retries();
      s.flush();
    }));
  }

  /// The breaker has just opened: after open_for it may let trial messages through.
  void arm_breaker(const actors::agent_breaker::arm_after& after) {
    if (!after) return;
    rel_->breaker_timer.expires_after(*after);
    rel_->breaker_timer.async_wait(bind([](session& s, beast::error_code ec) {
      if (!ec && s.state_ == state::open) s.rel_->breaker->on_timer(scheduling::steady_ns());
    }));
  }

  /// While the breaker is not closed, a frame goes out only as a trial; the rest fail fast.
  bool breaker_allows(scheduling::buffer_ref& f) {
    if (!rel_ || !rel_->breaker) return true;
    actors::agent_breaker::arm_after arm;
    if (rel_->breaker->allow(scheduling::steady_ns(), arm)) return true;
    core_.node.dead().add(actors::dead_reason::circuit_open, std::move(f), agent_id_);
    arm_breaker(arm);
    return false;
  }

  /// The agent has handled every frame we sent up to sequence `seq` (cumulative).
  void on_agent_ack(std::uint64_t seq) {
    std::uint64_t n = 0;
    const std::uint64_t now = rel_ ? scheduling::steady_ns() : 0;
    while (!unacked_->empty() && unacked_->front().first <= seq) {
      if (rel_ && !rel_->failed.erase(unacked_->front().first)) { // handled, and not NACKed
        if (rel_->breaker) rel_->breaker->record(false, now); // a success never opens it: no timer
        rel_->attempts.erase(unacked_->front().second.data()); // a retried message got through
      }
      unacked_->pop_front();
      ++n;
    }
    if (!n) return;
    core_.acked.fetch_add(n, std::memory_order_relaxed);
    flush(); // the window may have been full
  }

  /// Tells the node's senders whether this connection's lanes are above their high water mark
  /// (until below the low one): their publishers are then held (see start_hold()).
  void update_throttle() {
    const bool on = lanes_ && lanes_->throttled();
    if (on == throttling_) return;
    throttling_ = on;
    gw_->throttle(on);
  }

  /// Dead-letters (reason expired) the queued frames whose deadline has passed.
  void expire(std::uint64_t now_ns) {
    lanes_->expire(now_ns, [&](scheduling::buffer_ref&& f, std::size_t) {
      core_.node.dead().add(actors::dead_reason::expired, std::move(f), agent_id_);
    });
  }

  /// The slow-consumer watchdog: armed by a write when not already armed, so a busy connection
  /// sets a timer once per write timeout, not once per write (a timerfd_settime call each).
  void arm_watchdog(std::chrono::steady_clock::duration after) {
    watchdog_armed_ = true;
    write_timer_.expires_after(after);
    write_timer_.async_wait(bind([](session& s, beast::error_code ec) {
      s.watchdog_armed_ = false;
      if (ec || s.state_ == state::closed) return;
      const auto now = std::chrono::steady_clock::now();
      const auto limit = s.core_.opt.write_timeout;
      if (s.starved_since_ && s.state_ == state::open && !s.writing_) {
        const auto starved = now - *s.starved_since_;
        if (starved < limit) return s.arm_watchdog(limit - starved);
        return s.cut_starved();
      }
      if (!s.writing_) return;
      const auto blocked = now - s.write_began_;
      if (blocked < limit) return s.arm_watchdog(limit - blocked);
      s.core_.slow_consumers.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("flowbus: {}: slow consumer (a write blocked {} ms): closing", s.agent_id_,
                   s.core_.opt.write_timeout.count());
      // the socket is full: an ERROR frame could not be written either
      s.teardown("slow consumer");
    }));
  }

  /// The agent kept its receive window (or ack window) used up for write_timeout while messages
  /// waited for it — it reads (its HEARTBEATs arrive) but takes nothing. Cut like a consumer that
  /// reads nothing (issue 17.5: it stalled its topic for ever): its backlog is dead-lettered
  /// (agent_unavailable, counted), ERROR slow_consumer, close; its publishers are let go.
  void cut_starved() {
    core_.slow_consumers.fetch_add(1, std::memory_order_relaxed);
    std::size_t n = 0;
    auto gone = [&](scheduling::buffer_ref&& f) {
      core_.node.dead().add(actors::dead_reason::agent_unavailable, std::move(f), agent_id_);
      ++n;
    };
    if (held_) gone(std::move(held_));
    if (lanes_) lanes_->clear([&](scheduling::buffer_ref&& f, std::size_t) { gone(std::move(f)); });
    const std::string why = "no CREDIT or ACK for " + std::to_string(core_.opt.write_timeout.count()) +
                            " ms with messages waiting (" + std::to_string(n) + " dead-lettered)";
    spdlog::warn("flowbus: {}: slow consumer: {}: closing", agent_id_, why);
    fail(reason::slow_consumer, why);
    flush();
  }

  void fail_codec(codec::decode_status st) {
    // the bytes as they came, for inspection: the corruption DLQ (recipient: the sending connection)
    core_.node.dead().add(actors::dead_reason::corruption,
                          scheduling::buffer_ref::copy_of(msg_.data(), msg_.size()),
                          agent_id_.empty() ? std::string("connection") : agent_id_);
    const std::string why = std::string(codec::to_string(st.code)) + " at byte " + std::to_string(st.offset);
    fail_code(static_cast<std::uint64_t>(st.code), why, websocket::close_code::protocol_error);
  }

  void fail(reason r, const std::string& why,
            websocket::close_code cc = websocket::close_code::policy_error) {
    fail_code(code_of(r), why, cc);
  }

  void fail_code(std::uint64_t code, const std::string& why, websocket::close_code cc) {
    if (state_ >= state::closing) return;
    deliver_ = false;
    if (code >= 64) core_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("flowbus: closing {} ({}): {}", agent_id_.empty() ? std::string("connection") : agent_id_,
                 describe_code(code), why);
    close_reason_ = why;
    queue_control(codec::msg_type::error, [&](codec::message& e) {
      e.set(codec::field::error_code, code);
      reason_kv_ = codec::repeated_entry{codec::field::header, "reason", why};
      e.repeated = codec::repeated_fields(&reason_kv_, 1);
    });
    begin_close(cc);
  }

  void begin_close(websocket::close_code cc) {
    if (state_ >= state::closing) return;
    const bool accepted = state_ >= state::awaiting_register;
    state_ = state::closing;
    close_code_ = cc;
    if (gw_) gw_->leave();
    if (!accepted) return teardown("closed before the handshake");
    close_after_flush_ = true;
    if (deliver_ && gw_) // held or paused: read again for the agent's CREDIT and ACK (once out of parse())
      net::post(ws_.get_executor(), bind([](session& ss) {
        if (ss.reading_ || ss.state_ != state::closing || !ss.close_after_flush_) return;
        ss.paused_ = false;
        ss.msg_ = {}; // waited for a frame buffer: not routed, the agent has left
        ss.parse();
      }));
    flush();
  }

  void teardown(const std::string& why) {
    if (state_ == state::closed) return;
    state_ = state::closed;
    spdlog::debug("flowbus: {} gone: {}", agent_id_, why);
    timer_.cancel();
    write_timer_.cancel();
    idle_timer_.cancel();
    if (gw_) gw_->leave();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
    if (registered_in_set_) {
      std::lock_guard<std::mutex> g(core_.m);
      core_.sessions.erase(this);
      registered_in_set_ = false;
      core_.active.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  websocket::stream<detail::buffered_stream<beast::tcp_stream>> ws_;
  server::core& core_;
  bool refuse_;
  net::steady_timer timer_;
  net::steady_timer write_timer_{ws_.get_executor()};
  std::unique_ptr<upgrade> up_ = std::make_unique<upgrade>(); ///< until the handshake is done
  net::steady_timer idle_timer_{ws_.get_executor()};
  // reading (parse()): WebSocket frames parsed in place; none held while the connection is quiet
  unsigned char first_[256]; ///< a quiet connection's read: the next message (or its first bytes)
  std::unique_ptr<unsigned char[]> rbuf_;
  std::size_t rcap_ = 0, rbeg_ = 0, rend_ = 0;
  std::size_t need_ = 0;     ///< bytes the frame at rbeg_ needs in all (0: unknown yet)
  std::uint32_t pass_ = 0;   ///< messages handled in this pass of parse()
  detail::ws_reader wsr_{core_.opt.max_message};
  codec::bytes_view msg_;    ///< the message being handled (in rbuf_; kept while paused)
  std::string close_reason_; ///< in our close frame
  codec::decoder dec_;
  codec::encoder enc_;
  outbound_batch batch_;
  std::vector<unsigned char> wire_; ///< what the write in flight carries: WebSocket frames back to back
  std::vector<std::vector<codec::byte>> control_; ///< few, and usually none (a deque costs 1 KiB per idle connection)
  /// taken from the mailbox, not yet written; made with the first frame (an idle connection has none)
  std::unique_ptr<scheduling::lane_scheduler<scheduling::buffer_ref>> lanes_;
  scheduling::buffer_ref held_;                  ///< next out, did not fit the last batch
  /// acknowledged delivery (set iff the agent registered with ack_requested): frames written and
  /// not yet acknowledged, with their sequence numbers
  std::unique_ptr<std::deque<std::pair<std::uint64_t, scheduling::buffer_ref>>> unacked_;
  std::vector<scheduling::buffer_ref> sent_;     ///< scratch: the data frames of the write being made
  std::unique_ptr<reliability> rel_;            ///< retries and breaker of an acknowledging agent
  std::vector<scheduling::buffer_ref> taken_;    ///< scratch for take()
  std::unique_ptr<actors::gateway> gw_;
  std::function<void(std::uint64_t, actors::errc)> remote_answer_; ///< posts a cluster ACK/NACK to this session
  std::string agent_id_;
  codec::repeated_entry reason_kv_{};
  state state_ = state::handshake;
  websocket::close_code close_code_ = websocket::close_code::normal;
  bool writing_ = false, close_after_flush_ = false, registered_in_set_ = false, watchdog_armed_ = false;
  bool reading_ = false;         ///< a read is in flight
  bool paused_ = false;          ///< msg_ waits for a frame buffer (timer_ retries it)
  bool busy_ = false;            ///< the last read filled a quarter of the buffer: keep it
  bool heard_ = false;           ///< bytes came since the idle timer last looked
  bool pinged_ = false;          ///< the idle timer sent a ping and waits for anything
  bool close_sent_ = false;      ///< our close frame is written (or queued): the peer's answer ends it
  bool discard_ = false;         ///< the WebSocket stream is broken or closed: bytes are not parsed
  bool hold_ = false;            ///< the last message met a throttled recipient: hold before reading on
  bool holding_ = false;         ///< CREDIT 0 sent, CREDIT 1 not yet
  bool hold_armed_ = false;      ///< timer_ waits for recheck_hold()
  /// since when messages wait for the agent's CREDIT / ACK (waits_for_agent()); the watchdog cuts
  /// the connection when it lasts write_timeout
  std::optional<std::chrono::steady_clock::time_point> starved_since_;
  bool stalled_ = false;         ///< shown on the endpoint: holding_ and waits_for_agent()
  bool throttling_ = false;      ///< this connection's lanes told senders to slow down
  std::chrono::microseconds hold_for_{100};
  std::weak_ptr<actors::endpoint> held_by_; ///< the recipient whose water mark holds this publisher
  std::uint32_t resume_at_ = 0;  ///< of a paused BATCH: the inner messages before this were handled
  std::chrono::microseconds pause_for_{50};
  std::chrono::steady_clock::time_point write_began_{};
  bool deliver_ = true;  ///< false once failed: what is still queued goes to the dead letters
  bool goodbye_ = false; ///< a graceful stop: GOODBYE once the agent's frames are written
  std::uint64_t next_in_ = 0, next_out_ = 0;
  detail::receive_window window_; ///< the agent's receive window (none: TCP's flow control alone)
  std::chrono::milliseconds heartbeat_{10000};
  std::chrono::steady_clock::time_point last_beat_{};
};

void server::core::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
    if (stopping.load()) return;
    if (!ec) {
      accepted.fetch_add(1, std::memory_order_relaxed);
      const bool refuse = active.fetch_add(1, std::memory_order_relaxed) >= opt.max_connections;
      std::make_shared<session>(std::move(s), *this, refuse)->run();
    } else {
      spdlog::warn("flowbus: accept: {}", ec.message()); // e.g. out of file descriptors: keep serving
    }
    accept();
  });
}

server::server(actors::node& node, server_options options) : core_(std::make_shared<core>(node, std::move(options))) {
  core& c = *core_;
  const tcp::endpoint ep(net::ip::make_address(c.opt.address), c.opt.port);
  c.acceptor.open(ep.protocol());
  c.acceptor.set_option(net::socket_base::reuse_address(true));
  c.acceptor.bind(ep);
  c.acceptor.listen(net::socket_base::max_listen_connections);
  c.accept();
  const std::size_t n = c.opt.io_threads ? c.opt.io_threads : 1;
  for (std::size_t i = 0; i < n; ++i)
    c.threads.emplace_back([&c, i] {
      if (!c.opt.pin_cpus.empty()) (void)scheduling::pin_current_thread({c.opt.pin_cpus[i % c.opt.pin_cpus.size()]});
      c.ioc.run();
    });
  spdlog::info("flowbus: listening on ws://{}:{} ({} I/O threads)", c.opt.address, port(), n);
}

server::~server() { stop(); }

std::uint16_t server::port() const noexcept {
  beast::error_code ec;
  const auto ep = core_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void server::stop(std::chrono::milliseconds drain) {
  core& c = *core_;
  if (c.stopping.exchange(true)) return;
  net::post(c.acceptor.get_executor(), [&c] {
    beast::error_code ignored;
    c.acceptor.close(ignored);
  });
  std::vector<std::shared_ptr<session>> all;
  {
    std::lock_guard<std::mutex> g(c.m);
    for (session* s : c.sessions)
      if (auto p = s->weak_from_this().lock()) all.push_back(std::move(p));
  }
  for (auto& s : all)
    s->stop();
  all.clear();
  const auto until = std::chrono::steady_clock::now() + drain;
  for (;;) {
    {
      std::lock_guard<std::mutex> g(c.m);
      if (c.sessions.empty()) break;
    }
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(1ms);
  }
  c.ioc.stop();
  for (auto& t : c.threads)
    t.join();
  c.threads.clear();
  std::lock_guard<std::mutex> g(c.gate->m);
  c.gate->open = false; // from now on the node's callbacks find nobody to post to
}

server_stats server::stats() const {
  const core& c = *core_;
  auto v = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  server_stats s;
  s.accepted = v(c.accepted);
  s.active = v(c.active);
  s.refused = v(c.refused);
  s.frames_in = v(c.frames_in);
  s.frames_out = v(c.frames_out);
  s.writes = v(c.writes);
  s.batches = v(c.batches);
  s.protocol_errors = v(c.protocol_errors);
  s.slow_consumers = v(c.slow_consumers);
  s.sequence_gaps = v(c.gaps);
  s.sequence_repeats = v(c.repeats);
  s.paused = v(c.paused);
  s.holds = v(c.holds);
  s.acked = v(c.acked);
  s.window_waits = v(c.window_waits);
  return s;
}

const char* describe_code(std::uint64_t code) noexcept {
  if (code < 64) return codec::to_string(static_cast<codec::errc>(code));
  if (code >= code_of(reason::routing_base)) return actors::to_string(static_cast<actors::errc>(code - code_of(reason::routing_base)));
  switch (static_cast<reason>(code)) {
    case reason::expected_register: return "expected REGISTER";
    case reason::already_registered: return "already registered";
    case reason::registration_refused: return "registration refused";
    case reason::text_message: return "text message";
    case reason::unexpected_type: return "unexpected type";
    case reason::slow_consumer: return "slow consumer";
    case reason::too_many_connections: return "too many connections";
    case reason::agent_down: return "agent down";
    case reason::message_too_large: return "message too large";
    case reason::handler_failed: return "handler failed";
    case reason::routing_base: break;
  }
  return "unknown";
}

} // namespace flowbus::transport
