#include <flowbus/actors/segment_log.hpp>

#include "record_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace flowbus::actors {

using namespace detail;

namespace {

constexpr std::uint32_t segment_magic = 0x47455346; // "FSEG" little-endian
constexpr std::uint32_t index_magic = 0x58444946;   // "FIDX": a closed segment's index file
constexpr std::uint32_t delete_magic = 0x4C454446;  // "FDEL": deletion markers (the file `deleted`)
constexpr std::size_t body_head = 16;               // seq, time
constexpr std::uint64_t index_every = 64;           // a sparse index entry every this many records
constexpr std::size_t read_chunk = 1 << 20;
constexpr std::size_t tail_keep = 4u << 20; // the active segment's newest bytes kept in memory (more while unwritten)
constexpr std::uint64_t io_queue_limit = 2u << 20; // background_io: bytes handed and not yet written, at most
constexpr std::uint64_t io_coalesce = 1u << 20; // background_io, group: written before the sync is due from this much

[[noreturn]] void fail(std::error_code ec, const std::string& what) { throw std::system_error(ec, what); }

std::string segment_name(std::uint64_t first_seq) {
  char b[32];
  std::snprintf(b, sizeof b, "%020" PRIu64 ".seg", first_seq);
  return b;
}

std::filesystem::path index_path(const std::filesystem::path& segment) {
  return std::filesystem::path(segment).replace_extension(".idx");
}

/// Calls on(record) for each record of `mem` (whole records, as this process wrote them) from
/// `at` on, until it returns false; returns whether it went to the end.
template <class F> bool walk_records(const std::string& mem, std::size_t at, F&& on) {
  const auto* base = reinterpret_cast<const codec::byte*>(mem.data());
  while (at + record_head <= mem.size()) {
    const std::uint32_t len = codec::load_le<std::uint32_t>(base + at + 4);
    const codec::byte* body = base + at + record_head;
    if (!on(log_record{codec::load_le<std::uint64_t>(body), codec::load_le<std::uint64_t>(body + 8),
                       codec::bytes_view(body + body_head, len - body_head)}))
      return false;
    at += record_head + len;
  }
  return true;
}

/// The newest bytes of a segment, kept in memory in chunks of whole records: appending never
/// moves what is kept and dropping the oldest never copies (a std::string that grew by doubling
/// and erased its older half took up to 10-20 ms per copy here, into freshly faulted pages,
/// holding up the stream's round). A dropped chunk's buffer is kept for the next one, its pages
/// already mapped.
class tail_chunks {
public:
  static constexpr std::size_t chunk_bytes = 1u << 20;

  std::uint64_t base() const noexcept { return base_; } ///< its first byte's offset in the segment
  std::uint64_t end() const noexcept {
    return chunks_.empty() ? base_ : chunks_.back().base + chunks_.back().bytes.size();
  }

  /// Empty, the next byte appended being at `at`.
  void reset(std::uint64_t at) {
    while (!chunks_.empty())
      drop_front();
    base_ = at;
  }
  /// Appends whole records (they stay in one chunk).
  void append(const std::string& records) {
    if (chunks_.empty() || chunks_.back().bytes.size() + records.size() > chunks_.back().bytes.capacity()) {
      const std::uint64_t at = end();
      std::string b;
      b.swap(spare_);
      b.reserve(std::max(chunk_bytes, records.size()));
      chunks_.push_back({at, std::move(b)});
    }
    chunks_.back().bytes += records;
  }
  /// Drops the oldest chunks while `keep` bytes stay without them, but none that ends past `written`.
  void trim(std::uint64_t keep, std::uint64_t written) {
    while (chunks_.size() > 1 && end() - chunks_[1].base >= keep &&
           chunks_.front().base + chunks_.front().bytes.size() <= written)
      drop_front();
  }
  /// The bytes from `at` on are gone (at >= base(): cut there; else all, the next byte at `at`).
  void cut(std::uint64_t at) {
    if (at < base_) return reset(at);
    while (!chunks_.empty() && chunks_.back().base >= at && chunks_.size() > 1)
      chunks_.pop_back();
    if (!chunks_.empty())
      chunks_.back().bytes.resize(
          static_cast<std::size_t>(std::min<std::uint64_t>(at - chunks_.back().base, chunks_.back().bytes.size())));
  }
  /// Calls on(chunk bytes, offset in them) from the record at `offset` (>= base()) on, chunk after
  /// chunk, while it returns true.
  template <class F> void walk(std::uint64_t offset, F&& on) const {
    for (const chunk& c : chunks_) {
      const std::uint64_t c_end = c.base + c.bytes.size();
      if (offset >= c_end) continue;
      if (!on(c.bytes, static_cast<std::size_t>(offset > c.base ? offset - c.base : 0))) return;
    }
  }

private:
  struct chunk {
    std::uint64_t base;
    std::string bytes;
  };
  void drop_front() {
    chunk& c = chunks_.front();
    base_ = c.base + c.bytes.size(); // (the next chunk's base: they are contiguous)
    if (c.bytes.capacity() > spare_.capacity()) {
      c.bytes.clear();
      spare_.swap(c.bytes);
    }
    chunks_.pop_front();
  }
  std::deque<chunk> chunks_;
  std::uint64_t base_ = 0;
  std::string spare_;
};

} // namespace

