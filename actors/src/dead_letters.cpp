#include <flowbus/actors/dead_letters.hpp>

#include <numeric>
#include <utility>

namespace flowbus::actors {

const char* to_string(dead_reason r) noexcept {
  switch (r) {
    case dead_reason::agent_unavailable: return "agent_unavailable";
    case dead_reason::network_timeout: return "network_timeout";
    case dead_reason::overflow: return "overflow";
    case dead_reason::corruption: return "corruption";
    case dead_reason::circuit_open: return "circuit_open";
    case dead_reason::poison: return "poison";
    case dead_reason::shutdown: return "shutdown";
    case dead_reason::unknown: return "unknown";
    case dead_reason::expired: return "expired";
    case dead_reason::shed: return "shed";
  }
  return "invalid";
}

void dead_letters::add(dead_reason reason, scheduling::buffer_ref frame, std::string recipient,
                       std::uint32_t attempts) {
  // kept on the heap, not in the pool: a storm of dead letters must not starve the live traffic
  // of frame buffers (the pool's buffer goes back as `frame` dies)
  if (frame.pooled()) frame = scheduling::buffer_ref::copy_of(frame.data(), frame.size());
  dead_letter d{reason, std::move(frame), std::move(recipient), std::chrono::system_clock::now(), attempts};
  const dlq_kind k = kind_of(reason);
  bool ring = false;
  {
    std::lock_guard<std::mutex> g(m_);
    ++counts_[static_cast<std::size_t>(reason)];
    if (notify_) {
      auto& q = unpersisted_[static_cast<std::size_t>(k)];
      if (q.size() >= persist_bound_) {
        ++not_persisted_;
      } else {
        ring = q.empty();
        q.push_back(d); // shares the frame
      }
    }
    if (capacity_ == 0) {
      ++evicted_;
    } else {
      if (entries_.size() >= capacity_) {
        entries_.pop_front();
        ++evicted_;
      }
      entries_.push_back(std::move(d));
    }
  }
  if (ring) notify_(k); // set once before any add() may ring, never changed after
}

void dead_letters::persist_to(std::function<void(dlq_kind)> notify, std::size_t bound) {
  std::lock_guard<std::mutex> g(m_);
  notify_ = std::move(notify);
  persist_bound_ = bound;
}

bool dead_letters::persistent() const {
  std::lock_guard<std::mutex> g(m_);
  return static_cast<bool>(notify_);
}

std::vector<dead_letter> dead_letters::take_unpersisted(dlq_kind kind) {
  std::lock_guard<std::mutex> g(m_);
  return std::exchange(unpersisted_[static_cast<std::size_t>(kind)], {});
}

void dead_letters::persisted(dlq_kind kind, std::uint64_t n, bool ok) {
  std::lock_guard<std::mutex> g(m_);
  (ok ? persisted_[static_cast<std::size_t>(kind)] : not_persisted_) += n;
}

std::uint64_t dead_letters::persisted(dlq_kind kind) const {
  std::lock_guard<std::mutex> g(m_);
  return persisted_[static_cast<std::size_t>(kind)];
}

std::uint64_t dead_letters::not_persisted() const {
  std::lock_guard<std::mutex> g(m_);
  return not_persisted_;
}

void dead_letters::torn_cut(std::uint64_t bytes) {
  std::lock_guard<std::mutex> g(m_);
  torn_cut_ += bytes;
}

std::uint64_t dead_letters::torn_cut() const {
  std::lock_guard<std::mutex> g(m_);
  return torn_cut_;
}

std::vector<dead_letter> dead_letters::take(std::size_t max) {
  std::vector<dead_letter> out;
  std::lock_guard<std::mutex> g(m_);
  while (!entries_.empty() && out.size() < max) {
    out.push_back(std::move(entries_.front()));
    entries_.pop_front();
  }
  return out;
}

std::vector<dead_letter> dead_letters::recent(std::size_t max) const {
  std::lock_guard<std::mutex> g(m_);
  std::vector<dead_letter> out;
  for (auto it = entries_.rbegin(); it != entries_.rend() && out.size() < max; ++it)
    out.push_back(*it);
  return out;
}

std::size_t dead_letters::size() const {
  std::lock_guard<std::mutex> g(m_);
  return entries_.size();
}

std::uint64_t dead_letters::count(dead_reason reason) const {
  std::lock_guard<std::mutex> g(m_);
  return counts_[static_cast<std::size_t>(reason)];
}

std::uint64_t dead_letters::total() const {
  std::lock_guard<std::mutex> g(m_);
  return std::accumulate(counts_.begin(), counts_.end(), std::uint64_t{0});
}

std::uint64_t dead_letters::evicted() const {
  std::lock_guard<std::mutex> g(m_);
  return evicted_;
}

} // namespace flowbus::actors
