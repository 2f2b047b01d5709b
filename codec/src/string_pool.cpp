#include <flowbus/codec/string_pool.hpp>

#include <cstring>

namespace flowbus::codec {
namespace detail {

std::string_view string_arena::store(std::string_view s) {
  if (chunks_.empty() || used_ + s.size() > capacity(current_)) {
    if (!chunks_.empty()) ++current_;
    if (current_ >= chunks_.size()) chunks_.push_back(std::make_unique<char[]>(capacity(current_)));
    used_ = 0;
  }
  char* dst = chunks_[current_].get() + used_;
  if (!s.empty()) std::memcpy(dst, s.data(), s.size());
  used_ += s.size();
  return {dst, s.size()};
}

void string_arena::truncate(std::size_t chunk, std::size_t used) noexcept {
  current_ = chunk; // later chunks stay allocated and are reused
  used_ = used;
}

void string_arena::clear() noexcept {
  chunks_.clear();
  current_ = used_ = 0;
}

} // namespace detail

// ---- inbound ----

errc inbound_pool::define(std::string_view s) {
  if (s.size() > defaults::pool_max_string) return errc::pooled_string_too_long;
  if (entries_.size() >= defaults::pool_max_entries || bytes_ + s.size() > defaults::pool_max_bytes)
    return errc::pool_full;
  entries_.push_back(arena_.store(s));
  bytes_ += s.size();
  return errc::ok;
}

void inbound_pool::rollback(const mark& m) noexcept {
  entries_.resize(m.entries);
  bytes_ = m.bytes;
  arena_.truncate(m.chunk, m.chunk_used);
}

void inbound_pool::clear() noexcept {
  entries_.clear();
  bytes_ = 0;
  arena_.clear();
}

// ---- outbound ----

namespace {
// Topics are 10-60 bytes: the crc32 instruction hashes 8 bytes per step with no call into the
// CRC dispatcher; FNV-1a is the fallback for CPUs without SSE4.2. Collisions only cost a compare.
#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t hash_sse42(const char* p, std::size_t n) noexcept {
  std::uint64_t h = n, w;
  if (n < 8) { // the pool never holds strings under 2 bytes; still correct for any n
    w = 0;
    for (std::size_t i = 0; i < n; ++i)
      w = (w << 8) | static_cast<unsigned char>(p[i]);
    return static_cast<std::uint32_t>(__builtin_ia32_crc32di(h, w));
  }
  const char* last = p + n - 8; // the final word overlaps the previous one instead of a partial copy
  for (; p < last; p += 8) {
    std::memcpy(&w, p, 8);
    h = __builtin_ia32_crc32di(h, w);
  }
  std::memcpy(&w, last, 8);
  return static_cast<std::uint32_t>(__builtin_ia32_crc32di(h, w));
}
const bool has_sse42 = __builtin_cpu_supports("sse4.2");
#endif
std::uint32_t hash_fnv(const char* p, std::size_t n) noexcept {
  std::uint32_t h = 2166136261u ^ static_cast<std::uint32_t>(n);
  for (std::size_t i = 0; i < n; ++i)
    h = (h ^ static_cast<unsigned char>(p[i])) * 16777619u;
  return h;
}
} // namespace

// Equality without a libc call for the short strings the pool holds (<= 255 bytes).
static bool same(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 8) return n == 0 || std::memcmp(a.data(), b.data(), n) == 0;
  std::uint64_t x, y;
  for (std::size_t i = 0; i + 8 < n; i += 8) {
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) return false;
  }
  std::memcpy(&x, a.data() + n - 8, 8);
  std::memcpy(&y, b.data() + n - 8, 8);
  return x == y;
}

std::uint32_t outbound_pool::hash_of(std::string_view s) noexcept {
#if defined(__x86_64__)
  if (has_sse42) return hash_sse42(s.data(), s.size());
#endif
  return hash_fnv(s.data(), s.size());
}

std::uint32_t outbound_pool::find(std::string_view s) const noexcept {
  if (table_.empty()) return npos;
  const std::uint32_t h = hash_of(s);
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const slot& e = table_[i];
    if (e.id_plus_1 == 0) return npos;
    if (e.hash == h && same(entries_[e.id_plus_1 - 1], s)) return e.id_plus_1 - 1;
  }
}

void outbound_pool::grow() {
  std::vector<slot> bigger(table_.empty() ? 16 : table_.size() * 2, slot{0, 0});
  const std::size_t mask = bigger.size() - 1;
  for (const slot& e : table_) {
    if (e.id_plus_1 == 0) continue;
    std::size_t i = e.hash & mask;
    while (bigger[i].id_plus_1 != 0)
      i = (i + 1) & mask;
    bigger[i] = e;
  }
  table_.swap(bigger);
}

std::uint32_t outbound_pool::define(std::string_view s) {
  if ((entries_.size() + 1) * 2 > table_.size()) grow();
  const auto id = static_cast<std::uint32_t>(entries_.size());
  entries_.push_back(arena_.store(s));
  bytes_ += s.size();
  const std::uint32_t h = hash_of(s);
  const std::size_t mask = table_.size() - 1;
  std::size_t i = h & mask;
  while (table_[i].id_plus_1 != 0)
    i = (i + 1) & mask;
  table_[i] = slot{h, id + 1};
  return id;
}

void outbound_pool::clear() noexcept {
  entries_.clear();
  table_.clear();
  bytes_ = 0;
  arena_.clear();
}

} // namespace flowbus::codec