const char* to_string(fsync_policy p) noexcept {
  switch (p) {
  case fsync_policy::always:
    return "always";
  case fsync_policy::group:
    return "group";
  case fsync_policy::never:
    return "never";
  }
  return "?";
}

struct segment_log::impl {
  struct mark { // a sparse index entry: where record `seq` starts
    std::uint64_t seq, offset, time_ns;
  };
  struct segment {
    std::uint64_t base = 0; ///< from the file name: the first sequence number it was opened for
    std::filesystem::path path;
    std::uint64_t size = 0, records = 0, first_seq = 0, last_seq = 0, first_time = 0, last_time = 0;
    std::vector<mark> index;
    std::string mem; ///< in_memory: the segment's bytes
  };

  std::filesystem::path dir;
  log_options opt;
  std::deque<segment> segs;
  int fd = -1; ///< the active (last) segment, for appending
  std::uint64_t next_seq = 1, written = 0, synced = 0, total_bytes = 0, total_records = 0, syncs = 0;
  std::string pending;            ///< records appended since the last write (one write() per commit)
  std::uint64_t pending_last = 0; ///< the last sequence number in it
  std::uint64_t file_size = 0;    ///< of the active segment, known written (its `size` counts `pending` too)
  /// The active segment's newest bytes, [tail.base(), its size - pending), kept so that consumers
  /// reading what was just appended are served from memory, not by open/pread/close; it holds
  /// every byte not yet known written
  tail_chunks tail;
  std::chrono::steady_clock::time_point last_sync{};
  log_recovery rec;
  std::set<std::uint64_t> del;        ///< deleted records still inside kept segments
  std::uint64_t del_file_markers = 0; ///< markers in the file `deleted`, stale ones included

  // background_io: the log's I/O thread, and what it shares with the owner (under sm). The owner
  // hands it the bytes each commit wrote (joining the job it has not taken yet: one write() per
  // pass) and asks it for an fdatasync; it writes them to the active segment (io_fd: changed only
  // while it is idle) and syncs. The owner keeps every byte not yet written in `tail`, so reads
  // never wait for it.
  struct job {
    std::string bytes;
    std::uint64_t last_seq = 0, end = 0; ///< its last record; the segment's size once it is written
  };
  std::thread io;
  std::mutex sm;
  std::condition_variable scv;
  std::optional<job> handed;      ///< not yet taken by the I/O thread
  std::string spare;              ///< a written job's buffer, for the next job (no commit allocates)
  std::uint64_t queued_bytes = 0; ///< handed, not yet written (the owner waits above io_queue_limit)
  bool stopping = false, busy = false, sync_wanted = false;
  bool flush = false;   ///< write what is handed now (a drain), whatever the policy would wait for
  bool io_idle = false; ///< the I/O thread waits with no deadline: a job must wake it
  int io_fd = -1;
  std::uint64_t bg_written_seq = 0, bg_written_end = 0; ///< what is in the file
  std::uint64_t bg_synced = 0, bg_syncs = 0;
  std::error_code bg_error; ///< a failed sync
  /// A failed write: the file was cut back to bg_written_end (the records up to bg_written_seq),
  /// and what was handed since is dropped until the owner has rolled the log back (collect()).
  std::error_code bg_write_error;
  std::chrono::steady_clock::time_point bg_end{};
  bool roll_next = false; ///< a background write failed: the next append starts a new segment
  bool io_held = false;   ///< hold_io(): a job waits for release before the I/O thread is woken

  bool background() const noexcept { return opt.background_io && !opt.in_memory; }
  /// The next append starts a new segment: the active one is full, a background write failed, or
  /// a file log has no active segment open (a roll that failed is tried again).
  bool roll_due() const noexcept {
    return (segs.back().size >= opt.segment_bytes && segs.back().records > 0) || roll_next ||
           (!opt.in_memory && fd < 0);
  }

  ~impl() {
    if (io.joinable()) {
      {
        std::lock_guard<std::mutex> g(sm);
        stopping = true;
      }
      scv.notify_all();
      io.join();
    }
    if (fd >= 0) ::close(fd);
  }

