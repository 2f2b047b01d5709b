// The I/O skeleton of a node session: the WebSocket handshake, reading and parsing messages in
// place (ws_reader.hpp), keep-alive, closing and teardown. What a message means is
// session_ingress.cpp's; what is written, session_egress.cpp's (session.hpp).
#include "session.hpp"

#include "origin_policy.hpp"
#include "tls_context.hpp"

#include <flowbus/codec/clock.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

namespace flowbus::transport::detail {

namespace {

codec::decoder_options decoder_options(std::uint32_t max) {
  codec::decoder_options o;
  o.max_frame_size = max;
  return o;
}

codec::encoder_options node_encoder() {
  codec::encoder_options o;
  o.pool_strings = false; // what the node sends is literal: frames from other agents are written as they are
  return o;
}

} // namespace

session::session(tcp::socket&& s, server::core& c, std::optional<reason> refuse)
    : ws_(std::move(s)), core_(c), refuse_(refuse), timer_(ws_.get_executor()), write_timer_(ws_.get_executor()),
      idle_timer_(ws_.get_executor()),
      wsr_(c.opt.max_message), dec_(decoder_options(c.opt.max_message)), enc_(node_encoder()),
      batch_(c.opt.max_message, c.opt.max_batch), egress_(c.node.dead(), agent_id_, c.lane_options(), &c.metrics) {
  rec_.cid = c.next_cid.fetch_add(1, std::memory_order_relaxed) + 1;
  beast::error_code ec;
  const auto peer = socket().remote_endpoint(ec);
  if (!ec) {
    rec_.ip = peer.address().to_string();
    rec_.port = peer.port();
  }
  rec_.tls = c.tls != nullptr;
  rec_.start_ns = codec::wall_clock_ns();
  rec_.last_ns.store(rec_.start_ns, std::memory_order_relaxed);
}

const char* session::state_name(std::uint8_t s) noexcept {
  switch (static_cast<state>(s)) {
    case state::handshake: return "handshake";
    case state::awaiting_register:
    case state::registering: return "registering";
    case state::open: return "open";
    case state::closing:
    case state::closed: return "closing";
  }
  return "?";
}

session::~session() {
  if (registered_in_set_) {
    std::lock_guard<std::mutex> g(core_.m);
    core_.sessions.erase(this);
    core_.active.fetch_sub(1, std::memory_order_relaxed);
  }
  // frames taken from the mailbox and never written are accounted for, not dropped: waiting for
  // another attempt, written and never acknowledged (the agent may not have them), queued
  if (acks_) acks_->drop_all();
  egress_.drop_all(actors::dead_reason::agent_unavailable);
}

void session::run(std::chrono::steady_clock::duration delay) {
  {
    std::lock_guard<std::mutex> g(core_.m);
    core_.sessions.insert(this);
  }
  registered_in_set_ = true;
  if (delay <= std::chrono::steady_clock::duration::zero()) return begin();
  // held for its address's connection rate: nothing is read until then (a stop tears it down)
  timer_.expires_after(delay);
  timer_.async_wait(bind([](session& s, beast::error_code ec) {
    if (!ec && s.state_ == state::handshake) s.begin();
  }));
}

void session::begin() {
  websocket::stream_base::timeout t;
  t.handshake_timeout = core_.opt.handshake_timeout;
  t.idle_timeout = websocket::stream_base::none(); // after the handshake: arm_idle()
  t.keep_alive_pings = false;
  ws_.set_option(t);
  ws_.read_message_max(core_.opt.max_message);
  ws_.binary(true);
  ws_.auto_fragment(false);
  ws_.next_layer().capacity(0); // the handshake reads straight; then parse() has its own buffer
  set_response_headers();
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
  if (!core_.tls) return read_request();
  edge().use_tls(*core_.tls);
  edge().tls()->async_handshake(net::ssl::stream_base::server,
                                bind([](session& s, beast::error_code ec) { s.on_tls_handshake(ec); }));
}

/// The headers of our 101: who we are, the shared-memory channel offered (if any), and whether
/// CHALLENGE follows (public-key agents).
void session::set_response_headers(std::string shm_name) {
  ws_.set_option(websocket::stream_base::decorator(
      [name = std::move(shm_name), challenge = core_.opt.public_keys != nullptr](websocket::response_type& res) {
        res.set(beast::http::field::server, "flowbus");
        if (!name.empty()) res.set(shm_header, name);
        if (challenge) res.set(challenge_header, "1");
      }));
}

/// wss://: the TLS handshake is done (within the handshake timeout), then the HTTP upgrade.
void session::on_tls_handshake(beast::error_code ec) {
  if (ec) {
    core_.tls_failed.fetch_add(1, std::memory_order_relaxed);
    beast::error_code ignored;
    spdlog::debug("flowbus: TLS handshake from {} failed: {}", socket().remote_endpoint(ignored).address().to_string(),
                  ec.message()); // (counted: a port scan must not flood the log)
    return teardown("TLS handshake: " + ec.message());
  }
  if (!core_.opt.tls.client_ca_file.empty()) cert_id_ = peer_common_name(edge().tls()->native_handle());
  read_request();
}

void session::read_request() {
  beast::http::async_read(ws_.next_layer(), up_->buf, up_->req,
                          bind([](session& s, beast::error_code ec, std::size_t) { s.on_request(ec); }));
}

/// Graceful: write what is queued, GOODBYE, close. From any thread.
void session::stop() {
  net::dispatch(ws_.get_executor(), [self = shared_from_this()] {
    if (self->state_ >= state::closing) return;
    self->goodbye_ = true; // after what is queued for the agent
    self->begin_close(websocket::close_code::going_away);
  });
}

void session::on_request(beast::error_code ec) {
  if (ec) return teardown("handshake: " + ec.message());
  const auto origin = up_->req.find(beast::http::field::origin); // sent by browsers only
  if (origin != up_->req.end()) {
    const std::string_view o(origin->value().data(), origin->value().size());
    if (o.empty() || !origin_allowed(o, core_.opt.allowed_origins)) return refuse_origin(std::string(o));
  }
  if (core_.opt.shared_memory && !core_.tls && up_->req[shm_header] == "1") offer_shm(); // (not over TLS: edge_stream.hpp)
  ws_.async_accept(up_->req, bind([](session& s, beast::error_code e) { s.on_accept(e); }));
}

/// A browser page from an origin not allowed: 403 with the reason in words, no WebSocket.
void session::refuse_origin(const std::string& origin) {
  core_.origins_refused.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("flowbus: refused a WebSocket handshake from origin '{}' (not allowed by --allow-origin)", origin);
  auto res = std::make_shared<beast::http::response<beast::http::string_body>>(beast::http::status::forbidden,
                                                                              up_->req.version());
  res->set(beast::http::field::server, "flowbus");
  res->set(beast::http::field::content_type, "text/plain");
  res->keep_alive(false);
  res->body() = "flowbus: cross-origin WebSocket handshake refused (Origin: " + origin +
                "); the node lets a browser page's origin in with --allow-origin\n";
  res->prepare_payload();
  beast::http::async_write(ws_.next_layer(), *res, bind([res](session& s, beast::error_code, std::size_t) {
                             s.teardown("handshake: origin not allowed");
                           }));
}

void session::on_accept(beast::error_code ec) {
  if (ec) return teardown("handshake: " + ec.message());
  set_state(state::awaiting_register);
  // From here the session reads the socket itself (ws_reader.hpp) and keeps the connection
  // alive itself (arm_idle): Beast's timers and read buffers are done with.
  ws_.set_option(websocket::stream_base::timeout{websocket::stream_base::none(), websocket::stream_base::none(), false});
  socket().non_blocking(true, ec);
  keep_handshake_leftover();
  arm_idle();
  if (core_.opt.public_keys && !refuse_) { // public-key agents sign this connection's nonce in REGISTER
    nonce_ = new_nonce();
    queue_control(codec::msg_type::challenge, [&](codec::message& c) { c.set(codec::field::nonce, nonce_); });
    flush();
  }
  if (refuse_ == reason::too_many_connections) {
    core_.refused.fetch_add(1, std::memory_order_relaxed);
    return fail(reason::too_many_connections, "the node's connection limit is reached",
                websocket::close_code::try_again_later);
  }
  if (refuse_) // (counted in connections_limited by the listener)
    return fail(*refuse_, "too many new connections from this address: try again later",
                websocket::close_code::try_again_later);
  parse();
}

/// Bytes that came behind the upgrade request (a client that did not wait for the 101, or a
/// read that took more): the start of the WebSocket stream. (The layer under Beast holds none:
/// its read-ahead is off from run() on.)
void session::keep_handshake_leftover() {
  if (const std::size_t n = up_->buf.size()) {
    ensure_room(n);
    rend_ += net::buffer_copy(net::buffer(rbuf_.get() + rend_, n), up_->buf.data());
  }
  up_.reset();
}

/// Makes room for `n` more bytes behind what is buffered (moving a partial message to the front,
/// growing the buffer up to the largest whole WebSocket frame allowed).
void session::ensure_room(std::size_t n) {
  const std::size_t have = rend_ - rbeg_;
  if (rbuf_ && rcap_ - rend_ >= n) return;
  if (rbuf_ && rcap_ - have >= n) {
    std::memmove(rbuf_.get(), rbuf_.get() + rbeg_, have);
  } else {
    const std::size_t cap = std::max(read_ahead_bytes, have + n);
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
void session::read() {
  reading_ = true;
  if (!rbuf_) {
    edge().async_read_some(net::buffer(first_), bind([](session& s, beast::error_code ec, std::size_t n) {
      if (ec) return s.on_bytes(ec, 0);
      s.ensure_room(std::max(s.need_, sizeof first_));
      std::memcpy(s.rbuf_.get() + s.rend_, s.first_, n);
      s.rend_ += n;
      if (n == sizeof first_ && !s.edge().tls()) { // more is likely there (TLS: OpenSSL's buffer has it)
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
  edge().async_read_some(net::buffer(rbuf_.get() + rend_, rcap_ - rend_),
                           bind([](session& s, beast::error_code ec, std::size_t n) { s.on_bytes(ec, n); }));
}

void session::on_bytes(beast::error_code ec, std::size_t n) {
  reading_ = false;
  if (state_ == state::closed) return;
  if (ec) {
    if (ec == net::error::eof)
      return teardown(close_sent_ ? "closed" : "the peer closed the connection without a close frame");
    return teardown("read: " + ec.message());
  }
  heard_ = true;
  // whatever an agent sends shows it alive: looked at once per read, not per message (a clock
  // read each; a read holds up to 64 KiB of messages, the heartbeat interval is seconds)
  if (state_ == state::open) maybe_heartbeat();
  rend_ += n;
  busy_ = n >= rcap_ / 4; // keep the buffer while the peer sends this much (see parse())
  parse();
}

/// Handles every whole WebSocket message buffered, in one pass — no completion or post per
/// message — then reads more, unless a message must wait (registering, paused, held) or the
/// connection is done. The messages' bytes are parsed and unmasked in place (ws_reader.hpp).
void session::parse() {
  parse_pass();
  shm_drain(); // (a same-host agent's messages come through its ring)
  report_in();
}

void session::resume() {
  if (!reading_) return parse();
  shm_drain(); // the socket's read completes by itself; the ring is looked at now
  report_in();
}

/// Adds the messages counted since the last report to the server's frames_in.
void session::report_in() {
  ingress_ns_ = 0; // the next pass reads the clock again
  if (!unreported_in_ && !unreported_bytes_) return;
  core_.frames_in.fetch_add(unreported_in_, std::memory_order_relaxed);
  core_.bytes_in.fetch_add(unreported_bytes_, std::memory_order_relaxed);
  connection_record::add(rec_.msgs_in, unreported_in_);
  connection_record::add(rec_.bytes_in, unreported_bytes_);
  connection_record::set(rec_.last_ns, coarse_wall_ns());
  unreported_in_ = 0;
  unreported_bytes_ = 0;
}

void session::parse_pass() {
  while (state_ != state::closed) {
    if (discard_) { // a broken WebSocket stream: nothing more is parsed, the close follows
      rbeg_ = rend_;
      break;
    }
    const ws_reader::result r = wsr_.next(rbuf_.get() + rbeg_, rend_ - rbeg_);
    if (r.what == ws_reader::kind::need_more) {
      need_ = r.need;
      break;
    }
    rbeg_ += r.used;
    using k = ws_reader::kind;
    switch (r.what) {
      case k::fragment:
      case k::pong:
      case k::need_more: continue;
      case k::ping:
        if (!close_sent_) send_control(control_frame(ws_opcode::pong, r.data, r.size), false);
        continue;
      case k::close:
        // what the agent wrote into its ring before closing comes first: if it cannot all be
        // handled now (held, paused), the close waits for it (session_shm.cpp), as a close
        // frame behind data waits in the socket
        if (shm_on_ && !shm_drained_for_close()) {
          shm_close_ = r.code;
          return;
        }
        return on_peer_close(r.code);
      case k::refused: return fail_websocket(r.code, r.why);
      case k::text:
        if (state_ >= state::closing) continue;
        return fail(reason::text_message, "FLOW frames travel in binary messages only");
      case k::message:
        if (shm_on_ && r.size == 0) { // a doorbell: look at the rings (session_shm.cpp)
          on_doorbell();
          continue;
        }
        msg_ = codec::bytes_view(r.data, r.size);
        unreported_bytes_ += r.size;
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

void session::yield() {
  pass_ = 0;
  reading_ = true;
  net::post(ws_.get_executor(), bind([](session& s) {
    s.reading_ = false;
    s.parse();
  }));
}

/// Keep-alive: a connection that sent nothing for half the idle timeout gets a ping; one that
/// then still sends nothing (not even the pong) is closed at the idle timeout. The time the
/// node itself does not read (registering, paused, held) does not count.
void session::arm_idle() {
  idle_timer_.expires_after(core_.opt.idle_timeout / 2);
  idle_timer_.async_wait(bind([](session& s, beast::error_code ec) {
    if (ec || s.state_ == state::closed) return;
    if (s.heard_ || !s.reading_) {
      s.heard_ = s.pinged_ = false;
      return s.arm_idle();
    }
    if (s.pinged_) return s.teardown("silent for the idle timeout (a ping unanswered)");
    s.pinged_ = true;
    s.send_control(control_frame(ws_opcode::ping, nullptr, 0), false);
    s.arm_idle();
  }));
}

} // namespace flowbus::transport::detail
