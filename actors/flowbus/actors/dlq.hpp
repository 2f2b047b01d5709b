// Dead-letter queues on disk: six typed queues (network timeout, agent unavailable, corruption,
// circuit breaker, poison, unknown), each a log of the streams' store (segment_log.hpp) in
// `<dir>/<kind>/`, so a restart keeps them and one implementation of the log, its recovery and its
// tests serves both. The node's DLQ actors append what `dead_letters` receives (group commit: one
// write + fdatasync per batch, off the data path); `flowbus dlq` and node::dlq_*() list, replay
// and purge them. Several processes may use one directory: every operation holds the queue's
// flock (`<dir>/<kind>/.lock`) and opens the log for its duration — except in the node, which
// keeps each log open (keep_open) and opens it again when another process changed the queue: each
// change first bumps a generation number kept in the lock file.
//
// A record's bytes (the log's "frame") are an entry:
//   u8 1 · u8 reason · u32 attempts · u64 first_ns · u64 last_ns (wall clock) · u16 + source ·
//   u16 + recipient · u32 + frame (the original FLOW frame, as sent)
// An entry's id is its record's sequence number; replay removes entries with the log's deletion
// markers, purge empties the log (ids go on from where they were). Recovery is the log's: a torn
// tail is cut when the queue is opened, a damaged record in the middle is skipped and counted.
// A queue directory from before (`<dir>/<kind>.dlq`, records "FDLQ" with tombstones) is imported
// into the log the first time the queue is opened, and renamed `<kind>.dlq.imported`.
#pragma once

#include <flowbus/actors/agent.hpp>
#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/actors/errc.hpp>
#include <flowbus/codec/decoder.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace flowbus::actors {

class segment_log;

std::optional<dlq_kind> parse_dlq_kind(std::string_view name) noexcept;

struct dlq_entry {
  std::uint64_t id = 0; ///< set by append (the record's offset)
  dead_reason reason = dead_reason::unknown;
  std::uint32_t attempts = 1;
  std::uint64_t first_ns = 0, last_ns = 0; ///< wall clock, ns since the Unix epoch
  std::string source;    ///< the sending agent (from the frame; empty if it did not decode)
  std::string recipient; ///< the agent or topic it was for
  std::string frame;     ///< the original FLOW frame
};

/// One kind's queue. @threadsafe one object per thread (copies of one that keeps its log open
/// share it under a mutex); processes coordinate through flock.
class dlq_file {
public:
  dlq_file(std::filesystem::path dir, dlq_kind kind);
  /// Keeps the log open between operations, shared by this object's copies (the node's DLQ actor
  /// and its `$dlq.<kind>` stream), instead of opening (recovering) it for each. Every operation
  /// that changes a queue first bumps a generation number in its lock file, under the flock, so a
  /// process that keeps it open reopens it when another (`flowbus dlq`) changed it.
  void keep_open();

  dlq_kind kind() const noexcept { return kind_; }
  const std::filesystem::path& path() const noexcept { return path_; } ///< the queue's log directory