  /// The I/O thread: writes what is handed over, in order, and applies the policy itself (always:
  /// an fdatasync after each pass of writes; group: once the interval has passed since the last
  /// one ended, waiting for it if need be; never: only when sync() asks). With group, the writes
  /// wait for the sync too (unless 1 MiB is waiting): one wake-up, one write() and one fdatasync
  /// per interval, rather than a wake-up and a write() per commit that no ACK waits for.
  void run_io() {
    using clock = std::chrono::steady_clock;
    std::unique_lock<std::mutex> g(sm);
    auto unsynced = [&] {
      return !bg_write_error && io_fd >= 0 && opt.sync != fsync_policy::never && bg_written_seq > bg_synced;
    };
    auto sync_due = [&] {
      return unsynced() && (opt.sync == fsync_policy::always || clock::now() - bg_end >= opt.group_interval);
    };
    auto write_due = [&] {
      return handed && (opt.sync != fsync_policy::group || flush || sync_wanted || stopping ||
                        queued_bytes >= io_coalesce || clock::now() - bg_end >= opt.group_interval);
    };
    auto ready = [&] { return stopping || sync_wanted || write_due() || sync_due(); };
    for (;;) {
      if (bg_write_error) { // until the owner rolls back, what it hands goes nowhere
        drop_handed();
        scv.notify_all();
        if (stopping) return;
      }
      if (bg_write_error || !ready()) { // wait for a job, or (group) for the interval's end
        io_idle = bg_write_error || !(unsynced() || (opt.sync == fsync_policy::group && handed));
        if (io_idle)
          scv.wait(g);
        else
          scv.wait_until(g, bg_end + opt.group_interval);
        io_idle = false;
        continue;
      }
      if (!handed && !sync_wanted && !sync_due()) return; // stopping, and all done
      std::optional<job> todo;
      todo.swap(handed);
      flush = false;
      bool sync = sync_wanted;
      sync_wanted = false;
      busy = true;
      const int f = io_fd;
      const auto last_end = bg_end;
      const std::uint64_t synced_before = bg_synced;
      std::uint64_t seq = bg_written_seq, end = bg_written_end, bytes = 0;
      g.unlock();
      std::error_code wrote, synced_ec;
      if (todo) {
        bytes = todo->bytes.size();
        if ((wrote = write_all(f, todo->bytes))) { // nothing of it stays (the next open's recovery cuts what does)
          if (::ftruncate(f, static_cast<off_t>(end)) != 0) {
          }
        } else {
          seq = todo->last_seq;
          end = todo->end;
        }
      }
      sync = sync || (opt.sync != fsync_policy::never && seq > synced_before &&
                      (opt.sync == fsync_policy::always || clock::now() - last_end >= opt.group_interval));
      if (!wrote && sync && f >= 0 && ::fdatasync(f) != 0) synced_ec = last_error();
      std::string reuse; // the job's buffer goes back for the next one
      if (todo) reuse.swap(todo->bytes);
      reuse.clear();
      g.lock();
      if (reuse.capacity() > spare.capacity()) spare.swap(reuse);
      const bool progress = seq != bg_written_seq || (sync && !wrote);
      bg_written_seq = seq;
      bg_written_end = end;
      queued_bytes -= std::min(queued_bytes, bytes);
      if (wrote) {
        bg_write_error = wrote; // (what was handed since goes at the loop's top)
      } else if (sync) {
        if (synced_ec)
          bg_error = synced_ec;
        else
          bg_synced = std::max(bg_synced, seq), ++bg_syncs;
        bg_end = clock::now(); // (a failed sync is tried again an interval later)
      }
      if ((progress || wrote) && opt.on_io) { // the owner may learn more from commit() now
        g.unlock();
        opt.on_io(); // (while busy: a drain() returns after it)
        g.lock();
      }
      busy = false;
      scv.notify_all();
    }
  }

  /// background_io: takes in what the I/O thread wrote and synced; after a failed write, rolls the
  /// log back to what the file holds and throws; throws a failed sync's error.
  void collect() {
    std::unique_lock<std::mutex> g(sm);
    if (bg_write_error) {
      const std::error_code ec = bg_write_error;
      lose_after(bg_written_end, bg_written_seq);
      // what was handed after the failed write, the I/O thread may not have dropped yet: it must
      // never be written (its records are gone from the log, the file ends at bg_written_end)
      drop_handed();
      bg_write_error = {};
      g.unlock();
      fail(ec, "append to " + segs.back().path.string());
    }
    file_size = bg_written_end;
    written = bg_written_seq;
    if (bg_error) {
      const std::error_code ec = bg_error;
      bg_error = {};
      fail(ec, "fdatasync " + segs.back().path.string());
    }
    synced = std::max(synced, std::min(bg_synced, written));
  }

  void drop_handed() { // under sm
    handed.reset();
    queued_bytes = 0;
    sync_wanted = flush = false;
  }

  /// Wakes the I/O thread if it has something to do now (even_held: whatever hold_io says).
  void start_io(bool even_held = false) { // under sm
    if (!io.joinable()) io = std::thread([this] { run_io(); });
    // with group, a thread waiting for the interval's end takes the job then, unwoken
    const bool now = even_held || io_idle || opt.sync != fsync_policy::group || queued_bytes >= io_coalesce;
    if (now && (!io_held || even_held)) scv.notify_all();
  }

  /// background_io: hands over what was appended, waits until all of it is written (and, with
  /// `sync`, fdatasynced), takes in the outcome (throwing as collect() does).
  void drain(bool sync) {
    write_pending();
    {
      std::unique_lock<std::mutex> g(sm);
      sync_wanted = sync_wanted || sync;
      flush = handed.has_value();
      if (handed || sync_wanted) start_io(true);
      scv.wait(g, [&] { return !handed && !busy && !sync_wanted; });
    }
    collect();
  }

