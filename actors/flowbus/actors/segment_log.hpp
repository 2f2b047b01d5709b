// A stream's log: an append-only sequence of FLOW frames kept in segment files, the store behind
// durable streams (issue 23). Records are those of the dead-letter files (record_file.hpp): magic
// "FSEG", body length, CRC32C, then the body — the stream sequence number (u64), the time it was
// appended (u64 ns since the Unix epoch) and the frame exactly as received. A segment is named
// after its first sequence number (`00000000000000000001.seg`); a new one starts when the active
// one passes `segment_bytes`.
//
// `append()` adds a record to a buffer; `commit()` writes what was appended in one write() (a
// batch: one connection's read pass, say) and then applies the durability policy: `always`
// fdatasyncs every commit — a committed record survives a power failure; `group` fdatasyncs once
// `group_interval` has passed since the last sync (a crash of the process loses nothing committed,
// a power failure up to the interval); `never` leaves it to the kernel (a process crash loses
// nothing committed; a power failure, what the kernel had not written back). What was appended
// and not committed is lost with the process. `durable()` says up to which sequence number the
// policy's promise holds, so acknowledgements wait for it. With log_options::background_io the
// write() too happens on the log's own thread (the promises then hold from durable() on).
//
// With log_options::in_memory the segments are strings in memory instead of files: the same
// records, reads, lookups and retention, and nothing on disk.
//
// A segment that is closed (a newer one started) gets an index file beside it, `<first>.idx`: its
// sparse index and totals in one checksummed record. Opening reads a closed segment's index
// instead of scanning the segment when the index checks (its checksum, and the segment's size it
// names); otherwise it scans and writes the index again. The active segment is always scanned.
//
// Records can be deleted one by one (`remove()`, what a dead-letter queue's replay does) or all at
// once (`purge()`); sequence numbers never go back. A deletion is a marker appended to the file
// `deleted` beside the segments (records of magic "FDEL": u64 sequence numbers), fdatasynced
// before remove() returns; readers skip what it names. A closed segment whose records are all
// deleted is removed with its index, and the markers for it go (the file is rewritten, atomically,
// when it holds more stale markers than live ones). When nothing is left, remove() purges. A purge
// starts an empty segment named after the next sequence number, then removes every older one, so
// a crash part way leaves a shorter log, never an older record after a newer one.
//
// Opening recovers: every segment is scanned, a torn tail of the last one (a record cut short by
// a crash) is truncated and counted, damage elsewhere is skipped and counted; the index of
// sequence numbers and times is rebuilt in memory.
// @threadsafe no: one owner (a stream's actor).
#pragma once

#include <flowbus/codec/bytes.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace flowbus::actors {

enum class fsync_policy : std::uint8_t { always, group, never };
const char* to_string(fsync_policy p) noexcept;

struct log_options {
  std::uint64_t segment_bytes = 64ull << 20; ///< a new segment starts once the active one is this large
  fsync_policy sync = fsync_policy::group;
  /// group: an fdatasync at most this often (from the end of the last one), so a committed record
  /// waits up to this long, plus the sync itself, to be durable
  std::chrono::milliseconds group_interval{5};
  /// Retention (0: no limit): whole oldest segments go once the log holds more bytes or records
  /// than this, or their newest record is older than max_age. The active segment stays.
  std::uint64_t max_bytes = 0, max_records = 0;
  std::chrono::seconds max_age{0};
  /// Kept in memory, not on disk (the seed's "RAM store"): nothing survives the process, nothing
  /// is synced, a commit is durable at once. The directory is not used.
  bool in_memory = false;
  /// Files: write() and fdatasync run on the log's own thread while the owner goes on appending,
  /// committing and reading (what is not yet written is read from memory). That thread applies
  /// the policy (always: a sync after each pass of writes; group: once the interval has passed
  /// since the last sync ended, with the writes just before it unless 1 MiB waits). commit() hands over what was
  /// appended (waiting only while 2 MiB are still unwritten) and returns what the I/O thread has made durable so far
  /// (never: written), so call it again to learn more — on_io says when. A failed sync throws from a later commit(). A
  /// failed write too, after the log was rolled back to what the file holds: the records after it are gone (though
  /// readers may have had them), their sequence numbers are not given again (the next append starts a new segment,
  /// named after the next number).
  bool background_io = false;
  /// background_io: called on the I/O thread after it wrote or synced (or failed to), so that
  /// the owner can commit() again to learn it. Must not call the log.
  std::function<void()> on_io;
};

