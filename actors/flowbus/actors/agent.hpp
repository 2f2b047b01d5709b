// What an agent is and what it can do: its registration (agent_spec), the messages it receives
// (delivery), and the sending API shared by actor agents (agent_context) and client threads
// (client.hpp): publish to a topic, send to an agent, broadcast, route by capability.
//
// Every send encodes the message once, as a FLOW frame in a pooled buffer, and hands the same
// buffer to every recipient's mailbox (no copy per recipient). Routing happens on the sending
// thread against the node's routing table (wait-free reads) through a small per-sender cache
// of resolved topics.
#pragma once

#include <flowbus/actors/agent_directory.hpp> // balance
#include <flowbus/actors/errc.hpp>
#include <flowbus/scheduling/agent_messages.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/codec/types.hpp>
#include <flowbus/scheduling/buffer.hpp>
#include <flowbus/scheduling/circuit_breaker.hpp>
#include <flowbus/scheduling/retry.hpp>

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowbus::actors {

// The message types every agent shares (scheduling/agent_messages.hpp).
using scheduling::data_message;
using scheduling::delivery;
using scheduling::destination;
using scheduling::max_attempts_of;
using scheduling::message_route;
using scheduling::received;
using scheduling::send_options;
using scheduling::to_delivery;

class endpoint;
namespace detail {
class port;
} // namespace detail

/// Who an agent is, as it registers (the REGISTER frame's fields).
struct agent_spec {
  agent_spec() = default;
  agent_spec(std::string agent_id, std::string agent_type = {}) : id(std::move(agent_id)), type(std::move(agent_type)) {}

  std::string id;   ///< unique per node
  std::string type; ///< "worker", "coordinator", ...
  std::vector<std::string> capabilities;
  std::vector<std::string> subscriptions;                       ///< patterns, subscribed at registration
  std::vector<std::pair<std::string, std::string>> queue_groups; ///< (pattern, group), joined at registration
  balance group_balance = balance::round_robin;                  ///< for groups this agent creates
  codec::priority priority = codec::priority::normal;            ///< default priority of its sends
  std::chrono::milliseconds heartbeat_interval{1000};
  std::vector<std::pair<std::string, std::string>> metadata;
  std::size_t mailbox_capacity = 0; ///< 0: the node's default
  /// Idle strategy of an actor agent. 0 (default): when its mailbox is empty the actor yields
  /// its worker and the next message wakes it through CAF — tens of µs on a VM whose idle
  /// threads sleep. > 0: after its last message the actor keeps polling its mailbox this long
  /// before yielding, holding a scheduler worker meanwhile: single-digit-µs latency for traffic
  /// whose gaps are shorter than the spin, paid for with CPU (docs/benchmarks.md).
  std::chrono::microseconds idle_spin{0};
  /// Actor agents: a handler that throws has failed the message. It is tried again after a
  /// full-jitter backoff (ceiling `initial`, doubling to `max`) until `max_attempts` in all, then
  /// dead-lettered as poison with its attempts (docs/reliability.md).
  scheduling::retry_policy retry{3, std::chrono::milliseconds(20), std::chrono::milliseconds(1000)};
  /// Actor agents: handler failures in a sliding window open the agent's circuit breaker; while
  /// open, messages for it fail fast (errc::circuit_open, dead-lettered as circuit_open). Off: none.
  bool breaker_enabled = true;
  scheduling::breaker_options breaker;
};

struct send_result {
  errc code = errc::ok;       ///< ok, or the first refusal (those recipients' copies are in dead letters)
  std::uint32_t delivered = 0; ///< mailboxes the message was handed to
  /// Recipients among them whose queue is above its high water mark: the sender should slow down
  /// (a WebSocket connection stops reading its publisher for a while, docs/reliability.md).
  std::uint32_t throttled = 0;
  std::shared_ptr<endpoint> throttled_by{}; ///< the first of them: watch it to know when to go on
  std::uint32_t remote = 0;     ///< of `delivered`: links to other nodes (each a node, not an agent)
  bool confirm_pending = false; ///< send_options::confirm will run (other nodes have yet to confirm)
  explicit operator bool() const noexcept { return code == errc::ok; }
  /// Counts a recipient's flow-control state into the result (the routing paths).
  void note_throttle(endpoint& ep);
};

/// The outcome of a request: ok with the reply, or timeout / agent_unavailable / no_responders /
/// no_capable_agent / ... with no message.
struct reply {
  errc code = errc::ok;
  received response;
  explicit operator bool() const noexcept { return code == errc::ok; }
};

/// The sending half of an agent. @threadsafe no: one thread (or actor) at a time.
class sender {
public:
  send_result publish(std::string_view topic, std::string_view payload, const send_options& opts = {});
  send_result send_to(std::string_view agent_id, std::string_view payload, const send_options& opts = {});
  /// To every agent (but this one), or every agent of `agent_type` if not empty.
  send_result broadcast(std::string_view payload, std::string_view agent_type = {}, const send_options& opts = {});
  /// To one live agent having `capability`, chosen by `policy`.
  send_result send_to_capability(std::string_view capability, std::string_view payload,
                                 balance policy = balance::round_robin, const send_options& opts = {});
  send_result send(const destination& to, std::string_view payload, const send_options& opts = {});
  /// Answers a request (unicast to its reply_to, with its correlation id and priority).
  send_result respond(const delivery& request, std::string_view payload);

  const std::string& id() const noexcept;
  std::uint64_t sent() const noexcept; ///< messages this agent sent (each send once, any fan-out)

protected:
  explicit sender(std::unique_ptr<detail::port> p);
  ~sender();
  sender(sender&&) noexcept;
  std::unique_ptr<detail::port> port_;
};

class agent_context;
using agent_handler = std::function<void(agent_context&, const delivery&)>;
using start_handler = std::function<void(agent_context&)>;
using reply_handler = std::function<void(reply&&)>;
using done_handler = std::function<void(errc)>;

/// What an actor agent's handler works with; it lives in the agent's actor and is used only
/// from its handlers (CAF runs them one at a time).
class agent_context : public sender {
public:
  /// Sends a request; `on_reply` runs in this agent with the first reply, or with a typed error
  /// (timeout, agent_unavailable, no_responders, ...) — exactly once.
  void request(const destination& to, std::string_view payload, std::chrono::milliseconds timeout,
               reply_handler on_reply, send_options opts = {});
  /// Subscription changes are asynchronous: `done` (optional) runs in this agent once the
  /// change is in the routing table, with ok or the refusal.
  void subscribe(std::string_view pattern, done_handler done = {});
  void subscribe_group(std::string_view pattern, std::string_view group, done_handler done = {});
  void unsubscribe(std::string_view pattern, std::string_view group = {}, done_handler done = {});
  /// Deregisters and stops this agent once the current handler returns.
  void leave();
  /// The agent's actor, for code that speaks CAF.
  caf::actor self() const;

  agent_context(std::unique_ptr<detail::port> p, caf::event_based_actor* self);
  ~agent_context();

private:
  friend struct agent_actor_access;
  struct pending;
  caf::event_based_actor* self_;
  std::unique_ptr<pending> pending_;
};

} // namespace flowbus::actors