  /// The log ends at `good_end` of the active segment, its record `good_seq` (a failed write):
  /// what came after is gone, its sequence numbers are not given again.
  void lose_after(std::uint64_t good_end, std::uint64_t good_seq) {
    segment& s = segs.back();
    const std::uint64_t lost =
        s.records && s.last_seq > good_seq ? s.last_seq - std::max(good_seq, s.first_seq - 1) : 0;
    const std::uint64_t lost_bytes = s.size > good_end ? s.size - good_end : 0;
    while (!s.index.empty() && s.index.back().offset >= good_end)
      s.index.pop_back();
    s.size -= lost_bytes;
    s.records -= lost;
    if (s.records) s.last_seq = good_seq; // (its time is no longer exact: only lookups by time use it)
    total_bytes -= lost_bytes;
    total_records -= lost;
    del.erase(del.upper_bound(good_seq), del.end());
    tail.cut(good_end);
    pending.clear();
    file_size = good_end;
    written = good_seq;
    roll_next = true;
  }

  /// The records of `data` (bytes from `offset` of `s`): each whole one's (seq, time, frame, offset).
  template <class F> scan_result parse(const std::string& data, F&& on) const {
    return scan_records(data, segment_magic, [&](std::size_t at, const codec::byte* body, std::uint32_t len) {
      if (len < body_head) return false;
      log_record r{codec::load_le<std::uint64_t>(body), codec::load_le<std::uint64_t>(body + 8),
                   codec::bytes_view(body + body_head, len - body_head)};
      on(r, at);
      return true;
    });
  }

  void note(segment& s, std::uint64_t seq, std::uint64_t time, std::uint64_t offset) {
    if (s.records == 0) {
      s.first_seq = seq;
      s.first_time = time;
    }
    if (s.records % index_every == 0) s.index.push_back({seq, offset, time});
    ++s.records;
    s.last_seq = seq;
    s.last_time = time;
  }

  /// A closed segment's index file: its totals, the damage its scan found, its sparse index.
  void save_index(const segment& s, std::uint64_t damaged_bytes, std::uint64_t damaged_regions) const {
    std::string body;
    for (std::uint64_t v : {s.size, s.records, s.first_seq, s.last_seq, s.first_time, s.last_time, damaged_bytes,
                            damaged_regions, static_cast<std::uint64_t>(s.index.size())})
      put<std::uint64_t>(body, v);
    for (const mark& m : s.index) {
      put<std::uint64_t>(body, m.seq);
      put<std::uint64_t>(body, m.offset);
      put<std::uint64_t>(body, m.time_ns);
    }
    std::string out;
    put_record(out, index_magic, body);
    write_file_atomically(index_path(s.path), out);
  }

  /// Fills `s` from its index file if there is one that checks against the segment's size.
  bool load_index(segment& s) {
    const int f = ::open(index_path(s.path).c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) return false;
    std::string data;
    const std::error_code ec = read_from(f, 0, data);
    ::close(f);
    struct stat st {};
    if (ec || ::stat(s.path.c_str(), &st) != 0) return false;
    const auto* base = reinterpret_cast<const codec::byte*>(data.data());
    const auto len = whole_record_at(base, data.size(), 0, index_magic);
    if (!len || *len < 9 * 8) return false;
    const codec::byte* b = base + record_head;
    auto at = [&](std::size_t i) { return codec::load_le<std::uint64_t>(b + 8 * i); };
    const std::uint64_t marks = at(8);
    if (at(0) != static_cast<std::uint64_t>(st.st_size) || *len != 9 * 8 + marks * 24) return false;
    s.size = at(0);
    s.records = at(1);
    s.first_seq = at(2);
    s.last_seq = at(3);
    s.first_time = at(4);
    s.last_time = at(5);
    rec.damaged_bytes += at(6);
    rec.damaged_regions += at(7);
    s.index.clear();
    for (std::uint64_t i = 0; i < marks; ++i)
      s.index.push_back({at(9 + 3 * i), at(10 + 3 * i), at(11 + 3 * i)});
    rec.records += s.records;
    ++rec.indexed;
    return true;
  }

  void load(segment& s, bool last) {
    if (!last && load_index(s)) return;
    const std::uint64_t damaged_before = rec.damaged_bytes, regions_before = rec.damaged_regions;
    const int f = ::open(s.path.c_str(), O_RDWR | O_CLOEXEC);
    if (f < 0) fail(last_error(), "open " + s.path.string());
    std::string data;
    if (auto ec = read_from(f, 0, data)) {
      ::close(f);
      fail(ec, "read " + s.path.string());
    }
    const scan_result r = parse(data, [&](const log_record& lr, std::size_t at) { note(s, lr.seq, lr.time_ns, at); });
    rec.damaged_bytes += r.damaged_bytes;
    rec.damaged_regions += r.damaged_regions;
    s.size = data.size();
    if (r.whole_end < data.size()) {
      if (last) { // a torn tail: cut it off, durably
        rec.torn_bytes += data.size() - r.whole_end;
        if (::ftruncate(f, static_cast<off_t>(r.whole_end)) != 0 || ::fdatasync(f) != 0) {
          const auto ec = last_error();
          ::close(f);
          fail(ec, "truncate " + s.path.string());
        }
        s.size = r.whole_end;
      } else {
        rec.damaged_bytes += data.size() - r.whole_end;
        ++rec.damaged_regions;
      }
    }
    ::close(f);
    rec.records += s.records;
    if (!last) { // closed: next time from its index (a segment that cannot have one is scanned again)
      try {
        save_index(s, rec.damaged_bytes - damaged_before, rec.damaged_regions - regions_before);
      } catch (const std::system_error&) {
      }
    }
  }

