// What a node session writes to its agent: the gateway's mailbox into the lanes (egress_queue.hpp),
// control frames first, gathered into WebSocket messages and written with one system call;
// acknowledged delivery with retries and the breaker (delivery_tracker.hpp); the slow-consumer
// watchdog (session.hpp).
#include "session.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/scheduling/fixed_rate.hpp> // steady_ns

#include <spdlog/spdlog.h>

namespace flowbus::transport::detail {

void session::push_control(codec::message& m) {
  m.timestamp_ns = codec::wall_clock_ns();
  std::vector<codec::byte> out(enc_.literal_size(m));
  const codec::encode_result r = enc_.encode(m, out.data(), out.size());
  if (!r) {
    spdlog::error("flowbus: encoding a {} frame failed: {}", static_cast<int>(m.type), codec::to_string(r.code));
    return;
  }
  out.resize(r.size);
  egress_.push_control(std::move(out));
}

/// ACK for `id` (ok), else NACK with the reason.
void session::answer(std::uint64_t id, actors::errc e) {
  if (e == actors::errc::ok)
    return queue_control(codec::msg_type::ack, [&](codec::message& a) { a.set(codec::field::message_id, id); });
  queue_control(codec::msg_type::nack, [&](codec::message& a) {
    a.set(codec::field::message_id, id);
    a.set(codec::field::error_code, code_of(e));
  });
}

/// Writes what waits — control frames first, then the agent's frames by lane — unless a write
/// is in flight (its completion calls flush again): as many WebSocket messages (each one frame
/// or one BATCH of up to 32) as come to `write_gather_bytes`, framed here and written with one
/// system call (Beast would make one per message).
void session::flush() {
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
  while (out_bytes() < write_gather_bytes && gather(delivering))
    any = true;
  if (shm_on_ && shm_->staged_bytes()) return shm_write(); // (with what a full ring left: session_shm.cpp)
  // a consumer that keeps its window (or ack window) used up while messages wait is as slow as
  // one that reads nothing: the same write_timeout cuts it (the watchdog looks at both clocks)
  const bool waits = state_ == state::open && egress_.waits_for_agent(acks_.get());
  if (flow_.waiting(waits, waits ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{}) &&
      !watchdog_armed_)
    arm_watchdog(core_.opt.write_timeout);
  if (!any) {
    const bool drained = egress_.drained();
    if (goodbye_ && drained) {
      goodbye_ = false;
      queue_control(codec::msg_type::goodbye, [](codec::message&) {});
      return flush();
    }
    if (wire_.capacity() > write_gather_bytes / 4) wire_ = {}; // quiet now: an idle connection holds none
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
bool session::gather(bool delivering) {
  if (delivering) admit_from_mailbox();
  const auto g = egress_.gather(batch_, delivering, acks_.get(), next_out_, 0, 0); // (clocks read when needed)
  if (g.window_waits) core_.window_waits.fetch_add(g.window_waits, std::memory_order_relaxed);
  if (g.arm) arm_breaker(g.arm);
  if (g.data) {
    core_.frames_out.fetch_add(g.data, std::memory_order_relaxed);
    update_throttle();
  }
  // what waits for the agent, also when nothing can go (a used-up window: a stalled consumer)
  for (std::size_t i = 0; i < rec_.lanes.size(); ++i)
    connection_record::set(rec_.lanes[i], egress_.lane_size(i));
  connection_record::set(rec_.pending, egress_.size() + (gw_ ? gw_->backlog() : 0));
  connection_record::set(rec_.credit, egress_.window().credit());
  if (g.message.empty()) return false;
  core_.bytes_out.fetch_add(g.message.size(), std::memory_order_relaxed);
  connection_record::add(rec_.msgs_out, g.data);
  connection_record::add(rec_.bytes_out, g.message.size());
  connection_record::set(rec_.last_ns, coarse_wall_ns());
  if (batch_.count() > 1) core_.batches.fetch_add(1, std::memory_order_relaxed);
  if (shm_on_) shm_->stage(g.message.data(), g.message.size());
  else append_frame(wire_, g.message.data(), g.message.size());
  return true;
}

/// Moves everything in the gateway's mailbox into the priority lanes (so a CRITICAL frame behind
/// a BACKGROUND backlog is next, not last); what the lanes shed or evict is dead-lettered.
void session::admit_from_mailbox() {
  for (;;) {
    taken_.clear();
    const auto r = gw_->take(taken_, 256);
    for (auto& f : taken_) {
      if (grants_) note_request(f);
      egress_.admit(std::move(f));
    }
    if (!r.more) break;
  }
  taken_.clear();
  update_throttle();
}

/// Tells the node's senders whether this connection's lanes are above their high water mark
/// (until below the low one): their publishers are then held (see start_hold()).
void session::update_throttle() {
  const bool on = egress_.throttled();
  if (on == throttling_) return;
  throttling_ = on;
  gw_->throttle(on);
}

/// The agent has handled every frame we sent up to sequence `seq` (cumulative).
void session::on_agent_ack(std::uint64_t seq) {
  const std::uint64_t n = acks_->ack(seq, scheduling::steady_ns());
  if (!n) return;
  core_.acked.fetch_add(n, std::memory_order_relaxed);
  flush(); // the window may have been full
}

/// The agent's handler failed the frame with sequence `seq` (NACK): counted in the agent's
/// breaker, and the message queued again after a full-jitter backoff — or, after the retry
/// budget, dead-lettered as poison (delivery_tracker.hpp).
void session::on_agent_nack(std::uint64_t seq) {
  const auto r = acks_->nack(seq, scheduling::steady_ns());
  arm_breaker(r.arm);
  if (r.known && !r.poison) arm_retries();
}

void session::arm_retries() {
  const auto due = acks_->next_retry_ns();
  if (!due) return;
  ack_timers_->retry.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*due)));
  ack_timers_->retry.async_wait(bind([](session& s, beast::error_code ec) {
    if (ec || s.state_ != state::open) return;
    s.acks_->take_due(scheduling::steady_ns(), [&s](scheduling::buffer_ref&& f) { s.egress_.admit(std::move(f)); });
    s.arm_retries();
    s.flush();
  }));
}

