#include <flowbus/actors/stream.hpp>

#include <flowbus/actors/client.hpp>
#include <flowbus/actors/endpoint.hpp>
#include <flowbus/codec/clock.hpp>

#include "node_impl.hpp"
#include "stream_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace flowbus::actors {

bool valid_stream_name(const std::string& name) noexcept {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

stream_writer::stream_writer(node::impl* core, stream_config cfg)
    : core_(core), cfg_(std::move(cfg)), log_(cfg_.directory / cfg_.name, cfg_.log) {
  if (log_.recovered().torn_bytes || log_.recovered().damaged_bytes)
    spdlog::warn("flowbus: stream {}: recovered {} records; cut a torn tail of {} bytes, skipped {} damaged bytes",
                 cfg_.name, log_.recovered().records, log_.recovered().torn_bytes, log_.recovered().damaged_bytes);
}

stream_writer::~stream_writer() { stop(); }

void stream_writer::start(std::unique_ptr<client> agent, std::shared_ptr<endpoint> ep) {
  agent_ = std::move(agent);
  ep->set_confirms(); // before it is routable: every frame it gets is confirmed by this thread
  for (const std::string& s : cfg_.subjects)
    if (const errc e = agent_->subscribe(s); e != errc::ok)
      throw std::invalid_argument("stream " + cfg_.name + ": subject '" + s + "': " + to_string(e));
  thread_ = std::thread([this] { run(); });
}

void stream_writer::stop() {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  agent_.reset(); // its port holds the node: let go, or the node would hold itself
}

void stream_writer::settle_durable(std::uint64_t durable) {
  while (!waiting_.empty() && waiting_.front().first <= durable) {
    if (!core_->confirmations.idle()) core_->confirmations.settle(waiting_.front().second.data(), errc::ok);
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
    core_->confirmations.settle(w.second.data(), errc::store_failed);
  batch.clear();
  waiting_.clear();
}

void stream_writer::run() {
  std::vector<scheduling::buffer_ref> batch; // taken, not yet appended: failed with the rest on an error
  for (;;) {
    const bool last_round = stopping_.load(std::memory_order_acquire);
    // wait for a message (the doorbell wakes it); while a group waits for its sync, no longer
    // than the group interval; idle, up to 100 ms (how long stop() may wait)
    using ms = std::chrono::milliseconds;
    const ms wait = last_round ? ms(1)
                    : waiting_.empty() ? ms(100)
                                       : std::clamp(cfg_.log.group_interval, ms(1), ms(100));
    std::optional<received> r = agent_->receive(wait);
    bool more = false;
    try {
      std::lock_guard<std::mutex> g(m_);
      const std::uint64_t now_ns = codec::wall_clock_ns();
      for (std::size_t n = 0; r; r = agent_->try_receive()) { // what the mailbox holds: one write, one commit
        batch.push_back(std::move(r->frame));
        const std::uint64_t seq = log_.append(codec::bytes_view(batch.back().data(), batch.back().size()), now_ns);
        waiting_.emplace_back(seq, std::move(batch.back()));
        batch.pop_back();
        if (++n == 4096) {
          more = true;
          break;
        }
      }
      if (last_round) log_.sync();
      const auto now = std::chrono::steady_clock::now();
      settle_durable(last_round ? log_.durable() : log_.commit(now));
      if (now - last_retention_ >= std::chrono::seconds(1)) { // whole old segments past the limits go
        last_retention_ = now;
        log_.enforce_retention(now_ns);
      }
    } catch (const std::exception& e) {
      fail_all(e, batch);
    }
    if (last_round && !more) break;
  }
  agent_->leave();
}

stream_status stream_writer::status() const {
  std::lock_guard<std::mutex> g(m_);
  return {cfg_.name,     cfg_.subjects, log_.first(),  log_.last(), log_.records(),
          log_.bytes(),  log_.durable(), log_.syncs(), failures_,  log_.recovered()};
}

} // namespace flowbus::actors