  std::filesystem::path deleted_path() const { return dir / "deleted"; }

  /// The kept segment that holds `seq` (nullptr: none; a damaged record's number may be inside one).
  const segment* segment_of(std::uint64_t seq) const {
    for (const segment& s : segs)
      if (s.records && seq >= s.first_seq && seq <= s.last_seq) return &s;
    return nullptr;
  }
  std::uint64_t deleted_in(const segment& s) const {
    if (!s.records || del.empty()) return 0;
    return static_cast<std::uint64_t>(std::distance(del.lower_bound(s.first_seq), del.upper_bound(s.last_seq)));
  }
  std::uint64_t live() const noexcept { return total_records - std::min<std::uint64_t>(del.size(), total_records); }

  /// Removes a segment that is not the active one (files, totals, its deletion markers).
  std::deque<segment>::iterator drop(std::deque<segment>::iterator it) {
    if (!opt.in_memory) {
      std::error_code ec;
      std::filesystem::remove(index_path(it->path), ec); // first: an index never outlives its segment
      std::filesystem::remove(it->path, ec);
      if (ec) fail(ec, "remove " + it->path.string());
    }
    if (it->records) del.erase(del.lower_bound(it->first_seq), del.upper_bound(it->last_seq));
    total_bytes -= it->size;
    total_records -= it->records;
    return segs.erase(it);
  }

  void sync_dir() const {
    if (auto ec = sync_directory(dir)) fail(ec, "fsync " + dir.string());
  }

  /// After drop(): the removals made durable, and the file `deleted` rewritten once it holds more
  /// stale markers than live ones.
  void dropped_segments() {
    if (opt.in_memory) return;
    sync_dir();
    if (del_file_markers > 2 * del.size()) save_deleted();
  }

  /// Rewrites the file `deleted` with the live markers only (removes it when there are none).
  void save_deleted() {
    if (opt.in_memory) return;
    if (del.empty()) {
      std::error_code ec;
      if (std::filesystem::remove(deleted_path(), ec)) sync_dir();
    } else {
      std::string out, body;
      for (auto it = del.begin(); it != del.end();) {
        body.clear();
        for (std::size_t n = 0; it != del.end() && n < 8192; ++it, ++n)
          put<std::uint64_t>(body, *it);
        put_record(out, delete_magic, body);
      }
      write_file_atomically(deleted_path(), out);
    }
    del_file_markers = del.size();
  }

