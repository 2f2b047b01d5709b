// Dead-letter queues on disk: six typed queues (network timeout, agent unavailable, corruption,
// circuit breaker, poison, unknown), one append-only file each under a directory, so a restart
// keeps them. The node's DLQ actors append what `dead_letters` receives (group commit: one
// write + fdatasync per batch, off the data path); `flowbus dlq` and node::dlq_*() list, replay
// and purge them. Several processes may use one directory: every change holds an flock.
//
// File `<dir>/<kind>.dlq`: records of
//   u32 magic "FDLQ" · u32 body length · u32 CRC32C(body) · body
// body: u8 record type (1 entry, 2 tombstone), then for an entry
//   u8 reason · u32 attempts · u64 first_ns · u64 last_ns (wall clock) · u16 + source ·
//   u16 + recipient · u32 + frame (the original FLOW frame, as sent)
// and for a tombstone the u64 id of the entry it removes. An entry's id is its record's offset in
// the file. A torn record at the tail (a crash mid-append) is ignored and reported as torn bytes.
#pragma once

#include <flowbus/actors/agent.hpp>
#include <flowbus/actors/dead_letters.hpp>
#include <flowbus/actors/errc.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace flowbus::actors {

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

/// One kind's file. @threadsafe one object per thread; processes coordinate through flock.
class dlq_file {
public:
  dlq_file(std::filesystem::path dir, dlq_kind kind);

  dlq_kind kind() const noexcept { return kind_; }
  const std::filesystem::path& path() const noexcept { return path_; }

  /// Appends the entries (setting their ids) and fdatasyncs once: on return they are on disk.
  std::error_code append(std::vector<dlq_entry>& entries);
  struct contents {
    std::vector<dlq_entry> entries; ///< live entries, oldest first
    std::uint64_t tombstones = 0, torn_bytes = 0;
  };
  /// Reads the live entries (a missing file is empty).
  std::error_code load(contents& out) const;
  /// Removes entries by id (appends tombstones; unknown ids are ignored).
  std::error_code remove(const std::vector<std::uint64_t>& ids);
  /// Empties the file.
  std::error_code purge();

private:
  std::filesystem::path path_;
  dlq_kind kind_;
};

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
