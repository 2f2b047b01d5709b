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

/// A stream's log syncs on its own thread: the stream's thread goes on storing and delivering
/// while an fdatasync runs (a consumer is not held up by the disk's sync, only ACKs wait for it).
static log_options with_background_sync(log_options o) {
  o.background_sync = true;
  return o;
}

stream_writer::stream_writer(node::impl* core, stream_config cfg)
    : core_(core), cfg_(std::move(cfg)), log_(cfg_.directory / cfg_.name, with_background_sync(cfg_.log)),
      // a memory stream starts empty after a restart: its consumers' positions would mean nothing
      consumers_(cfg_.log.in_memory ? std::filesystem::path() : cfg_.directory / cfg_.name / "consumers"),
      dec_(codec::stored_frame_decoding()) {
  if (const std::error_code e = detail::make_directories(cfg_.directory / cfg_.name))
    throw std::system_error(e, "stream " + cfg_.name + ": its directory");
  consumers_.load(log_);
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

void stream_writer::start(std::unique_ptr<client> agent, std::shared_ptr<endpoint> ep) {
  agent_ = std::move(agent);
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
}

void stream_writer::stop() {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  agent_.reset(); // its port holds the node: let go, or the node would hold itself
  ep_.reset();
}

void stream_writer::settle_durable(std::uint64_t durable) {
  while (!waiting_.empty() && waiting_.front().first <= durable) {
    if (waiting_.front().second) core_->confirmations.settle(waiting_.front().second.data(), errc::ok);
    waiting_.pop_front();
  }
}

void stream_writer::fail_all(const std::exception& e, std::vector<scheduling::buffer_ref>& batch) {
  std::lock_guard<std::mutex> g(m_);
  failures_ += batch.size() + waiting_.size();
  spdlog::error("flowbus: stream {}: {} ({} messages not stored: their senders get store_failed)", cfg_.name, e.what(),
                batch.size() + waiting_.size());
  for (const auto& f : batch)
    core_->confirmations.settle(f.data(), errc::store_failed);
  for (const auto& w : waiting_)
    if (w.second) core_->confirmations.settle(w.second.data(), errc::store_failed);
  batch.clear();
  waiting_.clear();
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
  waiting_.emplace_back(seq, confirmed ? std::move(batch.back()) : scheduling::buffer_ref());
  batch.pop_back();
}

void stream_writer::run() {
  std::vector<scheduling::buffer_ref> batch; // taken, not yet appended: failed with the rest on an error
  for (;;) {
    const bool last_round = stopping_.load(std::memory_order_acquire);
    // wait for a message (the doorbell wakes it); while a batch waits for its sync (on the log's
    // thread), 1 ms, to ACK soon after it; idle, up to 100 ms (how long stop() may wait), or until
    // a consumer's redelivery or ack deadline
    using ms = std::chrono::milliseconds;
    ms wait = last_round ? ms(1) : waiting_.empty() ? ms(100) : ms(1);
    if (next_due_ != std::chrono::steady_clock::time_point::max())
      wait =
          std::clamp(std::chrono::duration_cast<ms>(next_due_ - std::chrono::steady_clock::now()) + ms(1), ms(0), wait);
    std::optional<received> r = agent_->receive(wait);
    bool more = false;
    try {
      std::lock_guard<std::mutex> g(m_);
      const std::uint64_t now_ns = codec::wall_clock_ns();
      for (std::size_t n = 0; r; r = agent_->try_receive()) { // what the mailbox holds: one write, one commit
        take(*r, now_ns, batch);
        if (++n == 4096) {
          more = true;
          break;
        }
      }
      ep_->catch_up(); // drained: held publishers go on once it is down to its low mark
      if (last_round) log_.sync();
      const auto now = std::chrono::steady_clock::now();
      settle_durable(last_round ? log_.durable() : log_.commit(now));
      if (now - last_retention_ >= std::chrono::seconds(1)) { // whole old segments past the limits go
        last_retention_ = now;
        log_.enforce_retention(now_ns);
      }
      if (consumers_.size()) {
        next_due_ = last_round
                        ? std::chrono::steady_clock::time_point::max()
                        : consumers_.pump(log_, log_.last(), io_, now); // what is written (not yet synced, maybe)
        consumers_.persist(last_round, now);
      } else {
        next_due_ = std::chrono::steady_clock::time_point::max(); // (the last one may have just gone)
      }
    } catch (const std::exception& e) {
      fail_all(e, batch);
    }
    if (last_round && !more) break;
  }
  agent_->leave();
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
  const std::string seq = std::to_string(r.seq), time = std::to_string(r.time_ns), n = std::to_string(deliveries);
  const codec::field h = codec::field::header;
  headers_.push_back({h, "stream", cfg_.name});
  headers_.push_back({h, "stream-seq", seq});
  headers_.push_back({h, "stream-time", time});
  headers_.push_back({h, "stream-topic", v.topic});
  headers_.push_back({h, "stream-source", v.source});
  headers_.push_back({h, "stream-consumer", c.name});
  headers_.push_back({h, "stream-deliveries", n});
  send_options o;
  o.prio = m.prio;
  o.correlation_id = token;
  o.timestamp_ns = v.timestamp_ns; // its age is counted from when it was first published
  o.headers = codec::repeated_fields(headers_.data(), headers_.size());
  const send_result s = agent_->post_request(deliver_destination(c), v.payload, o);
  return s.delivered ? consumer_io::outcome::sent : consumer_io::outcome::refused;
}

bool stream_writer::has_interest(const consumer_config& c) {
  const destination to = deliver_destination(c);
  if (to.what == destination::kind::agent)
    return core_->routes.read([&](const routing_table& t) { return t.agent(to.name) != nullptr; });
  route rt;
  core_->routes.read([&](const routing_table& t) { t.resolve(to.name, scratch_, rt); });
  return !rt.empty();
}

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
  return {cfg_.name,     cfg_.subjects,      log_.first(),    log_.last(), log_.records(),
          log_.bytes(),  log_.durable(),     log_.syncs(),    failures_,   log_.recovered(),
          cfg_.log.sync, cfg_.log.in_memory, consumers_.all()};
}

} // namespace flowbus::actors
