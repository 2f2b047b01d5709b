#include <flowbus/scheduling/shm_channel.hpp>

#include <flowbus/scheduling/cache.hpp>

#include <cerrno>
#include <cstddef>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace flowbus::scheduling {
namespace detail {

constexpr std::uint64_t shm_magic = 0x314D4853574F4C46ull; // the bytes "FLOWSHM1"
constexpr std::uint32_t shm_version = 2; // 2: the doorbell flags
constexpr std::uint64_t kind_data = 1, kind_padding = 2;
constexpr std::size_t header_bytes = 8;

struct alignas(false_sharing_range) side_info {
  std::int32_t pid;           ///< 0 until attached (__atomic access)
  std::uint64_t heartbeat_ns; ///< CLOCK_MONOTONIC (system-wide) at the last heartbeat()
};

struct shm_header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t ready; ///< 1 once initialised (__atomic access)
  std::uint64_t ring_capacity;
  side_info sides[2];
};
static_assert(sizeof(shm_header) <= 4096, "header fits its page");
static_assert(offsetof(shm_header, ring_capacity) == 16 && offsetof(shm_header, sides) == 128 &&
                  sizeof(side_info) == 128 && offsetof(side_info, heartbeat_ns) == 8,
              "the offsets docs/protocol.md §13 gives (pids at 128 and 256)");

struct shm_ring_control {
  alignas(false_sharing_range) std::uint64_t tail; ///< producer position (informational + recovery)
  alignas(false_sharing_range) std::uint64_t head; ///< consumer position: space the producer may reuse
  /// The doorbell flags: each written rarely (by one side, cleared by the other), read often.
  alignas(false_sharing_range) std::uint32_t parked; ///< 1: the consumer sleeps until rung
  std::uint32_t waiting;                             ///< 1: the producer waits for space
};
constexpr std::size_t control_bytes = sizeof(shm_ring_control);
static_assert(control_bytes == 3 * false_sharing_range, "positions on separate blocks, then the flags");
static_assert(offsetof(shm_ring_control, parked) == 256 && offsetof(shm_ring_control, waiting) == 260,
              "the offsets docs/protocol.md gives");

std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t load_word(const unsigned char* p) noexcept {
  return __atomic_load_n(reinterpret_cast<const std::uint64_t*>(p), __ATOMIC_ACQUIRE);
}
inline void store_word(unsigned char* p, std::uint64_t v) noexcept {
  __atomic_store_n(reinterpret_cast<std::uint64_t*>(p), v, __ATOMIC_RELEASE);
}
inline std::size_t align8(std::size_t n) noexcept { return (n + 7) & ~std::size_t{7}; }
std::error_code last_errno() noexcept { return {errno, std::generic_category()}; }

} // namespace detail

using namespace detail;

const char* to_string(peer_status s) noexcept {
  switch (s) {
  case peer_status::alive:
    return "alive";
  case peer_status::never_attached:
    return "never attached";
  case peer_status::stale:
    return "stale";
  case peer_status::dead:
    return "dead";
  }
  return "?";
}

// ---- endpoint: producer ----

std::size_t shm_endpoint::needed(std::size_t size) const noexcept {
  const std::size_t rec = header_bytes + align8(size);
  const std::size_t to_end = capacity_ - static_cast<std::size_t>(tx_tail_ & (capacity_ - 1));
  return rec > to_end ? to_end + rec : rec; // padding to the end first
}

shm_claim shm_endpoint::try_claim(std::size_t size) noexcept {
  if (!header_ || size > max_message()) return {};
  const std::size_t rec = header_bytes + align8(size);
  const std::size_t offset = static_cast<std::size_t>(tx_tail_ & (capacity_ - 1));
  const std::size_t to_end = capacity_ - offset;
  const std::size_t need = needed(size);
  if (tx_tail_ + need - tx_head_cache_ > capacity_) {
    tx_head_cache_ = __atomic_load_n(&tx_->head, __ATOMIC_ACQUIRE); // zeroed space handed back
    if (tx_tail_ + need - tx_head_cache_ > capacity_) return {};
  }
  std::uint64_t pos = tx_tail_;
  if (rec > to_end) {
    store_word(tx_data_ + offset, static_cast<std::uint64_t>(to_end - header_bytes) << 32 | kind_padding);
    pos += to_end;
  }
  shm_claim c;
  c.position = pos;
  c.record = rec;
  c.size = size;
  c.data = tx_data_ + (pos & (capacity_ - 1)) + header_bytes;
  tx_tail_ = pos; // padding, if any, is committed; the record itself is not yet
  return c;
}

