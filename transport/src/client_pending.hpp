// What a client waits for from the node (private to transport/): answers to its SUBSCRIBE /
// UNSUBSCRIBE frames and acknowledged publishes (ACK / NACK by message id, one id space), replies
// to its requests (by correlation id), and the timers of both on a 1 ms timing wheel — a request's
// timeout, an acknowledged publish's redelivery after ack_timeout (at most ack_attempts times,
// then timeout). No socket, no clock: time is passed in, and what must be sent again is handed
// back to the owner. Its callers hold the client's lock; the answers it returns are called by
// them after letting go (a request's callback may call back into the client).
// @threadsafe no (under client::impl::m)
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/scheduling/timing_wheel.hpp>
#include <flowbus/transport/client.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace flowbus::transport::detail {

/// Who waits for an answer: the promise behind a future the caller holds, or a callback
/// (publish_acked's callback form: no promise, no std::call_once and its futex wake, per message).
class answer_to {
public:
  answer_to() = default;
  answer_to(std::shared_ptr<std::promise<scheduling::errc>> p) : p_(std::move(p)) {} // NOLINT: implicit
  explicit answer_to(std::function<void(scheduling::errc)> f) : f_(std::move(f)) {}
  explicit operator bool() const noexcept { return p_ || f_; }
  answer_to* operator->() noexcept { return this; } ///< (reads as the shared_ptr it replaces)
  /// Answers (never under the client's lock: a callback may call back into the client).
  void set_value(scheduling::errc e) {
    if (p_)
      p_->set_value(e);
    else if (f_)
      f_(e);
  }

private:
  std::shared_ptr<std::promise<scheduling::errc>> p_;
  std::function<void(scheduling::errc)> f_;
};

class pending_answers {
public:
  using clock = std::chrono::steady_clock;
  using promise = answer_to;

  explicit pending_answers(clock::time_point epoch) : epoch_(epoch) {}

  // subscriptions
  void expect_subscription(std::uint64_t token, promise p) { sub_acks_[token] = std::move(p); }
  /// Takes the waiting promise back (the frame was refused before it was sent).
  promise forget_subscription(std::uint64_t token);

  // requests
  void expect_reply(std::uint64_t corr, std::function<void(reply_result)> done, clock::time_point timeout_at);
  /// The reply (or a failure) for `corr`: its callback, to call outside the lock; empty when it
  /// timed out already.
  std::function<void(reply_result)> take_reply(std::uint64_t corr);

  // acknowledged publishes
  /// Waits for the node's answer to publish `id`; looked at again after `ack_timeout`.
  void expect_ack(std::uint64_t id, promise p, clock::time_point first_look);
  /// The frame as queued (for sending again), and `written_by`: the client's count of written
  /// frames reaches it once this copy is out. False if it was answered meanwhile.
  bool attach_frame(std::uint64_t id, std::vector<codec::byte> frame, std::uint64_t written_by);
  /// The publish failed to queue: its promise (to answer outside the lock), or none if answered.
  promise forget_ack(std::uint64_t id);

  /// ACK / NACK for `id`: the promise to answer (a subscription's or a publish's), and whether it
  /// was a publish. None: an answer to a copy sent again, already answered.
  struct answer {
    promise p;
    bool publish = false;
  };
  answer take_answer(std::uint64_t id);

  /// What the timers found due at `now`: requests timed out, publishes given up, and the frames of
  /// publishes to send again (flagged as redeliveries; each `resend(frame)` appends it to the
  /// queue and returns the written count that copy will reach).
  struct due {
    std::vector<std::function<void(reply_result)>> timed_out;
    std::vector<promise> gave_up;
    std::size_t resent = 0;
  };
  template <class Resend>
  due advance(clock::time_point now, std::uint64_t written, std::uint32_t ack_attempts,
              std::chrono::milliseconds ack_timeout, Resend&& resend);

  /// Everything still waiting, for answering with one error (the client closes or lost its node).
  struct all {
    std::unordered_map<std::uint64_t, promise> subscriptions;
    std::unordered_map<std::uint64_t, std::function<void(reply_result)>> requests;
    std::vector<promise> publishes;
  };
  all take_all();

  std::size_t waiting() const noexcept { return sub_acks_.size() + requests_.size() + unacked_.size(); }

private:
  enum class timer_kind : std::uint8_t { request, ack };
  struct unacked_publish {
    std::vector<codec::byte> frame;
    std::uint32_t attempts = 1;
    promise done;
    std::uint64_t written_by = 0; ///< the written count reaches this when its last copy is out
  };
  /// The first 1 ms tick at or after `t` (a timer never fires early).
  std::uint64_t tick_of(clock::time_point t) const;
  /// Whole ticks elapsed at `t`: what the wheel may advance to.
  std::uint64_t elapsed_ticks(clock::time_point t) const;

  clock::time_point epoch_;
  std::unordered_map<std::uint64_t, promise> sub_acks_;
  std::unordered_map<std::uint64_t, std::function<void(reply_result)>> requests_;
  std::unordered_map<std::uint64_t, unacked_publish> unacked_;
  scheduling::timing_wheel<std::pair<timer_kind, std::uint64_t>> timers_;
};

template <class Resend>
pending_answers::due pending_answers::advance(clock::time_point now, std::uint64_t written,
                                              std::uint32_t ack_attempts, std::chrono::milliseconds ack_timeout,
                                              Resend&& resend) {
  due d;
  timers_.advance(elapsed_ticks(now), [&](std::pair<timer_kind, std::uint64_t>&& t) {
    if (t.first == timer_kind::request) {
      auto it = requests_.find(t.second);
      if (it == requests_.end()) return; // answered
      d.timed_out.push_back(std::move(it->second));
      requests_.erase(it);
      return;
    }
    auto it = unacked_.find(t.second);
    if (it == unacked_.end()) return; // acknowledged
    unacked_publish& u = it->second;
    // attempts are spent by time, written or not: a message still in our own queue (the node
    // gone, or holding us) is not copied again, but its ack_timeouts count all the same, so the
    // future resolves within ack_attempts x ack_timeout whatever the link does
    if (u.attempts >= ack_attempts) {
      d.gave_up.push_back(std::move(u.done));
      unacked_.erase(it);
      return;
    }
    ++u.attempts;
    timers_.schedule(tick_of(now + ack_timeout), std::make_pair(timer_kind::ack, t.second));
    if (written < u.written_by || u.frame.empty()) return; // still queued: no copy
    u.written_by = resend(u.frame);
    ++d.resent;
  });
  return d;
}

} // namespace flowbus::transport::detail
