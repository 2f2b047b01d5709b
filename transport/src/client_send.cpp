// The client's sending side (client_impl.hpp): senders encode into the queue under `m` and wake
// the I/O thread only when it is idle; a sparse sender writes its frame itself; the I/O thread
// gathers control frames, CRITICAL messages and the queue into WebSocket messages and writes them
// with one system call.
#include "client_impl.hpp"

#include <flowbus/codec/clock.hpp>

#include <boost/asio/post.hpp>

namespace flowbus::transport {

using actors::errc;
using namespace detail; // beast, websocket, net, tcp

/// Encodes `msg` on the calling thread straight into the send queue, and wakes the I/O thread
/// only if it is idle. No allocation per message once the queue has grown.
errc client::impl::enqueue(codec::message& msg) {
  {
    std::unique_lock<std::mutex> g(m);
    if (closing.load() || gone.load()) return errc::node_stopped;
    if (queued.load(std::memory_order_relaxed) >= opt.max_queued) {
      if (opt.max_block.count() <= 0) return errc::mailbox_full;
      // wait for the I/O thread to drain half the queue (it signals `room` then)
      blocked.fetch_add(1, std::memory_order_relaxed);
      blocked_sends.fetch_add(1, std::memory_order_relaxed);
      const bool drained = room.wait_for(g, opt.max_block, [&] {
        return closing.load() || queued.load(std::memory_order_relaxed) <= opt.max_queued / 2;
      });
      blocked.fetch_sub(1, std::memory_order_relaxed);
      if (closing.load()) return errc::node_stopped;
      if (!drained) return errc::mailbox_full;
    }
    if (const errc e = append_locked(msg); e != errc::ok) return e;
    // (every frame queued here was stamped just now: its timestamp is the clock read we need)
    const std::int64_t want = std::chrono::duration_cast<std::chrono::nanoseconds>(opt.direct_write_gap).count();
    // (through shared memory a direct write costs no system call: every send may write itself)
    const bool sparse = pacing.sparse(static_cast<std::int64_t>(msg.timestamp_ns), want);
    if ((sparse || shm_direct) && direct_ok && write_now_locked()) return errc::ok;
    if (io_awake && msg.prio != codec::priority::critical) return errc::ok; // held, CRITICAL still goes
    io_awake = true;
  }
  net::post(ioc, [self = shared_from_this()] { self->flush(); });
  return errc::ok;
}

/// The sending thread writes the one frame queued (just appended) itself, if the layer lets it
/// (no write of Beast's in flight): false leaves it queued. @pre m is held and direct_ok
bool client::impl::write_now_locked() {
  if (queued.load(std::memory_order_relaxed) != 1 || held.load(std::memory_order_relaxed)) return false;
  detail::frame_queue& q = pending.empty() ? urgent : pending;
  direct_batch.clear();
  direct_batch.add(q.only_frame());
  std::uint64_t seq = next_out;
  if (shm_direct) {
    if (!write_direct_shm(direct_batch.finish(seq))) return false; // the ring is full: the I/O thread waits
    return direct_written(q, seq);
  }
  direct_wire.clear();
  append_message(direct_batch, seq, direct_wire, direct_rng);
  // generation: the I/O thread changes it only after taking direct_ok away (under m)
  const auto r = ws->next_layer().try_write_now(
      direct_wire.data(), direct_wire.size(), [self = shared_from_this(), gen = generation](detail::beast::error_code ec) {
        if (gen != self->generation) return;
        if (ec) return self->lost("write: " + ec.message());
        self->flush(); // the rest of a direct write is out: what queued meanwhile goes now
      });
  if (r == decltype(r)::refused) return false;
  return direct_written(q, seq);
}

/// A sending thread wrote the one frame of `q`, numbered up to `seq`. @pre m is held
bool client::impl::direct_written(detail::frame_queue& q, std::uint64_t seq) {
  next_out = seq;
  if (&q == &urgent) urgent_frames.store(0, std::memory_order_relaxed);
  q.clear();
  queued.fetch_sub(1, std::memory_order_relaxed);
  sent.fetch_add(1, std::memory_order_relaxed);
  writes.fetch_add(1, std::memory_order_relaxed);
  direct_writes.fetch_add(1, std::memory_order_relaxed);
  return true;
}

/// Encodes `msg` at the end of `pending` (`urgent` if CRITICAL). @pre m is held
errc client::impl::append_locked(codec::message& msg) {
  const bool crit = msg.prio == codec::priority::critical;
  if (!(crit ? urgent : pending).append(msg, opt.max_message)) return errc::too_large;
  if (crit) urgent_frames.fetch_add(1, std::memory_order_relaxed);
  queued.fetch_add(1, std::memory_order_relaxed);
  return errc::ok;
}

/// A data message to a destination (or a broadcast), from this agent.
errc client::impl::send_data(const actors::destination& to, bool broadcast, std::string_view agent_type, std::string_view payload,
               const actors::send_options& opts, std::string_view reply_to, std::uint8_t flags,
               std::vector<codec::byte>* copy) {
  codec::message msg;
  msg.flags = flags;
  // the capability and the headers; a sender's own (senders call from any thread), reused
  thread_local std::vector<codec::repeated_entry> repeated;
  actors::data_message(msg, actors::message_route{&to, broadcast, agent_type, opt.id, reply_to}, payload, opts,
                       opt.priority, codec::wall_clock_ns(), repeated);
  if (copy && !detail::append_literal(msg, opt.max_message, *copy)) return errc::too_large;
  return enqueue(msg);
}

/// SUBSCRIBE (with its handler) / UNSUBSCRIBE: the subscription list changes at once (under the
/// lock); the future is answered by the node's ACK / NACK for the frame's message_id, or by a
/// refusal to queue.
std::future<errc> client::impl::change(codec::msg_type type, const std::string& pattern, const std::string& group,
                                       message_handler h) {
  auto p = std::make_shared<std::promise<errc>>();
  auto f = p->get_future();
  const std::uint64_t token = next_token++;
  {
    std::lock_guard<std::mutex> g(m);
    if (type == codec::msg_type::subscribe) subs.add(pattern, group, std::move(h));
    else subs.remove(pattern, group);
    answers.expect_subscription(token, p);
  }
  codec::message msg = subscription_frame(type, pattern, group, token);
  if (const errc e = enqueue(msg); e != errc::ok) {
    std::lock_guard<std::mutex> g(m);
    if (answers.forget_subscription(token)) p->set_value(e);
  }
  return f;
}

codec::message client::impl::subscription_frame(codec::msg_type type, std::string_view pattern, std::string_view group,
                                         std::uint64_t token) {
  codec::message msg;
  msg.type = type;
  msg.prio = codec::priority::high;
  msg.timestamp_ns = codec::wall_clock_ns();
  msg.set_topic(pattern);
  if (!group.empty()) msg.set(codec::field::queue_group, group);
  msg.set(codec::field::message_id, token);
  return msg;
}

/// I/O thread: senders may no longer write themselves (it is about to write, or the
/// connection changes). Takes m only when they could.
void client::impl::take_direct() {
  if (!direct_on) return;
  std::lock_guard<std::mutex> g(m);
  direct_ok = direct_on = false;
}

/// A control frame of ours (HEARTBEAT, ACK, NACK): CRITICAL, stamped now.
codec::message client::impl::control_frame(codec::msg_type type) {
  codec::message c;
  c.type = type;
  c.prio = codec::priority::critical;
  c.timestamp_ns = codec::wall_clock_ns();
  return c;
}

/// Writes a control frame of ours ahead of everything queued (I/O thread): never refused, and
/// not held back with our data while the node holds us.
void client::impl::send_control(codec::message& c) {
  front.append(c, opt.max_message);
  if (!writing) flush();
}

/// Writes what waits — re-subscriptions first, then the queue in send order — as one frame or
/// one BATCH, unless a write is in flight (its completion flushes again).
void client::impl::flush() {
  if (writing) return; // its completion flushes
  if (!registered.load() || !ws) {
    std::lock_guard<std::mutex> g(m);
    io_awake = false; // the WELCOME flushes
    return;
  }
  take_direct(); // next_out and the socket are ours again
  wire.clear();
  while (out_bytes() < detail::write_gather_bytes && gather())
    ;
  if (shm_on) {
    if (shm->staged_bytes()) write_shm(generation);
    return;
  }
  if (!wire.empty()) write_wire(generation);
  else if (wire.capacity() > detail::write_gather_bytes / 4) wire = {}; // quiet: no write buffer held
}

/// Appends one WebSocket message (a frame or a BATCH) to `wire`: re-subscriptions and control
/// frames first, CRITICAL messages next, then — unless the node holds us — the queue in send
/// order. False if nothing (more) may go now.
bool client::impl::gather() {
  batch.clear();
  if (urgent_frames.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> g(m);
    urgent.move_to(express);
    const std::size_t k = urgent_frames.exchange(0, std::memory_order_relaxed);
    queued.fetch_sub(k, std::memory_order_relaxed);
    sent.fetch_add(k, std::memory_order_relaxed);
  }
  front.take_into(batch);
  express.take_into(batch); // kept across a reconnect (front is not: its frames were that connection's)
  // CREDIT 0: our data waits (io_awake stays set: CREDIT 1 flushes)
  if (!held.load(std::memory_order_relaxed)) {
    if (out.empty()) {
      std::lock_guard<std::mutex> g(m);
      out.clear();
      out.swap(pending); // the senders keep the old buffer's capacity
      if (out.empty() && batch.empty()) {
        io_awake = false; // nothing to write: the next send posts
        // nor written by this flush: a sender may write itself until the next flush
        direct_ok = direct_on = out_bytes() == 0 && !closing.load();
        return false;
      }
    }
    const std::size_t frames = out.take_into(batch);
    queued.fetch_sub(frames, std::memory_order_relaxed);
    sent.fetch_add(frames, std::memory_order_relaxed);
    wake_blocked();
  }
  if (batch.empty()) return false;
  if (batch.count() > 1) batches.fetch_add(1, std::memory_order_relaxed);
  append_batch();
  return true;
}

/// Numbers and checksums what `batch` holds and appends it to `wire` as one masked message.
void client::impl::append_batch() {
  if (shm_on) { // a record as it is: no WebSocket framing, no mask (client_shm.cpp writes it)
    const codec::bytes_view bytes = batch.finish(next_out);
    return shm->stage(bytes.data(), bytes.size());
  }
  append_message(batch, next_out, wire, rng);
}

/// Numbers `b`'s frames from `seq`, checksums them, and appends them to `out` as one WebSocket
/// message masked with a key from `keys` (the I/O thread's batch, or a sender's direct write).
void client::impl::append_message(outbound_batch& b, std::uint64_t& seq, std::vector<unsigned char>& out,
                           std::mt19937_64& keys) {
  const codec::bytes_view bytes = b.finish(seq);
  detail::append_masked_frame(out, bytes.data(), bytes.size(), static_cast<std::uint32_t>(keys()));
}

/// Senders blocked on a full queue go on once it has drained to half.
void client::impl::wake_blocked() {
  if (!blocked.load(std::memory_order_relaxed) || queued.load(std::memory_order_relaxed) > opt.max_queued / 2) return;
  std::lock_guard<std::mutex> g(m); // (a sender between its check and its wait holds m: no lost wake-up)
  room.notify_all();
}

/// Writes `wire` (WebSocket frames masked here, RFC 6455: one system call for many messages).
void client::impl::write_wire(std::uint64_t gen) {
  writes.fetch_add(1, std::memory_order_relaxed);
  writing = true;
  ws->next_layer().write_frames(detail::net::buffer(wire), [self = shared_from_this(), gen](detail::beast::error_code ec,
                                                                                                std::size_t) {
    if (gen != self->generation) return;
    self->writing = false;
    if (ec) return self->lost("write: " + ec.message());
    self->flush();
  });
}

} // namespace flowbus::transport
