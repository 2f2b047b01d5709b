#include <flowbus/transport/client.hpp>

#include "buffered_stream.hpp"

#include <flowbus/codec/clock.hpp>

#include <flowbus/actors/topic_index.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/dedup_window.hpp>
#include <flowbus/scheduling/retry.hpp>
#include <flowbus/scheduling/timing_wheel.hpp>
#include <flowbus/transport/outbound.hpp>
#include <flowbus/transport/reasons.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <list>
#include <unordered_map>
#include <unordered_set>

namespace flowbus::transport {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using actors::errc;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

/// The total size of the frame at `pos` (header offset 8, little-endian).
std::size_t frame_at(const std::vector<codec::byte>& buf, std::size_t pos) {
  return codec::load_le<std::uint32_t>(buf.data() + pos + codec::offset::total_size);
}

struct subscription {
  std::string pattern, group;
  message_handler handler;
};

struct pending_request {
  std::function<void(reply_result)> done;
};

} // namespace

struct client::impl : std::enable_shared_from_this<client::impl> {
  client_options opt;
  net::io_context ioc{1};
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(ioc);
  std::thread thread;
  tcp::resolver resolver{ioc};
  std::optional<websocket::stream<detail::buffered_stream<beast::tcp_stream>>> ws;
  net::steady_timer heartbeat_timer{ioc}, sweep_timer{ioc}, retry_timer{ioc};
  beast::flat_buffer in;
  std::optional<codec::decoder> dec;
  outbound_batch batch;
  std::vector<unsigned char> wire; ///< what the write in flight carries: masked WebSocket frames back to back
  std::vector<codec::byte> out;             ///< frames taken from `pending` in one swap, written from out_pos
  std::size_t out_pos = 0;
  std::vector<codec::byte> front;           ///< frames that go before everything queued: re-subscriptions, control
  std::size_t front_pos = 0;
  std::vector<codec::byte> express;         ///< CRITICAL messages taken from `urgent`: after front, before out
  std::size_t express_pos = 0;
  bool writing = false;
  std::uint64_t next_out = 0;
  std::uint64_t generation = 0; ///< connection attempts: stale completions are ignored
  std::uint32_t failed_dials = 0; ///< since the last registration: the backoff's exponent
  std::mt19937_64 rng{std::random_device{}()};

  // shared with sending threads
  mutable std::mutex m;
  /// Frames waiting, encoded by the sending threads in send order. Their strings are literal (no
  /// connection pool), so they stay valid across reconnects; sequence numbers and checksums are
  /// rewritten when they are written (outbound_batch).
  std::vector<codec::byte> pending;
  /// CRITICAL messages, written ahead of `pending` — and while the node holds us (CREDIT 0)
  std::vector<codec::byte> urgent;
  std::atomic<std::size_t> urgent_frames{0};
  std::atomic<std::size_t> queued{0}; ///< frames in `pending`, `urgent` and `out` not yet written
  std::condition_variable room;       ///< senders blocked on a full queue (max_block) wait here
  std::atomic<std::uint32_t> blocked{0};
  /// The I/O thread will look at the queue again without being told (a flush is posted, or a
  /// write is in flight and its completion flushes): senders then skip the post and its wake-up.
  bool io_awake = false;
  /// The connection is open and the I/O thread idle — nothing queued, nothing in flight — so a
  /// sender holding m may write itself (write_now_locked): the socket (if the layer lets it) and
  /// next_out are then the sender's. Only the I/O thread sets it (see direct_on), under m.
  bool direct_ok = false;
  std::int64_t last_send_ns = 0; ///< the previous message's timestamp (direct_write_gap)
  std::int64_t gap_avg_ns = 0;   ///< the moving average of the gaps between messages
  outbound_batch direct_batch;   ///< a sender's direct write: the frame numbered and checksummed
  std::vector<unsigned char> direct_wire; ///< ... and masked
  std::mt19937_64 direct_rng{std::random_device{}()};
  /// in subscribe order (handlers are looked up first match first; re-subscribed in this order);
  /// sub_index finds one by pattern and group, so unsubscribing is O(1), not O(subscriptions)
  std::list<subscription> subs;
  std::unordered_map<std::string, std::list<subscription>::iterator> sub_index;
  static std::string sub_key(const std::string& pattern, const std::string& group) { return pattern + '\x1f' + group; }
  std::unordered_map<std::uint64_t, std::shared_ptr<std::promise<errc>>> sub_acks;
  std::unordered_map<std::uint64_t, pending_request> requests;
  /// When to look at a request (its timeout) or an acknowledged publish (its redelivery): 1 ms
  /// ticks from `epoch`. An answered one is simply not found when its timer fires.
  enum class timer_kind : std::uint8_t { request, ack };
  scheduling::timing_wheel<std::pair<timer_kind, std::uint64_t>> timers;
  const clk::time_point epoch = clk::now();
  std::optional<std::promise<errc>> welcome;
  message_handler fallback;
  std::atomic<bool> registered{false}, closing{false}, started{false};
  /// reconnect off and the connection lost: nothing will be written any more, sends say node_stopped
  std::atomic<bool> gone{false};
  std::atomic<std::uint64_t> next_corr{1}, next_token{1};
  std::atomic<std::uint64_t> sent{0}, received{0}, writes{0}, batches{0}, connects{0}, refused{0}, holds{0}, unsent{0},
      acked{0}, redelivered{0}, duplicates{0}, handler_failures{0}, blocked_sends{0}, direct_writes{0};
  /// publish_acked messages waiting for the node's ACK: their frame, for sending again
  struct unacked_publish {
    std::vector<codec::byte> frame;
    std::uint32_t attempts;
    std::shared_ptr<std::promise<errc>> done;
    std::uint64_t written_by = 0; ///< `sent` reaches this when its last copy has been written
  };
  std::unordered_map<std::uint64_t, unacked_publish> unacked;
  scheduling::dedup_window dedup;    ///< I/O thread: (source, message id) seen
  std::uint64_t last_in_seq = 0;     ///< I/O thread: the node's sequence of the last message handled
  bool ack_due = false;              ///< I/O thread: a message arrived since our last ACK
  std::uint32_t consumed = 0;        ///< I/O thread: data messages handled since our last CREDIT
  std::unordered_set<std::string> retrying; ///< I/O thread: (source, id) our handler failed: not a duplicate when it comes again
  std::atomic<bool> held{false}; ///< the node's last CREDIT was 0
  clk::time_point close_by{};    ///< close() stops writing then (I/O thread)

