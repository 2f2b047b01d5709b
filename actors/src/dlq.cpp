#include <flowbus/actors/dlq.hpp>

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
#include <unordered_set>

namespace flowbus::actors {

namespace {
constexpr std::uint32_t record_magic = 0x514C4446; // "FDLQ" little-endian
constexpr std::size_t record_head = 12;            // magic, body length, CRC
constexpr std::uint8_t rec_entry = 1, rec_tombstone = 2;
constexpr std::array<const char*, dlq_kind_count> kind_names{"network_timeout", "agent_unavailable", "corruption",
                                                             "circuit_open",    "poison",            "unknown"};

std::error_code last_error() { return {errno, std::generic_category()}; }

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

std::error_code write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

template <class T> void put(std::string& out, T v) {
  char b[sizeof(T)];
  codec::store_le(reinterpret_cast<codec::byte*>(b), v);
  out.append(b, sizeof(T));
}

void put_record(std::string& out, const std::string& body) {
  put<std::uint32_t>(out, record_magic);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(body.size()));
  put<std::uint32_t>(out, codec::crc32c(body.data(), body.size()));
  out += body;
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

std::error_code dlq_file::append(std::vector<dlq_entry>& entries) {
  if (entries.empty()) return {};
  std::error_code ec;
  std::filesystem::create_directories(path_.parent_path(), ec);
  if (ec) return ec;
  locked_fd f(path_, O_WRONLY | O_APPEND | O_CREAT);
  if (f.error()) return f.error();
  struct stat st {};
  if (::fstat(f.fd(), &st) != 0) return last_error();
  auto offset = static_cast<std::uint64_t>(st.st_size);
  std::string out;
  for (auto& e : entries) {
    e.id = offset + out.size();
    put_record(out, entry_body(e));
  }
  if (auto w = write_all(f.fd(), out)) return w;
  if (::fdatasync(f.fd()) != 0) return last_error();
  return {};
}

std::error_code dlq_file::load(contents& out) const {
  out = {};
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? std::error_code{} : last_error();
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::vector<dlq_entry> entries;
  std::unordered_set<std::uint64_t> removed;
  const auto* base = reinterpret_cast<const codec::byte*>(data.data());
  std::size_t at = 0;
  while (data.size() - at >= record_head) {
    const auto* h = base + at;
    const auto len = codec::load_le<std::uint32_t>(h + 4);
    if (codec::load_le<std::uint32_t>(h) != record_magic || data.size() - at - record_head < len ||
        codec::crc32c(h + record_head, len) != codec::load_le<std::uint32_t>(h + 8))
      break; // torn or damaged: nothing after it is trusted
    reader r{h + record_head, h + record_head + len};
    const auto type = r.get<std::uint8_t>();
    if (type == rec_entry) {
      dlq_entry e;
      e.id = at;
      e.reason = static_cast<dead_reason>(r.get<std::uint8_t>());
      e.attempts = r.get<std::uint32_t>();
      e.first_ns = r.get<std::uint64_t>();
      e.last_ns = r.get<std::uint64_t>();
      e.source = r.bytes(r.get<std::uint16_t>());
      e.recipient = r.bytes(r.get<std::uint16_t>());
      e.frame = r.bytes(r.get<std::uint32_t>());
      if (!r.ok) break;
      entries.push_back(std::move(e));
    } else if (type == rec_tombstone) {
      removed.insert(r.get<std::uint64_t>());
      ++out.tombstones;
    }
    at += record_head + len;
  }
  out.torn_bytes = data.size() - at;
  for (auto& e : entries)
    if (!removed.count(e.id)) out.entries.push_back(std::move(e));
  return {};
}

std::error_code dlq_file::remove(const std::vector<std::uint64_t>& ids) {
  if (ids.empty()) return {};
  locked_fd f(path_, O_WRONLY | O_APPEND);
  if (f.error()) return f.error().value() == ENOENT ? std::error_code{} : f.error();
  std::string out;
  for (auto id : ids) {
    std::string body(1, static_cast<char>(rec_tombstone));
    put<std::uint64_t>(body, id);
    put_record(out, body);
  }
  if (auto w = write_all(f.fd(), out)) return w;
  if (::fdatasync(f.fd()) != 0) return last_error();
  return {};
}

std::error_code dlq_file::purge() {
  locked_fd f(path_, O_WRONLY);
  if (f.error()) return f.error().value() == ENOENT ? std::error_code{} : f.error();
  if (::ftruncate(f.fd(), 0) != 0 || ::fdatasync(f.fd()) != 0) return last_error();
  return {};
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
  codec::decoder dec;
  codec::message m;
  if (dec.decode(codec::bytes_view(d.frame.data(), d.frame.size()), m)) {
    e.source = std::string(m.str(codec::field::source));
    e.attempts = static_cast<std::uint32_t>(std::max<std::uint64_t>(m.num(codec::field::attempt), d.attempts));
  }
  return e;
}

bool replay_entry(const dlq_entry& e, const replay_target& to) {
  codec::decoder d;
  codec::message m;
  if (!d.decode(codec::bytes_view(std::string_view(e.frame)), m)) return false;
  const delivery v = to_delivery(m);
  send_options o;
  o.type = m.type;
  o.prio = m.prio;
  o.correlation_id = v.correlation_id;
  o.message_id = v.message_id;
  o.deadline_ns = v.deadline_ns;
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