  /// Appends deletion markers to the file `deleted` and fdatasyncs; nothing of them stays on an error.
  void append_markers(const std::vector<std::uint64_t>& seqs) {
    std::string body, out;
    for (std::uint64_t q : seqs)
      put<std::uint64_t>(body, q);
    put_record(out, delete_magic, body);
    const auto path = deleted_path();
    const bool created = !std::filesystem::exists(path);
    const int f = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) fail(last_error(), "open " + path.string());
    struct stat st {};
    std::error_code ec = ::fstat(f, &st) == 0 ? write_all(f, out) : last_error();
    if (!ec && ::fdatasync(f) != 0) ec = last_error();
    if (ec && ::ftruncate(f, st.st_size) == 0) (void)::fdatasync(f);
    ::close(f);
    if (ec) fail(ec, "append to " + path.string());
    if (created) sync_dir();
    del_file_markers += seqs.size();
  }

  /// Opening: the markers of the file `deleted` for records still kept; the file is rewritten when
  /// it holds others (stale, or a torn tail).
  void load_deleted() {
    std::string data;
    if (auto ec = read_file(deleted_path(), data)) {
      if (ec.value() == ENOENT) return;
      fail(ec, "read " + deleted_path().string());
    }
    std::uint64_t markers = 0;
    const scan_result r =
        scan_records(data, delete_magic, [&](std::size_t, const codec::byte* body, std::uint32_t len) {
          if (len % 8) return false;
          for (std::uint32_t i = 0; i < len; i += 8, ++markers)
            if (const std::uint64_t q = codec::load_le<std::uint64_t>(body + i); segment_of(q)) del.insert(q);
          return true;
        });
    rec.damaged_bytes += r.damaged_bytes;
    rec.damaged_regions += r.damaged_regions;
    rec.torn_bytes += data.size() - r.whole_end;
    del_file_markers = markers;
    if (markers != del.size() || r.whole_end != data.size() || r.damaged_bytes) save_deleted();
  }

  /// Removes the closed segments whose records are all deleted.
  void compact() {
    bool dropped = false;
    for (auto it = segs.begin(); it != segs.end() && std::next(it) != segs.end();)
      if (it->records && deleted_in(*it) >= it->records) {
        it = drop(it);
        dropped = true;
      } else {
        ++it;
      }
    if (dropped) dropped_segments();
  }

  std::uint64_t purge_all() {
    const std::uint64_t n = live();
    write_pending();
    const segment& b = segs.back();
    if (b.records || b.base != next_seq) new_segment(); // empty, named after the next sequence number
    const bool any = segs.size() > 1;
    while (segs.size() > 1)
      drop(segs.begin());
    del.clear();
    if (!opt.in_memory) {
      if (any) sync_dir();
      save_deleted();
    }
    return n;
  }

  void open_active() {
    if (opt.in_memory) return;
    segment& s = segs.back();
    fd = ::open(s.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail(last_error(), "open " + s.path.string());
    file_size = s.size;
    tail.reset(file_size);
    std::lock_guard<std::mutex> g(sm); // (the I/O thread is idle)
    io_fd = fd;
    bg_written_end = file_size;
    bg_written_seq = written;
  }

  /// Writes what was appended since the last write, in one write() (background_io: hands it to
  /// the I/O thread, waiting while io_queue_limit bytes are already queued). On an error nothing of
  /// it stays in the file (and the records are gone from the log).
  void write_pending() {
    if (pending.empty()) return;
    segment& s = segs.back();
    if (opt.in_memory) {
      s.mem += pending;
      file_size += pending.size();
      written = pending_last;
      pending.clear();
      return;
    }
    const std::uint64_t size = pending.size();
    if (background()) {
      tail.append(pending);
      std::unique_lock<std::mutex> g(sm);
      if (queued_bytes >= io_queue_limit) start_io(true);
      scv.wait(g, [&] { return queued_bytes < io_queue_limit || bg_write_error; });
      queued_bytes += size;
      if (!handed) { // (pending keeps its buffer, a job takes the spare one: no commit allocates)
        handed.emplace();
        handed->bytes.swap(spare);
      }
      handed->bytes += pending;
      handed->last_seq = pending_last;
      handed->end = s.size; // (its size counts pending)
      start_io();
    } else {
      if (auto ec = write_all(fd, pending)) {
        if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0) { /* the next open's recovery cuts it */
        }
        drop_pending();
        fail(ec, "append to " + s.path.string());
      }
      tail.append(pending);
      file_size += size;
      written = pending_last;
    }
    tail.trim(tail_keep, file_size); // never a byte not known written
    pending.clear();
  }

  /// Forgets the records not yet written (a failed write): the log ends where the file does, and
  /// their numbers are given again (no one read them).
  void drop_pending() {
    const std::uint64_t good = written;
    lose_after(file_size, good);
    roll_next = false;
    next_seq = good + 1;
  }

  void new_segment() {
    segment s;
    s.base = next_seq;
    s.path = dir / segment_name(next_seq);
    if (fd >= 0) {
      if (background()) {
        drain(opt.sync != fsync_policy::never); // a closed segment is synced
        std::lock_guard<std::mutex> g(sm);
        io_fd = -1; // (open_active gives the I/O thread the next one)
      } else {
        write_pending();
        if (written > synced && opt.sync != fsync_policy::never) sync_now(); // a closed segment is synced
      }
      ::close(fd);
      fd = -1;
      try { // an optimisation of the next start: without it, that segment is scanned
        save_index(segs.back(), 0, 0);
      } catch (const std::system_error&) {
      }
    }
    if (opt.in_memory) {
      write_pending();
      synced = written;
      // its whole size at once (pages are only taken as it fills): growing the string would copy
      // the segment, tens of MiB, while a message waits
      s.mem.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(opt.segment_bytes, 1ull << 30)) + (1u << 20));
      segs.push_back(std::move(s));
      file_size = 0;
      return;
    }
    segs.push_back(std::move(s));
    try {
      open_active();
    } catch (const std::system_error&) {
      segs.pop_back(); // the next append tries again
      throw;
    }
    roll_next = false;
    sync_dir();
  }

  void sync_now() {
    if (background()) return drain(true);
    write_pending();
    if (!opt.in_memory && fd >= 0 && ::fdatasync(fd) != 0) fail(last_error(), "fdatasync " + segs.back().path.string());
    ++syncs;
    synced = written;
    last_sync = std::chrono::steady_clock::now();
  }

  /// The offset in `s` to start reading for `from` (a sparse index entry at or before it).
  std::uint64_t start_offset(const segment& s, std::uint64_t from) const {
    auto it = std::upper_bound(s.index.begin(), s.index.end(), from,
                               [](std::uint64_t v, const mark& m) { return v < m.seq; });
    return it == s.index.begin() ? 0 : std::prev(it)->offset;
  }

  /// Reads `s` from `offset` on in chunks, calling on(record) for each whole record until it returns false.
  template <class F> void walk(const segment& s, std::uint64_t offset, F&& on) const {
    if (opt.in_memory) {
      walk_records(s.mem, static_cast<std::size_t>(offset), on);
      return;
    }
    if (&s == &segs.back() && offset >= tail.base()) {
      tail.walk(offset, [&](const std::string& mem, std::size_t at) { return walk_records(mem, at, on); });
      return;
    }
    // the file up to what is known written; the active segment's newer bytes are in the tail
    const bool active = &s == &segs.back();
    const std::uint64_t end = active ? std::min(s.size, file_size) : s.size;
    const int f = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) fail(last_error(), "open " + s.path.string());
    std::string data;
    bool go = true;
    std::size_t chunk = read_chunk;
    while (go && offset < end) {
      data.resize(static_cast<std::size_t>(std::min<std::uint64_t>(chunk, end - offset)));
      std::size_t got = 0;
      while (got < data.size()) {
        const ssize_t n = ::pread(f, data.data() + got, data.size() - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
      }
      data.resize(got);
      const scan_result r = parse(data, [&](const log_record& lr, std::size_t) {
        if (go) go = on(lr);
      });
      if (r.whole_end == 0) { // one record larger than the chunk
        if (data.size() < chunk || chunk >= (64u << 20)) break;
        chunk *= 2;
        continue;
      }
      offset += r.whole_end;
    }
    ::close(f);
    if (go && active && offset == end && end < s.size && offset >= tail.base()) walk(s, offset, on); // on in the tail
  }
};

