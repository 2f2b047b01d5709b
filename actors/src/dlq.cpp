#include <flowbus/actors/dlq.hpp>

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
#include <optional>
#include <utility>
#include <unordered_set>

namespace flowbus::actors {

namespace {
using namespace detail;                            // record files: record_file.hpp
constexpr std::uint32_t record_magic = 0x514C4446; // "FDLQ" little-endian
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
  explicit locked_fd(std::error_code ec) : ec_(ec) {}
  locked_fd(locked_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)), ec_(o.ec_) {}
  ~locked_fd() {
    if (fd_ >= 0) ::close(fd_); // releases the lock
  }
  locked_fd(const locked_fd&) = delete;
  locked_fd& operator=(const locked_fd&) = delete;
  int fd() const noexcept { return fd_; }
  std::error_code error() const noexcept { return ec_; }

private:
  int fd_ = -1;
  std::error_code ec_;
};

// Opens (creating if needed, with the directory fsynced) and flocks a queue file for appending.
locked_fd open_for_append(const std::filesystem::path& p) {
  {
    locked_fd f(p, O_RDWR | O_APPEND);
    if (!f.error() || f.error().value() != ENOENT) return f;
  }
  if (auto ec = make_directories(p.parent_path())) return locked_fd(ec);
  locked_fd f(p, O_RDWR | O_APPEND | O_CREAT);
  if (f.error()) return f;
  if (auto ec = sync_directory(p.parent_path())) return locked_fd(ec);
  return f;
}

// Under the file's lock: finds where the last whole record ends, scanning only from `verified`
// (a known whole-record end, or 0), and cuts any torn tail after it (fdatasync'ed).
std::error_code cut_torn_tail(int fd, std::uint64_t& verified, std::uint64_t& truncated, std::uint64_t* damaged) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_error();
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < verified) verified = 0; // purged or replaced since
  if (size == verified) return {};
  std::string data;
  if (auto ec = read_from(fd, verified, data)) return ec;
  const scan_result r = scan_records(data, record_magic, [](std::size_t, const codec::byte*, std::uint32_t) { return true; });
  if (damaged) *damaged += r.damaged_bytes;
  const std::uint64_t end = verified + r.whole_end;
  if (end < size) {
    if (::ftruncate(fd, static_cast<off_t>(end)) != 0 || ::fdatasync(fd) != 0) return last_error();
    truncated += size - end;
  }
  verified = end;
  return {};
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
    : path_(std::move(dir) / (std::string(to_string(kind)) + ".dlq")), kind_(kind) {}

// Appends the records build(offset) returns at the end of the last whole record, all or nothing.
template <class Build>
std::error_code append_records(const std::filesystem::path& path, std::uint64_t& verified, std::uint64_t& truncated,
                               Build&& build) {
  locked_fd f = open_for_append(path);
  if (f.error()) return f.error();
  if (auto ec = cut_torn_tail(f.fd(), verified, truncated, nullptr)) return ec;
  const std::uint64_t start = verified;
  const std::string out = build(start);
  std::error_code ec = write_all(f.fd(), out);
  if (!ec && ::fdatasync(f.fd()) != 0) ec = last_error();
  if (ec) { // undo: a batch is on disk whole or not at all (a crash here is the torn tail case)
    if (::ftruncate(f.fd(), static_cast<off_t>(start)) == 0) (void)::fdatasync(f.fd());
    return ec;
  }
  verified = start + out.size();
  return {};
}

std::error_code dlq_file::append(std::vector<dlq_entry>& entries) {
  if (entries.empty()) return {};
  return append_records(path_, verified_end_, truncated_, [&](std::uint64_t offset) {
    std::string out;
    for (auto& e : entries) {
      e.id = offset + out.size();
      put_record(out, record_magic, entry_body(e));
    }
    return out;
  });
}

std::error_code dlq_file::recover(recovery& out) {
  out = {};
  locked_fd f(path_, O_RDWR);
  if (f.error()) return f.error().value() == ENOENT ? std::error_code{} : f.error();
  std::uint64_t verified = 0, truncated = 0;
  if (auto ec = cut_torn_tail(f.fd(), verified, truncated, &out.damaged_bytes)) return ec;
  out.whole_end = verified;
  out.truncated_bytes = truncated;
  truncated_ += truncated;
  verified_end_ = verified;
  return {};
}

std::error_code dlq_file::load(contents& out) const {
  out = {};
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? std::error_code{} : last_error();
  std::string data;
  const std::error_code rec = read_from(fd, 0, data);
  ::close(fd);
  if (rec) return rec;
  std::vector<dlq_entry> entries;
  std::unordered_set<std::uint64_t> removed;
  const scan_result r = scan_records(data, record_magic, [&](std::size_t at, const codec::byte* body, std::uint32_t len) {
    reader rd{body, body + len};
    const auto type = rd.get<std::uint8_t>();
    if (type == rec_entry) {
      dlq_entry e;
      e.id = at;
      e.reason = static_cast<dead_reason>(rd.get<std::uint8_t>());
      e.attempts = rd.get<std::uint32_t>();
      e.first_ns = rd.get<std::uint64_t>();
      e.last_ns = rd.get<std::uint64_t>();
      e.source = rd.bytes(rd.get<std::uint16_t>());
      e.recipient = rd.bytes(rd.get<std::uint16_t>());
      e.frame = rd.bytes(rd.get<std::uint32_t>());
      if (!rd.ok) return false;
      entries.push_back(std::move(e));
      return true;
    }
    if (type == rec_tombstone) {
      const auto id = rd.get<std::uint64_t>();
      if (!rd.ok) return false;
      removed.insert(id);
      ++out.tombstones;
      return true;
    }
    return false;
  });
  out.torn_bytes = data.size() - r.whole_end;
  out.damaged_bytes = r.damaged_bytes;
  out.damaged_regions = r.damaged_regions;
  for (auto& e : entries)
    if (!removed.count(e.id)) out.entries.push_back(std::move(e));
  return {};
}

std::error_code dlq_file::remove(const std::vector<std::uint64_t>& ids) {
  if (ids.empty()) return {};
  std::error_code exists;
  if (!std::filesystem::exists(path_, exists)) return {};
  return append_records(path_, verified_end_, truncated_, [&](std::uint64_t) {
    std::string out;
    for (auto id : ids) {
      std::string body(1, static_cast<char>(rec_tombstone));
      put<std::uint64_t>(body, id);
      put_record(out, record_magic, body);
    }
    return out;
  });
}

std::error_code dlq_file::purge() {
  locked_fd f(path_, O_WRONLY);
  if (f.error()) return f.error().value() == ENOENT ? std::error_code{} : f.error();
  if (::ftruncate(f.fd(), 0) != 0 || ::fdatasync(f.fd()) != 0) return last_error();
  verified_end_ = 0;
  return {};
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
static codec::decoder_options frame_reading(dead_reason r) noexcept {
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
