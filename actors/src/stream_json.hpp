// The JSON of streams and consumers: the stream API's requests and replies (docs/streams.md, "The
// stream API"), a stream's stream.json and a durable consumer's state file. Internal to the
// actors layer.
#pragma once

#include <flowbus/actors/stream.hpp>

#include "record_file.hpp" // write_file_atomically

#include <nlohmann/json.hpp>

#include <filesystem>

namespace flowbus::actors {

/// Reads a consumer's settings; what is absent keeps its default. Throws std::invalid_argument
/// naming the field that is wrong.
consumer_config parse_consumer_config(const nlohmann::json& j);
nlohmann::json to_json(const consumer_config& c);
nlohmann::json to_json(const consumer_status& s);

/// Reads a stream's settings ("name", "subjects", "fsync", "group_ms", "segment_mb", "max_bytes",
/// "max_records", "max_age_s"), its log in `directory`/name. Throws std::invalid_argument.
stream_config parse_stream_config(const nlohmann::json& j, const std::filesystem::path& directory);
nlohmann::json to_json(const stream_config& c);
nlohmann::json to_json(const stream_status& s);


} // namespace flowbus::actors
