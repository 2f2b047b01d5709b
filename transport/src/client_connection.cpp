// The client's connection (client_impl.hpp): dial, REGISTER, reading, heartbeats, the timers'
// sweep, loss and reconnect with exponential backoff and full jitter, and the graceful close
// (what is queued, GOODBYE, the close handshake, bounded by close_timeout).
#include "client_impl.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/frame_header.hpp>
#include <flowbus/scheduling/retry.hpp>

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

namespace flowbus::transport {

using scheduling::errc;
using namespace detail; // beast, websocket, net, tcp
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

void client::impl::start() {
  if (started.exchange(true)) return;
  // spdlog's registry is created on first use; several clients' I/O threads logging first at
  // once race on it as far as ThreadSanitizer can see (its guard is in the uninstrumented
  // library): create it here, before our thread exists
  (void)spdlog::default_logger_raw();
  thread = std::thread([self = shared_from_this()] { self->ioc.run(); });
  net::post(ioc, [self = shared_from_this()] {
    self->dial();
    self->sweep();
  });
}

void client::impl::dial() {
  if (closing.load()) return;
  const std::uint64_t gen = ++generation;
  {
    std::lock_guard<std::mutex> g(m);
    shm_direct = false; // (direct_ok is off since lost())
  }
  shm.reset();
  shm_on = shm_blocked = false;
  ws.emplace(ioc);
  if (tls) {
    ws->next_layer().next_layer().use_tls(*tls);
    prepare_client_tls(ws->next_layer().next_layer().tls()->native_handle(),
                       opt.tls.server_name.empty() ? opt.host : opt.tls.server_name, opt.tls.verify);
  }
  ws->next_layer().capacity(detail::read_ahead_bytes);
  ws->read_message_max(opt.max_message);
  ws->binary(true);
  ws->auto_fragment(false);
  resolver.async_resolve(opt.host, std::to_string(opt.port), [self = shared_from_this(), gen](beast::error_code ec, tcp::resolver::results_type rs) {
    if (gen != self->generation) return;
    if (ec) return self->lost("resolve: " + ec.message());
    beast::get_lowest_layer(*self->ws).expires_after(5s);
    beast::get_lowest_layer(*self->ws).async_connect(rs, [self, gen](beast::error_code ec2, const tcp::endpoint&) {
      if (gen != self->generation) return;
      if (ec2) return self->lost("connect: " + ec2.message());
      beast::get_lowest_layer(*self->ws).expires_never();
      beast::get_lowest_layer(*self->ws).socket().set_option(tcp::no_delay(true));
      if (self->opt.receive_buffer)
        beast::get_lowest_layer(*self->ws).socket().set_option(
            net::socket_base::receive_buffer_size(static_cast<int>(self->opt.receive_buffer)));
      websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::client);
      self->ws->set_option(t);
      if (!self->tls) return self->upgrade_ws(gen);
      // the TLS handshake, bounded: the socket is closed if it takes longer (the handshake fails)
      auto limit = std::make_shared<net::steady_timer>(self->ioc, 5s);
      limit->async_wait([self, gen](beast::error_code e) {
        beast::error_code ignored;
        if (!e && gen == self->generation) beast::get_lowest_layer(*self->ws).socket().close(ignored);
      });
      self->ws->next_layer().next_layer().tls()->async_handshake(
          net::ssl::stream_base::client, [self, gen, limit](beast::error_code ec3) {
            limit->cancel();
            if (gen != self->generation) return;
            if (ec3) return self->lost("TLS handshake: " + ec3.message());
            self->upgrade_ws(gen);
          });
    });
  });
}

/// The WebSocket upgrade (asking for shared memory on a plain connection if configured).
void client::impl::upgrade_ws(std::uint64_t gen) {
  auto done = [self = shared_from_this(), gen](beast::error_code ec) {
    if (gen != self->generation) return;
    if (ec) return self->lost("handshake: " + ec.message());
    self->open_shm();
    self->on_open(gen);
  };
  const std::string host = opt.host + ":" + std::to_string(opt.port);
  const bool ask_shm = opt.shared_memory && !tls; // (no shm over TLS)
  if (!ask_shm && !identity) return ws->async_handshake(host, "/", std::move(done));
  // ask for shared memory; the node's answer is a header of its 101 (client_shm.cpp), as is
  // whether it sends CHALLENGE (a key's signature is asked for)
  if (ask_shm)
    ws->set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(detail::shm_header, "1"); }));
  upgrade.emplace();
  ws->async_handshake(*upgrade, host, "/", std::move(done));
}