bool shm_endpoint::commit(const shm_claim& c) noexcept {
  // the commit marker; sequentially consistent: the consumer's park() stores its flag, then reads
  // this word — one of the two sides sees the other's store
  __atomic_store_n(reinterpret_cast<std::uint64_t*>(c.data - header_bytes),
                   static_cast<std::uint64_t>(c.size) << 32 | kind_data, __ATOMIC_SEQ_CST);
  tx_tail_ = c.position + c.record;
  __atomic_store_n(&tx_->tail, tx_tail_, __ATOMIC_RELEASE);
  // (a plain load almost always: the exchange only when the consumer sleeps, to ring once)
  return __atomic_load_n(&tx_->parked, __ATOMIC_SEQ_CST) != 0 && __atomic_exchange_n(&tx_->parked, 0u, __ATOMIC_SEQ_CST) != 0;
}

bool shm_endpoint::wait_for_space(std::size_t size) noexcept {
  if (!header_) return false;
  __atomic_store_n(&tx_->waiting, 1u, __ATOMIC_SEQ_CST);
  tx_head_cache_ = __atomic_load_n(&tx_->head, __ATOMIC_SEQ_CST);
  if (tx_tail_ + needed(size) - tx_head_cache_ <= capacity_) { // freed meanwhile: no doorbell needed
    __atomic_store_n(&tx_->waiting, 0u, __ATOMIC_RELAXED);
    return false;
  }
  return true;
}

void shm_endpoint::abort(const shm_claim& c) noexcept {
  store_word(c.data - header_bytes, static_cast<std::uint64_t>(c.record - header_bytes) << 32 | kind_padding);
  tx_tail_ = c.position + c.record;
  __atomic_store_n(&tx_->tail, tx_tail_, __ATOMIC_RELEASE);
}

bool shm_endpoint::try_write(const void* data, std::size_t size, bool* wake) noexcept {
  const shm_claim c = try_claim(size);
  if (!c) return false;
  if (size) std::memcpy(c.data, data, size);
  const bool w = commit(c);
  if (wake) *wake = w;
  return true;
}

// ---- endpoint: consumer ----

bool shm_endpoint::peek(record_view& r, std::size_t& record_bytes, bool& bad) const noexcept {
  if (!header_) return false;
  const std::size_t offset = static_cast<std::size_t>(rx_head_ & (capacity_ - 1));
  const std::uint64_t w = load_word(rx_data_ + offset);
  if (w == 0) return false; // nothing committed here yet
  const std::size_t len = static_cast<std::size_t>(w >> 32);
  const std::uint64_t kind = w & 0xFFFFFFFFu;
  record_bytes = header_bytes + align8(len);
  if ((kind != kind_data && kind != kind_padding) || record_bytes > capacity_ - offset ||
      (kind == kind_data && len > max_message())) {
    bad = true; // never follow a damaged length
    return false;
  }
  r = {rx_data_ + offset + header_bytes, len, kind == kind_data};
  return true;
}

void shm_endpoint::consume(std::size_t record_bytes) noexcept {
  const std::size_t offset = static_cast<std::size_t>(rx_head_ & (capacity_ - 1));
  // zero the bytes, then the header word last: the producer may only reuse the space after head moves
  std::memset(rx_data_ + offset + header_bytes, 0, record_bytes - header_bytes);
  __atomic_store_n(reinterpret_cast<std::uint64_t*>(rx_data_ + offset), 0, __ATOMIC_RELAXED);
  rx_head_ += record_bytes;
}

