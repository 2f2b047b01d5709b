// Why the node closes a connection or refuses one of its messages: the `error_code` of ERROR and
// NACK frames. Codes below 64 are the codec's (a defective frame: protocol.md §9); these are the
// node's own (§9: "codes from 64 up"). Routing refusals carry 96 + the broker's scheduling::errc.
#pragma once

#include <flowbus/scheduling/errc.hpp>

#include <cstdint>

namespace flowbus::transport {

enum class reason : std::uint16_t {
  expected_register = 64,    ///< the first frame of a connection was not REGISTER
  already_registered = 65,   ///< a second REGISTER
  registration_refused = 66, ///< the node refused the REGISTER (see the NACK-style code 96+ that follows)
  text_message = 67,         ///< a text WebSocket message (FLOW is binary only)
  unexpected_type = 68,      ///< a type only the node sends (WELCOME, ...) or a BATCH where none may be
  slow_consumer = 69,        ///< the peer did not read its messages in time
  too_many_connections = 70, ///< the node's connection limit is reached
  // 71: reserved (a stopping node says GOODBYE instead)
  agent_down = 72,           ///< the node took the agent down (missed heartbeats; its id won by another node)
  message_too_large = 73,    ///< a WebSocket message above the node's maximum
  handler_failed = 74,       ///< agent → node NACK: the agent's handler failed the message
  shm_damaged = 75,          ///< a shared-memory ring holds a record no writer could have made
  // credentials (docs/security.md): each closes the connection, its ERROR's `reason` says which check
  auth_required = 76,        ///< the node requires a token and REGISTER carried none
  auth_failed = 77,          ///< the token is malformed, of another algorithm, of an unknown key, or its signature fails
  token_expired = 78,        ///< the token expired (at REGISTER, or later: the node closes the connection then)
  id_not_permitted = 79,     ///< the token does not allow this agent id (or type)
  connection_rate_limited = 80, ///< too many new connections from this address (server_options::limits): try again later
  routing_base = scheduling::wire_routing_base, ///< 96 + scheduling::errc: a message or subscription was refused
};

constexpr std::uint64_t code_of(reason r) noexcept { return static_cast<std::uint64_t>(r); }
constexpr std::uint64_t code_of(scheduling::errc e) noexcept { return scheduling::wire_code(e); }
/// A short description of any error_code (codec, node or routing).
const char* describe_code(std::uint64_t code) noexcept;

} // namespace flowbus::transport
