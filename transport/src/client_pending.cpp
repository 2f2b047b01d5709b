#include "client_pending.hpp"

namespace flowbus::transport::detail {

pending_answers::promise pending_answers::forget_subscription(std::uint64_t token) {
  auto it = sub_acks_.find(token);
  if (it == sub_acks_.end()) return {};
  promise p = std::move(it->second);
  sub_acks_.erase(it);
  return p;
}

void pending_answers::expect_reply(std::uint64_t corr, std::function<void(reply_result)> done,
                                   clock::time_point timeout_at) {
  requests_[corr] = std::move(done);
  timers_.schedule(tick_of(timeout_at), std::make_pair(timer_kind::request, corr));
}

std::function<void(reply_result)> pending_answers::take_reply(std::uint64_t corr) {
  auto it = requests_.find(corr);
  if (it == requests_.end()) return {}; // timed out already
  auto done = std::move(it->second);
  requests_.erase(it);
  return done;
}

void pending_answers::expect_ack(std::uint64_t id, promise p, clock::time_point first_look) {
  unacked_publish u;
  u.done = std::move(p);
  unacked_[id] = std::move(u);
  timers_.schedule(tick_of(first_look), std::make_pair(timer_kind::ack, id));
}

bool pending_answers::attach_frame(std::uint64_t id, std::vector<codec::byte> frame, std::uint64_t written_by) {
  auto it = unacked_.find(id);
  if (it == unacked_.end()) return false;
  it->second.frame = std::move(frame);
  it->second.written_by = written_by;
  return true;
}

pending_answers::promise pending_answers::forget_ack(std::uint64_t id) {
  auto it = unacked_.find(id);
  if (it == unacked_.end()) return {};
  promise p = std::move(it->second.done);
  unacked_.erase(it);
  return p;
}

pending_answers::answer pending_answers::take_answer(std::uint64_t id) {
  answer a;
  if (auto it = sub_acks_.find(id); it != sub_acks_.end()) {
    a.p = std::move(it->second);
    sub_acks_.erase(it);
  } else if (auto u = unacked_.find(id); u != unacked_.end()) {
    a.p = std::move(u->second.done);
    a.publish = true;
    unacked_.erase(u);
  }
  return a;
}

pending_answers::all pending_answers::take_all() {
  all a;
  a.subscriptions.swap(sub_acks_);
  a.requests.swap(requests_);
  for (auto& u : unacked_)
    a.publishes.push_back(std::move(u.second.done));
  unacked_.clear();
  return a; // (their timers find nothing when they fire)
}

std::uint64_t pending_answers::tick_of(clock::time_point t) const {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t - epoch_).count();
  return us <= 0 ? 0 : static_cast<std::uint64_t>((us + 999) / 1000);
}

std::uint64_t pending_answers::elapsed_ticks(clock::time_point t) const {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - epoch_).count();
  return ms <= 0 ? 0 : static_cast<std::uint64_t>(ms);
}

} // namespace flowbus::transport::detail
