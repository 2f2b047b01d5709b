// Acknowledged delivery to one agent, as the node keeps it (private to transport/; protocol.md §11).
//
// An agent that registered with ack_requested acknowledges what it handled (ACK, cumulative by
// sequence) or reports a handler failure (NACK). The tracker keeps every data frame written and not
// yet acknowledged, bounds them by the ack window, and on a NACK counts the failure in the agent's
// circuit breaker and schedules the frame again after a full-jitter backoff — or, once the retry
// budget is spent, dead-letters it as poison. No socket, no timer, no clock: time is passed in
// (steady nanoseconds) and the session arms its timers from what the tracker answers.
// @threadsafe no (the session's strand)
#pragma once

#include <flowbus/actors/agent_breaker.hpp>
#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/scheduling/buffer.hpp>
#include <flowbus/scheduling/circuit_breaker.hpp>
#include <flowbus/scheduling/retry.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace flowbus::transport::detail {

struct delivery_options {
  std::size_t window = 512; ///< at most this many data frames written and not yet acknowledged
  scheduling::retry_policy retry;
  bool breaker_enabled = true;
  scheduling::breaker_options breaker;
  actors::agent_breaker::show_fn show_breaker; ///< the breaker's state changed (shown on the endpoint)
};

class delivery_tracker {
public:
  /// `agent`: the recipient named in dead letters (the agent's id, kept by the owner).
  delivery_tracker(actors::dead_letters& dead, const std::string& agent, delivery_options o);
  ~delivery_tracker() = default;
  delivery_tracker(const delivery_tracker&) = delete;
  delivery_tracker& operator=(const delivery_tracker&) = delete;

  std::size_t in_flight() const noexcept { return unacked_.size(); }
  /// The ack window is used up (counting `pending` frames about to be written).
  bool full(std::size_t pending = 0) const noexcept { return unacked_.size() + pending >= opt_.window; }

  /// A data frame went out with sequence `seq` (sequences rise).
  void sent(std::uint64_t seq, scheduling::buffer_ref frame) { unacked_.emplace_back(seq, std::move(frame)); }

  /// ACK `seq`: every frame up to it is handled (a frame NACKed meanwhile counts no success).
  /// Returns how many frames left the window.
  std::uint64_t ack(std::uint64_t seq, std::uint64_t now_ns);

  /// NACK `seq`: its handler failed. Unknown or already acknowledged sequences are ignored.
  struct nack_outcome {
    bool known = false;             ///< the sequence was in flight
    bool poison = false;            ///< the budget is spent: dead-lettered
    actors::agent_breaker::arm_after arm; ///< set: the breaker just opened, arm its timer
  };
  nack_outcome nack(std::uint64_t seq, std::uint64_t now_ns);

  /// When the earliest retry is due (steady ns); none when nothing waits.
  std::optional<std::uint64_t> next_retry_ns() const;
  /// Hands every retry due by `now_ns` to `admit` (back into the lanes), earliest first.
  template <class F> void take_due(std::uint64_t now_ns, F&& admit) {
    if (!rel_) return;
    while (!rel_->retries.empty() && rel_->retries.begin()->first <= now_ns) {
      admit(std::move(rel_->retries.begin()->second));
      rel_->retries.erase(rel_->retries.begin());
    }
  }

  /// Whether `f` may be written now: always while the breaker is closed (or there is none);
  /// otherwise only as a trial — a refused frame is dead-lettered (circuit_open), and `arm` says
  /// when to look again. `now_ns` 0: the steady clock, read only when a breaker exists.
  bool allows(scheduling::buffer_ref& f, std::uint64_t now_ns, actors::agent_breaker::arm_after& arm);
  /// The breaker's timer fired: it may turn half-open.
  void breaker_timer(std::uint64_t now_ns);
  std::optional<scheduling::breaker_state> breaker_state() const;

  /// Dead-letters (agent_unavailable) every frame waiting for a retry and every frame written and
  /// not acknowledged (the agent may not have it), each message once: the connection is gone.
  void drop_all();

  /// The retry budget of a frame: its own max_attempts if the sender set one, else the policy's.
  std::uint32_t retry_budget(const scheduling::buffer_ref& f) const;

private:
  /// Made on the first NACK: an agent that never fails pays for none of it.
  struct reliability {
    std::optional<actors::agent_breaker> breaker;
    std::unordered_map<const void*, std::uint32_t> attempts; ///< by buffer: attempts failed so far
    std::unordered_set<std::uint64_t> failed;                ///< sequences NACKed, not yet acknowledged
    std::multimap<std::uint64_t, scheduling::buffer_ref> retries; ///< by due time (steady ns)
    std::minstd_rand rng{std::random_device{}()};
  };
  reliability& rel();

  actors::dead_letters& dead_;
  const std::string& agent_;
  delivery_options opt_;
  std::deque<std::pair<std::uint64_t, scheduling::buffer_ref>> unacked_; ///< by sequence
  std::unique_ptr<reliability> rel_;
};

} // namespace flowbus::transport::detail
