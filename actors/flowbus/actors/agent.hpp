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

/// One received message. Views point into the shared frame and stay valid while it is held:
/// during the handler call, or as long as a received (client.hpp) is kept.
struct delivery {
  codec::msg_type type = codec::msg_type::publish;
  codec::priority prio = codec::priority::normal;
  std::string_view topic;    ///< multicast: the published topic
  std::string_view source;   ///< sending agent's id
  std::string_view target;   ///< unicast: our id; capability routing: the capability
  std::string_view reply_to; ///< requests: the requester's id
  std::uint64_t correlation_id = 0;
  std::uint64_t message_id = 0;
  std::uint64_t sequence = 0;     ///< the sender's frame sequence
  std::uint64_t timestamp_ns = 0; ///< sender's clock at send, ns since the Unix epoch
  std::uint64_t deadline_ns = 0;  ///< 0: none
  std::uint32_t attempt = 1;      ///< actor agents: 2 and up when a failed handler is retried
  std::uint32_t max_attempts = 0; ///< the sender's retry budget for this message (0: the recipient's policy)
  std::uint64_t error_code = 0;   ///< ERROR: why (a request that cannot be answered: wire_code of its errc)
  std::string_view payload;
  /// Sampled tracing: the message's hops so far (codec/trace.hpp; empty: not traced).
  std::string_view trace;
  /// The repeated routing fields: application headers (field 8), capabilities... valid as the
  /// other views are. header() finds one header.
  codec::repeated_fields repeated;
  const scheduling::buffer_ref* frame = nullptr; ///< the whole frame: copy it to keep or forward it
  bool is_request() const noexcept { return type == codec::msg_type::request; }
  /// The value of the first application header `key` (empty if none).
  std::string_view header(std::string_view key) const noexcept;
};

/// A decoded message's fields as a delivery (views into the message's frame; `frame` unset).
delivery to_delivery(const codec::message& m) noexcept;
/// The message's own retry budget (field max_attempts, clamped to 32 bits); 0: none set.
std::uint32_t max_attempts_of(const codec::message& m) noexcept;

struct send_options {
  codec::msg_type type = codec::msg_type::publish; ///< a data type: publish, task_assignment, ...
  std::optional<codec::priority> prio;             ///< default: the agent's priority
  std::uint64_t correlation_id = 0;
  std::uint64_t message_id = 0;
  std::uint64_t deadline_ns = 0; ///< absolute, ns since the Unix epoch; 0: none
  /// Per-message retry policy: how many deliveries a recipient whose handler fails it makes before
  /// the message is poison (1: no retry). 0: the recipient's own policy (agent_spec::retry,
  /// server_options::retry). Travels in the frame (field max_attempts).
  std::uint32_t max_attempts = 0;
  /// When the message was first sent, ns since the Unix epoch (the frame's timestamp); 0: now.
  /// A node forwarding an agent's message keeps the agent's, so receivers see its age end to end.
  std::uint64_t timestamp_ns = 0;
  /// When the node took the message in (steady clock, ns; 0: not stamped): kept with the frame
  /// (buffer_ref::stamp) so the edge can measure how long it waited in the node.
  std::uint64_t ingress_ns = 0;
  /// The message's trace so far (codec/trace.hpp; field `trace`); empty: not traced. The view
  /// must outlive the send.
  std::string_view trace;
  /// Application headers (field 8, key/value) carried to every recipient as they are; other
  /// repeated entries in it are ignored (so a received message's `repeated` can be passed on).
  /// The views must outlive the send.
  codec::repeated_fields headers;
  /// Acknowledged sends in a cluster: if the message goes to other nodes too, this runs with
  /// `message_id` once each of them has taken it (ok) or one failed it (its reason), on a node
  /// thread, and the send_result says confirm_pending. Not called when no other node is a
  /// recipient. The pointee is copied only then, so one callback can serve every send.
  const std::function<void(std::uint64_t message_id, errc)>* confirm = nullptr;
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

/// Where a request (or a generic send) goes.
struct destination {
  enum class kind : std::uint8_t { topic, agent, capability };
  kind what = kind::topic;
  std::string_view name;
  balance policy = balance::round_robin; ///< capability routing only
  static destination topic(std::string_view t) noexcept { return {kind::topic, t, balance::round_robin}; }
  static destination agent(std::string_view id) noexcept { return {kind::agent, id, balance::round_robin}; }
  static destination capability(std::string_view c, balance p = balance::round_robin) noexcept {
    return {kind::capability, c, p};
  }
};

/// Who a data message is from and where it goes, for data_message().
struct message_route {
  const destination* to = nullptr; ///< unused for a broadcast
  bool broadcast = false;
  std::string_view agent_type;     ///< broadcast: only agents of this type (empty: all)
  std::string_view source;         ///< the sending agent's id
  std::string_view reply_to;       ///< requests: where the reply goes (empty: none)
};

/// Fills `m` with a data message as every sender writes it — the node's senders and the C++
/// client alike: type and priority (`default_prio` when opts has none), `timestamp_ns`, the
/// destination (topic, target, capability) or the broadcast flag, source, reply_to, ids, deadline,
/// retry budget, the application headers of opts.headers, and the payload. `repeated` holds the
/// capability entry and the headers: m.repeated points into it, so it must outlive the encoding.
void data_message(codec::message& m, const message_route& route, std::string_view payload, const send_options& opts,
                  codec::priority default_prio, std::uint64_t timestamp_ns,
                  std::vector<codec::repeated_entry>& repeated);

/// A received message that owns its frame (views stay valid while it lives; moving keeps them).
struct received {
  scheduling::buffer_ref frame;
  delivery msg;
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
