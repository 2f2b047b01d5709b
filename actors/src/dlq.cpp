#include <flowbus/actors/dlq.hpp>
#include <flowbus/actors/segment_log.hpp>

#include "record_file.hpp"

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/decoder.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <unordered_set>

namespace flowbus::actors {

namespace {
using namespace detail;                            // record files: record_file.hpp
constexpr std::uint32_t legacy_magic = 0x514C4446; // "FDLQ" little-endian: a `<kind>.dlq` file (before logs)
constexpr std::uint8_t rec_entry = 1, rec_tombstone = 2;
constexpr std::array<const char*, dlq_kind_count> kind_names{"network_timeout", "agent_unavailable", "corruption",
                                                             "circuit_open",    "poison",            "unknown"};

// An open, flock'ed file descriptor; closes (and unlocks) on scope exit.
class locked_fd {
public:
  locked_fd(const std::filesystem::path& p, int flags) {
    fd_ = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      ec_ = last_error();
      return;
    }
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) {
        ec_ = last_error();
        return;
      }
  }
  locked_fd(const locked_fd&) = delete;
  locked_fd& operator=(const locked_fd&) = delete;
  ~locked_fd() {
    if (fd_ >= 0) ::close(fd_); // releases the lock
  }
  std::error_code error() const noexcept { return ec_; }
  /// The queue's generation: the file's first 8 bytes (0 while it has none). Every operation
  /// that changes the queue bumps it first, so a process that keeps the log open knows to reopen.
  std::uint64_t generation() const noexcept {
    unsigned char b[8];
    return ::pread(fd_, b, sizeof b, 0) == static_cast<ssize_t>(sizeof b) ? codec::load_le<std::uint64_t>(b) : 0;
  }
  std::error_code set_generation(std::uint64_t g) const noexcept {
    std::string b;
    put<std::uint64_t>(b, g);
    return ::pwrite(fd_, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()) ? std::error_code{} : last_error();
  }

private:
  int fd_ = -1;
  std::error_code ec_;
};

// A queue's log: every append is one commit, fdatasynced; segments small enough that opening one
// (the active one is scanned) costs a few milliseconds
log_options queue_log_options() {
  log_options o;
  o.sync = fsync_policy::always;
  o.segment_bytes = 8u << 20;
  return o;
}

std::string entry_body(const dlq_entry& e) {
  std::string b;
  b.reserve(40 + e.source.size() + e.recipient.size() + e.frame.size());
  b.push_back(static_cast<char>(rec_entry));
  b.push_back(static_cast<char>(e.reason));
  put<std::uint32_t>(b, e.attempts);
  put<std::uint64_t>(b, e.first_ns);
  put<std::uint64_t>(b, e.last_ns);
  put<std::uint16_t>(b, static_cast<std::uint16_t>(std::min<std::size_t>(e.source.size(), 0xFFFF)));
  b.append(e.source, 0, std::min<std::size_t>(e.source.size(), 0xFFFF));
  put<std::uint16_t>(b, static_cast<std::uint16_t>(std::min<std::size_t>(e.recipient.size(), 0xFFFF)));
  b.append(e.recipient, 0, std::min<std::size_t>(e.recipient.size(), 0xFFFF));
  put<std::uint32_t>(b, static_cast<std::uint32_t>(e.frame.size()));
  b += e.frame;
  return b;
}

// A bounds-checked reader over one record body.
struct reader {
  const codec::byte* p;
  const codec::byte* end;
  bool ok = true;
  template <class T> T get() {
    if (static_cast<std::size_t>(end - p) < sizeof(T)) {
      ok = false;
      return T{};
    }
    T v = codec::load_le<T>(p);
    p += sizeof(T);
    return v;
  }
  std::string bytes(std::size_t n) {
    if (static_cast<std::size_t>(end - p) < n) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};
} // namespace

const char* to_string(dlq_kind k) noexcept {
  const auto i = static_cast<std::size_t>(k);
  return i < dlq_kind_count ? kind_names[i] : "invalid";
}

std::optional<dlq_kind> parse_dlq_kind(std::string_view name) noexcept {
  for (std::size_t i = 0; i < dlq_kind_count; ++i)
    if (name == kind_names[i]) return static_cast<dlq_kind>(i);
  return std::nullopt;
}

dlq_kind kind_of(dead_reason r) noexcept {
  switch (r) {
    case dead_reason::network_timeout:
    case dead_reason::expired: return dlq_kind::network_timeout;
    case dead_reason::agent_unavailable:
    case dead_reason::overflow:
    case dead_reason::shed:
    case dead_reason::shutdown: return dlq_kind::agent_unavailable;
    case dead_reason::corruption: return dlq_kind::corruption;
    case dead_reason::circuit_open: return dlq_kind::circuit_open;
    case dead_reason::poison: return dlq_kind::poison;
    case dead_reason::unknown: return dlq_kind::unknown;
  }
  return dlq_kind::unknown;
}