segment_log::segment_log(std::filesystem::path dir, log_options options) : impl_(std::make_unique<impl>()) {
  impl& m = *impl_;
  m.dir = std::move(dir);
  m.opt = options;
  if (m.opt.in_memory) {
    m.new_segment();
    return;
  }
  if (auto ec = make_directories(m.dir)) fail(ec, "create " + m.dir.string());
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(m.dir, ec))
    if (e.path().extension() == ".seg") files.push_back(e.path());
  if (ec) fail(ec, "list " + m.dir.string());
  std::sort(files.begin(), files.end()); // zero-padded first sequence numbers sort as numbers
  for (std::size_t i = 0; i < files.size(); ++i) {
    impl::segment s;
    s.path = files[i];
    s.base = std::strtoull(files[i].stem().c_str(), nullptr, 10);
    m.load(s, i + 1 == files.size());
    m.total_bytes += s.size;
    m.total_records += s.records;
    if (s.records) m.next_seq = std::max(m.next_seq, s.last_seq + 1);
    m.next_seq = std::max(m.next_seq, s.base);
    m.segs.push_back(std::move(s));
  }
  m.rec.segments = m.segs.size();
  m.written = m.synced = m.next_seq - 1; // what recovery found is on disk
  if (m.segs.empty())
    m.new_segment();
  else
    m.open_active();
  m.load_deleted();
  m.compact();
}

segment_log::~segment_log() {
  try { // appended and never committed: written, as a process exit would leave it
    if (impl_->background())
      impl_->drain(false);
    else
      impl_->write_pending();
  } catch (const std::system_error&) {
  }
}

std::uint64_t segment_log::append(codec::bytes_view frame, std::uint64_t time_ns) {
  impl& m = *impl_;
  if (m.roll_due()) m.new_segment();
  impl::segment& s = m.segs.back();
  const std::uint64_t seq = m.next_seq;
  // the record straight into the pending writes: head, then the body (seq, time, frame)
  char head[body_head];
  codec::store_le(reinterpret_cast<codec::byte*>(head), seq);
  codec::store_le(reinterpret_cast<codec::byte*>(head + 8), time_ns);
  const auto len = static_cast<std::uint32_t>(body_head + frame.size());
  const std::uint32_t crc = codec::crc32c_extend(codec::crc32c(head, body_head), frame.data(), frame.size());
  const std::size_t before = m.pending.size();
  put<std::uint32_t>(m.pending, segment_magic);
  put<std::uint32_t>(m.pending, len);
  put<std::uint32_t>(m.pending, crc);
  m.pending.append(head, body_head);
  m.pending.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  const std::uint64_t size = m.pending.size() - before;
  m.pending_last = seq;
  m.note(s, seq, time_ns, s.size);
  s.size += size;
  m.total_bytes += size;
  ++m.total_records;
  m.next_seq = seq + 1;
  if (m.pending.size() >= read_chunk) m.write_pending(); // bounded memory between commits
  return seq;
}

std::uint64_t segment_log::commit(std::chrono::steady_clock::time_point now) {
  impl& m = *impl_;
  m.write_pending();
  if (m.background()) { // the I/O thread applies the policy
    m.collect();
    return m.opt.sync == fsync_policy::never ? m.synced = m.written : m.synced;
  }
  if (m.written == m.synced || m.opt.in_memory) return m.synced = m.written; // (memory: nothing to sync)
  switch (m.opt.sync) {
  case fsync_policy::always:
    m.sync_now();
    break;
  case fsync_policy::group:
    if (now - m.last_sync >= m.opt.group_interval) m.sync_now();
    break;
  case fsync_policy::never:
    m.synced = m.written;
    break;
  }
  return m.synced;
}