void shm_endpoint::publish_head() noexcept {
  if (header_) __atomic_store_n(&rx_->head, rx_head_, __ATOMIC_RELEASE); // hands the zeroed space back
}

bool shm_endpoint::next(record& r, bool& corrupt) noexcept {
  corrupt = false;
  for (;;) {
    record_view v;
    std::size_t bytes = 0;
    if (!peek(v, bytes, corrupt)) return false;
    if (v.is_data) {
      r = {v.data, v.size, bytes};
      return true;
    }
    consume(bytes); // padding
  }
}

void shm_endpoint::release(const record& r) noexcept { consume(r.bytes); }

bool shm_endpoint::publish() noexcept {
  if (!header_ || rx_head_ == rx_published_) return false; // no new space: a waiting producer waits on
  rx_published_ = rx_head_;
  // sequentially consistent: the producer's wait_for_space() stores its flag, then reads head
  __atomic_store_n(&rx_->head, rx_head_, __ATOMIC_SEQ_CST);
  return __atomic_load_n(&rx_->waiting, __ATOMIC_SEQ_CST) != 0 && __atomic_exchange_n(&rx_->waiting, 0u, __ATOMIC_SEQ_CST) != 0;
}

bool shm_endpoint::park() noexcept {
  if (!header_) return false;
  __atomic_store_n(&rx_->parked, 1u, __ATOMIC_SEQ_CST);
  const std::size_t offset = static_cast<std::size_t>(rx_head_ & (capacity_ - 1));
  if (__atomic_load_n(reinterpret_cast<const std::uint64_t*>(rx_data_ + offset), __ATOMIC_SEQ_CST) == 0) return true;
  __atomic_store_n(&rx_->parked, 0u, __ATOMIC_RELAXED); // committed meanwhile: read it, no doorbell
  return false;
}

void shm_endpoint::unpark() noexcept {
  if (header_ && __atomic_load_n(&rx_->parked, __ATOMIC_RELAXED)) __atomic_store_n(&rx_->parked, 0u, __ATOMIC_RELAXED);
}

// ---- endpoint: liveness ----

void shm_endpoint::heartbeat() noexcept {
  if (header_) __atomic_store_n(&header_->sides[static_cast<int>(side_)].heartbeat_ns, now_ns(), __ATOMIC_RELEASE);
}

peer_status shm_endpoint::peer(std::chrono::nanoseconds stale_after) const noexcept {
  if (!header_) return peer_status::never_attached;
  const side_info& other = header_->sides[1 - static_cast<int>(side_)];
  const std::int32_t pid = __atomic_load_n(&other.pid, __ATOMIC_ACQUIRE);
  if (pid == 0) return peer_status::never_attached;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return peer_status::dead;
  // a zombie (exited, not yet reaped) still answers kill(); its heartbeat stops all the same
  const std::uint64_t hb = __atomic_load_n(&other.heartbeat_ns, __ATOMIC_ACQUIRE);
  if (now_ns() - hb > static_cast<std::uint64_t>(stale_after.count())) return peer_status::stale;
  return peer_status::alive;
}

// ---- channel ----

shm_channel::shm_channel(shm_channel&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)), fd_(std::exchange(o.fd_, -1)) {}

shm_channel& shm_channel::operator=(shm_channel&& o) noexcept {
  shm_channel old(std::move(*this));
  base_ = std::exchange(o.base_, nullptr);
  size_ = std::exchange(o.size_, 0);
  fd_ = std::exchange(o.fd_, -1);
  return *this;
}

shm_channel::~shm_channel() {
  if (base_) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
}

std::size_t shm_channel::ring_capacity() const noexcept {
  return base_ ? static_cast<std::size_t>(static_cast<shm_header*>(base_)->ring_capacity) : 0;
}

