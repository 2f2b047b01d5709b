// The protocol's vocabulary: message types, flags, priorities, routing fields and wire kinds,
// with the tables the encoder and decoder share. docs/protocol.md is the prose of this file.
#pragma once

#include <cstdint>

namespace flowbus::codec {

/// Message types (header byte 5). Data types first, control types from 0x10.
enum class msg_type : std::uint8_t {
  task_assignment = 0x01, ///< a coordinator hands work to an agent
  task_result = 0x02,     ///< an agent reports the outcome of a task
  coordination = 0x03,    ///< agent-to-agent coordination traffic
  heartbeat = 0x04,       ///< liveness; no routing fields required
  batch = 0x05,           ///< 1..32 complete inner messages in the payload
  register_agent = 0x10,  ///< first frame of a connection: who the agent is
  welcome = 0x11,         ///< node's answer to REGISTER
  subscribe = 0x12,       ///< start receiving a topic pattern
  unsubscribe = 0x13,     ///< stop receiving a topic pattern
  publish = 0x14,         ///< generic message to a topic / agent / capability
  request = 0x15,         ///< expects a REPLY with the same correlation id
  reply = 0x16,           ///< answer to a REQUEST
  ack = 0x17,             ///< message_id was delivered (or persisted)
  nack = 0x18,            ///< message_id was refused, with error_code
  error = 0x19,           ///< protocol or routing error, with error_code; may precede a close
  credit = 0x1A,          ///< flow control: the receiver grants `credit` more messages
  goodbye = 0x1B,         ///< orderly end of a connection
  challenge = 0x1C,       ///< node -> agent before REGISTER: a nonce for the agent's key to sign (docs/security.md)
};

/// Priority lanes (header byte 7). Lower value = more urgent.
enum class priority : std::uint8_t { critical = 0, high = 1, normal = 2, low = 3, background = 4 };
inline constexpr std::uint8_t priority_count = 5;

/// Header flag bits (byte 6). Bits not listed must be zero in version 1.
namespace flag {
inline constexpr std::uint8_t ack_requested = 0x01; ///< sender wants an ACK/NACK for message_id
inline constexpr std::uint8_t has_deadline = 0x02;  ///< set if and only if the deadline field is present
inline constexpr std::uint8_t redelivery = 0x04;    ///< may duplicate an earlier delivery
inline constexpr std::uint8_t broadcast = 0x08;     ///< deliver to every agent (or every agent of agent_type)
inline constexpr std::uint8_t traced = 0x10;        ///< set if and only if the trace field is present
inline constexpr std::uint8_t known_mask = 0x1F;
} // namespace flag

/// How a routing field's value is laid out on the wire (low two bits of the field key).
enum class wire_kind : std::uint8_t {
  varint = 0, ///< one LEB128 u64
  string = 1, ///< one string in pool encoding (literal, pool definition or pool reference)
  bytes = 2,  ///< LEB128 length then raw bytes (never pooled); reserved for future fields
  pair = 3,   ///< two strings in pool encoding (key, value)
};

/// Routing field numbers (field key = number << 2 | wire_kind).
enum class field : std::uint8_t {
  topic = 1,          ///< string: hierarchical topic, e.g. agent.worker.7.status
  correlation_id = 2, ///< varint: pairs a REPLY with its REQUEST
  reply_to = 3,       ///< string: topic or inbox the reply goes to
  deadline = 4,       ///< varint: absolute deadline, ns since the Unix epoch (sender's clock)
  message_id = 5,     ///< varint: sender-unique id, for acks and duplicate detection
  source = 6,         ///< string: id of the sending agent
  hop_count = 7,      ///< varint: node-to-node hops taken so far
  header = 8,         ///< pair, repeated: application metadata key/value
  target = 9,         ///< string: agent id for unicast
  queue_group = 10,   ///< string: SUBSCRIBE into a queue group (one member gets each message)
  error_code = 11,    ///< varint: for ERROR and NACK (see protocol.md)
  credit = 12,        ///< varint: for CREDIT
  agent_type = 13,    ///< string: REGISTER's agent type; BROADCAST filter
  capability = 14,    ///< string, repeated: REGISTER advertises; a message routes to any agent having it
  heartbeat_ms = 15,  ///< varint: REGISTER's promised heartbeat interval
  attempt = 16,       ///< varint: delivery attempt, 1 for the first
  subscription = 17,  ///< string, repeated: REGISTER's initial subscriptions
  max_attempts = 18,  ///< varint: the sender's retry budget (deliveries before poison); 0: the recipient's
  token = 19,         ///< string: REGISTER's credentials (an HMAC-signed token; docs/security.md)
  nonce = 20,         ///< string: CHALLENGE's nonce (base64url of 32 random bytes)
  public_key = 21,    ///< string: REGISTER's Ed25519 public key (base64url of 32 bytes)
  signature = 22,     ///< string: REGISTER's Ed25519 signature of the nonce (base64url of 64 bytes)
  trace = 23,         ///< bytes: a sampled message's hops, 9 bytes each (hop kind, wall ns u64 LE; protocol.md §14)
};
inline constexpr std::uint8_t max_field_number = 23;

/// Where a known field lives in a decoded message.
struct field_info {
  wire_kind kind;
  bool repeated;
  std::uint8_t slot; ///< index into message's string or number slots (singular fields only)
  const char* name;
};
inline constexpr std::uint8_t string_slots = 11; ///< string and bytes fields
inline constexpr std::uint8_t number_slots = 9;

namespace detail {
inline constexpr field_info field_table[max_field_number + 1] = {
    {wire_kind::varint, false, 0, nullptr}, // 0: invalid
    {wire_kind::string, false, 0, "topic"},        {wire_kind::varint, false, 0, "correlation_id"},
    {wire_kind::string, false, 1, "reply_to"},     {wire_kind::varint, false, 1, "deadline"},
    {wire_kind::varint, false, 2, "message_id"},   {wire_kind::string, false, 2, "source"},
    {wire_kind::varint, false, 3, "hop_count"},    {wire_kind::pair, true, 0, "header"},
    {wire_kind::string, false, 3, "target"},       {wire_kind::string, false, 4, "queue_group"},
    {wire_kind::varint, false, 4, "error_code"},   {wire_kind::varint, false, 5, "credit"},
    {wire_kind::string, false, 5, "agent_type"},   {wire_kind::string, true, 0, "capability"},
    {wire_kind::varint, false, 6, "heartbeat_ms"}, {wire_kind::varint, false, 7, "attempt"},
    {wire_kind::string, true, 0, "subscription"},  {wire_kind::varint, false, 8, "max_attempts"},
    {wire_kind::string, false, 6, "token"},        {wire_kind::string, false, 7, "nonce"},
    {wire_kind::string, false, 8, "public_key"},   {wire_kind::string, false, 9, "signature"},
    {wire_kind::bytes, false, 10, "trace"},
};
} // namespace detail

/// Known fields by number; nullptr for 0 and for numbers this version does not know (skipped).
inline constexpr const field_info* describe(std::uint64_t field_number) noexcept {
  return field_number >= 1 && field_number <= max_field_number ? &detail::field_table[field_number] : nullptr;
}
inline constexpr const field_info* describe(field f) noexcept { return describe(static_cast<std::uint64_t>(f)); }

inline constexpr std::uint32_t bit(field f) noexcept { return 1u << static_cast<unsigned>(f); }

/// What a message type requires of its routing fields.
struct type_info {
  const char* name;       ///< nullptr: no such type
  std::uint32_t required; ///< bit(field) of every singular field that must be present
  bool needs_destination; ///< topic, target, a capability or the BROADCAST flag
};

namespace detail {
inline constexpr std::uint8_t max_type = 0x1C;
inline constexpr type_info type_table[max_type + 1] = {
    {nullptr, 0, false},
    {"TASK_ASSIGNMENT", 0, true},
    {"TASK_RESULT", 0, true},
    {"COORDINATION", 0, true},
    {"HEARTBEAT", 0, false},
    {"BATCH", 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {nullptr, 0, false},
    {"REGISTER", bit(field::source), false},
    {"WELCOME", 0, false},
    {"SUBSCRIBE", bit(field::topic), false},
    {"UNSUBSCRIBE", bit(field::topic), false},
    {"PUBLISH", 0, true},
    {"REQUEST", bit(field::correlation_id), true},
    {"REPLY", bit(field::correlation_id), true},
    {"ACK", bit(field::message_id), false},
    {"NACK", bit(field::message_id) | bit(field::error_code), false},
    {"ERROR", bit(field::error_code), false},
    {"CREDIT", bit(field::credit), false},
    {"GOODBYE", 0, false},
    {"CHALLENGE", bit(field::nonce), false},
};
} // namespace detail

/// nullptr for a byte that names no type.
inline constexpr const type_info* describe(msg_type t) noexcept {
  const auto i = static_cast<std::uint8_t>(t);
  return i <= detail::max_type && detail::type_table[i].name ? &detail::type_table[i] : nullptr;
}
inline constexpr bool is_known_type(std::uint8_t t) noexcept { return describe(static_cast<msg_type>(t)) != nullptr; }
/// A data message (one that needs a destination: TASK_*, COORDINATION, PUBLISH, REQUEST, REPLY):
/// what a receive window counts (protocol.md §2, CREDIT).
inline constexpr bool is_data(msg_type t) noexcept {
  const type_info* i = describe(t);
  return i && i->needs_destination;
}

const char* to_string(msg_type t) noexcept;
const char* to_string(priority p) noexcept;

} // namespace flowbus::codec
