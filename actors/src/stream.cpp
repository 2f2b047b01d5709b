#include <flowbus/actors/stream.hpp>

#include <flowbus/actors/client.hpp>
#include <flowbus/actors/endpoint.hpp>
#include <flowbus/codec/clock.hpp>

#include <flowbus/codec/topic.hpp>

#include "node_impl.hpp"
#include "record_file.hpp"
#include "stream_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace flowbus::actors {

bool valid_stream_name(const std::string& name) noexcept {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

/// A stream's log writes and syncs on its own thread: the stream's thread (or an inline round) goes
/// on storing and delivering while a write() or an fdatasync runs — consumers are served from the
/// log's memory, not held up by the disk; only ACKs wait for it.
static log_options with_background_io(log_options o, std::function<void()> on_io) {
  o.background_io = true;
  o.on_io = std::move(on_io);
  return o;
}

stream_writer::stream_writer(node::impl* core, stream_config cfg)
    : core_(core), cfg_(std::move(cfg)), log_(cfg_.directory / cfg_.name, with_background_io(cfg_.log, [this] { on_io(); })),
      // a memory stream starts empty after a restart: its consumers' positions would mean nothing
      consumers_(cfg_.log.in_memory ? std::filesystem::path() : cfg_.directory / cfg_.name / "consumers"),
      dec_(codec::stored_frame_decoding()) {
  if (const std::error_code e = detail::make_directories(cfg_.directory / cfg_.name))
    throw std::system_error(e, "stream " + cfg_.name + ": its directory");
  consumers_.load(log_);
  appended_ = settled_ = log_.last(); // what recovery found is on disk
  io_.deliver = [this](const consumer_config& c, const log_record& r, std::uint64_t token, std::uint32_t n) {
    return deliver(c, r, token, n);
  };
  io_.has_interest = [this](const consumer_config& c) { return has_interest(c); };
  io_.poison = [this](const consumer_config& c, const log_record& r, std::uint32_t n) { poison(c, r, n); };
  if (log_.recovered().torn_bytes || log_.recovered().damaged_bytes)
    spdlog::warn("flowbus: stream {}: recovered {} records; cut a torn tail of {} bytes, skipped {} damaged bytes",
                 cfg_.name, log_.recovered().records, log_.recovered().torn_bytes, log_.recovered().damaged_bytes);
}

stream_writer::~stream_writer() { stop(); }

void stream_writer::start(std::unique_ptr<client> agent, std::shared_ptr<endpoint> ep,
                          std::shared_ptr<client_waiter> waiter) {
  agent_ = std::move(agent);
  waiter_ = std::move(waiter);
  ep->set_confirms(); // before it is routable: every frame it gets is confirmed by this thread
  // a stream holds its publishers when it falls behind (port.cpp): from 8 192 queued frames (well
  // before the node's buffer pool runs dry) until 4 096, so what is published to it is not shed as
  // a slow subscriber's would be; the rest of its mailbox is room for what is in flight meanwhile
  ep->water_marks(std::min<std::uint64_t>(ep->capacity() / 2, 8192), std::min<std::uint64_t>(ep->capacity() / 4, 4096));
  ep_ = ep;
  for (const std::string& s : cfg_.subjects)
    if (const errc e = agent_->subscribe(s); e != errc::ok)
      throw std::invalid_argument("stream " + cfg_.name + ": subject '" + s + "': " + to_string(e));
  thread_ = std::thread([this] { run(); });
  std::lock_guard<std::mutex> g(gate_->m);
  gate_->w = this; // pushes may now be served inline
}

void stream_writer::stop() {
  stopping_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> g(gate_->m); // waits for an inline step in progress
    gate_->w = nullptr;
  }
  if (thread_.joinable()) thread_.join(); // (its last round hands the last positions)
  if (pos_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> g(pm_);
      pos_stop_ = true;
    }
    pcv_.notify_one();
    pos_thread_.join(); // once all are written
  }
  agent_.reset(); // its port holds the node: let go, or the node would hold itself
  ep_.reset();
}

void stream_writer::settle_durable(std::uint64_t durable) {
  settled_ = std::max(settled_, durable);
  while (!waiting_.empty() && waiting_.front().first <= durable) {
    core_->confirmations.settle(waiting_.front().second.data(), errc::ok);
    waiting_.pop_front();
  }
  if (waiting_.empty()) acks_waiting_.store(false, std::memory_order_relaxed);
}