dlq_file::dlq_file(std::filesystem::path dir, dlq_kind kind)
    : dir_(std::move(dir)), path_(dir_ / to_string(kind)), kind_(kind) {}

bool parse_dlq_entry(codec::bytes_view body, dlq_entry& e) {
  reader rd{body.data(), body.data() + body.size()};
  if (rd.get<std::uint8_t>() != rec_entry) return false;
  e.reason = static_cast<dead_reason>(rd.get<std::uint8_t>());
  e.attempts = rd.get<std::uint32_t>();
  e.first_ns = rd.get<std::uint64_t>();
  e.last_ns = rd.get<std::uint64_t>();
  e.source = rd.bytes(rd.get<std::uint16_t>());
  e.recipient = rd.bytes(rd.get<std::uint16_t>());
  e.frame = rd.bytes(rd.get<std::uint32_t>());
  return rd.ok;
}

// A `<kind>.dlq` file of the format before queues were logs: its live entries, oldest first
// (records FDLQ: an entry, or a tombstone naming an entry by its offset).
static std::error_code read_legacy(const std::filesystem::path& file, std::vector<dlq_entry>& out) {
  std::string data;
  if (auto ec = read_file(file, data)) return ec;
  std::vector<std::pair<std::uint64_t, dlq_entry>> entries;
  std::unordered_set<std::uint64_t> removed;
  scan_records(data, legacy_magic, [&](std::size_t at, const codec::byte* body, std::uint32_t len) {
    if (len && body[0] == rec_tombstone && len == 9) {
      removed.insert(codec::load_le<std::uint64_t>(body + 1));
      return true;
    }
    dlq_entry e;
    if (!parse_dlq_entry(codec::bytes_view(body, len), e)) return false;
    entries.emplace_back(at, std::move(e));
    return true;
  });
  for (auto& [at, e] : entries)
    if (!removed.count(at)) out.push_back(std::move(e));
  return {};
}

/// A queue's log kept open between operations (dlq_file::keep_open), and the generation it was
/// opened at.
struct dlq_file::open_log {
  std::mutex m; ///< one operation at a time in this process (the flock is per open file)
  std::unique_ptr<segment_log> log;
  std::uint64_t generation = 0;
};

void dlq_file::keep_open() { kept_ = std::make_shared<open_log>(); }

template <class F> std::error_code dlq_file::with_log(bool create, bool changes, F&& f) const {
  const auto legacy = dir_ / (std::string(to_string(kind_)) + ".dlq");
  std::error_code ec;
  if (!create && !std::filesystem::exists(path_, ec) && !std::filesystem::exists(legacy, ec)) return ec;
  if ((ec = make_directories(path_))) return ec;
  std::unique_lock<std::mutex> in_process;
  if (kept_) in_process = std::unique_lock<std::mutex>(kept_->m);
  locked_fd lock(path_ / ".lock", O_RDWR | O_CREAT); // other processes: flowbus dlq next to a node
  if (lock.error()) return lock.error();
  std::unique_ptr<segment_log> opened;
  try {
    std::uint64_t generation = lock.generation();
    segment_log* log = kept_ && kept_->log && kept_->generation == generation ? kept_->log.get() : nullptr;
    if (!log) { // opened (recovered) now: first use, or another process changed the queue since
      if (kept_) kept_->log.reset();
      opened = std::make_unique<segment_log>(path_, queue_log_options());
      log = opened.get();
      truncated_ += log->recovered().torn_bytes;
    }
    const bool import = std::filesystem::exists(legacy, ec);
    if (changes || import) { // first, so that a crash part way still tells those who keep it open
      if ((ec = lock.set_generation(++generation))) return ec;
    }
    if (import) { // once: its live entries move into the log
      std::vector<dlq_entry> old;
      if ((ec = read_legacy(legacy, old))) return ec;
      for (const dlq_entry& e : old)
        log->append(codec::bytes_view(std::string_view(entry_body(e))), e.last_ns);
      log->commit();
      auto moved = legacy;
      std::filesystem::rename(legacy, moved.replace_extension(".dlq.imported"));
      if ((ec = sync_directory(dir_))) return ec;
    }
    if (kept_) {
      if (opened) kept_->log = std::move(opened);
      kept_->generation = generation;
    }
    return f(*log);
  } catch (const std::system_error& e) { // (filesystem_error too)
    if (kept_) kept_->log.reset(); // whatever it holds now: opened again next time
    return e.code();
  }
}

std::error_code dlq_file::append(std::vector<dlq_entry>& entries) {
  if (entries.empty()) return {};
  return with_log(true, true, [&](segment_log& log) {
    for (auto& e : entries)
      e.id = log.append(codec::bytes_view(std::string_view(entry_body(e))), e.last_ns);
    log.commit(); // fdatasync'ed (a failed write takes back the whole batch: it is one write below 1 MiB)
    return std::error_code{};
  });
}

std::error_code dlq_file::read_log(bool create, const std::function<void(const segment_log&)>& f) const {
  return with_log(create, false, [&](segment_log& log) {
    f(log);
    return std::error_code{};
  });
}

