// Shared memory beside a WebSocket connection (shm_link.hpp).
#include "shm_link.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <unistd.h>

namespace flowbus::transport::detail {

namespace {

constexpr std::string_view prefix = "flowbus-";

/// flowbus-<pid>-<n>, digits only: the creator's pid, or 0 if `name` is not of that form.
long creator_of(std::string_view name) {
  if (name.size() > 64 || name.substr(0, prefix.size()) != prefix) return 0;
  name.remove_prefix(prefix.size());
  const auto dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 9 || dash + 1 == name.size()) return 0;
  long pid = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (i == dash) continue;
    if (name[i] < '0' || name[i] > '9') return 0;
    if (i < dash) pid = pid * 10 + (name[i] - '0'); // (at most 9 digits: no overflow)
  }
  return pid;
}

} // namespace

std::unique_ptr<shm_link> shm_link::offer(std::size_t ring_bytes, std::error_code& ec) {
  static std::atomic<std::uint64_t> next{0};
  std::unique_ptr<shm_link> l(new shm_link);
  l->name_ = std::string(prefix) + std::to_string(::getpid()) + "-" + std::to_string(next.fetch_add(1) + 1);
  l->ch_ = scheduling::shm_channel::create(ring_bytes, l->name_, ec);
  if (ec) return nullptr;
  l->named_ = true;
  l->ep_ = l->ch_.endpoint(scheduling::shm_side::creator);
  return l;
}

std::unique_ptr<shm_link> shm_link::open(const std::string& name, std::size_t max_message, std::error_code& ec) {
  if (creator_of(name) <= 0) {
    ec = std::make_error_code(std::errc::invalid_argument); // not a name a node makes: open nothing
    return nullptr;
  }
  std::unique_ptr<shm_link> l(new shm_link);
  l->ch_ = scheduling::shm_channel::open(name, ec);
  if (ec) return nullptr;
  if (l->ch_.ring_capacity() / 4 < max_message) { // (a record is at most a quarter of a ring)
    ec = std::make_error_code(std::errc::message_size);
    return nullptr;
  }
  l->name_ = name;
  l->ep_ = l->ch_.endpoint(scheduling::shm_side::opener); // the node sees our pid: attached
  return l;
}

std::size_t shm_link::remove_stale() {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return 0;
  std::size_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    const long pid = creator_of(e->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      scheduling::shm_channel::unlink(e->d_name);
      ++n;
    }
  }
  ::closedir(d);
  return n;
}

shm_link::~shm_link() {
  if (named_) scheduling::shm_channel::unlink(name_);
}

bool shm_link::agent_attached() {
  if (named_) scheduling::shm_channel::unlink(name_);
  named_ = false;
  return ep_.peer(std::chrono::hours(24)) != scheduling::peer_status::never_attached;
}

void shm_link::stage(const unsigned char* p, std::size_t n) {
  const auto len = static_cast<std::uint32_t>(n);
  const std::size_t at = staged_.size();
  staged_.resize(at + sizeof len + n);
  std::memcpy(staged_.data() + at, &len, sizeof len);
  std::memcpy(staged_.data() + at + sizeof len, p, n);
}

bool shm_link::write_staged() {
  while (staged_at_ < staged_.size()) {
    std::uint32_t len = 0;
    std::memcpy(&len, staged_.data() + staged_at_, sizeof len);
    bool wake = false;
    if (!ep_.try_write(staged_.data() + staged_at_ + sizeof len, len, &wake)) {
      if (ep_.wait_for_space(len)) return false; // the reader rings when it has freed space
      continue;                                  // freed meanwhile
    }
    ring_peer_ |= wake;
    staged_at_ += sizeof len + len;
  }
  staged_.clear();
  staged_at_ = 0;
  if (staged_.capacity() > 256 * 1024) staged_ = {}; // a quiet connection holds no large buffer
  return true;
}

bool shm_link::poll_again(std::size_t records, bool pass_full, std::chrono::microseconds spin) noexcept {
  if (records || spin.count() > 0) {
    const auto now = std::chrono::steady_clock::now();
    if (records) last_read_ = now;
    if (pass_full || now - last_read_ < spin) return true;
  }
  return !ep_.park();
}

bool shm_link::write_now(const unsigned char* p, std::size_t n) {
  bool wake = false;
  if (!ep_.try_write(p, n, &wake)) return false;
  ring_peer_ |= wake;
  return true;
}

} // namespace flowbus::transport::detail