void client::impl::on_open(std::uint64_t gen) {
  connects.fetch_add(1, std::memory_order_relaxed);
  dec.emplace([&] {
    codec::decoder_options o;
    o.max_frame_size = opt.max_message;
    return o;
  }());
  next_out = 0;
  writing = false;
  held.store(false, std::memory_order_relaxed); // a new connection: nobody holds us
  receipts.connected();
  if (!identity || !upgrade || upgrade->find(detail::challenge_header) == upgrade->end())
    return send_register(gen, {}); // (a node without agent keys sends no CHALLENGE: nothing to sign)
  awaiting_challenge = true; // REGISTER signs the node's nonce: it comes first (client_receive.cpp)
  read(gen);
}

/// REGISTER, with the public key and the signature of `nonce` if we have a key; then reading
/// (unless already) and the shared-memory rings.
void client::impl::send_register(std::uint64_t gen, std::string_view nonce) {
  codec::message r;
  r.type = codec::msg_type::register_agent;
  r.prio = opt.priority;
  r.timestamp_ns = codec::wall_clock_ns();
  r.set(codec::field::source, opt.id);
  if (!opt.token.empty()) r.set(codec::field::token, opt.token);
  std::string key, signature; // (referenced by r until it is encoded)
  if (identity && !nonce.empty()) {
    key = identity->public_key();
    signature = identity->sign(nonce);
    r.set(codec::field::public_key, key);
    r.set(codec::field::signature, signature);
  }
  if (opt.acks) r.flags |= codec::flag::ack_requested; // we acknowledge what we receive
  if (opt.receive_window) r.set(codec::field::credit, opt.receive_window);
  if (!opt.type.empty()) r.set(codec::field::agent_type, opt.type);
  r.set(codec::field::heartbeat_ms, static_cast<std::uint64_t>(opt.heartbeat.count()));
  std::vector<codec::repeated_entry> rep;
  for (const auto& c : opt.capabilities)
    rep.push_back({codec::field::capability, c, {}});
  for (const auto& s : opt.subscriptions)
    rep.push_back({codec::field::subscription, s, {}});
  r.repeated = codec::repeated_fields(rep.data(), rep.size());
  std::vector<codec::byte> frame;
  if (!detail::append_literal(r, opt.max_message, frame)) return lost("REGISTER does not encode");
  batch.clear();
  batch.add(codec::bytes_view(frame.data(), frame.size()));
  wire.clear();
  append_batch();
  write_wire(gen);
  if (nonce.empty()) read(gen); // (with a key, reading began before the CHALLENGE)
  start_shm(gen); // from here our messages go through the rings, if we opened them
}

void client::impl::read(std::uint64_t gen) {
  ws->async_read(in, [self = shared_from_this(), gen](beast::error_code ec, std::size_t) {
    if (gen != self->generation) return;
    if (ec) {
      self->drain_shm(gen, true); // what the node wrote into the ring before its close comes first
      if (gen != self->generation) return;
      return self->lost("read: " + ec.message());
    }
    if (!self->on_frame()) return;
    self->in.consume(self->in.size());
    // after the handlers of everything in this message
    if (const auto seq = self->receipts.ack_owed()) self->send_ack(*seq);
    if (const auto n = self->receipts.credit_owed()) self->send_credit(*n);
    self->read(gen);
  });
}

void client::impl::heartbeat(std::uint64_t gen) {
  heartbeat_timer.expires_after(opt.heartbeat / 2);
  heartbeat_timer.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
    if (ec || gen != self->generation || !self->registered.load()) return;
    codec::message beat = control_frame(codec::msg_type::heartbeat);
    self->send_control(beat);
    self->heartbeat(gen);
  });
}

/// Every 5 ms: requests past their timeout fail, acknowledged publishes past their ack_timeout
/// are sent again or given up (client_pending.hpp).
void client::impl::sweep() {
  sweep_timer.expires_after(5ms);
  sweep_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec) return;
    detail::pending_answers::due d;
    {
      std::lock_guard<std::mutex> g(self->m);
      d = self->answers.advance(clk::now(), self->sent.load(std::memory_order_relaxed), self->opt.ack_attempts,
                                self->opt.ack_timeout, [&](std::vector<codec::byte>& frame) {
                                  frame[codec::offset::flags] |= codec::flag::redelivery; // checksum redone on writing
                                  self->resend.append_frame(codec::bytes_view(frame.data(), frame.size()));
                                  self->queued.fetch_add(1, std::memory_order_relaxed);
                                  self->redelivered.fetch_add(1, std::memory_order_relaxed);
                                  return self->sent.load(std::memory_order_relaxed) +
                                         self->queued.load(std::memory_order_relaxed);
                                });
    }
    for (auto& done : d.timed_out)
      done(reply_result{errc::timeout, {}, {}});
    for (auto& p : d.gave_up)
      p->set_value(errc::timeout);
    if (d.resent) self->flush();
    if (!self->closing.load()) self->sweep();
  });
}

