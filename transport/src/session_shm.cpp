// A same-host agent's shared-memory rings, as a node session uses them (shm_link.hpp,
// docs/protocol.md §13): the offer in the WebSocket handshake, the switch at REGISTER, reading
// records as messages (the same on_message() as WebSocket messages), writing what flush()
// gathered, and doorbells both ways. All on the session's strand.
#include "session.hpp"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

namespace flowbus::transport::detail {

namespace {
const std::vector<unsigned char> doorbell_frame{0x82, 0x00}; // an empty binary message, unmasked
} // namespace

/// The agent asked for shared memory in its handshake: a channel, named in our 101 response —
/// only to a peer on the loopback interface (no other host can open it).
void session::offer_shm() {
  beast::error_code ec;
  const auto peer = socket().remote_endpoint(ec);
  if (ec || !peer.address().is_loopback()) return;
  std::error_code sec;
  shm_ = shm_link::offer(std::max<std::size_t>(core_.opt.shm_ring_bytes, 4 * std::size_t{core_.opt.max_message}), sec);
  if (!shm_) {
    spdlog::warn("flowbus: shared memory not offered: {}", sec.message());
    return;
  }
  set_response_headers(shm_->name());
}

/// At REGISTER: an agent that opened the channel (before sending REGISTER) talks through it from
/// now on; one that did not keeps WebSocket alone. The name goes either way.
void session::attach_shm() {
  if (shm_->agent_attached()) {
    shm_on_ = true;
    connection_record::set(rec_.shm, true);
    core_.shm_attached.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  shm_.reset();
}

/// Handles the agent's records like WebSocket messages, up to pass_budget a pass, then hands
/// space back (ringing the agent if it waits for it). With nothing left it busy-polls for
/// shm_spin, then parks: the agent's next commit rings us. Once it is empty, a close frame that
/// waited for it is handled.
void session::shm_drain() {
  if (!shm_on_ || (state_ != state::open && state_ != state::closing)) return;
  scheduling::shm_endpoint& ring = shm_->ring();
  if (shm_in_msg_) {
    if (!msg_.empty()) return; // it waits (a pause): its retry resumes us
    ring.release(shm_rec_);
    shm_in_msg_ = false;
  }
  if (flow_.paused() || (state_ == state::open && flow_.holding() && !read_while_held())) {
    if (shm_->publish()) ring_agent();
    return; // the hold's or the pause's timer resumes us
  }
  ring.unpark(); // reading: the agent need not ring
  std::uint32_t n = 0;
  bool corrupt = false, go_on = true;
  pass_ = 0; // messages, as parse() counts them (a record may be a BATCH of 32)
  while (pass_ < pass_budget && ring.next(shm_rec_, corrupt)) {
    ++n;
    msg_ = codec::bytes_view(shm_rec_.data, shm_rec_.size);
    unreported_bytes_ += shm_rec_.size;
    shm_in_msg_ = true;
    go_on = on_message();
    if (msg_.empty()) {
      ring.release(shm_rec_);
      shm_in_msg_ = false;
    }
    if (!go_on || state_ == state::closed) break;
  }
  if (state_ == state::closed) return;
  if (shm_->publish()) ring_agent();
  if (corrupt) return fail(reason::shm_damaged, "the shared-memory ring holds a damaged record");
  if (n) {
    heard_ = true; // alive, as bytes on the socket would show (see on_bytes)
    if (state_ == state::open) maybe_heartbeat();
  }
  if (!go_on) return; // resumed later (registering, paused, held, closing)
  if (shm_close_ && shm_read_all()) { // the agent's close, now
    const std::uint16_t code = *shm_close_;
    shm_close_.reset();
    return on_peer_close(code);
  }
  // a full pass: more after the other connections' turn (their writes drain their lanes)
  const bool full = pass_ >= pass_budget;
  if (full) pass_ = 0;
  if (shm_->poll_again(n, full, core_.opt.shm_spin)) post_drain();
}

/// Whether the agent's ring is read to its end (no record held, none committed).
bool session::shm_read_all() {
  bool corrupt = false;
  return !shm_in_msg_ && !shm_->ring().next(shm_rec_, corrupt);
}

/// The agent's close frame came: reads what its ring holds first. False: some of it must wait
/// (held, paused) — the close is handled once it has been read.
bool session::shm_drained_for_close() {
  shm_drain(); // (a pass: what is left after it follows in the next, then the close)
  return state_ == state::closed || shm_read_all();
}

/// Writes what flush() staged into the agent's ring; a full ring waits for the agent's doorbell
/// (writing_ stays set meanwhile, so the slow-consumer watchdog sees it as a blocked write).
void session::shm_write() {
  const bool all = shm_->write_staged();
  if (shm_->take_doorbell()) ring_agent();
  writing_ = true;
  if (!all) {
    shm_blocked_ = true;
    write_began_ = std::chrono::steady_clock::now();
    if (!watchdog_armed_) arm_watchdog(core_.opt.write_timeout);
    return;
  }
  // written: gather again after the other connections' turn, as a socket write's completion would
  net::post(ws_.get_executor(), bind([](session& s) {
    s.writing_ = false;
    s.flush();
  }));
}

/// Posts a drain (busy-poll, or the rest of a pass), once.
void session::post_drain() {
  if (shm_posted_) return;
  shm_posted_ = true;
  net::post(ws_.get_executor(), bind([](session& s) {
    s.shm_posted_ = false;
    s.shm_drain();
    s.report_in();
  }));
}

/// The agent rang: it committed records while we were parked, or freed space we wait for.
void session::on_doorbell() {
  if (shm_blocked_) {
    shm_blocked_ = false;
    writing_ = false;
    flush();
  }
  // the records are read by parse() after this pass over the socket
}

/// Wakes the agent: an empty binary WebSocket message, behind whatever is being written.
void session::ring_agent() {
  core_.shm_doorbells.fetch_add(1, std::memory_order_relaxed);
  send_control(doorbell_frame, false);
}

} // namespace flowbus::transport::detail
