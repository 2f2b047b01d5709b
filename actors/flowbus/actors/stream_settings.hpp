// Streams a node is configured with from a file (flowbus node --streams-file, docs/streams.md,
// "Configured in a file"): each with its own settings, in the shape stream.add takes them.
#pragma once

#include <flowbus/actors/stream.hpp>

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <vector>

namespace flowbus::actors {

/// The streams of `doc`, `{"streams": [{...}, ...]}` (a TOML file's `[[streams]]` tables), their
/// logs under `directory`. Each is checked as stream.add checks it; a key that is not a setting
/// and a name given twice are refused too, since a typo in a file must not quietly become a
/// default. Throws std::invalid_argument naming the stream (its place, and its name once known)
/// and the key.
std::vector<stream_config> streams_from_document(const nlohmann::json& doc, const std::filesystem::path& directory);

} // namespace flowbus::actors