std::error_code dlq_file::recover(recovery& out) {
  out = {};
  const std::uint64_t cut_before = truncated_;
  return with_log(false, false, [&](segment_log& log) {
    out.bytes = log.bytes();
    out.truncated_bytes = truncated_ - cut_before;
    out.damaged_bytes = log.recovered().damaged_bytes;
    return std::error_code{};
  });
}

std::error_code dlq_file::load(contents& out) const {
  out = {};
  const std::uint64_t cut_before = truncated_;
  return with_log(false, false, [&](segment_log& log) {
    out.deleted = log.deleted();
    out.torn_bytes = truncated_ - cut_before;
    out.damaged_bytes = log.recovered().damaged_bytes;
    out.damaged_regions = log.recovered().damaged_regions;
    log.read(0, SIZE_MAX, [&](const log_record& r) {
      dlq_entry e;
      if (parse_dlq_entry(r.frame, e)) {
        e.id = r.seq;
        out.entries.push_back(std::move(e));
      } else { // whole, checksummed, and not an entry: written by something else
        out.damaged_bytes += r.frame.size();
        ++out.damaged_regions;
      }
      return true;
    });
    return std::error_code{};
  });
}

std::error_code dlq_file::remove(const std::vector<std::uint64_t>& ids) {
  if (ids.empty()) return {};
  return with_log(false, true, [&](segment_log& log) {
    log.remove(ids);
    return std::error_code{};
  });
}

std::error_code dlq_file::purge() {
  return with_log(false, true, [&](segment_log& log) {
    log.purge();
    return std::error_code{};
  });
}

std::error_code open_dlq_directory(const std::filesystem::path& dir, std::string& what, std::vector<dlq_file>& files,
                                   std::array<dlq_file::recovery, dlq_kind_count>& recovered) {
  files.clear();
  what = dir.string();
  if (auto ec = make_directories(dir)) return ec;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return ec ? ec : std::make_error_code(std::errc::not_a_directory);
  { // can this process create files here? (permissions, a read-only file system)
    const auto probe = dir / (".flowbus-probe-" + std::to_string(::getpid()));
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    ::close(fd);
    ::unlink(probe.c_str());
  }
  for (std::size_t i = 0; i < dlq_kind_count; ++i) {
    dlq_file& f = files.emplace_back(dir, static_cast<dlq_kind>(i));
    if (auto e = f.recover(recovered[i])) {
      what = f.path().string();
      return e;
    }
  }
  return {};
}

/// How a dead letter's frame is read back: a stored frame of the node has no checksum (port.cpp:
/// its encoder leaves it 0, every way out rewrites it), but the corruption queue keeps the bytes
/// as they came from a connection — those are checked, so a damaged frame is never replayed.
codec::decoder_options frame_reading(dead_reason r) noexcept {
  return r == dead_reason::corruption ? codec::decoder_options{} : codec::stored_frame_decoding();
}

dlq_entry make_dlq_entry(const dead_letter& d) {
  dlq_entry e;
  e.reason = d.reason;
  e.recipient = d.recipient;
  e.attempts = d.attempts;
  e.first_ns = e.last_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d.when.time_since_epoch()).count());
  if (!d.frame) return e;
  e.frame.assign(reinterpret_cast<const char*>(d.frame.data()), d.frame.size());
  codec::decoder dec(frame_reading(d.reason));
  codec::message m;
  if (dec.decode(codec::bytes_view(d.frame.data(), d.frame.size()), m)) {
    e.source = std::string(m.str(codec::field::source));
    e.attempts = static_cast<std::uint32_t>(std::max<std::uint64_t>(m.num(codec::field::attempt), d.attempts));
  }
  return e;
}

bool replay_entry(const dlq_entry& e, const replay_target& to) {
  codec::decoder d(frame_reading(e.reason));
  codec::message m;
  if (!d.decode(codec::bytes_view(std::string_view(e.frame)), m)) return false;
  const delivery v = to_delivery(m);
  send_options o;
  o.type = m.type;
  o.prio = m.prio;
  o.correlation_id = v.correlation_id;
  o.message_id = v.message_id;
  o.deadline_ns = v.deadline_ns;
  o.headers = m.repeated; // replayed with its application headers
  if (m.flags & codec::flag::broadcast) return to.broadcast(v.payload, m.str(codec::field::agent_type), o);
  if (m.has(codec::field::target)) return to.send(destination::agent(v.target), v.payload, o);
  if (m.has(codec::field::topic)) return to.send(destination::topic(v.topic), v.payload, o);
  if (!v.target.empty()) return to.send(destination::capability(v.target), v.payload, o);
  return false;
}

replay_outcome replay_entries(const std::vector<dlq_entry>& entries, const std::vector<std::uint64_t>& ids,
                              const replay_target& to) {
  replay_outcome r;
  for (const auto& e : entries) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), e.id) == ids.end()) continue;
    if (replay_entry(e, to)) r.sent.push_back(e.id);
    else ++r.failed;
  }
  return r;
}

} // namespace flowbus::actors
