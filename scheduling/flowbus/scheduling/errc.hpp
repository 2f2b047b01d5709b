// What can go wrong when an agent sends, requests, registers or subscribes — the same codes for
// an actor agent in the node (actors::errc) and an agent in another process (transport::errc, the
// C++ client), so they live below both. Every outcome is typed; nothing the node refuses is silent.
#pragma once

#include <cstdint>

namespace flowbus::scheduling {

enum class errc : std::uint8_t {
  ok = 0,
  agent_unavailable,  ///< no such agent, or it was marked down (missed heartbeats, left, died)
  no_capable_agent,   ///< capability routing found no live agent having the capability
  no_responders,      ///< a request's topic has no subscriber
  timeout,            ///< a request's reply did not arrive in time
  mailbox_full,       ///< the recipient's mailbox is at capacity (the message went to dead letters)
  invalid_topic,      ///< empty, empty token, wildcard in a published topic, too long
  invalid_pattern,    ///< bad subscription pattern
  invalid_agent,      ///< registration refused: empty/too long id, bad heartbeat interval
  duplicate_agent,    ///< registration refused: the id is taken
  too_large,          ///< the message does not fit the largest frame / buffer
  no_buffer,          ///< the buffer pool is exhausted (backpressure: retry later)
  node_stopped,       ///< the node is shutting down or stopped
  not_subscribed,     ///< unsubscribe of a pattern the agent did not have
  circuit_open,       ///< the recipient's circuit breaker is open (the message went to dead letters)
  too_many_subscriptions, ///< the agent holds node_config::max_subscriptions already
  unauthenticated,    ///< registration refused for its credentials: none, invalid or expired (docs/security.md)
  not_permitted,      ///< the agent's permissions do not allow this publish or subscription (docs/security.md)
  rate_limited,       ///< the agent sends above its rate limit, and the node refuses what is over (docs/security.md)
  store_failed,       ///< a stream among the recipients could not write the message (its disk: docs/streams.md)
};

const char* to_string(errc e) noexcept;

/// On the wire (the error_code of NACK and ERROR frames, protocol.md §9), a refusal is 96 + errc.
inline constexpr std::uint64_t wire_routing_base = 96;
constexpr std::uint64_t wire_code(errc e) noexcept { return wire_routing_base + static_cast<std::uint64_t>(e); }
/// The errc of a routing error_code; timeout for a code that is not one.
constexpr errc from_wire_code(std::uint64_t code) noexcept {
  return code >= wire_routing_base && code <= wire_routing_base + static_cast<std::uint64_t>(errc::store_failed)
             ? static_cast<errc>(code - wire_routing_base)
             : errc::timeout;
}

} // namespace flowbus::scheduling
