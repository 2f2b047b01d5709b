// An agent driven by an application thread instead of an actor: the thread sends with the
// sender API and receives by calling receive(), which sleeps on a condition variable rung by
// the mailbox doorbell. Requests block until the reply or the timeout; other messages that
// arrive meanwhile are kept, in order, for later receive() calls.
//
// Liveness: the directory expects a heartbeat every interval. receive() and request() send one
// when half an interval has passed; a thread that only sends, or does nothing for longer, must
// call heartbeat().
// @threadsafe no: one thread at a time.
#pragma once

#include <flowbus/actors/agent.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>

namespace flowbus::actors {

class client : public sender {
public:
  /// The next message, waiting up to `timeout`; nothing on timeout or once the agent is down.
  std::optional<received> receive(std::chrono::milliseconds timeout);
  std::optional<received> try_receive() { return receive(std::chrono::milliseconds(0)); }
  /// Waits until the doorbell rings (something may have arrived) or `until` passes, taking
  /// nothing and sending no heartbeat: for an owner that drains with try_receive(), which sends
  /// them (a stream's thread, stream_writer).
  void await(std::chrono::steady_clock::time_point until);
  /// Sends a request and waits for its reply (or a typed error) at most `timeout`.
  reply request(const destination& to, std::string_view payload, std::chrono::milliseconds timeout,
                send_options opts = {});
  /// Sends a request without waiting: its replies (type reply, its correlation id) and errors come
  /// through receive() like any message. opts.correlation_id is the caller's to choose.
  send_result post_request(const destination& to, std::string_view payload, send_options opts);
  /// Subscription changes: blocking, in the routing table when they return ok.
  errc subscribe(std::string_view pattern);
  errc subscribe_group(std::string_view pattern, std::string_view group);
  errc unsubscribe(std::string_view pattern, std::string_view group = {});
  void heartbeat();
  /// Whether the node still counts this agent as up.
  bool up() const noexcept;
  /// Deregisters (also done by the destructor).
  void leave();

  client(std::unique_ptr<detail::port> p, std::shared_ptr<void> waiter, std::chrono::milliseconds heartbeat);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

private:
  bool next(received& out, std::chrono::steady_clock::time_point until);
  void maybe_heartbeat();
  std::shared_ptr<void> waiter_;
  std::deque<received> held_; ///< messages that arrived while request() waited
  std::uint64_t next_correlation_ = 1;
  std::chrono::steady_clock::duration heartbeat_every_;
  std::chrono::steady_clock::time_point last_heartbeat_;
  bool left_ = false;
};

} // namespace flowbus::actors
