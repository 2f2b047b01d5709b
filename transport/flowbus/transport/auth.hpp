// Who may register as whom (issue 20): signed tokens, and public-key agents. A token is a JWT of the compact JWS form
// (RFC 7519 / 7515) signed with HMAC-SHA256 — `base64url(header).base64url(claims).base64url(mac)`
// — so the usual tools can read one; the node accepts exactly `"alg":"HS256"` with a `kid` it
// knows (several keys: rotation), never `none` or anything else. OpenSSL does the cryptography;
// the MAC is compared in constant time. docs/security.md describes the claims and their checks.
//
// Public-key agents (NATS nkeys style): the node knows Ed25519 public keys, each with the ids it
// may register as; it sends a fresh nonce in CHALLENGE on every connection and the agent's
// REGISTER carries its public key and its signature of that nonce. Nothing secret is on the
// node, and a signature is good for its connection only (a replayed one fails).
#pragma once

#include <flowbus/transport/permissions.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace flowbus::transport {

/// Why a token was refused (ok: accepted).
enum class auth_errc : std::uint8_t {
  ok,
  missing,               ///< REGISTER carried no token where the node requires one
  malformed,             ///< not three base64url parts, or not JSON objects, or a claim of the wrong type
  unsupported_algorithm, ///< alg other than HS256 (none included)
  unknown_key,           ///< no kid, or a kid the node does not have
  bad_signature,         ///< the MAC does not match: tampered, or signed with another key
  expired,               ///< exp is past (at REGISTER, or later during the connection)
  not_yet_valid,         ///< nbf is ahead
  id_not_permitted,      ///< the agent id is not what the token's `sub` allows
  type_not_permitted,    ///< the agent type is not the token's `agent_type`
  unknown_role,          ///< the token names a role the node does not have
};
const char* describe(auth_errc e) noexcept;
/// The same for a public key's refusal (agent_keys::verify).
const char* describe_key(auth_errc e) noexcept;

/// What a token says. Claims: `sub` (required: an agent id, or a pattern where `*` stands for any
/// run of characters, e.g. `worker-*`), `exp` (required: seconds since the Unix epoch), `nbf`,
/// `iat`, `agent_type` (the agent must register with this type), `role` (a role of the node's
/// --auth-roles), `permissions` (`{"publish": {"allow": [...], "deny": [...]}, "subscribe": ...}`,
/// in place of a role).
struct token_claims {
  std::string id_pattern;       ///< sub
  std::string agent_type;       ///< empty: any type
  std::string role;             ///< empty: the node's default role
  std::int64_t expires = 0;     ///< exp
  std::int64_t not_before = 0;  ///< nbf (0: none)
  std::int64_t issued_at = 0;   ///< iat (0: none)
  std::string key_id;           ///< the header's kid
  std::shared_ptr<const permissions> perms; ///< the `permissions` claim (null: none)
};

/// Whether `id` is what `pattern` allows: equal, or matching with `*` as any run of characters.
bool id_matches(std::string_view pattern, std::string_view id) noexcept;

/// The node's signing keys by id. @threadsafe const members (build it, then share it)
class token_keys {
public:
  static constexpr std::size_t min_key_bytes = 32; ///< HS256 with a key below 256 bits is refused

  /// Adds a key. Throws std::invalid_argument for an empty kid, a kid already present, or a key
  /// shorter than min_key_bytes.
  void add(std::string kid, std::string secret);
  bool empty() const noexcept { return keys_.empty(); }
  std::size_t size() const noexcept { return keys_.size(); }

  /// Checks `token` for an agent registering as (`id`, `type`) at `now_s` (seconds since the Unix
  /// epoch): signature first, then the claims. With ok, `*out` holds the claims.
  auth_errc verify(std::string_view token, std::string_view id, std::string_view type, std::int64_t now_s,
                   token_claims* out = nullptr) const;

  /// Signs `c` with the key `c.key_id` (which must be present: std::invalid_argument).
  std::string issue(const token_claims& c) const;

private:
  std::map<std::string, std::string, std::less<>> keys_;
};

/// Public keys of agents (`--auth-agent-keys`), each with what it allows — the same as a token's
/// claims: `id_pattern` (sub), `agent_type`, `role` or `perms`; no expiry (remove the key).
/// @threadsafe const members (build it, then share it)
class agent_keys {
public:
  /// Adds a key (base64url of its 32 bytes). Throws std::invalid_argument for a key that is not
  /// 32 bytes of base64url, one already present, or an empty id pattern.
  void add(const std::string& public_key, token_claims allows);
  bool empty() const noexcept { return keys_.empty(); }
  std::size_t size() const noexcept { return keys_.size(); }

  /// Checks REGISTER's `public_key` and `signature` (of `nonce`, the CHALLENGE's field as sent)
  /// for an agent registering as (`id`, `type`): the key must be known and the signature verify,
  /// then the id and type must be allowed. With ok, `*out` holds what the key allows.
  auth_errc verify(std::string_view public_key, std::string_view signature, std::string_view nonce, std::string_view id,
                   std::string_view type, token_claims* out = nullptr) const;

private:
  std::map<std::string, token_claims, std::less<>> keys_; ///< by public key (base64url)
};

/// The agent keys of a JSON file: `{"agents": [{"public_key": "...", "id": "worker-*",
/// "agent_type": "worker", "role": "worker"}, ...]}` (`agent_type` and `role` optional; or
/// `permissions` in place of a role). Throws std::runtime_error naming the file and the entry.
agent_keys read_agent_keys_file(const std::string& path);

/// base64url of 32 random bytes (OpenSSL's RAND_bytes): a CHALLENGE's nonce.
std::string new_nonce();

/// An agent's Ed25519 key pair, to answer CHALLENGE (the client; `flowbus key gen`).
class agent_identity {
public:
  /// A new key pair. Throws std::runtime_error if OpenSSL cannot make one.
  static agent_identity generate();
  /// The private key of a PEM file (`flowbus key gen` writes one). Throws std::runtime_error.
  static agent_identity from_pem_file(const std::string& path);
  /// Writes the private key as PEM (PKCS#8), readable by its owner only. Throws std::runtime_error.
  void write_pem_file(const std::string& path) const;
  std::string public_key() const; ///< base64url of its 32 bytes
  std::string sign(std::string_view nonce) const; ///< base64url of the 64-byte signature

  struct impl;

private:
  explicit agent_identity(std::shared_ptr<impl> p) : p_(std::move(p)) {}
  std::shared_ptr<impl> p_;
};

/// A key file's secret: its bytes as they are (`head -c 32 /dev/urandom > k`), or, for a file that
/// starts with `hex:`, the hex digits after it (`echo hex:$(openssl rand -hex 32) > k`; whitespace
/// around them ignored). Throws std::runtime_error naming the file when it cannot be read or its
/// hex is not hex.
std::string read_key_file(const std::string& path);

} // namespace flowbus::transport
