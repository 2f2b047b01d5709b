// A node session's flow control toward its agent as a publisher: CREDIT, ACK and NACK from it,
// holds behind a recipient above its water mark, pauses without a frame buffer. The decisions are
// flow_control.hpp's (a pure state machine); this is their timers and frames (session.hpp).
#include "session.hpp"

#include <spdlog/spdlog.h>

namespace flowbus::transport::detail {

/// CREDIT, ACK or NACK from the agent; false for any other type.
bool session::on_flow_control(const codec::message& m) {
  using t = codec::msg_type;
  switch (m.type) {
    case t::ack:
      if (acks_) on_agent_ack(m.message_id());
      return true;
    case t::nack:
      if (acks_) on_agent_nack(m.message_id());
      return true;
    case t::credit: // the agent's receive window: it handled this many more data messages
      if (egress_.window().enabled()) {
        egress_.window().grant(m.num(codec::field::credit));
        flush();
      }
      return true;
    default: return false;
  }
}

/// A held publisher is read on only to break a cycle: the node waits for this agent's own
/// CREDIT or ACK (behind its data in TCP), and the recipient holding it is in the same state
/// (or gone). Two agents publishing to each other would otherwise wait for each other for ever.
bool session::read_while_held() const {
  if (!egress_.waits_for_agent(acks_.get())) return false;
  const auto ep = held_by_.lock();
  return !ep || !ep->open() || ep->stalled();
}

void session::update_stalled() {
  if (!gw_) return;
  if (const auto on = flow_.update_stalled(egress_.waits_for_agent(acks_.get()))) gw_->stalled(*on);
}

/// A message of this publisher met a recipient above its high water mark: CREDIT 0 (hold) and
/// no reading until that recipient is below its low water mark (or gone), looked at every
/// 100 µs doubling to 5 ms; then CREDIT 1 (go on) and reading again. A publisher that ignores
/// the CREDIT is held back by TCP all the same (a compliant one writes only control frames
/// and CRITICAL messages until CREDIT 1). See read_while_held() for the one exception.
void session::start_hold() {
  core_.holds.fetch_add(1, std::memory_order_relaxed);
  send_credit(0);
}

void session::recheck_hold() {
  hold_armed_ = true;
  timer_.expires_after(flow_.next_look());
  timer_.async_wait(bind([](session& s, beast::error_code ec) {
    s.hold_armed_ = false;
    if (ec || s.state_ != state::open || !s.flow_.holding()) return;
    // we do not read it while we hold it, so we cannot see its HEARTBEATs: the node's own hold
    // must not take it down for liveness (issue 17.4). Bounded: the hold ends when its
    // recipient drains or is cut (write_timeout), and then we read it again.
    s.maybe_heartbeat();
    const bool idle = (!s.reading_ || s.shm_on_) && !s.flow_.paused();
    s.update_stalled();
    // catch_up() first: a recipient with its own water marks (an actor agent, a link) clears
    // its mark as it drains, but a sender's push that read the backlog just before that drain
    // can set it again after it — with this publisher held, nothing would clear it then
    if (auto ep = s.held_by_.lock(); ep && ep->open() && (ep->catch_up(), ep->throttled())) {
      s.recheck_hold();
      if (idle && s.read_while_held()) s.resume();
      return;
    }
    s.flow_.end_hold();
    s.update_stalled();
    s.held_by_.reset();
    s.send_credit(1);
    if (idle) s.resume();
  }));
}

void session::send_credit(std::uint64_t n) {
  queue_control(codec::msg_type::credit, [&](codec::message& c) { c.set(codec::field::credit, n); });
  flush();
}

/// The node had no frame buffer for a message: stop reading (TCP holds back the peer) and try
/// the same message again shortly — backoff from 100 µs to 5 ms while the pool stays empty. Or
/// the agent is over its rate: the same, after as long as its buckets need.
void session::pause() {
  if (!flow_.rate_waiting()) core_.paused.fetch_add(1, std::memory_order_relaxed); // (a rate wait is counted as such)
  timer_.expires_after(flow_.pause());
  timer_.async_wait(bind([](session& s, beast::error_code ec) {
    if (ec || s.state_ != state::open) return;
    s.maybe_heartbeat(); // not read while paused: alive as far as the node can tell (see recheck_hold)
    s.flow_.retry();
    const bool go_on = s.on_message();
    s.report_in();
    s.flow_.retried();
    if (go_on) s.resume();
  }));
}

} // namespace flowbus::transport::detail
