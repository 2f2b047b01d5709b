// What agents send and receive, the same for an actor agent in the node (actors/agent.hpp) and an
// agent in another process (transport/client.hpp), so they live below both: a received message
// (delivery), how a message is sent (send_options) and where it goes (destination), and the one
// function that writes a data message's fields for every sender (data_message).
#pragma once

#include <flowbus/codec/message.hpp>
#include <flowbus/codec/types.hpp>
#include <flowbus/scheduling/buffer.hpp>
#include <flowbus/scheduling/errc.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace flowbus::scheduling {

/// How capability routing and queue groups pick one of several agents.
enum class balance : std::uint8_t { round_robin, least_loaded };

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
  const buffer_ref* frame = nullptr; ///< the whole frame: copy it to keep or forward it
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
  buffer_ref frame;
  delivery msg;
};

} // namespace flowbus::scheduling