  /// Appends the entries (setting their ids) and fdatasyncs once: on return they are on disk.
  /// On an error nothing of the batch stays in the log (a batch is one write below 1 MiB).
  std::error_code append(std::vector<dlq_entry>& entries);
  struct contents {
    std::vector<dlq_entry> entries; ///< live entries, oldest first
    std::uint64_t deleted = 0;         ///< removed entries whose segment is still kept
    std::uint64_t torn_bytes = 0;      ///< cut off the end when this read opened it (a crash mid-append)
    std::uint64_t damaged_bytes = 0;   ///< skipped between whole records
    std::uint64_t damaged_regions = 0; ///< how many such stretches
  };
  /// Reads the live entries (a missing queue is empty).
  std::error_code load(contents& out) const;
  /// What recover() found.
  struct recovery {
    std::uint64_t bytes = 0;           ///< of the log's segments, after
    std::uint64_t truncated_bytes = 0; ///< the torn tail cut off
    std::uint64_t damaged_bytes = 0;   ///< damage between whole records, left for readers to skip
  };
  /// Opens the log (cutting a torn tail, importing a legacy file); a missing queue stays missing.
  std::error_code recover(recovery& out);
  /// Torn-tail bytes this object's openings have cut off.
  std::uint64_t truncated_bytes() const noexcept { return truncated_; }
  /// Removes entries by id (unknown ids are ignored).
  std::error_code remove(const std::vector<std::uint64_t>& ids);
  /// Empties the queue.
  std::error_code purge();
  /// Locks the queue, opens its log and lets f read it (create: make the queue if missing; else f
  /// is not called for a missing queue). What the node's `$dlq.<kind>` streams read through.
  std::error_code read_log(bool create, const std::function<void(const segment_log&)>& f) const;

private:
  /// Locks the queue, opens its log (or takes the one kept open, if still current) and calls
  /// f(log) (create: make it if missing; else a missing queue is left alone and f is not called).
  /// `changes`: f will change the queue (the generation is bumped first).
  template <class F> std::error_code with_log(bool create, bool changes, F&& f) const;
  struct open_log;
  std::filesystem::path dir_, path_;
  dlq_kind kind_;
  mutable std::uint64_t truncated_ = 0;
  std::shared_ptr<open_log> kept_; ///< keep_open()
};

/// Makes `dir` usable as a DLQ directory: creates it if missing (fsyncing its parent), checks it is
/// a directory this process can create files in (a probe file), and recovers every existing queue
/// (recover()). Returns the first problem, with `what` set to the path it concerns; `files` gets
/// each kind's queue, `recovered` each kind's recovery.
std::error_code open_dlq_directory(const std::filesystem::path& dir, std::string& what, std::vector<dlq_file>& files,
                                   std::array<dlq_file::recovery, dlq_kind_count>& recovered);

/// Re-sends a dead letter's original message with the same destination (topic, agent, capability
/// or broadcast), type, priority, correlation id, message id and deadline, through any sender with
/// send(destination, payload, opts) / broadcast(payload, type, opts) — an in-process client or a
/// WebSocket client. The source becomes the replaying agent. Returns false if the frame does not
/// decode (a corruption entry cannot be replayed) or the sender refused it.
struct replay_target {
  std::function<bool(const destination&, std::string_view payload, const send_options&)> send;
  std::function<bool(std::string_view payload, std::string_view agent_type, const send_options&)> broadcast;
};
bool replay_entry(const dlq_entry& e, const replay_target& to);
/// replay_entry for each entry whose id is in `ids` (all when `ids` is empty).
struct replay_outcome {
  std::vector<std::uint64_t> sent; ///< ids replayed (to remove from the queue)
  std::size_t failed = 0;          ///< could not be sent: they stay
};
replay_outcome replay_entries(const std::vector<dlq_entry>& entries, const std::vector<std::uint64_t>& ids,
                              const replay_target& to);
/// The entry a record of a queue's log holds (`e.id` is left to the caller: the record's sequence
/// number). False if the record is not an entry.
bool parse_dlq_entry(codec::bytes_view body, dlq_entry& e);
/// How an entry's frame is decoded: the node's stored frames carry no checksum, but a corruption
/// entry keeps the bytes as they came from a connection, and those are checked.
codec::decoder_options frame_reading(dead_reason r) noexcept;
/// The entry for a dead letter: its frame copied, source and attempt read from it.
dlq_entry make_dlq_entry(const dead_letter& d);

inline bool ok_result(errc e) noexcept { return e == errc::ok; }
inline bool ok_result(const send_result& r) noexcept { return r.code == errc::ok; }

/// Adapts a sender (actors::sender, transport::client) whose results convert to bool-like ok.
template <class Sender> replay_target replay_through(Sender& s) {
  return {[&s](const destination& d, std::string_view p, const send_options& o) { return ok_result(s.send(d, p, o)); },
          [&s](std::string_view p, std::string_view t, const send_options& o) { return ok_result(s.broadcast(p, t, o)); }};
}

} // namespace flowbus::actors
