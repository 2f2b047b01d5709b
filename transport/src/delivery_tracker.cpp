#include "delivery_tracker.hpp"

#include <flowbus/actors/agent.hpp> // max_attempts_of
#include <flowbus/codec/decoder.hpp>
#include <flowbus/scheduling/fixed_rate.hpp> // steady_ns

#include <algorithm>

namespace flowbus::transport::detail {

delivery_tracker::delivery_tracker(actors::dead_letters& dead, const std::string& agent, delivery_options o)
    : dead_(dead), agent_(agent), opt_(std::move(o)) {}

delivery_tracker::reliability& delivery_tracker::rel() {
  if (!rel_) {
    rel_ = std::make_unique<reliability>();
    if (opt_.breaker_enabled) // shown on the endpoint: senders fail fast while it is open
      rel_->breaker.emplace(opt_.breaker, opt_.show_breaker ? opt_.show_breaker : [](scheduling::breaker_state) {});
  }
  return *rel_;
}

std::uint64_t delivery_tracker::ack(std::uint64_t seq, std::uint64_t now_ns) {
  std::uint64_t n = 0;
  while (!unacked_.empty() && unacked_.front().first <= seq) {
    if (rel_ && !rel_->failed.erase(unacked_.front().first)) { // handled, and not NACKed
      if (rel_->breaker) rel_->breaker->record(false, now_ns); // a success never opens it: no timer
      rel_->attempts.erase(unacked_.front().second.data());    // a retried message got through
    }
    unacked_.pop_front();
    ++n;
  }
  return n;
}

delivery_tracker::nack_outcome delivery_tracker::nack(std::uint64_t seq, std::uint64_t now_ns) {
  nack_outcome out;
  const auto it = std::lower_bound(unacked_.begin(), unacked_.end(), seq,
                                   [](const auto& e, std::uint64_t s) { return e.first < s; });
  if (it == unacked_.end() || it->first != seq) return out; // not ours, or already acknowledged
  out.known = true;
  reliability& r = rel();
  scheduling::buffer_ref frame = it->second; // stays in flight until the agent's ACK passes it
  r.failed.insert(seq);                      // its ACK then counts no success
  if (r.breaker) out.arm = r.breaker->record(true, now_ns);
  const std::uint32_t made = ++r.attempts[frame.data()];
  if (made >= retry_budget(frame)) {
    r.attempts.erase(frame.data());
    dead_.add(actors::dead_reason::poison, std::move(frame), agent_, made);
    out.poison = true;
    return out;
  }
  const auto wait = scheduling::full_jitter(made, opt_.retry.initial, opt_.retry.max, r.rng);
  const auto due = now_ns + static_cast<std::uint64_t>(std::chrono::nanoseconds(wait).count());
  r.retries.emplace(due, std::move(frame));
  return out;
}

std::optional<std::uint64_t> delivery_tracker::next_retry_ns() const {
  if (!rel_ || rel_->retries.empty()) return std::nullopt;
  return rel_->retries.begin()->first;
}

bool delivery_tracker::allows(scheduling::buffer_ref& f, std::uint64_t now_ns,
                              actors::agent_breaker::arm_after& arm) {
  if (!rel_ || !rel_->breaker) return true;
  if (rel_->breaker->allow(now_ns ? now_ns : scheduling::steady_ns(), arm)) return true;
  dead_.add(actors::dead_reason::circuit_open, std::move(f), agent_);
  return false;
}

void delivery_tracker::breaker_timer(std::uint64_t now_ns) {
  if (rel_ && rel_->breaker) rel_->breaker->on_timer(now_ns);
}

std::optional<scheduling::breaker_state> delivery_tracker::breaker_state() const {
  if (!rel_ || !rel_->breaker) return std::nullopt;
  return rel_->breaker->state();
}

void delivery_tracker::drop_all() {
  if (rel_) {
    for (auto& r : rel_->retries)
      dead_.add(actors::dead_reason::agent_unavailable, std::move(r.second), agent_);
    rel_->retries.clear();
  }
  for (auto& f : unacked_) // a NACKed one is a retry (above), in the lanes again, or poison already
    if (!rel_ || !rel_->failed.count(f.first))
      dead_.add(actors::dead_reason::agent_unavailable, std::move(f.second), agent_);
  unacked_.clear();
}

std::uint32_t delivery_tracker::retry_budget(const scheduling::buffer_ref& f) const {
  // the frame was made by the node (literal strings): no connection's string pool is needed
  codec::decoder d(codec::stored_frame_decoding());
  codec::message m;
  const std::uint32_t own = d.decode(codec::bytes_view(f.data(), f.size()), m) ? actors::max_attempts_of(m) : 0;
  return own ? own : opt_.retry.max_attempts;
}

} // namespace flowbus::transport::detail