/// The connection is gone (or never came): reconnect with backoff unless closing.
void client::impl::lost(const std::string& why) {
  take_direct(); // before the socket closes and generation moves
  const bool was = registered.exchange(false);
  ++generation; // every completion of the old connection is now stale
  heartbeat_timer.cancel();
  if (ws) {
    beast::error_code ignored;
    beast::get_lowest_layer(*ws).socket().close(ignored);
  }
  writing = false;
  shm_on = shm_blocked = false; // (the channel itself is kept until the next dial)
  if (closing.load()) return;
  if (was) spdlog::info("flowbus client {}: connection lost ({}): reconnecting", opt.id, why);
  if (!opt.reconnect || credentials_refused.load()) { // nothing pending can be answered any more: say so now
    const errc e = credentials_refused.load() ? errc::unauthenticated : errc::node_stopped;
    gone.store(true);
    answer_welcome(e);
    fail_pending(e);
    return;
  }
  // exponential backoff with full jitter: uniform in [0, min(max, initial * 2^(n-1))]
  retry_timer.expires_after(scheduling::full_jitter(++failed_dials, opt.backoff_initial, opt.backoff_max, rng));
  retry_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->dial();
  });
}

void client::impl::shutdown() {
  if (closing.exchange(true)) return;
  {
    std::lock_guard<std::mutex> g(m);
    room.notify_all(); // senders blocked on a full queue: node_stopped
  }
  net::post(ioc, [self = shared_from_this()] {
    self->retry_timer.cancel();
    self->sweep_timer.cancel();
    self->heartbeat_timer.cancel();
    if (!self->ws || !self->registered.load()) return self->work.reset(), self->stop_io();
    // what is queued, then GOODBYE, then the close handshake
    self->closing_flush();
  });
  if (thread.joinable()) {
    // bounded: a node that does not read or answer the close handshake does not hold us
    if (!joined_within(opt.close_timeout + 1s)) ioc.stop();
    thread.join();
    unsent.store(queued.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  fail_pending(errc::node_stopped);
  std::lock_guard<std::mutex> g(m);
  if (welcome) welcome->set_value(errc::node_stopped), welcome.reset();
}

/// Answers every pending subscription, request and acknowledged publish with `e` (outside the
/// lock: a request's callback may call back into the client).
void client::impl::fail_pending(errc e) {
  detail::pending_answers::all a;
  {
    std::lock_guard<std::mutex> g(m);
    a = answers.take_all();
  }
  for (auto& s : a.subscriptions)
    s.second->set_value(e);
  for (auto& r : a.requests)
    r.second(reply_result{e, {}, {}});
  for (auto& p : a.publishes)
    p->set_value(e);
}

bool client::impl::joined_within(std::chrono::milliseconds d) {
  const auto until = clk::now() + d;
  while (clk::now() < until) {
    if (ioc.stopped()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

void client::impl::closing_flush() {
  take_direct();
  close_claims = send_ring.claimed(); // (after closing was set: later claims are given up by their senders)
  close_by = clk::now() + opt.close_timeout;
  drain_then_close();
}

/// Writes what is queued — everything claimed before closing was set, whose senders are told ok
/// — then GOODBYE, then the close handshake.
void client::impl::drain_then_close() {
  bool empty = send_ring.released() >= close_claims && front.empty() && express.empty() && resend.empty();
  if (empty) {
    std::lock_guard<std::mutex> g(m);
    empty = urgent.empty();
  }
  if (empty && !bye_sent) {
    bye_sent = true;
    codec::message bye = control_frame(codec::msg_type::goodbye);
    front.append(bye, opt.max_message);
    empty = false;
  }
  if (!writing && !empty) flush();
  if (writing || !empty) {
    if (clk::now() >= close_by) return stop_io(); // the node does not take it: give up (counted as unsent)
    retry_timer.expires_after(1ms);
    retry_timer.async_wait([self = shared_from_this()](beast::error_code) { self->drain_then_close(); });
    return;
  }
  ++generation;
  ws->async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) { self->stop_io(); });
}

void client::impl::stop_io() {
  work.reset();
  ioc.stop();
}

} // namespace flowbus::transport