  bool direct_on = false; ///< I/O thread: its copy of direct_ok (turning it off takes m)

  explicit impl(client_options o)
      : opt(std::move(o)), batch(opt.max_message, opt.max_batch), direct_batch(opt.max_message, 1) {}

  // ---- sending side (any thread) ----
  /// Encodes `msg` on the calling thread straight into the send queue, and wakes the I/O thread
  /// only if it is idle. No allocation per message once the queue has grown.
  errc enqueue(codec::message& msg) {
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
      if (sparse_locked(static_cast<std::int64_t>(msg.timestamp_ns)) && direct_ok && write_now_locked()) return errc::ok;
      if (io_awake && msg.prio != codec::priority::critical) return errc::ok; // held, CRITICAL still goes
      io_awake = true;
    }
    net::post(ioc, [self = shared_from_this()] { self->flush(); });
    return errc::ok;
  }

  /// Whether messages come far enough apart for the sending thread to write them itself: the
  /// average gap (each gap weighs 1/4; at most 4 × direct_write_gap, so a burst after a quiet
  /// spell turns to gathering within a few messages) is at least direct_write_gap. Jitter in a
  /// steady rate moves single gaps, not the average. @pre m is held
  bool sparse_locked(std::int64_t now_ns) {
    const std::int64_t want = std::chrono::duration_cast<std::chrono::nanoseconds>(opt.direct_write_gap).count();
    if (want < 0) return false;
    const std::int64_t gap = std::clamp<std::int64_t>(now_ns - last_send_ns, 0, 4 * want);
    last_send_ns = now_ns;
    gap_avg_ns += (gap - gap_avg_ns) / 4;
    return gap_avg_ns >= want;
  }

  /// The sending thread writes the one frame queued (just appended) itself, if the layer lets it
  /// (no write of Beast's in flight): false leaves it queued. @pre m is held and direct_ok
  bool write_now_locked() {
    if (queued.load(std::memory_order_relaxed) != 1 || held.load(std::memory_order_relaxed)) return false;
    std::vector<codec::byte>& q = pending.empty() ? urgent : pending;
    direct_batch.clear();
    direct_batch.add(codec::bytes_view(q.data(), q.size()));
    std::uint64_t seq = next_out;
    direct_wire.clear();
    append_message(direct_batch, seq, direct_wire, direct_rng);
    // generation: the I/O thread changes it only after taking direct_ok away (under m)
    const auto r = ws->next_layer().try_write_now(
        direct_wire.data(), direct_wire.size(), [self = shared_from_this(), gen = generation](beast::error_code ec) {
          if (gen != self->generation) return;
          if (ec) return self->lost("write: " + ec.message());
          self->flush(); // the rest of a direct write is out: what queued meanwhile goes now
        });
    if (r == decltype(r)::refused) return false;
    next_out = seq;
    if (&q == &urgent) urgent_frames.store(0, std::memory_order_relaxed);
    q.clear();
    queued.fetch_sub(1, std::memory_order_relaxed);
    sent.fetch_add(1, std::memory_order_relaxed);
    writes.fetch_add(1, std::memory_order_relaxed);
    direct_writes.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  /// I/O thread: senders may no longer write themselves (it is about to write, or the
  /// connection changes). Takes m only when they could.
  void take_direct() {
    if (!direct_on) return;
    std::lock_guard<std::mutex> g(m);
    direct_ok = direct_on = false;
  }

  /// Encodes `msg` at the end of `buf` (literal strings); false if it does not fit a frame.
  bool append_frame(codec::message& msg, std::vector<codec::byte>& buf) const {
    codec::encoder_options eo;
    eo.max_frame_size = opt.max_message;
    eo.pool_strings = false; // frames stay valid on any connection (no pool to refer to)
    codec::encoder lit(eo);
    const std::size_t need = lit.literal_size(msg);
    if (need > opt.max_message) return false;
    const std::size_t at = buf.size();
    buf.resize(at + need);
    buf.resize(at + lit.encode(msg, buf.data() + at, need).size); // a failed encode writes 0 bytes
    return buf.size() > at;
  }

  /// Encodes `msg` at the end of `pending` (`urgent` if CRITICAL). @pre m is held
  errc append_locked(codec::message& msg) {
    const bool crit = msg.prio == codec::priority::critical;
    if (!append_frame(msg, crit ? urgent : pending)) return errc::too_large;
    if (crit) urgent_frames.fetch_add(1, std::memory_order_relaxed);
    queued.fetch_add(1, std::memory_order_relaxed);
    return errc::ok;
  }

  /// A data message to a destination (or a broadcast), from this agent.
  errc send_data(const actors::destination& to, bool broadcast, std::string_view agent_type, std::string_view payload,
                 const actors::send_options& opts, std::string_view reply_to = {}, std::uint8_t flags = 0,
                 std::vector<codec::byte>* copy = nullptr) {
    codec::message msg;
    msg.flags = flags;
    msg.type = opts.type;
    msg.prio = opts.prio.value_or(opt.priority);
    msg.timestamp_ns = codec::wall_clock_ns();
    codec::repeated_entry cap{codec::field::capability, to.name, {}};
    if (broadcast) {
      msg.flags |= codec::flag::broadcast;
      if (!agent_type.empty()) msg.set(codec::field::agent_type, agent_type);
    } else if (to.what == actors::destination::kind::topic) {
      msg.set_topic(to.name);
    } else if (to.what == actors::destination::kind::agent) {
      msg.set(codec::field::target, to.name);
    } else {
      msg.repeated = codec::repeated_fields(&cap, 1);
    }
    msg.set(codec::field::source, opt.id);
    if (!reply_to.empty()) msg.set(codec::field::reply_to, reply_to);
    if (opts.correlation_id) msg.set(codec::field::correlation_id, opts.correlation_id);
    if (opts.message_id) msg.set(codec::field::message_id, opts.message_id);
    if (opts.deadline_ns) msg.set(codec::field::deadline, opts.deadline_ns);
    if (opts.max_attempts) msg.set(codec::field::max_attempts, opts.max_attempts);
    msg.payload = codec::bytes_view(payload);
    if (copy && !append_frame(msg, *copy)) return errc::too_large;
    return enqueue(msg);
  }

  /// Sends an acknowledged message's frame again (I/O thread, from sweep).
  void resend_locked(unacked_publish& u) {
    if (u.frame.size() < codec::defaults::header_size) return; // publish_acked has not stored it yet
    u.frame[codec::offset::flags] |= codec::flag::redelivery; // the checksum is redone on writing
    pending.insert(pending.end(), u.frame.begin(), u.frame.end());
    queued.fetch_add(1, std::memory_order_relaxed);
    u.written_by = sent.load(std::memory_order_relaxed) + queued.load(std::memory_order_relaxed);
    redelivered.fetch_add(1, std::memory_order_relaxed);
  }

  /// The first 1 ms tick at or after `t` (a timer never fires early).
  std::uint64_t tick_of(clk::time_point t) const {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t - epoch).count();
    return us <= 0 ? 0 : static_cast<std::uint64_t>((us + 999) / 1000);
  }
  /// Whole ticks elapsed at `t`: what the wheel may advance to (a timer at tick k fires once k ms passed).
  std::uint64_t elapsed_ticks(clk::time_point t) const {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - epoch).count();
    return ms <= 0 ? 0 : static_cast<std::uint64_t>(ms);
  }
  /// @pre m is held
  void schedule_locked(timer_kind k, std::uint64_t id, clk::time_point at) {
    timers.schedule(tick_of(at), std::make_pair(k, id));
  }

  /// A control frame of ours (HEARTBEAT, ACK, NACK): CRITICAL, stamped now.
  static codec::message control_frame(codec::msg_type type) {
    codec::message c;
    c.type = type;
    c.prio = codec::priority::critical;
    c.timestamp_ns = codec::wall_clock_ns();
    return c;
  }

  /// Writes a control frame of ours ahead of everything queued (I/O thread): never refused, and
  /// not held back with our data while the node holds us.
  void send_control(codec::message& c) {
    append_frame(c, front);
    if (!writing) flush();
  }

  void send_ack() {
    ack_due = false;
    codec::message a = control_frame(codec::msg_type::ack);
    a.set(codec::field::message_id, last_in_seq); // cumulative: every node frame up to this one
    send_control(a);
  }

  /// Grants the node what our handlers finished since the last CREDIT. Ahead of everything
  /// queued (front), never refused: the node writes nothing more to us until it has it.
  void send_credit() {
    codec::message c = control_frame(codec::msg_type::credit);
    c.set(codec::field::credit, consumed);
    consumed = 0;
    send_control(c);
  }

  static codec::message subscription_frame(codec::msg_type type, std::string_view pattern, std::string_view group,
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

  /// SUBSCRIBE / UNSUBSCRIBE: `edit` updates the subscription list (under the lock); the future
  /// is answered by the node's ACK / NACK for the frame's message_id, or by a refusal to queue.
  template <class Edit>
  std::future<errc> change(codec::msg_type type, const std::string& pattern, const std::string& group, Edit&& edit) {
    auto p = std::make_shared<std::promise<errc>>();
    auto f = p->get_future();
    const std::uint64_t token = next_token++;
    {
      std::lock_guard<std::mutex> g(m);
      edit();
      sub_acks[token] = p;
    }
    codec::message msg = subscription_frame(type, pattern, group, token);
    if (const errc e = enqueue(msg); e != errc::ok) {
      std::lock_guard<std::mutex> g(m);
      if (sub_acks.erase(token)) p->set_value(e);
    }
    return f;
  }

  // ---- the I/O thread ----
  void start() {
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

  void dial() {
    if (closing.load()) return;
    const std::uint64_t gen = ++generation;
    ws.emplace(ioc);
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
        self->ws->async_handshake(self->opt.host + ":" + std::to_string(self->opt.port), "/",
                                  [self, gen](beast::error_code ec3) {
                                    if (gen != self->generation) return;
                                    if (ec3) return self->lost("handshake: " + ec3.message());
                                    self->on_open(gen);
                                  });
      });
    });
  }

  void on_open(std::uint64_t gen) {
    connects.fetch_add(1, std::memory_order_relaxed);
    dec.emplace([&] {
      codec::decoder_options o;
      o.max_frame_size = opt.max_message;
      return o;
    }());
    next_out = 0;
    writing = false;
    held.store(false, std::memory_order_relaxed); // a new connection: nobody holds us
    codec::message r;
    r.type = codec::msg_type::register_agent;
    r.prio = opt.priority;
    r.timestamp_ns = codec::wall_clock_ns();
    r.set(codec::field::source, opt.id);
    if (opt.acks) r.flags |= codec::flag::ack_requested; // we acknowledge what we receive
    if (opt.receive_window) r.set(codec::field::credit, opt.receive_window);
    consumed = 0;
    if (!opt.type.empty()) r.set(codec::field::agent_type, opt.type);
    r.set(codec::field::heartbeat_ms, static_cast<std::uint64_t>(opt.heartbeat.count()));
    std::vector<codec::repeated_entry> rep;
    for (const auto& c : opt.capabilities)
      rep.push_back({codec::field::capability, c, {}});
    for (const auto& s : opt.subscriptions)
      rep.push_back({codec::field::subscription, s, {}});
    r.repeated = codec::repeated_fields(rep.data(), rep.size());
    std::vector<codec::byte> frame;
    if (!append_frame(r, frame)) return lost("REGISTER does not encode");
    batch.clear();
    batch.add(codec::bytes_view(frame.data(), frame.size()));
    wire.clear();
    append_batch();
    write_wire(gen);
    read(gen);
  }

  void read(std::uint64_t gen) {
    ws->async_read(in, [self = shared_from_this(), gen](beast::error_code ec, std::size_t) {
      if (gen != self->generation) return;
      if (ec) return self->lost("read: " + ec.message());
      if (!self->on_frame()) return;
      self->in.consume(self->in.size());
      if (self->ack_due) self->send_ack(); // after the handlers of everything in this message
      if (self->consumed && self->consumed >= std::max<std::uint32_t>(1, self->opt.receive_window / 2))
        self->send_credit();
      self->read(gen);
    });
  }

  /// Writes what waits — re-subscriptions first, then the queue in send order — as one frame or
  /// one BATCH, unless a write is in flight (its completion flushes again).
  void flush() {
    if (writing) return; // its completion flushes
    if (!registered.load() || !ws) {
      std::lock_guard<std::mutex> g(m);
      io_awake = false; // the WELCOME flushes
      return;
    }
    take_direct(); // next_out and the socket are ours again
    wire.clear();
    while (wire.size() < detail::write_gather_bytes && gather())
      ;
    if (!wire.empty()) write_wire(generation);
    else if (wire.capacity() > detail::write_gather_bytes / 4) wire = {}; // quiet: no write buffer held
  }

  /// Appends one WebSocket message (a frame or a BATCH) to `wire`: re-subscriptions and control
  /// frames first, CRITICAL messages next, then — unless the node holds us — the queue in send
  /// order. False if nothing (more) may go now.
  bool gather() {
    batch.clear();
    if (urgent_frames.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> g(m);
      express.insert(express.end(), urgent.begin(), urgent.end());
      urgent.clear();
      const std::size_t k = urgent_frames.exchange(0, std::memory_order_relaxed);
      queued.fetch_sub(k, std::memory_order_relaxed);
      sent.fetch_add(k, std::memory_order_relaxed);
    }
    take_into_batch(front, front_pos);
    take_into_batch(express, express_pos); // kept across a reconnect (front is not: its frames were that connection's)
    // CREDIT 0: our data waits (io_awake stays set: CREDIT 1 flushes)
    if (!held.load(std::memory_order_relaxed)) {
      if (out_pos == out.size()) {
        std::lock_guard<std::mutex> g(m);
        out.clear();
        out_pos = 0;
        out.swap(pending); // the senders keep the old buffer's capacity
        if (out.empty() && batch.empty()) {
          io_awake = false; // nothing to write: the next send posts
          // nor written by this flush: a sender may write itself until the next flush
          direct_ok = direct_on = wire.empty() && !closing.load();
          return false;
        }
      }
      const std::size_t frames = take_into_batch(out, out_pos);
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
  void append_batch() { append_message(batch, next_out, wire, rng); }

  /// Numbers `b`'s frames from `seq`, checksums them, and appends them to `out` as one WebSocket
  /// message masked with a key from `keys` (the I/O thread's batch, or a sender's direct write).
  static void append_message(outbound_batch& b, std::uint64_t& seq, std::vector<unsigned char>& out,
                             std::mt19937_64& keys) {
    const codec::bytes_view bytes = b.finish(seq);
    detail::append_masked_frame(out, bytes.data(), bytes.size(), static_cast<std::uint32_t>(keys()));
  }

  /// Senders blocked on a full queue go on once it has drained to half.
  void wake_blocked() {
    if (!blocked.load(std::memory_order_relaxed) || queued.load(std::memory_order_relaxed) > opt.max_queued / 2) return;
    std::lock_guard<std::mutex> g(m); // (a sender between its check and its wait holds m: no lost wake-up)
    room.notify_all();
  }

  /// Adds whole frames from buf[pos...] while they fit, returning how many; clears buf (keeping
  /// its capacity) once all are taken.
  std::size_t take_into_batch(std::vector<codec::byte>& buf, std::size_t& pos) {
    std::size_t frames = 0;
    while (pos < buf.size() && batch.fits(frame_at(buf, pos))) {
      const std::size_t n = frame_at(buf, pos);
      batch.add(codec::bytes_view(buf.data() + pos, n));
      pos += n;
      ++frames;
    }
    if (pos == buf.size()) {
      buf.clear();
      pos = 0;
    }
    return frames;
  }

  /// Writes `wire` (WebSocket frames masked here, RFC 6455: one system call for many messages).
  void write_wire(std::uint64_t gen) {
    writes.fetch_add(1, std::memory_order_relaxed);
    writing = true;
    ws->next_layer().write_frames(net::buffer(wire), [self = shared_from_this(), gen](beast::error_code ec, std::size_t) {
      if (gen != self->generation) return;
      self->writing = false;
      if (ec) return self->lost("write: " + ec.message());
      self->flush();
    });
  }

  /// One WebSocket message from the node. False: the connection is being dropped.
  bool on_frame() {
    if (!ws->got_binary()) {
      lost("the node sent a text message");
      return false;
    }
    codec::message msg;
    const codec::decode_status st =
        dec->decode(codec::bytes_view(static_cast<const codec::byte*>(in.data().data()), in.size()), msg);
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

  void dispatch(const codec::message& msg) {
    using t = codec::msg_type;
    if (opt.receive_window && codec::is_data(msg.type)) ++consumed; // granted back once read() handled it
    switch (msg.type) {
      case t::welcome: return on_welcome();
      case t::ack:
      case t::nack: {
        const errc e = msg.type == t::ack ? errc::ok : to_errc(msg.num(codec::field::error_code));
        std::shared_ptr<std::promise<errc>> p;
        {
          std::lock_guard<std::mutex> g(m);
          if (auto it = sub_acks.find(msg.message_id()); it != sub_acks.end()) {
            p = std::move(it->second);
            sub_acks.erase(it);
          } else if (auto u = unacked.find(msg.message_id()); u != unacked.end()) {
            p = std::move(u->second.done);
            unacked.erase(u);
            if (e == errc::ok) acked.fetch_add(1, std::memory_order_relaxed);
          } else {
            return; // an answer to a message sent again, already answered
          }
        }
        p->set_value(e);
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
    if (opt.acks) {
      last_in_seq = msg.sequence;
      ack_due = true;
    }
    if (msg.has(codec::field::message_id) &&
        dedup.check(msg.str(codec::field::source), msg.message_id()) == scheduling::dedup_window::verdict::duplicate &&
        !retrying.erase(retry_key(msg))) { // a message our handler failed comes again on purpose
      duplicates.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    received.fetch_add(1, std::memory_order_relaxed);
    const incoming in_msg = actors::to_delivery(msg);
    message_handler h;
    {
      std::lock_guard<std::mutex> g(m);
      if (!in_msg.topic.empty())
        for (const subscription& s : subs)
          if (s.handler && actors::pattern_matches(s.pattern, in_msg.topic)) {
            h = s.handler;
            break;
          }
      if (!h) h = fallback;
    }
    if (!h) return;
    try {
      h(in_msg);
    } catch (const std::exception& e) {
      handler_failed(msg, e.what());
    } catch (...) {
      handler_failed(msg, "not a std::exception");
    }
  }

  static std::string retry_key(const codec::message& msg) {
    return std::string(msg.str(codec::field::source)) + '\0' + std::to_string(msg.message_id());
  }

  /// A handler threw: with acks the node hears it (NACK of the frame's sequence) and sends the
  /// message again per its retry policy; without, it is only counted and logged.
  void handler_failed(const codec::message& msg, const char* what) {
    handler_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("flowbus client {}: a handler failed: {}", opt.id, what);
    if (!opt.acks) return;
    if (msg.has(codec::field::message_id) && retrying.size() < 4096) retrying.insert(retry_key(msg));
    codec::message n = control_frame(codec::msg_type::nack);
    n.set(codec::field::message_id, msg.sequence);
    n.set(codec::field::error_code, code_of(reason::handler_failed));
    send_control(n); // before this read's ACK, which then covers the frame as handled (failed)
  }

  static errc to_errc(std::uint64_t code) {
    return code >= code_of(reason::routing_base) ? static_cast<errc>(code - code_of(reason::routing_base))
                                                 : errc::node_stopped;
  }

  void complete(std::uint64_t corr, reply_result r) {
    std::function<void(reply_result)> done;
    {
      std::lock_guard<std::mutex> g(m);
      auto it = requests.find(corr);
      if (it == requests.end()) return; // timed out already
      done = std::move(it->second.done);
      requests.erase(it);
    }
    done(std::move(r));
  }

  void on_welcome() {
    registered.store(true);
    failed_dials = 0;
    {
      // re-subscribe first (before what waited, in their order); nobody waits for these acks
      std::lock_guard<std::mutex> g(m);
      front.clear();
      front_pos = 0;
      for (const subscription& sub : subs) {
        codec::message msg = subscription_frame(codec::msg_type::subscribe, sub.pattern, sub.group, 0);
        append_frame(msg, front); // validated when first subscribed
      }
    }
    answer_welcome(errc::ok);
    heartbeat(generation);
    flush();
  }

  void answer_welcome(errc e) {
    std::lock_guard<std::mutex> g(m);
    if (welcome) {
      welcome->set_value(e);
      welcome.reset();
    }
  }

  void heartbeat(std::uint64_t gen) {
    heartbeat_timer.expires_after(opt.heartbeat / 2);
    heartbeat_timer.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->generation || !self->registered.load()) return;
      codec::message beat = control_frame(codec::msg_type::heartbeat);
      self->send_control(beat);
      self->heartbeat(gen);
    });
  }

  void sweep() {
    sweep_timer.expires_after(5ms);
    sweep_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      const auto now = clk::now();
      std::vector<std::function<void(reply_result)>> expired;
      std::vector<std::shared_ptr<std::promise<errc>>> gave_up;
      bool resent = false;
      {
        std::lock_guard<std::mutex> g(self->m);
        self->timers.advance(self->elapsed_ticks(now), [&](std::pair<timer_kind, std::uint64_t>&& t) {
          if (t.first == timer_kind::request) {
            auto it = self->requests.find(t.second);
            if (it == self->requests.end()) return; // answered
            expired.push_back(std::move(it->second.done));
            self->requests.erase(it);
            return;
          }
          auto it = self->unacked.find(t.second);
          if (it == self->unacked.end()) return; // acknowledged
          auto& u = it->second;
          // attempts are spent by time, written or not: a message still in our own queue (the
          // node gone, or holding us) is not copied again, but its ack_timeouts count all the
          // same, so the future resolves within ack_attempts x ack_timeout whatever the link does
          if (u.attempts >= self->opt.ack_attempts) {
            gave_up.push_back(std::move(u.done));
            self->unacked.erase(it);
            return;
          }
          ++u.attempts;
          if (self->sent.load(std::memory_order_relaxed) < u.written_by) { // still queued: no copy
            self->schedule_locked(timer_kind::ack, t.second, now + self->opt.ack_timeout);
            return;
          }
          self->resend_locked(u);
          self->schedule_locked(timer_kind::ack, t.second, now + self->opt.ack_timeout);
          resent = true;
        });
      }
      for (auto& done : expired)
        done(reply_result{errc::timeout, {}, {}});
      for (auto& p : gave_up)
        p->set_value(errc::timeout);
      if (resent) self->flush();
      if (!self->closing.load()) self->sweep();
    });
  }

  /// The connection is gone (or never came): reconnect with backoff unless closing.
  void lost(const std::string& why) {
    take_direct(); // before the socket closes and generation moves
    const bool was = registered.exchange(false);
    ++generation; // every completion of the old connection is now stale
    heartbeat_timer.cancel();
    if (ws) {
      beast::error_code ignored;
      beast::get_lowest_layer(*ws).socket().close(ignored);
    }
    writing = false;
    if (closing.load()) return;
    if (was) spdlog::info("flowbus client {}: connection lost ({}): reconnecting", opt.id, why);
    if (!opt.reconnect) { // nothing pending can be answered any more: say so now
      gone.store(true);
      answer_welcome(errc::node_stopped);
      fail_pending(errc::node_stopped);
      return;
    }
    // exponential backoff with full jitter: uniform in [0, min(max, initial * 2^(n-1))]
    retry_timer.expires_after(scheduling::full_jitter(++failed_dials, opt.backoff_initial, opt.backoff_max, rng));
    retry_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->dial();
    });
  }

  void shutdown() {
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
  void fail_pending(errc e) {
    decltype(sub_acks) sub_answers;
    decltype(requests) reqs;
    decltype(unacked) acks;
    {
      std::lock_guard<std::mutex> g(m);
      sub_answers.swap(sub_acks);
      reqs.swap(requests);
      acks.swap(unacked);
    }
    for (auto& a : sub_answers)
      a.second->set_value(e);
    for (auto& r : reqs)
      r.second.done(reply_result{e, {}, {}});
    for (auto& u : acks)
      u.second.done->set_value(e);
  }

  bool joined_within(std::chrono::milliseconds d) {
    const auto until = clk::now() + d;
    while (clk::now() < until) {
      if (ioc.stopped()) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  void closing_flush() {
    take_direct();
    {
      std::lock_guard<std::mutex> g(m); // after everything queued (enqueue refuses once closing)
      codec::message bye;
      bye.type = codec::msg_type::goodbye;
      bye.timestamp_ns = codec::wall_clock_ns();
      append_locked(bye);
    }
    close_by = clk::now() + opt.close_timeout;
    drain_then_close();
  }

  void drain_then_close() {
    bool empty;
    {
      std::lock_guard<std::mutex> g(m);
      empty = pending.empty() && urgent.empty() && out_pos == out.size() && front_pos == front.size() &&
              express_pos == express.size();
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

  void stop_io() {
    work.reset();
    ioc.stop();
  }
};

client::client(client_options options) : impl_(std::make_shared<impl>(std::move(options))) {}

client::~client() { close(); }

errc client::connect(std::chrono::milliseconds timeout) {
  std::future<errc> f;
  {
    std::lock_guard<std::mutex> g(impl_->m);
    if (impl_->registered.load()) return errc::ok;
    impl_->welcome.emplace();
    f = impl_->welcome->get_future();
  }
  impl_->start();
  if (f.wait_for(timeout) != std::future_status::ready) return errc::timeout;
  return f.get();
}

bool client::connected() const noexcept { return impl_->registered.load(); }

void client::on_message(message_handler h) {
  std::lock_guard<std::mutex> g(impl_->m);
  impl_->fallback = std::move(h);
}

std::future<errc> client::subscribe(std::string pattern, message_handler h, std::string group) {
  if (actors::validate_pattern(pattern) != actors::topic_errc::ok) {
    std::promise<errc> refused;
    refused.set_value(errc::invalid_pattern);
    return refused.get_future();
  }
  return impl_->change(codec::msg_type::subscribe, pattern, group, [&] {
    auto& i = *impl_;
    auto [at, fresh] = i.sub_index.try_emplace(impl::sub_key(pattern, group));
    if (fresh) at->second = i.subs.insert(i.subs.end(), subscription{pattern, group, std::move(h)});
    else at->second->handler = std::move(h); // the same subscription again: its handler is the new one
  });
}

std::future<errc> client::unsubscribe(std::string pattern, std::string group) {
  return impl_->change(codec::msg_type::unsubscribe, pattern, group, [&] {
    auto& i = *impl_;
    if (auto at = i.sub_index.find(impl::sub_key(pattern, group)); at != i.sub_index.end()) {
      i.subs.erase(at->second);
      i.sub_index.erase(at);
    }
  });
}

errc client::publish(std::string_view topic, std::string_view payload, const actors::send_options& opts) {
  if (actors::validate_topic(topic) != actors::topic_errc::ok) return errc::invalid_topic;
  return impl_->send_data(actors::destination::topic(topic), false, {}, payload, opts);
}

std::future<errc> client::publish_acked(std::string_view topic, std::string_view payload, actors::send_options opts) {
  auto p = std::make_shared<std::promise<errc>>();
  auto f = p->get_future();
  if (actors::validate_topic(topic) != actors::topic_errc::ok) {
    p->set_value(errc::invalid_topic);
    return f;
  }
  impl& i = *impl_;
  opts.message_id = i.next_token++; // the same id space as subscription tokens: one ACK lookup
  std::vector<codec::byte> frame;
  {
    std::lock_guard<std::mutex> g(i.m); // registered before it can be answered
    i.unacked[opts.message_id] = impl::unacked_publish{{}, 1, p};
    i.schedule_locked(impl::timer_kind::ack, opts.message_id, clk::now() + i.opt.ack_timeout);
  }
  const errc e = i.send_data(actors::destination::topic(topic), false, {}, payload, opts, {}, codec::flag::ack_requested,
                             &frame);
  std::lock_guard<std::mutex> g(i.m);
  auto it = i.unacked.find(opts.message_id);
  if (it == i.unacked.end()) return f; // answered already
  if (e != errc::ok) {
    i.unacked.erase(it);
    p->set_value(e);
  } else {
    it->second.frame = std::move(frame);
    it->second.written_by = i.sent.load(std::memory_order_relaxed) + i.queued.load(std::memory_order_relaxed);
  }
  return f;
}

errc client::send(const actors::destination& to, std::string_view payload, const actors::send_options& opts) {
  if (to.what == actors::destination::kind::topic && actors::validate_topic(to.name) != actors::topic_errc::ok)
    return errc::invalid_topic;
  return impl_->send_data(to, false, {}, payload, opts);
}

errc client::broadcast(std::string_view payload, std::string_view agent_type, const actors::send_options& opts) {
  return impl_->send_data(actors::destination::topic({}), true, agent_type, payload, opts);
}

void client::request(const actors::destination& to, std::string_view payload, std::chrono::milliseconds timeout,
                     std::function<void(reply_result)> done) {
  actors::send_options o;
  o.type = codec::msg_type::request;
  o.correlation_id = impl_->next_corr++;
  {
    std::lock_guard<std::mutex> g(impl_->m);
    impl_->requests[o.correlation_id] = pending_request{std::move(done)};
    impl_->schedule_locked(impl::timer_kind::request, o.correlation_id, clk::now() + timeout);
  }
  if (const errc e = impl_->send_data(to, false, {}, payload, o, impl_->opt.id); e != errc::ok)
    impl_->complete(o.correlation_id, reply_result{e, {}, {}});
}

std::future<reply_result> client::request(const actors::destination& to, std::string_view payload,
                                          std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<reply_result>>();
  auto f = p->get_future();
  request(to, payload, timeout, [p](reply_result r) { p->set_value(std::move(r)); });
  return f;
}

errc client::respond(const incoming& req, std::string_view payload) {
  actors::send_options o;
  o.type = codec::msg_type::reply;
  o.correlation_id = req.correlation_id;
  o.prio = req.prio;
  return impl_->send_data(actors::destination::agent(req.reply_to), false, {}, payload, o);
}

void client::close() { impl_->shutdown(); }

client_stats client::stats() const {
  const impl& i = *impl_;
  return client_stats{i.sent.load(), i.received.load(), i.writes.load(), i.batches.load(), i.connects.load(),
                      i.refused.load(), i.holds.load(), i.unsent.load(), i.acked.load(), i.redelivered.load(),
                      i.duplicates.load(), i.handler_failures.load(), i.blocked_sends.load(),
                      i.direct_writes.load()};
}

bool client::held() const noexcept { return impl_->held.load(std::memory_order_relaxed); }

const client_options& client::options() const noexcept { return impl_->opt; }

} // namespace flowbus::transport
