// The node's structured files — roles (--auth-roles), agent keys (--auth-agent-keys), streams
// (flowbus node --streams-file) — in JSON, or in TOML for a name ending in .toml, read into one
// JSON value so that one parser checks either.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace flowbus::transport {

/// The file's document: JSON, or TOML (tables as objects, arrays as arrays; integers >= 0 as
/// unsigned numbers). Throws std::runtime_error naming `what`, the file and the parser's reason.
nlohmann::json read_json_or_toml(const std::string& path, const char* what);

} // namespace flowbus::transport
