// An agent's circuit breaker as its senders see it: the state machine (scheduling::circuit_breaker)
// plus its publication on the agent's endpoint, where senders fail fast while it is open. One per
// agent, owned by whatever runs the agent's handler — an actor agent's actor, or the WebSocket
// session of an acknowledging agent — which also owns the timer: when the breaker opens, record()
// and allow() say how long until it may turn half-open, and the owner calls on_timer() then.
// @threadsafe no: the owner's thread (actor or I/O strand) only.
#pragma once

#include <flowbus/scheduling/circuit_breaker.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

namespace flowbus::actors {

class agent_breaker {
public:
  using show_fn = std::function<void(scheduling::breaker_state)>; ///< endpoint::set_breaker, usually
  using arm_after = std::optional<std::chrono::nanoseconds>;      ///< set: arm the half-open timer

  agent_breaker(const scheduling::breaker_options& o, show_fn show) : b_(o), show_(std::move(show)) {}

  /// Whether a message may reach the handler now: always while closed; while open or half-open
  /// only as one of the trial calls. A refused message fails fast (circuit_open).
  bool allow(std::uint64_t now_ns, arm_after& arm) {
    if (b_.state() == scheduling::breaker_state::closed) return true;
    const bool ok = b_.allow(now_ns);
    if (!ok) arm = publish();
    return ok;
  }

  /// The handler's outcome for one message.
  arm_after record(bool failed, std::uint64_t now_ns) {
    if (failed) b_.on_failure(now_ns);
    else b_.on_success(now_ns);
    return publish();
  }

  /// The owner's timer: open_for has passed. If the breaker is half-open now, senders get through
  /// again for the trial calls.
  void on_timer(std::uint64_t now_ns) {
    if (b_.state(now_ns) != scheduling::breaker_state::half_open) return;
    shown_ = scheduling::breaker_state::half_open;
    show_(shown_);
  }

  scheduling::breaker_state state() const noexcept { return b_.state(); }
  scheduling::breaker_state shown() const noexcept { return shown_; }

private:
  /// Shows a changed state; when it has just opened, how long until it may turn half-open.
  arm_after publish() {
    const scheduling::breaker_state s = b_.state();
    if (s == shown_) return std::nullopt;
    shown_ = s;
    show_(s);
    if (s != scheduling::breaker_state::open) return std::nullopt;
    return std::chrono::nanoseconds(b_.options().open_for_ns);
  }

  scheduling::circuit_breaker b_;
  show_fn show_;
  scheduling::breaker_state shown_ = scheduling::breaker_state::closed;
};

} // namespace flowbus::actors