shm_channel shm_channel::map_fd(int fd, bool initialise, std::size_t ring_capacity, std::error_code& ec) {
  shm_channel ch; // owns fd from here: every error return below closes it (and unmaps) exactly once
  ch.fd_ = fd;
  std::size_t size = 0;
  if (initialise) {
    size = 4096 + 2 * (control_bytes + ring_capacity);
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      ec = last_errno();
      return {};
    }
  } else {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      ec = last_errno();
      return {};
    }
    size = static_cast<std::size_t>(st.st_size);
    if (size < 4096) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return {};
    }
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ec = last_errno();
    return {};
  }
  ch.base_ = p;
  ch.size_ = size;
  auto* h = static_cast<shm_header*>(p);
  if (initialise) {
    h->magic = shm_magic;
    h->version = shm_version;
    h->ring_capacity = ring_capacity;
    __atomic_store_n(&h->ready, 1u, __ATOMIC_RELEASE); // the file is zero-filled: rings start empty
  } else if (__atomic_load_n(&h->ready, __ATOMIC_ACQUIRE) != 1 || h->magic != shm_magic || h->version != shm_version ||
             h->ring_capacity < 4096 || (h->ring_capacity & (h->ring_capacity - 1)) != 0 ||
             4096 + 2 * (control_bytes + h->ring_capacity) > size) {
    ec = std::make_error_code(std::errc::protocol_error); // not a flowbus channel, or another version
    return {};
  }
  ec.clear();
  return ch;
}

// Each opener hands its fresh descriptor to map_fd, which owns it from then on (an error closes it).
shm_channel shm_channel::create(std::size_t ring_capacity, const std::string& name, std::error_code& ec) {
  ring_capacity = round_up_pow2(ring_capacity < 4096 ? 4096 : ring_capacity);
  const int fd = name.empty() ? ::memfd_create("flowbus-shm", MFD_CLOEXEC)
                              : ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    ec = last_errno();
    return {};
  }
  shm_channel ch = map_fd(fd, true, ring_capacity, ec);
  if (ec && !name.empty()) unlink(name);
  return ch;
}

shm_channel shm_channel::open(const std::string& name, std::error_code& ec) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    ec = last_errno();
    return {};
  }
  return map_fd(fd, false, 0, ec);
}

shm_channel shm_channel::open_fd(int fd, std::error_code& ec) {
  const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    ec = last_errno();
    return {};
  }
  return map_fd(dup, false, 0, ec);
}

void shm_channel::unlink(const std::string& name) noexcept { ::shm_unlink(("/" + name).c_str()); }

shm_endpoint shm_channel::endpoint(shm_side side) noexcept {
  shm_endpoint e;
  if (!base_) return e;
  auto* h = static_cast<shm_header*>(base_);
  auto* rings = static_cast<unsigned char*>(base_) + 4096;
  const std::size_t cap = static_cast<std::size_t>(h->ring_capacity);
  auto ring = [&](int i) { return rings + static_cast<std::size_t>(i) * (control_bytes + cap); };
  const int tx = side == shm_side::creator ? 0 : 1; // creator writes ring 0, opener ring 1
  e.header_ = h;
  e.side_ = side;
  e.capacity_ = cap;
  e.tx_ = reinterpret_cast<shm_ring_control*>(ring(tx));
  e.tx_data_ = ring(tx) + control_bytes;
  e.rx_ = reinterpret_cast<shm_ring_control*>(ring(1 - tx));
  e.rx_data_ = ring(1 - tx) + control_bytes;
  // resume where the rings are (a re-attaching process continues, it does not replay)
  e.tx_tail_ = __atomic_load_n(&e.tx_->tail, __ATOMIC_ACQUIRE);
  e.tx_head_cache_ = __atomic_load_n(&e.tx_->head, __ATOMIC_ACQUIRE);
  e.rx_head_ = e.rx_published_ = __atomic_load_n(&e.rx_->head, __ATOMIC_ACQUIRE);
  e.heartbeat();
  __atomic_store_n(&h->sides[static_cast<int>(side)].pid, static_cast<std::int32_t>(::getpid()), __ATOMIC_RELEASE);
  return e;
}

} // namespace flowbus::scheduling