/// The breaker has just opened: after open_for it may let trial messages through.
void session::arm_breaker(const actors::agent_breaker::arm_after& after) {
  if (!after) return;
  ack_timers_->breaker.expires_after(*after);
  ack_timers_->breaker.async_wait(bind([](session& s, beast::error_code ec) {
    if (!ec && s.state_ == state::open) s.acks_->breaker_timer(scheduling::steady_ns());
  }));
}

/// The slow-consumer watchdog: armed by a write when not already armed, so a busy connection
/// sets a timer once per write timeout, not once per write (a timerfd_settime call each).
void session::arm_watchdog(std::chrono::steady_clock::duration after) {
  watchdog_armed_ = true;
  write_timer_.expires_after(after);
  write_timer_.async_wait(bind([](session& s, beast::error_code ec) {
    s.watchdog_armed_ = false;
    if (ec || s.state_ == state::closed) return;
    const auto now = std::chrono::steady_clock::now();
    const auto limit = s.core_.opt.write_timeout;
    const auto starved_for = s.flow_.starved_for(now);
    if (starved_for && s.state_ == state::open && !s.writing_) {
      const auto starved = *starved_for;
      if (starved < limit) return s.arm_watchdog(limit - starved);
      return s.cut_starved();
    }
    if (!s.writing_ || (s.shm_on_ && !s.shm_blocked_)) return; // (a posted shm continuation is no blocked write)
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
void session::cut_starved() {
  core_.slow_consumers.fetch_add(1, std::memory_order_relaxed);
  const std::size_t n = egress_.drop_all(actors::dead_reason::agent_unavailable);
  const std::string why = "no CREDIT or ACK for " + std::to_string(core_.opt.write_timeout.count()) +
                          " ms with messages waiting (" + std::to_string(n) + " dead-lettered)";
  spdlog::warn("flowbus: {}: slow consumer: {}: closing", agent_id_, why);
  fail(reason::slow_consumer, why);
  flush();
}

} // namespace flowbus::transport::detail