void stream_writer::on_io() {
  // on the log's I/O thread: a write or sync finished. Senders waiting for a confirmation learn
  // it from the next commit(): wake the thread for it (not an inline round: this thread is the disk's)
  if (acks_waiting_.load(std::memory_order_relaxed) && waiter_) waiter_->wake();
}

void stream_writer::fail_all(const std::exception& e, std::vector<scheduling::buffer_ref>& batch) { // under m_
  const std::uint64_t unsettled = appended_ > settled_ ? appended_ - settled_ : 0;
  failures_ += batch.size() + unsettled;
  spdlog::error("flowbus: stream {}: {} ({} messages not stored: their senders get store_failed)", cfg_.name, e.what(),
                batch.size() + unsettled);
  for (const auto& f : batch)
    core_->confirmations.settle(f.data(), errc::store_failed);
  for (const auto& w : waiting_)
    core_->confirmations.settle(w.second.data(), errc::store_failed);
  batch.clear();
  waiting_.clear();
  acks_waiting_.store(false, std::memory_order_relaxed);
  settled_ = appended_;
}

void stream_writer::take(received& r, std::uint64_t now_ns, std::vector<scheduling::buffer_ref>& batch) {
  if (!r.msg.target.empty() && r.msg.target == agent_->id()) { // to the stream itself, not captured
    if (!core_->confirmations.idle()) core_->confirmations.settle(r.frame.data(), errc::ok);
    if (r.msg.type == codec::msg_type::reply) { // a consumer's ack (or NAK, WPI, TERM)
      consumers_.on_reply(r.msg.correlation_id, r.msg.payload, log_, io_, std::chrono::steady_clock::now());
    } else if (r.msg.is_request()) {
      agent_->respond(
          r.msg, R"({"error":{"code":"bad_request","description":"streams are managed through the agent $streams"}})");
    }
    return;
  }
  batch.push_back(std::move(r.frame));
  const std::uint64_t seq = log_.append(codec::bytes_view(batch.back().data(), batch.back().size()), now_ns);
  // the frame's buffer is kept until the record is durable only if a sender waits for it (its
  // address is the confirmation's key); else it goes back to the pool now — while a sync runs,
  // a stream may have a great many records waiting, and their buffers are the node's
  const bool confirmed = !core_->confirmations.idle() && core_->confirmations.tracks(batch.back().data());
  if (confirmed) {
    acks_waiting_.store(true, std::memory_order_relaxed); // before the record is handed to the log's thread
    waiting_.emplace_back(seq, std::move(batch.back()));
  }
  batch.pop_back();
  appended_ = seq;
}

namespace {
/// Whether this thread is inside a stream's step: a delivery it makes into another stream is not
/// served inline (one stream's lock at a time per thread).
thread_local bool in_stream_step = false;
/// An inline step only after a quiet spell this long: pushes this sparse would each wake the thread.
constexpr auto inline_gap = std::chrono::microseconds(5);
} // namespace

bool stream_writer::step(bool last_round, std::size_t cap, bool housekeeping) {
  const bool outer = in_stream_step;
  in_stream_step = true;
  bool more = false;
  log_.hold_io(true); // the log's I/O thread is woken once the round has delivered
  try {
    const std::uint64_t now_ns = codec::wall_clock_ns();
    for (std::size_t n = 0;;) { // what the mailbox holds: one write, one commit
      std::optional<received> r = agent_->try_receive();
      if (!r) break;
      take(*r, now_ns, batch_);
      if (++n == cap) {
        more = true;
        break;
      }
    }
    ep_->catch_up(); // drained: held publishers go on once it is down to its low mark
    if (last_round) log_.sync();
    const auto now = std::chrono::steady_clock::now();
    settle_durable(last_round ? log_.durable() : log_.commit(now));
    if (housekeeping && now - last_retention_ >= std::chrono::seconds(1)) { // whole old segments past the limits go
      last_retention_ = now;
      log_.enforce_retention(now_ns);
    }
    if (consumers_.size()) {
      next_due_ = last_round ? std::chrono::steady_clock::time_point::max()
                             : consumers_.pump(log_, log_.last(), io_, now); // what is written (not yet synced, maybe)
      if (housekeeping) to_save_ = consumers_.changed(last_round, now); // run() hands them to be written
    } else {
      next_due_ = std::chrono::steady_clock::time_point::max(); // (the last one may have just gone)
    }
  } catch (const std::exception& e) {
    fail_all(e, batch_);
  }
  log_.hold_io(false);
  in_stream_step = outer;
  return more;
}

