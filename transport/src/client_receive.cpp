// What the client receives (client_impl.hpp): each WebSocket message from the node decoded, BATCHes
// unpacked, and each frame dispatched — WELCOME, ACK/NACK (client_pending.hpp), ERROR, CREDIT,
// replies, and data to the handler of the first matching subscription, duplicates dropped
// (client_receiver.hpp). Handlers run on the I/O thread.
#include "client_impl.hpp"

#include <flowbus/transport/reasons.hpp>

#include <spdlog/spdlog.h>

namespace flowbus::transport {

using scheduling::errc;

/// One WebSocket message from the node. False: the connection is being dropped.
bool client::impl::on_frame() {
  if (!ws->got_binary()) {
    lost("the node sent a text message");
    return false;
  }
  if (shm_on && in.size() == 0) { // a doorbell: look at the rings (client_shm.cpp)
    on_doorbell();
    return true;
  }
  return on_message(codec::bytes_view(static_cast<const codec::byte*>(in.data().data()), in.size()));
}

/// One FLOW message from the node (a WebSocket message's or a ring record's bytes). False: the
/// connection is being dropped.
bool client::impl::on_message(codec::bytes_view bytes) {
  codec::message msg;
  const codec::decode_status st = dec->decode(bytes, msg);
  if (!st) {
    lost(std::string("bad frame from the node: ") + codec::to_string(st.code));
    return false;
  }
  if (msg.type == codec::msg_type::batch) {
    codec::batch_reader r(*dec, msg);
    codec::message inner;
    while (!r.done()) {
      if (!r.next(inner)) {
        lost("bad BATCH from the node");
        return false;
      }
      dispatch(inner);
    }
    return true;
  }
  dispatch(msg);
  return true;
}

void client::impl::dispatch(const codec::message& msg) {
  using t = codec::msg_type;
  receipts.arrived(msg.type); // a data message: granted back once read() handled it
  switch (msg.type) {
    case t::welcome: return on_welcome();
    case t::challenge: // a node with public-key agents: sign its nonce in REGISTER (else a token, or nothing)
      if (awaiting_challenge) {
        awaiting_challenge = false;
        send_register(generation, msg.str(codec::field::nonce));
      }
      return;
    case t::ack:
    case t::nack: {
      const errc e = msg.type == t::ack ? errc::ok : to_errc(msg.num(codec::field::error_code));
      detail::pending_answers::answer a;
      {
        std::lock_guard<std::mutex> g(m);
        a = answers.take_answer(msg.message_id());
      }
      if (!a.p) return; // an answer to a message sent again, already answered
      if (a.publish && e == errc::ok) acked.fetch_add(1, std::memory_order_relaxed);
      a.p->set_value(e);
      return;
    }
    case t::error: {
      const std::uint64_t code = msg.num(codec::field::error_code);
      if (msg.has(codec::field::correlation_id)) return complete(msg.correlation_id(), reply_result{to_errc(code), {}, {}});
      spdlog::info("flowbus client {}: the node says {} ({})", opt.id, code, describe_code(code));
      if (code >= code_of(reason::routing_base) && !registered.load()) {
        refused.fetch_add(1, std::memory_order_relaxed);
        answer_welcome(to_errc(code));
      }
      if (code >= code_of(reason::auth_required) && code <= code_of(reason::id_not_permitted)) {
        // our credentials: refused at REGISTER (connect() says so), or the token expired (a new
        // connection with the same token would be refused: a new client with a new token)
        refused.fetch_add(1, std::memory_order_relaxed);
        credentials_refused.store(true);
        answer_welcome(errc::unauthenticated);
      }
      return;
    }
    case t::goodbye: return; // the node is stopping: the close follows, then a reconnect
    case t::credit: {
      const bool hold = msg.num(codec::field::credit) == 0;
      if (hold) holds.fetch_add(1, std::memory_order_relaxed);
      held.store(hold, std::memory_order_relaxed);
      if (!hold) flush(); // what waited goes now
      return;
    }
    case t::reply:
      return complete(msg.correlation_id(), reply_result{errc::ok, std::string(msg.str(codec::field::source)),
                                                         std::string(msg.payload.as_string())});
    default: break;
  }
  if (!receipts.accept(msg)) {
    duplicates.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  received.fetch_add(1, std::memory_order_relaxed);
  const incoming in_msg = scheduling::to_delivery(msg);
  // the table's generation read before the cache is asked: a subscription changed after it makes
  // the next message look again (as taking m per message did)
  const detail::handler_cache::shared_handler* h = handlers.find(in_msg.topic, subs.generation());
  if (!h) {
    std::lock_guard<std::mutex> g(m);
    h = &handlers.put(in_msg.topic, subs.generation(), subs.handler_for(in_msg.topic));
  }
  // (the cache keeps the handler alive while it runs, even if it unsubscribes itself: only this
  // thread changes the cache, at the next message)
  if (!*h) return;
  try {
    (**h)(in_msg);
  } catch (const std::exception& e) {
    handler_failed(msg, e.what());
  } catch (...) {
    handler_failed(msg, "not a std::exception");
  }
}

/// A handler threw: with acks the node hears it (NACK of the frame's sequence) and sends the
/// message again per its retry policy; without, it is only counted and logged.
void client::impl::handler_failed(const codec::message& msg, const char* what) {
  handler_failures.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("flowbus client {}: a handler failed: {}", opt.id, what);
  if (!opt.acks) return;
  receipts.failed(msg);
  codec::message n = control_frame(codec::msg_type::nack);
  n.set(codec::field::message_id, msg.sequence);
  n.set(codec::field::error_code, code_of(reason::handler_failed));
  send_control(n); // before this read's ACK, which then covers the frame as handled (failed)
}

scheduling::errc client::impl::to_errc(std::uint64_t code) {
  return code >= code_of(reason::routing_base) ? static_cast<errc>(code - code_of(reason::routing_base))
                                               : errc::node_stopped;
}

void client::impl::complete(std::uint64_t corr, reply_result r) {
  std::function<void(reply_result)> done;
  {
    std::lock_guard<std::mutex> g(m);
    done = answers.take_reply(corr);
  }
  if (done) done(std::move(r)); // (else it timed out already)
}

void client::impl::on_welcome() {
  registered.store(true);
  failed_dials = 0;
  {
    // re-subscribe first (before what waited, in their order); nobody waits for these acks
    std::lock_guard<std::mutex> g(m);
    front.clear();
    for (const auto& sub : subs.all()) {
      codec::message msg = subscription_frame(codec::msg_type::subscribe, sub.pattern, sub.group, 0);
      front.append(msg, opt.max_message); // validated when first subscribed
    }
  }
  answer_welcome(errc::ok);
  heartbeat(generation);
  flush();
}

void client::impl::answer_welcome(errc e) {
  std::lock_guard<std::mutex> g(m);
  if (welcome) {
    welcome->set_value(e);
    welcome.reset();
  }
}

void client::impl::send_ack(std::uint64_t seq) {
  codec::message a = control_frame(codec::msg_type::ack);
  a.set(codec::field::message_id, seq); // cumulative: every node frame up to this one
  send_control(a);
}

/// Grants the node what our handlers finished since the last CREDIT. Ahead of everything
/// queued (front), never refused: the node writes nothing more to us until it has it.
void client::impl::send_credit(std::uint32_t n) {
  codec::message c = control_frame(codec::msg_type::credit);
  c.set(codec::field::credit, n);
  send_control(c);
}

} // namespace flowbus::transport
