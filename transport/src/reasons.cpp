#include <flowbus/transport/reasons.hpp>

#include <flowbus/codec/errc.hpp>

namespace flowbus::transport {

const char* describe_code(std::uint64_t code) noexcept {
  if (code < 64) return codec::to_string(static_cast<codec::errc>(code));
  if (code >= code_of(reason::routing_base)) return scheduling::to_string(static_cast<scheduling::errc>(code - code_of(reason::routing_base)));
  switch (static_cast<reason>(code)) {
    case reason::expected_register: return "expected REGISTER";
    case reason::already_registered: return "already registered";
    case reason::registration_refused: return "registration refused";
    case reason::text_message: return "text message";
    case reason::unexpected_type: return "unexpected type";
    case reason::slow_consumer: return "slow consumer";
    case reason::too_many_connections: return "too many connections";
    case reason::agent_down: return "agent down";
    case reason::message_too_large: return "message too large";
    case reason::handler_failed: return "handler failed";
    case reason::shm_damaged: return "shared memory damaged";
    case reason::auth_required: return "authentication required";
    case reason::auth_failed: return "authentication failed";
    case reason::token_expired: return "token expired";
    case reason::id_not_permitted: return "agent id not permitted";
    case reason::connection_rate_limited: return "connection rate limited";
    case reason::routing_base: break;
  }
  return "unknown";
}

} // namespace flowbus::transport