void segment_log::sync() { impl_->sync_now(); }
void segment_log::hold_io(bool hold) {
  impl& m = *impl_;
  if (!m.background()) return; // no I/O thread (a memory stream's log, say): nothing to hold
  std::lock_guard<std::mutex> g(m.sm);
  m.io_held = hold;
  if (!hold && (m.handed || m.sync_wanted)) m.start_io();
}
bool segment_log::may_block() const noexcept {
  impl& m = *impl_;
  if (m.opt.in_memory) return false;
  if (!m.background() || m.roll_due()) return true;
  std::lock_guard<std::mutex> g(m.sm);
  return m.queued_bytes >= io_queue_limit;
}
std::uint64_t segment_log::durable() const noexcept { return impl_->synced; }
std::uint64_t segment_log::syncs() const noexcept {
  std::lock_guard<std::mutex> g(impl_->sm);
  return impl_->syncs + impl_->bg_syncs;
}
std::uint64_t segment_log::first() const noexcept {
  const impl& m = *impl_;
  for (const auto& s : m.segs) {
    if (!s.records) continue;
    std::uint64_t q = s.first_seq; // past the deleted ones at its start
    for (auto it = m.del.lower_bound(q); it != m.del.end() && *it == q && q <= s.last_seq; ++it)
      ++q;
    if (q <= s.last_seq) return q;
  }
  return m.next_seq;
}
std::uint64_t segment_log::last() const noexcept { return impl_->next_seq - 1; }
std::uint64_t segment_log::records() const noexcept { return impl_->live(); }
std::uint64_t segment_log::deleted() const noexcept { return impl_->del.size(); }
std::uint64_t segment_log::bytes() const noexcept { return impl_->total_bytes; }
std::size_t segment_log::segments() const noexcept { return impl_->segs.size(); }
const log_recovery& segment_log::recovered() const noexcept { return impl_->rec; }

std::size_t segment_log::read(std::uint64_t from, std::size_t max,
                              const std::function<bool(const log_record&)>& f) const {
  impl& m = *impl_;
  m.write_pending(); // what was appended is readable before its commit
  std::size_t given = 0;
  for (const auto& s : m.segs) {
    if (given >= max) break;
    if (s.records == 0 || s.last_seq < from) continue;
    bool go = true;
    m.walk(s, m.start_offset(s, from), [&](const log_record& r) {
      if (r.seq < from || (!m.del.empty() && m.del.count(r.seq))) return true;
      go = f(r) && ++given < max;
      return go;
    });
    if (!go) break;
  }
  return given;
}

std::uint64_t segment_log::seq_at_time(std::uint64_t time_ns) const {
  impl& m = *impl_;
  m.write_pending();
  for (const auto& s : m.segs) {
    if (s.records == 0 || s.last_time < time_ns) continue;
    if (s.first_time >= time_ns) return s.first_seq;
    auto it = std::lower_bound(s.index.begin(), s.index.end(), time_ns,
                               [](const impl::mark& mk, std::uint64_t t) { return mk.time_ns < t; });
    const std::uint64_t offset = it == s.index.begin() ? 0 : std::prev(it)->offset;
    std::uint64_t found = s.last_seq;
    m.walk(s, offset, [&](const log_record& r) {
      if (r.time_ns < time_ns) return true;
      found = r.seq;
      return false;
    });
    return found;
  }
  return m.next_seq;
}

std::uint64_t segment_log::enforce_retention(std::uint64_t now_ns) {
  impl& m = *impl_;
  const auto max_age_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(m.opt.max_age).count());
  std::uint64_t dropped = 0;
  bool any = false;
  while (m.segs.size() > 1) {
    const impl::segment& s = m.segs.front();
    const bool over = (m.opt.max_bytes && m.total_bytes > m.opt.max_bytes) ||
                      (m.opt.max_records && m.live() > m.opt.max_records) ||
                      (max_age_ns && now_ns > s.last_time && now_ns - s.last_time > max_age_ns);
    if (!over) break;
    dropped += s.records - m.deleted_in(s);
    m.drop(m.segs.begin());
    any = true;
  }
  if (any) m.dropped_segments();
  return dropped;
}

std::uint64_t segment_log::remove(const std::vector<std::uint64_t>& seqs) {
  impl& m = *impl_;
  m.write_pending(); // what was appended can be deleted too
  std::vector<std::uint64_t> fresh;
  for (std::uint64_t q : seqs)
    if (!m.del.count(q) && m.segment_of(q)) fresh.push_back(q);
  std::sort(fresh.begin(), fresh.end());
  fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
  if (fresh.empty()) return 0;
  if (!m.opt.in_memory) m.append_markers(fresh);
  m.del.insert(fresh.begin(), fresh.end());
  if (m.live() == 0)
    m.purge_all(); // nothing left: no segment nor marker needs to stay
  else
    m.compact();
  return fresh.size();
}

std::uint64_t segment_log::purge() { return impl_->purge_all(); }

} // namespace flowbus::actors