std::chrono::steady_clock::time_point stream_writer::wake_time(std::chrono::steady_clock::time_point now) const {
  // the log's I/O thread rings when a write or sync finishes that a waiting sender needs (on_io);
  // meanwhile every 10 ms all the same; idle, up to 100 ms (how long stop() may wait); or until a
  // consumer's redelivery or ack deadline
  using ms = std::chrono::milliseconds;
  auto t = now + (!waiting_.empty() ? ms(10) : ms(100));
  if (next_due_ != std::chrono::steady_clock::time_point::max()) t = std::min(t, next_due_ + ms(1));
  return t;
}

void stream_writer::run() {
  for (;;) {
    const bool last_round = stopping_.load(std::memory_order_acquire);
    bool more = false;
    std::chrono::steady_clock::time_point until;
    {
      std::lock_guard<std::mutex> g(m_);
      more = step(last_round, 4096, true);
      const auto now = std::chrono::steady_clock::now();
      until = more ? now : wake_time(now);
      planned_wake_ = until;
    }
    if (!to_save_.empty()) hand_positions();
    if (last_round && !more) break;
    if (!more) agent_->await(until); // its doorbell, an inline step that needs it sooner, or the time
  }
  agent_->leave();
}

void stream_writer::hand_positions() {
  {
    std::lock_guard<std::mutex> g(pm_);
    for (consumer_set::state_file& f : to_save_) {
      auto same = std::find_if(pos_queue_.begin(), pos_queue_.end(),
                               [&](const consumer_set::state_file& q) { return q.consumer == f.consumer; });
      if (same != pos_queue_.end())
        *same = std::move(f); // not yet written: only the newest state counts
      else
        pos_queue_.push_back(std::move(f));
    }
  }
  to_save_.clear();
  if (!pos_thread_.joinable()) pos_thread_ = std::thread([this] { write_positions(); });
  pcv_.notify_one();
}

void stream_writer::write_positions() {
  std::unique_lock<std::mutex> g(pm_);
  for (;;) {
    pcv_.wait(g, [&] { return pos_stop_ || !pos_queue_.empty(); });
    if (pos_queue_.empty()) return; // stopping, all written
    std::vector<consumer_set::state_file> todo;
    todo.swap(pos_queue_);
    g.unlock();
    for (const consumer_set::state_file& f : todo) // each fdatasyncs (one thread: in order)
      consumer_set::write(f);
    {
      std::lock_guard<std::mutex> l(m_);
      for (const consumer_set::state_file& f : todo)
        if (!consumers_.has(f.consumer)) { // removed meanwhile: its file must not come back
          std::error_code ec;
          std::filesystem::remove(f.path, ec);
        }
    }
    g.lock();
  }
}

bool stream_writer::step_inline() noexcept {
  if (stopping_.load(std::memory_order_acquire) || !m_.try_lock()) return false;
  std::lock_guard<std::mutex> g(m_, std::adopt_lock);
  const auto now = std::chrono::steady_clock::now();
  if (now - last_inline_ < inline_gap) return false; // a flood: the thread takes it
  if (log_.may_block()) return false;                 // a segment to roll, the disk behind: the thread waits
  const bool more = step(false, 256, false);
  ++inline_steps_;
  last_inline_ = std::chrono::steady_clock::now();
  if (more) return false; // the thread goes on with the rest
  const auto want = wake_time(last_inline_);
  if (want >= planned_wake_) return true;
  planned_wake_ = want; // the thread must look sooner (a sync to settle, a deadline): ring it
  return false;
}

bool stream_writer::ring_inline(void* context) noexcept {
  if (in_stream_step) return false;
  auto* gate = static_cast<stream_gate*>(context);
  if (!gate->m.try_lock()) return false;
  std::lock_guard<std::mutex> g(gate->m, std::adopt_lock);
  return gate->w && gate->w->step_inline();
}

