// What the agent sends, as a node session handles it: REGISTER and the gateway it attaches,
// decoding, dispatch by type, routing (forward) and the answers a sender gets (session.hpp).
#include "session.hpp"

#include <flowbus/actors/agent_directory.hpp> // max_heartbeat_interval
#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/trace.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

namespace flowbus::transport::detail {

/// The WebSocket message in msg_ — again after a pause, skipping what was handled. True: go on
/// with the next message; false: parse() is resumed later (or the connection is done).
bool session::on_message() {
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
  const bool more = handle(m);
  if (flow_.paused()) return pause(), false;
  msg_ = {};
  if (!more || state_ != state::open) return false;
  if (flow_.begin_hold()) start_hold();
  if (flow_.holding()) {
    if (!hold_armed_) recheck_hold(); // (a pause used the timer meanwhile)
    update_stalled();
    if (!read_while_held()) return false; // not read until the recipient is below its low water mark
  }
  return true;
}

/// Draining: what the agent sends now is not routed (it has left), but its CREDIT and ACK are
/// what lets the node write the rest of its frames.
void session::read_while_closing() {
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

/// One decoded frame. Returns false if reading must pause (registration pending) or stop.
bool session::handle(codec::message& m) {
  if (state_ == state::awaiting_register) {
    received(m);
    if (m.type != codec::msg_type::register_agent)
      return fail(reason::expected_register, "the first frame must be REGISTER"), false;
    if (shm_) attach_shm(); // before anything is written back: WELCOME goes through the ring too
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
        if (flow_.paused()) resume_at_ = i;
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
void session::received(const codec::message& m) {
  ++unreported_in_; // added to the server's count once per pass (report_in): no shared RMW per message
  ++pass_;
  if (m.sequence != next_in_) {
    (m.sequence < next_in_ ? core_.repeats : core_.gaps).fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("flowbus: {} sequence {} where {} was expected", agent_id_, m.sequence, next_in_);
  }
  next_in_ = m.sequence + 1;
}

bool session::handle_one(codec::message& m) {
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
      if (perms_ && !perms_->may_subscribe(m.topic())) return refuse_permission(m, "subscribe to", m.topic()), true;
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
    case t::welcome:
    case t::challenge: break;
  }
  fail(reason::unexpected_type, "a frame type only the node sends");
  return false;
}

/// Routes one message. False: the node has no frame buffer for it now (paused_ is set, and the
/// message is taken back: it is counted again when retried).
bool session::forward(const codec::message& m) {
  if (perms_) {
    if (m.has(codec::field::topic) && !(m.flags & codec::flag::broadcast)) {
      if (!may_publish(m.topic())) return refuse_permission(m, "publish to", m.topic()), true;
    } else if (!permitted_by_id(m)) {
      return true;
    }
  }
  if (bool go_on; !rate_.unlimited() && over_rate(m, go_on)) return go_on;
  actors::send_options o;
  o.timestamp_ns = m.timestamp_ns; // the agent's send time travels on (protocol.md §2)
  if (core_.opt.latency_metrics) {
    if (!ingress_ns_) ingress_ns_ = scheduling::steady_ns(); // once per pass (report_in clears it)
    o.ingress_ns = ingress_ns_;
  }
  const std::uint32_t untraced_before = untraced_; // (restored if the message must be tried again)
  if (m.has(codec::field::trace) || (core_.opt.trace_sample && ++untraced_ >= core_.opt.trace_sample)) {
    // sampled (or traced by the agent): the agent's send time, then ours (codec/trace.hpp)
    trace_.assign(m.str(codec::field::trace));
    if (!codec::valid_trace(trace_)) trace_.clear();
    if (trace_.empty()) codec::append_hop(trace_, codec::hop::client_send, m.timestamp_ns);
    codec::append_hop(trace_, codec::hop::node_in, codec::wall_clock_ns());
    o.trace = trace_;
    untraced_ = 0;
  }
  o.type = m.type;
  o.prio = static_cast<codec::priority>(m.prio);
  o.correlation_id = m.correlation_id();
  o.message_id = m.message_id();
  o.deadline_ns = m.deadline_ns();
  o.max_attempts = actors::max_attempts_of(m);
  o.headers = m.repeated; // application headers reach every recipient (the port keeps field 8 only)
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
    flow_.no_buffer();
    --unreported_in_; // counted again when it is retried
    next_in_ = m.sequence;
    untraced_ = untraced_before; // its retry is sampled, or not, as this try was: 1 in N exactly
    return false;
  }
  // CRITICAL traffic is never held: emergency mode protects it
  if (r.throttled && m.prio != codec::priority::critical) {
    flow_.met_throttled();
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

void session::maybe_heartbeat() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_beat_ < heartbeat_ / 2) return;
  last_beat_ = now;
  gw_->heartbeat();
}

void session::start_register(const codec::message& m) {
  set_state(state::registering);
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
  if (!cert_id_.empty() && !id_matches(cert_id_, spec.id)) { // TLS: the client certificate names the ids
    core_.auth_refused.fetch_add(1, std::memory_order_relaxed);
    fail(reason::id_not_permitted, "REGISTER as '" + spec.id + "' refused: the client certificate is for '" + cert_id_ + "'");
    return;
  }
  if ((core_.opt.auth || core_.opt.public_keys) && !admit(m, spec.id, spec.type)) return;
  if (const rate_limits& l = core_.opt.limits; l.msgs_per_s > 0 || l.bytes_per_s > 0)
    rate_ = scheduling::rate_limiter(l.msgs_per_s, l.burst_msgs, l.bytes_per_s, l.burst_bytes, std::chrono::steady_clock::now());
  agent_id_ = spec.id;
  {
    std::lock_guard<std::mutex> g(rec_.m);
    rec_.agent_id = spec.id;
    rec_.agent_type = spec.type;
  }
  // a receive window: at most this many data messages written and not yet granted back by CREDIT
  egress_.window().open(m.num(codec::field::credit));
  connection_record::set(rec_.window, egress_.window().size());
  connection_record::set(rec_.credit, egress_.window().credit());
  if (m.flags & codec::flag::ack_requested) { // this agent acknowledges what it receives
    delivery_options d;
    d.window = core_.lane_options().capacity; // at most a lanes' capacity written and not yet acknowledged
    d.retry = core_.opt.retry;
    d.breaker_enabled = core_.opt.breaker_enabled;
    d.breaker = core_.opt.breaker;
    d.show_breaker = [this](scheduling::breaker_state st) { // shown on the endpoint: senders fail fast
      if (gw_) gw_->breaker(st);
    };
    acks_ = std::make_unique<delivery_tracker>(core_.node.dead(), agent_id_, std::move(d));
    ack_timers_ = std::make_unique<ack_timers>(ws_.get_executor());
  }
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

/// Checks REGISTER's token (docs/security.md): refused, the connection fails with the reason in
/// words; accepted, the connection is closed when the token expires.
bool session::admit(const codec::message& m, const std::string& id, const std::string& type) {
  const std::int64_t now = static_cast<std::int64_t>(codec::wall_clock_ns() / 1000000000u);
  token_claims claims;
  // a public key (answering this connection's CHALLENGE), else a token
  const bool by_key = core_.opt.public_keys && (m.has(codec::field::public_key) || !core_.opt.auth);
  auth_errc e = by_key ? core_.opt.public_keys->verify(m.str(codec::field::public_key), m.str(codec::field::signature),
                                                      nonce_, id, type, &claims)
                       : core_.opt.auth->verify(m.str(codec::field::token), id, type, now, &claims);
  if (e == auth_errc::ok) {
    // the permissions: the token's own, else its role's, else the default role's (none: anything)
    const role_table* roles = core_.opt.roles.get();
    const std::string& role = claims.role.empty() && roles ? roles->default_role : claims.role;
    if (claims.perms) {
      perms_ = claims.perms;
    } else if (!role.empty()) {
      const auto it = roles ? roles->roles.find(role) : decltype(roles->roles.end()){};
      if (!roles || it == roles->roles.end()) e = auth_errc::unknown_role;
      else perms_ = std::shared_ptr<const permissions>(core_.opt.roles, &it->second); // (shares the table)
    }
  }
  if (e == auth_errc::ok) {
    for (const codec::repeated_entry& s : m.repeated)
      if (s.id == codec::field::subscription && perms_ && !perms_->may_subscribe(s.key)) {
        core_.not_permitted.fetch_add(1, std::memory_order_relaxed);
        const std::string why = "subscribe to '" + std::string(s.key) + "' is not permitted";
        queue_error(code_of(actors::errc::not_permitted), why);
        fail(reason::registration_refused, "REGISTER refused: " + why);
        return false;
      }
    if (claims.expires) arm_expiry(claims.expires); // (a key does not expire: it is removed)
    if (perms_ && perms_->allow_responses.max && (!perms_->unicast.allow.empty() || !perms_->unicast.deny.empty())) {
      grants_ = std::make_unique<response_grants>();
      codec::decoder_options o = codec::stored_frame_decoding(); // (a frame in the node: no checksum yet)
      o.max_frame_size = core_.opt.max_message;
      grant_dec_ = std::make_unique<codec::decoder>(o);
    }
    return true;
  }
  core_.auth_refused.fetch_add(1, std::memory_order_relaxed);
  const reason r = e == auth_errc::missing                                                ? reason::auth_required
                   : e == auth_errc::expired || e == auth_errc::not_yet_valid             ? reason::token_expired
                   : e == auth_errc::id_not_permitted || e == auth_errc::type_not_permitted ? reason::id_not_permitted
                                                                                          : reason::auth_failed;
  fail(r, std::string("REGISTER as '") + id + "' refused: " + (by_key ? describe_key(e) : describe(e)));
  return false;
}

bool session::may_publish(std::string_view topic) {
  key_.assign(topic);
  if (const auto it = may_publish_.find(key_); it != may_publish_.end()) return it->second;
  if (may_publish_.size() >= 4096) may_publish_.clear(); // bounded; refills with what is hot
  return may_publish_.emplace(key_, perms_->may_publish(topic)).first->second;
}

bool session::permitted_by_id(const codec::message& m) {
  if (m.flags & codec::flag::broadcast) {
    if (perms_->broadcast) return true;
    refuse_permission(m, "broadcast", m.has(codec::field::agent_type) ? m.str(codec::field::agent_type) : "*");
    return false;
  }
  if (!m.has(codec::field::target)) return true; // (capability routing: not restricted)
  const std::string_view to = m.str(codec::field::target);
  if (perms_->may_unicast(to)) return true;
  // allow_responses: the answer to a request this agent received
  if (m.type == codec::msg_type::reply && grants_ && grants_->use(to, m.correlation_id(), std::chrono::steady_clock::now()))
    return true;
  refuse_permission(m, m.type == codec::msg_type::reply ? "reply to" : "send to agent", to);
  return false;
}

void session::note_request(const scheduling::buffer_ref& frame) {
  if (frame.size() <= 5 || frame.data()[5] != static_cast<unsigned char>(codec::msg_type::request)) return;
  codec::message r;
  if (!grant_dec_->decode(codec::bytes_view(frame.data(), frame.size()), r)) return;
  const auto& a = perms_->allow_responses;
  grants_->granted(r.str(codec::field::reply_to), r.correlation_id(), a.max, a.expires, std::chrono::steady_clock::now());
}

void session::refuse_permission(const codec::message& m, const char* what, std::string_view topic) {
  core_.not_permitted.fetch_add(1, std::memory_order_relaxed);
  refuse(m, actors::errc::not_permitted, std::string(what) + " '" + std::string(topic) + "' is not permitted");
}

void session::refuse(const codec::message& m, actors::errc e, const std::string& why) {
  const bool request = m.type == codec::msg_type::request;
  if (m.has(codec::field::message_id) && !request) {
    answer(m.message_id(), e);
  } else {
    queue_error(code_of(e), why, request ? std::optional<std::uint64_t>(m.correlation_id()) : std::nullopt);
  }
  flush();
}

/// Over the agent's rate (server_options::limits): true if the message waits (reading paused
/// until the buckets have room: TCP holds the agent back) or was refused (NACK/ERROR rate_limited).
bool session::over_rate(const codec::message& m, bool& go_on) {
  const auto wait = rate_.admit(m.payload.size(), std::chrono::steady_clock::now());
  if (wait == std::chrono::steady_clock::duration::zero()) return false;
  core_.rate_limited.fetch_add(1, std::memory_order_relaxed);
  if (core_.opt.limits.action == rate_limits::over::hold) {
    flow_.over_rate(std::chrono::ceil<flow_control::us>(wait));
    --unreported_in_; // counted again when it is tried again
    next_in_ = m.sequence;
    go_on = false;
  } else {
    refuse(m, actors::errc::rate_limited,
           fmt::format("over the rate limit ({:g} msgs/s, {:g} bytes/s; 0: none)", core_.opt.limits.msgs_per_s,
                       core_.opt.limits.bytes_per_s));
    go_on = true;
  }
  return true;
}

/// The connection ends when its token does: ERROR token_expired, then the close.
void session::arm_expiry(std::int64_t expires_s) {
  // in seconds first: exp may be centuries ahead (9999999999), beyond what nanoseconds hold
  constexpr std::int64_t century_s = 100LL * 365 * 86400;
  const std::int64_t now_ns = static_cast<std::int64_t>(codec::wall_clock_ns());
  const std::int64_t left_s = std::min(expires_s - now_ns / 1000000000, century_s);
  const std::int64_t left_ns = std::max<std::int64_t>(left_s * 1000000000 - now_ns % 1000000000, 0);
  expiry_ = std::make_unique<net::steady_timer>(ws_.get_executor());
  expiry_->expires_after(std::chrono::nanoseconds(left_ns));
  expiry_->async_wait(bind([](session& s, beast::error_code ec) {
    if (ec || s.state_ >= state::closing) return;
    s.core_.tokens_expired.fetch_add(1, std::memory_order_relaxed);
    s.fail(reason::token_expired, "the token expired: register again with a new one");
  }));
}

void session::on_attached(actors::expected<std::unique_ptr<actors::gateway>, actors::errc> r) {
  if (!r) {
    // every ERROR says why in words (protocol.md §9), this one too, ahead of ERROR 66
    queue_error(code_of(r.error()), actors::to_string(r.error()));
    return fail(reason::registration_refused, std::string("REGISTER refused: ") + actors::to_string(r.error()));
  }
  gw_ = std::move(*r);
  if (state_ >= state::closing) return; // closed meanwhile: the gateway leaves with us
  set_state(state::open);
  timer_.cancel();
  last_beat_ = std::chrono::steady_clock::now();
  queue_control(codec::msg_type::welcome, [&](codec::message& w) { w.set(codec::field::target, agent_id_); });
  flush();
  parse(); // what came behind the REGISTER, then the socket
}

void session::on_done(std::uint64_t token, actors::errc e) {
  if (state_ >= state::closing) return;
  answer(token, e);
  flush();
}

void session::on_down(actors::errc e) {
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

} // namespace flowbus::transport::detail
