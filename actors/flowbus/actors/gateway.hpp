// An agent whose messages leave the node through something the node does not run itself — a
// WebSocket session (transport/), a shared-memory channel. Its owner sends with the sender API and
// takes the frames queued for the agent as they are: complete FLOW frames in shared buffers, ready
// to be written out (nothing is re-encoded on the way out).
//
// Everything that involves the node's actors is asynchronous, so an I/O thread never blocks on
// the node: attach() answers through a callback, subscription changes through `done`, and the
// node's verdicts (heartbeats missed, node stopping) through `down`. Each gateway has a connection
// actor that does this talking; `wake` is the mailbox's doorbell.
// @threadsafe no: one thread or strand at a time (the callbacks may come from any thread).
#pragma once

#include <flowbus/actors/agent.hpp>
#include <flowbus/actors/expected.hpp>
#include <flowbus/scheduling/mailbox.hpp> // drain_result

#include <functional>
#include <vector>

namespace flowbus::actors {

/// The events may still come after the gateway is destroyed (its connection actor learns of it
/// asynchronously), until the node has stopped: what they use must live as long, or be reached
/// through a weak pointer as transport's sessions do.
struct gateway_events {
  /// Frames arrived in the idle mailbox: schedule a take(). Called on the pushing thread, which
  /// may be any sender's: it must not block or call back into the gateway.
  std::function<void()> wake;
  /// A subscribe/unsubscribe finished: its token, and ok or the refusal. Any thread.
  std::function<void(std::uint64_t token, errc)> done;
  /// The node took the agent down (missed heartbeats: agent_unavailable; node stopping:
  /// node_stopped). The gateway then refuses to send and its mailbox is closed. Any thread.
  std::function<void(errc)> down;
};

class gateway : public sender {
public:
  /// Appends up to `max` queued frames, oldest first, to `out`. When the mailbox is drained it goes
  /// idle (the next frame calls wake); result.more means more frames are waiting.
  scheduling::drain_result take(std::vector<scheduling::buffer_ref>& out, std::size_t max);
  /// Sends with an explicit message type and reply_to (a REQUEST's requester is this agent).
  send_result forward(const destination& to, std::string_view payload, const send_options& opts);
  /// To every agent but this one (or every agent of agent_type).
  send_result forward_broadcast(std::string_view payload, std::string_view agent_type, const send_options& opts);

  void subscribe(std::string_view pattern, std::string_view group, std::uint64_t token);
  void unsubscribe(std::string_view pattern, std::string_view group, std::uint64_t token);
  void heartbeat();
  bool up() const noexcept;
  /// Deregisters (also done by the destructor); queued frames go to the dead letters.
  void leave();
  /// Frames queued and not yet taken (a snapshot).
  std::uint64_t backlog() const noexcept;
  /// Tells senders to this agent to slow down (on) or that they may go on (off): endpoint::set_throttled.
  void throttle(bool on) noexcept;
  /// Tells senders this agent's connection is held and waits for the agent: endpoint::set_stalled.
  void stalled(bool on) noexcept;
  /// Shows the agent's circuit breaker to senders (open: they fail fast with circuit_open).
  void breaker(scheduling::breaker_state s) noexcept;
  /// The connection actor, for code that speaks CAF.
  caf::actor actor() const;

  gateway(std::unique_ptr<detail::port> p, caf::actor conn);
  ~gateway();
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

private:
  struct state;
  std::unique_ptr<state> st_;
};

using attach_handler = std::function<void(expected<std::unique_ptr<gateway>, errc>)>;

} // namespace flowbus::actors
