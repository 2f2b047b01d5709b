#include "dlq_stream.hpp"

#include <flowbus/actors/client.hpp>
#include <flowbus/actors/segment_log.hpp>
#include <flowbus/codec/topic.hpp>

#include "node_impl.hpp"
#include "stream_writer.hpp"

#include <spdlog/spdlog.h>

namespace flowbus::actors {

namespace {
using clock = std::chrono::steady_clock;
/// While it has consumers, a queue looks at least this often: interest that came or went, and
/// what another process (flowbus dlq) changed.
constexpr auto poll_every = std::chrono::milliseconds(250);
} // namespace

std::string dlq_stream::name_of(dlq_kind kind) { return std::string("$dlq.") + to_string(kind); }

dlq_stream::dlq_stream(node::impl* core, dlq_kind kind)
    : core_(core), kind_(kind), name_(name_of(kind)), file_(core->dlq_files.at(static_cast<std::size_t>(kind))),
      waiter_(std::make_shared<client_waiter>()), consumers_(file_.path() / "consumers") {
  io_.deliver = [this](const consumer_config& c, const log_record& r, std::uint64_t token, std::uint32_t n) {
    return deliver(c, r, token, n);
  };
  io_.has_interest = [this](const consumer_config& c) { return consumer_has_interest(*core_, c, scratch_); };
  io_.poison = [this](const consumer_config& c, const log_record& r, std::uint32_t n) {
    // it is a dead letter already: it stays in its queue (flowbus dlq list shows it), not sent
    // to another one
    spdlog::warn("flowbus: {}: entry {} given to consumer {} {} times without an ack: not sent to it again; it stays "
                 "in the queue",
                 name_, r.seq, c.name, n);
  };
  const std::error_code ec = file_.read_log(false, [&](const segment_log& log) { consumers_.load(log); });
  if (ec) spdlog::error("flowbus: {}: its consumers not read: {}", name_, ec.message());
}

dlq_stream::~dlq_stream() { stop(); }

void dlq_stream::start(std::unique_ptr<client> agent) {
  agent_ = std::move(agent);
  thread_ = std::thread([this] { run(); });
}

void dlq_stream::stop() {
  stopping_.store(true, std::memory_order_release);
  waiter_->wake();
  if (thread_.joinable()) thread_.join();
  agent_.reset(); // its port holds the node
}

void dlq_stream::wake() noexcept { waiter_->wake(); }

void dlq_stream::run() {
  std::vector<std::pair<std::uint64_t, std::string>> replies;
  for (;;) {
    const bool last_round = stopping_.load(std::memory_order_acquire);
    replies.clear();
    while (std::optional<received> r = agent_->try_receive()) {
      if (r->msg.type == codec::msg_type::reply) // a consumer's ack (or NAK, WPI, TERM)
        replies.emplace_back(r->msg.correlation_id, std::string(r->msg.payload));
      else if (r->msg.is_request())
        agent_->respond(
            r->msg,
            R"({"error":{"code":"bad_request","description":"dead-letter queues are read through the agent $streams"}})");
    }
    clock::time_point until = clock::now() + (last_round ? clock::duration::zero() : std::chrono::seconds(1));
    {
      std::lock_guard<std::mutex> g(m_);
      const auto now = clock::now();
      if (consumers_.size()) {
        clock::time_point due = clock::time_point::max();
        const std::error_code ec = file_.read_log(true, [&](const segment_log& log) {
          for (const auto& [token, payload] : replies)
            consumers_.on_reply(token, payload, log, io_, now);
          if (!last_round) due = consumers_.pump(log, log.last(), io_, now); // every entry is synced
        });
        if (ec) spdlog::error("flowbus: {}: the queue cannot be read: {}", name_, ec.message());
        consumers_.persist(last_round, now);
        until = std::min(now + poll_every, due == clock::time_point::max() ? due : due + std::chrono::milliseconds(1));
      }
    }
    if (last_round) break;
    agent_->await(until);
  }
  agent_->leave();
}

consumer_io::outcome dlq_stream::deliver(const consumer_config& c, const log_record& r, std::uint64_t token,
                                         std::uint32_t deliveries) {
  dlq_entry e;
  if (!parse_dlq_entry(r.frame, e)) {
    spdlog::error("flowbus: {}: record {} is not an entry: not delivered", name_, r.seq);
    return consumer_io::outcome::filtered;
  }
  codec::decoder dec(frame_reading(e.reason));
  codec::message m;
  delivery v;
  headers_.clear();
  const bool decoded = static_cast<bool>(dec.decode(codec::bytes_view(std::string_view(e.frame)), m));
  if (decoded) {
    v = to_delivery(m);
    for (const codec::repeated_entry& h : m.repeated)
      if (h.id == codec::field::header) headers_.push_back(h);
  } else { // a corruption entry's bytes as they came: they are the payload
    v.payload = e.frame;
    v.source = e.source;
    v.timestamp_ns = e.first_ns;
  }
  if (!c.filter.empty() && !codec::pattern_matches(c.filter, v.topic)) return consumer_io::outcome::filtered;
  const std::string attempts = std::to_string(e.attempts), first = std::to_string(e.first_ns),
                    last = std::to_string(e.last_ns);
  const codec::field h = codec::field::header;
  headers_.push_back({h, "dlq", to_string(kind_)});
  headers_.push_back({h, "dlq-reason", to_string(e.reason)});
  headers_.push_back({h, "dlq-recipient", e.recipient});
  headers_.push_back({h, "dlq-attempts", attempts});
  headers_.push_back({h, "dlq-first-time", first});
  headers_.push_back({h, "dlq-last-time", last});
  headers_.push_back({h, "dlq-type", decoded ? codec::to_string(m.type) : "undecodable"});
  return send_record(*agent_, name_, c, v, r, token, deliveries, headers_);
}

stream_status dlq_stream::status() const {
  stream_status s;
  s.name = name_;
  s.dlq = to_string(kind_);
  s.sync = fsync_policy::always;
  s.first = 1;
  std::lock_guard<std::mutex> g(m_);
  const std::error_code ec = file_.read_log(false, [&](const segment_log& log) {
    s.first = log.first();
    s.last = s.durable = log.last();
    s.records = log.records();
    s.bytes = log.bytes();
    s.recovered = log.recovered();
  });
  if (ec) throw std::system_error(ec, name_);
  s.consumers = consumers_.all();
  return s;
}

consumer_status dlq_stream::add_consumer(consumer_config c) {
  std::lock_guard<std::mutex> g(m_);
  std::optional<consumer_status> added;
  const std::error_code ec = file_.read_log(
      true, [&](const segment_log& log) { added = consumers_.add(std::move(c), log, clock::now()); }); // (may throw)
  if (ec) throw std::system_error(ec, name_);
  waiter_->wake(); // its first deliveries now
  return *added;
}

bool dlq_stream::remove_consumer(std::string_view name) {
  std::lock_guard<std::mutex> g(m_);
  return consumers_.remove(name);
}

std::optional<consumer_status> dlq_stream::consumer(std::string_view name) const {
  std::lock_guard<std::mutex> g(m_);
  return consumers_.status(name);
}

} // namespace flowbus::actors