consumer_io::outcome send_record(client& agent, std::string_view stream, const consumer_config& c, const delivery& v,
                                 const log_record& r, std::uint64_t token, std::uint32_t deliveries,
                                 std::vector<codec::repeated_entry>& headers) {
  const std::string seq = std::to_string(r.seq), time = std::to_string(r.time_ns), n = std::to_string(deliveries);
  const codec::field h = codec::field::header;
  headers.push_back({h, "stream", stream});
  headers.push_back({h, "stream-seq", seq});
  headers.push_back({h, "stream-time", time});
  headers.push_back({h, "stream-topic", v.topic});
  headers.push_back({h, "stream-source", v.source});
  headers.push_back({h, "stream-consumer", c.name});
  headers.push_back({h, "stream-deliveries", n});
  send_options o;
  o.prio = v.prio;
  o.correlation_id = token;
  o.timestamp_ns = v.timestamp_ns; // its age is counted from when it was first published
  o.headers = codec::repeated_fields(headers.data(), headers.size());
  const send_result s = agent.post_request(deliver_destination(c), v.payload, o);
  return s.delivered ? consumer_io::outcome::sent : consumer_io::outcome::refused;
}

bool consumer_has_interest(node::impl& core, const consumer_config& c, routing_table::scratch& scratch) {
  const destination to = deliver_destination(c);
  if (to.what == destination::kind::agent)
    return core.routes.read([&](const routing_table& t) { return t.agent(to.name) != nullptr; });
  route rt;
  core.routes.read([&](const routing_table& t) { t.resolve(to.name, scratch, rt); });
  return !rt.empty();
}

consumer_io::outcome stream_writer::deliver(const consumer_config& c, const log_record& r, std::uint64_t token,
                                            std::uint32_t deliveries) {
  codec::message m;
  if (!dec_.decode(r.frame, m)) {
    spdlog::error("flowbus: stream {}: record {} does not decode: not delivered", cfg_.name, r.seq);
    return consumer_io::outcome::filtered;
  }
  const delivery v = to_delivery(m);
  if (!c.filter.empty() && !codec::pattern_matches(c.filter, v.topic)) return consumer_io::outcome::filtered;
  headers_.clear();
  for (const codec::repeated_entry& e : m.repeated)
    if (e.id == codec::field::header) headers_.push_back(e);
  return send_record(*agent_, cfg_.name, c, v, r, token, deliveries, headers_);
}

bool stream_writer::has_interest(const consumer_config& c) { return consumer_has_interest(*core_, c, scratch_); }

void stream_writer::poison(const consumer_config& c, const log_record& r, std::uint32_t deliveries) {
  scheduling::buffer_ref b = core_->pool.try_acquire(r.frame.size());
  if (!b) {
    spdlog::error("flowbus: stream {}: record {} is poison for consumer {} but no buffer is free to dead-letter it",
                  cfg_.name, r.seq, c.name);
    return;
  }
  std::memcpy(b.data(), r.frame.data(), r.frame.size());
  b.set_size(r.frame.size());
  core_->dead.add(dead_reason::poison, std::move(b), "$stream." + cfg_.name + "/" + c.name, deliveries);
}

consumer_status stream_writer::add_consumer(consumer_config c) {
  if (deliver_destination(c).what == destination::kind::topic)
    for (const std::string& s : cfg_.subjects)
      if (codec::pattern_matches(s, c.deliver_to))
        throw std::invalid_argument("'deliver_to': " + c.deliver_to + " is captured by the stream itself (" + s + ")");
  std::lock_guard<std::mutex> g(m_);
  return consumers_.add(std::move(c), log_, std::chrono::steady_clock::now());
}

bool stream_writer::remove_consumer(std::string_view name) {
  std::lock_guard<std::mutex> g(m_);
  return consumers_.remove(name);
}

std::optional<consumer_status> stream_writer::consumer(std::string_view name) const {
  std::lock_guard<std::mutex> g(m_);
  return consumers_.status(name);
}

stream_status stream_writer::status() const {
  std::lock_guard<std::mutex> g(m_);
  return {cfg_.name,        cfg_.subjects, log_.first(),   log_.last(),        log_.records(),
          log_.bytes(),     log_.durable(), log_.syncs(),   failures_,          inline_steps_,
          log_.recovered(), cfg_.log.sync,  cfg_.log.in_memory, consumers_.all(), {}};
}

} // namespace flowbus::actors
