// Durable streams (issue 23): a stream captures the messages of one or more topic patterns into a
// segment_log on disk, the frames as they were routed. Inside the node a stream is an agent
// ("$stream.<name>", type "stream") subscribed to its patterns, served by its own thread: it takes
// what its mailbox holds, appends it, commits by the stream's fsync policy, and only then confirms
// each frame — so an acknowledged publish (ACK_REQUESTED) whose recipients include a stream is
// ACKed once the record is as durable as the policy promises (docs/streams.md), and NACKed with
// store_failed if the stream cannot write it.
#pragma once

#include <flowbus/actors/segment_log.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace flowbus::actors {

struct stream_config {
  std::string name;                  ///< 1-64 of [A-Za-z0-9_-]: also its directory's name
  std::vector<std::string> subjects; ///< topic patterns it captures
  std::filesystem::path directory;   ///< the streams' directory: this stream's log is directory/name
  log_options log;
};

struct stream_status {
  std::string name;
  std::vector<std::string> subjects;
  std::uint64_t first = 0, last = 0, records = 0, bytes = 0, durable = 0, syncs = 0;
  std::uint64_t failures = 0; ///< messages it could not write (their senders got store_failed)
  log_recovery recovered;
};

/// Whether `name` may name a stream (and its directory).
bool valid_stream_name(const std::string& name) noexcept;

} // namespace flowbus::actors