/// What opening the log found.
struct log_recovery {
  std::uint64_t segments = 0, records = 0;
  std::uint64_t torn_bytes = 0;    ///< cut off the last segment's end (a crash mid-append)
  std::uint64_t damaged_bytes = 0; ///< skipped between whole records
  std::uint64_t damaged_regions = 0;
  std::uint64_t indexed = 0; ///< segments read from their index file instead of scanned
};

/// One stored record; views valid until the next call on the log.
struct log_record {
  std::uint64_t seq = 0;
  std::uint64_t time_ns = 0;
  codec::bytes_view frame;
};

class segment_log {
public:
  /// Opens (creating `dir` if needed) and recovers. Throws std::system_error if the directory
  /// cannot be created or a segment cannot be read or repaired.
  segment_log(std::filesystem::path dir, log_options options);
  ~segment_log();
  segment_log(const segment_log&) = delete;
  segment_log& operator=(const segment_log&) = delete;

  /// Adds one record (buffered: see commit()); returns its sequence number. Buffers hold at most
  /// 1 MiB: beyond, append() writes them. Throws std::system_error when a write fails (a full
  /// disk): the records not yet written are gone from the log, and nothing of them stays in the file.
  std::uint64_t append(codec::bytes_view frame, std::uint64_t time_ns);
  /// Writes what was appended and applies the policy: returns the highest sequence number now as
  /// durable as the policy promises (always: all; group: all if the interval has passed since the
  /// last sync, else what the last sync covered — call again by the interval; never: all).
  /// Throws std::system_error as append() does.
  std::uint64_t commit(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  /// fdatasyncs the active segment now, whatever the policy (after background writes and a sync in flight).
  void sync();
  /// background_io: while held, what commits hand over waits to wake the I/O thread until
  /// hold_io(false) — an owner that delivers what it appended does so first, rather than have the
  /// I/O thread's wake-up take the CPU from it (a wait for room or a sync wakes it all the same).
  void hold_io(bool hold);
  /// Whether the next append or commit may wait for the disk: a file log without background_io
  /// always may; with it, when a new segment is due or the I/O thread is 2 MiB behind.
  bool may_block() const noexcept;
  std::uint64_t durable() const noexcept;
  std::uint64_t syncs() const noexcept; ///< fdatasyncs so far (commits, sync(), segment rolls)

  std::uint64_t first() const noexcept;   ///< the oldest record kept, not deleted (last() + 1 when none)
  std::uint64_t last() const noexcept;    ///< the newest (0: none yet)
  std::uint64_t records() const noexcept; ///< kept, not deleted
  std::uint64_t bytes() const noexcept;   ///< of all segments
  std::size_t segments() const noexcept;
  const log_recovery& recovered() const noexcept;

  /// Calls f(record) for records from `from` (or the first kept) on, in order, up to `max`;
  /// f returns false to stop. Returns how many it gave.
  std::size_t read(std::uint64_t from, std::size_t max, const std::function<bool(const log_record&)>& f) const;
  /// The first sequence number appended at or after `time_ns` (last() + 1 if none).
  std::uint64_t seq_at_time(std::uint64_t time_ns) const;
  /// Deletes the records with these sequence numbers (others — not in the log, deleted already —
  /// are ignored) and returns how many it deleted; on disk once it returns (the markers are
  /// fdatasynced, whatever the policy). Throws std::system_error.
  std::uint64_t remove(const std::vector<std::uint64_t>& seqs);
  /// Deletes every record (sequence numbers go on from last() + 1); returns how many went.
  /// Throws std::system_error.
  std::uint64_t purge();
  /// Deletion markers held: records deleted, still inside a segment that is kept.
  std::uint64_t deleted() const noexcept;
  /// Drops whole oldest segments past the retention limits (now: wall clock, ns). Returns how
  /// many records went.
  std::uint64_t enforce_retention(std::uint64_t now_ns);

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace flowbus::actors
