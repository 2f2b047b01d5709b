// Durable streams (issue 23): a stream captures the messages of one or more topic patterns into a
// segment_log on disk, the frames as they were routed. Inside the node a stream is an agent
// ("$stream.<name>", type "stream") subscribed to its patterns, served by its own thread: it takes
// what its mailbox holds, appends it, commits by the stream's fsync policy, and only then confirms
// each frame — so an acknowledged publish (ACK_REQUESTED) whose recipients include a stream is
// ACKed once the record is as durable as the policy promises (docs/streams.md), and NACKed with
// store_failed if the stream cannot write it.
#pragma once

#include <flowbus/actors/segment_log.hpp>
#include <flowbus/scheduling/agent_messages.hpp>

#include <chrono>
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

/// A consumer reads a stream from a position on: its stream sends it each record, as a REQUEST
/// whose REPLY acknowledges it (docs/streams.md, "Consumers"). A durable consumer has a name and
/// keeps its position across restarts; an ephemeral one goes once nobody has listened for
/// `inactive`.
struct consumer_config {
  enum class start_at : std::uint8_t { first, last, new_only, sequence, time };
  std::string name; ///< 1-64 of [A-Za-z0-9_-]; ephemeral: empty, the stream names it
  bool durable = true;
  std::string deliver_to; ///< a topic (queue groups share it), or "agent:ID"
  std::string filter;     ///< a topic pattern: only the records it matches (empty: all)
  start_at start = start_at::first;
  std::uint64_t start_seq = 0;              ///< start_at::sequence
  std::uint64_t start_time_ns = 0;          ///< start_at::time: the first record appended at or after it
  std::chrono::milliseconds ack_wait{5000}; ///< a delivery not acked by then is sent again
  std::uint32_t max_in_flight = 256;        ///< deliveries not yet acked, at most
  std::uint32_t max_deliver = 5;            ///< deliveries of one record before it is poison (0: no limit)
  /// Before a redelivery (after an ack timeout or a NAK), a full-jitter wait whose ceiling starts
  /// at backoff and doubles each time, up to backoff_max.
  std::chrono::milliseconds backoff{100}, backoff_max{10000};
  std::chrono::milliseconds inactive{5000}; ///< ephemeral: removed after no interest this long
};

/// A consumer's deliver_to as a destination: `agent:ID` an agent, else a topic (views into `c`).
scheduling::destination deliver_destination(const consumer_config& c) noexcept;

struct consumer_status {
  consumer_config config;
  std::uint64_t next = 0;      ///< the next sequence number it has never been given
  std::uint64_t ack_floor = 0; ///< every record up to it is acknowledged (or not for it)
  std::uint64_t pending = 0;   ///< delivered, not acknowledged
  std::uint64_t delivered = 0, redelivered = 0, acked = 0, naked = 0, dead = 0;
  bool interest = false; ///< someone listens at deliver_to
};

struct stream_status {
  std::string name;
  std::vector<std::string> subjects;
  std::uint64_t first = 0, last = 0, records = 0, bytes = 0, durable = 0, syncs = 0;
  std::uint64_t failures = 0; ///< messages it could not write (their senders got store_failed)
  /// rounds served on a pushing thread instead of the stream's (a memory stream's sparse pushes)
  std::uint64_t inline_steps = 0;
  log_recovery recovered;
  fsync_policy sync = fsync_policy::group;
  bool in_memory = false;
  std::vector<consumer_status> consumers;
  /// A dead-letter queue read as a stream (`$dlq.<kind>`): its kind; empty for a stream
  std::string dlq;
};

/// Whether `name` may name a stream (and its directory).
bool valid_stream_name(const std::string& name) noexcept;

} // namespace flowbus::actors
