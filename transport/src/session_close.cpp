// How a node session ends: the agent's close frame answered, ours sent with a code and the reason
// in words, ERROR frames for defects (protocol.md §9), a broken WebSocket stream, and teardown
// (session.hpp).
#include "session.hpp"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

namespace flowbus::transport::detail {

/// The peer closes. If we closed first this is its answer; else answer with its code (RFC 6455
/// §5.5.1). Either way the connection is torn down once our close frame is written.
void session::on_peer_close(std::uint16_t code) {
  if (close_sent_) return teardown("closed");
  if (state_ < state::closing) {
    set_state(state::closing);
    if (gw_) gw_->leave();
  }
  close_sent_ = true;
  discard_ = true;
  send_control(close_frame_with(code == 1005 ? 1000 : code), true);
}

/// A WebSocket-level violation (ws_reader refused the stream): nothing after it can be parsed.
/// A message above the maximum is the node's own refusal (ERROR 73, close 1009); the others
/// are the WebSocket layer's: the close frame says which, with the reason in words.
void session::fail_websocket(std::uint16_t code, const char* why) {
  discard_ = true;
  if (code == static_cast<std::uint16_t>(ws_close::too_big))
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
void session::send_control(std::vector<unsigned char> frame, bool last, bool end_sending) {
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
void session::send_close() {
  if (close_sent_) return;
  close_sent_ = true;
  auto frame = close_frame_with(static_cast<std::uint16_t>(close_code_));
  const std::size_t room = 125 - 2; // a control frame's body: the code, then the reason in UTF-8
  const std::string_view why = std::string_view(close_reason_).substr(0, room); // (not a temporary)
  if (!why.empty() && valid_utf8(reinterpret_cast<const unsigned char*>(why.data()), why.size())) {
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
  resume();
}

void session::fail_codec(codec::decode_status st) {
  // the bytes as they came, for inspection: the corruption DLQ (recipient: the sending connection)
  core_.node.dead().add(actors::dead_reason::corruption,
                        scheduling::buffer_ref::copy_of(msg_.data(), msg_.size()),
                        agent_id_.empty() ? std::string("connection") : agent_id_);
  const std::string why = std::string(codec::to_string(st.code)) + " at byte " + std::to_string(st.offset);
  fail_code(static_cast<std::uint64_t>(st.code), why, websocket::close_code::protocol_error);
}

/// ERROR `code` with its `reason` header (every ERROR of the node says why in words, protocol.md
/// §9), and the REQUEST's correlation id when it answers one; queued ahead of data (encoded now).
void session::queue_error(std::uint64_t code, std::string_view why, std::optional<std::uint64_t> correlation) {
  const codec::repeated_entry reason_kv{codec::field::header, "reason", why}; // (alive until encoded)
  queue_control(codec::msg_type::error, [&](codec::message& e) {
    e.set(codec::field::error_code, code);
    if (correlation) e.set(codec::field::correlation_id, *correlation);
    e.repeated = codec::repeated_fields(&reason_kv, 1);
  });
}

void session::fail(reason r, const std::string& why, websocket::close_code cc) { fail_code(code_of(r), why, cc); }

void session::fail_code(std::uint64_t code, const std::string& why, websocket::close_code cc) {
  if (state_ >= state::closing) return;
  deliver_ = false;
  if (code >= 64) core_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("flowbus: closing {} ({}): {}", agent_id_.empty() ? std::string("connection") : agent_id_,
               describe_code(code), why);
  close_reason_ = why;
  queue_error(code, why);
  begin_close(cc);
}

void session::begin_close(websocket::close_code cc) {
  if (state_ >= state::closing) return;
  const bool accepted = state_ >= state::awaiting_register;
  set_state(state::closing);
  close_code_ = cc;
  if (gw_) gw_->leave();
  if (!accepted) return teardown("closed before the handshake");
  close_after_flush_ = true;
  if (deliver_ && gw_) // held or paused: read again for the agent's CREDIT and ACK (once out of parse())
    net::post(ws_.get_executor(), bind([](session& ss) {
      if ((ss.reading_ && !ss.shm_on_) || ss.state_ != state::closing || !ss.close_after_flush_) return;
      ss.flow_.cancel_pause();
      ss.msg_ = {}; // waited for a frame buffer: not routed, the agent has left
      ss.resume();
    }));
  flush();
}

void session::teardown(const std::string& why) {
  if (state_ == state::closed) return;
  set_state(state::closed);
  spdlog::debug("flowbus: {} gone: {}", agent_id_, why);
  timer_.cancel();
  write_timer_.cancel();
  idle_timer_.cancel();
  if (expiry_) expiry_->cancel(); // (its wait holds the session until the token's exp)
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

} // namespace flowbus::transport::detail
