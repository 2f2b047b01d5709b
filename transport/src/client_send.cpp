// The client's sending side (client_impl.hpp): senders encode into the queue under `m` and wake
// the I/O thread only when it is idle; a sparse sender writes its frame itself; the I/O thread
// gathers control frames, CRITICAL messages and the queue into WebSocket messages and writes them
// with one system call.
#include "client_impl.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/encoder.hpp>

#include <boost/asio/post.hpp>

namespace flowbus::transport {

using scheduling::errc;
using namespace detail; // beast, websocket, net, tcp

/// Encodes `msg` on the calling thread straight into the send queue — a record of the ring,
/// claimed and committed without a lock — and wakes the I/O thread only if it is idle; a sparse
/// sender (or one over shared memory) writes it itself when the I/O thread is idle. CRITICAL
/// messages take the lock (enqueue_urgent). No allocation per message.
errc client::impl::enqueue(codec::message& msg) {
  if (msg.prio == codec::priority::critical) return enqueue_urgent(msg);
  if (closing.load(std::memory_order_relaxed) || gone.load()) return errc::node_stopped;
  codec::encoder lit(codec::stored_frame_encoding(opt.max_message)); // literal: valid on any connection
  const std::size_t need = lit.literal_size(msg);
  if (need > opt.max_message) return errc::too_large;
  scheduling::mpsc_byte_ring::claim c;
  if (const errc e = claim(need, c); e != errc::ok) return e;
  // closing looked at after the claim: close() writes GOODBYE after every claim made before it
  // set closing (closing_flush), and this sender gives up every claim made after
  const errc e = closing.load() ? errc::node_stopped
                 : lit.encode(msg, c.data, need).size != need ? errc::too_large // (literal_size said it fits)
                                                                : errc::ok;
  if (e != errc::ok) {
    send_ring.abandon(c);
    return e;
  }
  queued.fetch_add(1, std::memory_order_relaxed); // (before the I/O thread can take it and count it off)
  send_ring.commit(c);
  if (direct_ok.load()) { // the I/O thread is idle: this sender may write itself
    std::unique_lock<std::mutex> g(m, std::try_to_lock);
    if (g.owns_lock() && direct_ok.load(std::memory_order_relaxed) && direct_now(msg)) {
      if (write_now_locked()) {
        if (send_ring.empty()) return errc::ok;
        g.unlock(); // others committed after what it took: the I/O thread writes them
      }
    }
  }
  wake_io();
  return errc::ok;
}

/// A CRITICAL message: into `urgent` (under m), which the I/O thread writes ahead of the ring —
/// and while the node holds us — so, unless the sender writes it itself, it always posts a flush.
errc client::impl::enqueue_urgent(codec::message& msg) {
  {
    std::lock_guard<std::mutex> g(m);
    if (closing.load() || gone.load()) return errc::node_stopped;
    if (!urgent.append(msg, opt.max_message)) return errc::too_large;
    urgent_frames.fetch_add(1, std::memory_order_relaxed);
    queued.fetch_add(1, std::memory_order_relaxed);
    if (direct_ok.load(std::memory_order_relaxed) && direct_now(msg) && write_now_locked()) return errc::ok;
  }
  io_awake.store(true);
  net::post(ioc, [self = shared_from_this()] { self->flush(); });
  return errc::ok;
}

/// A record of `bytes` in the ring: at once, or — with max_queued messages waiting or the ring
/// full — after waiting up to max_block for the queue to drain to half.
errc client::impl::claim(std::size_t bytes, scheduling::mpsc_byte_ring::claim& c) {
  if (queued.load(std::memory_order_relaxed) < opt.max_queued && (c = send_ring.try_claim(bytes))) return errc::ok;
  if (opt.max_block.count() <= 0) return errc::mailbox_full;
  blocked_sends.fetch_add(1, std::memory_order_relaxed);
  const auto until = clk::now() + opt.max_block;
  std::unique_lock<std::mutex> g(m);
  blocked.fetch_add(1); // (seq_cst: the I/O thread releases, then looks at blocked)
  for (;;) {
    const bool drained = room.wait_until(g, until, [&] {
      return closing.load() || (queued.load() <= opt.max_queued / 2 && send_ring.fits(bytes));
    });
    if (closing.load() || !drained) break;
    if ((c = send_ring.try_claim(bytes))) break; // (another sender may have taken the room first)
  }
  blocked.fetch_sub(1);
  if (closing.load()) return errc::node_stopped;
  return c ? errc::ok : errc::mailbox_full;
}

/// Whether the sender of `msg` writes it itself (the I/O thread being idle): traffic is sparse,
/// or goes through shared memory, where a write costs no system call. @pre m is held
bool client::impl::direct_now(const codec::message& msg) {
  // (every frame queued here was stamped just now: its timestamp is the clock read we need)
  const std::int64_t want = std::chrono::duration_cast<std::chrono::nanoseconds>(opt.direct_write_gap).count();
  return pacing.sparse(static_cast<std::int64_t>(msg.timestamp_ns), want) || shm_direct;
}

/// Makes sure the I/O thread looks at the queue: posts a flush unless one is coming.
void client::impl::wake_io() {
  if (!io_awake.load() && !io_awake.exchange(true)) net::post(ioc, [self = shared_from_this()] { self->flush(); });
}

/// The sending thread writes itself, if the layer lets it (no write of Beast's in flight), the
/// one CRITICAL message queued, or else what the ring holds (its own frame, and what others
/// committed before it, up to a batch) unless the node holds us: false leaves it queued.
/// @pre m is held and direct_ok
bool client::impl::write_now_locked() {
  const std::size_t crit = urgent_frames.load(std::memory_order_relaxed);
  if (crit > 1 || (!crit && held.load(std::memory_order_relaxed))) return false;
  direct_batch.clear();
  if (crit) direct_batch.add(urgent.only_frame());
  const std::size_t frames = crit ? 1 : take_ring(direct_batch);
  if (!frames) return false;
  std::uint64_t seq = next_out;
  if (shm_direct) {
    if (!write_direct_shm(direct_batch.finish(seq))) return false; // the ring is full: the I/O thread waits
  } else {
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
  }
  next_out = seq;
  if (crit) {
    urgent.clear();
    urgent_frames.store(0, std::memory_order_relaxed);
  } else {
    send_ring.release(ring_taken);
  }
  taken_out(frames);
  writes.fetch_add(1, std::memory_order_relaxed);
  direct_writes.fetch_add(frames, std::memory_order_relaxed);
  if (room_for_blocked()) room.notify_all(); // (wake_blocked, m held)
  return true;
}

/// Adds the ring's committed frames to `b` while they fit, in order; `ring_taken` is where they
/// end (for release() once they are written). The reading side's: the I/O thread, or a sender
/// while direct_ok.
std::size_t client::impl::take_ring(outbound_batch& b) {
  std::size_t frames = 0;
  ring_taken = send_ring.peek([&](const unsigned char* p, std::size_t n) {
    if (!b.fits(n)) return false;
    b.add(codec::bytes_view(p, n));
    ++frames;
    return true;
  });
  return frames;
}

/// A data message to a destination (or a broadcast), from this agent.
errc client::impl::send_data(const scheduling::destination& to, bool broadcast, std::string_view agent_type, std::string_view payload,
               const scheduling::send_options& opts, std::string_view reply_to, std::uint8_t flags,
               std::vector<codec::byte>* copy) {
  codec::message msg;
  msg.flags = flags;
  // the capability and the headers; a sender's own (senders call from any thread), reused
  thread_local std::vector<codec::repeated_entry> repeated;
  scheduling::data_message(msg, scheduling::message_route{&to, broadcast, agent_type, opt.id, reply_to}, payload, opts,
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
  direct_ok.store(false);
  direct_on = false;
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
    io_awake.store(false); // the WELCOME flushes
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
/// frames first, CRITICAL messages next, then — unless the node holds us — frames sent again and
/// the ring in send order. False if nothing (more) may go now.
bool client::impl::gather() {
  batch.clear();
  if (urgent_frames.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> g(m);
    urgent.move_to(express);
    taken_out(urgent_frames.exchange(0, std::memory_order_relaxed));
  }
  front.take_into(batch);
  express.take_into(batch); // kept across a reconnect (front is not: its frames were that connection's)
  // CREDIT 0: our data waits (io_awake stays set: CREDIT 1 flushes)
  if (!held.load(std::memory_order_relaxed) && !take_data() && batch.empty() && !go_idle()) return false;
  if (batch.empty()) return false;
  if (batch.count() > 1) batches.fetch_add(1, std::memory_order_relaxed);
  append_batch();
  return true;
}

/// Adds frames sent again, then the ring's, to `batch`; false if there were none.
bool client::impl::take_data() {
  std::size_t frames = resend.take_into(batch) + take_ring(batch);
  send_ring.release(ring_taken); // (copied into the batch)
  if (!frames) return false;
  taken_out(frames);
  wake_blocked();
  return true;
}

/// Nothing to write: the next send posts a flush — or, if the connection is idle, writes itself
/// until the next flush. A send that committed before io_awake went false is seen by the look at
/// the ring that follows (both sequentially consistent): then this flush goes on with it (true).
bool client::impl::go_idle() {
  for (;;) {
    io_awake.store(false);
    if (!send_ring.readable()) break;
    if (io_awake.exchange(true)) return false; // a sender posted a flush
    if (take_data()) return true;              // (else it was padding)
  }
  std::lock_guard<std::mutex> g(m);
  direct_ok.store(!tls && out_bytes() == 0 && !closing.load()); // (TLS: one thread uses OpenSSL's stream)
  direct_on = direct_ok.load(std::memory_order_relaxed);
  return false;
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

/// `frames` left the queue for a write: no longer queued, counted as sent.
void client::impl::taken_out(std::size_t frames) {
  queued.fetch_sub(frames); // (seq_cst, as blocked in room_for_blocked: a sender about to wait sees one or the other)
  sent.fetch_add(frames, std::memory_order_relaxed);
}

/// Senders wait on a full queue and it has drained to half: they may go on.
bool client::impl::room_for_blocked() const { return blocked.load() && queued.load() <= opt.max_queued / 2; }

/// Senders blocked on a full queue go on once it has drained to half.
void client::impl::wake_blocked() {
  if (!room_for_blocked()) return;
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
