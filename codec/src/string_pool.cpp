#include <flowbus/codec/string_pool.hpp>

#include <flowbus/codec/crc32c.hpp>

#include <cstring>

namespace flowbus::codec {
namespace detail {

std::string_view string_arena::store(std::string_view s) {
  if (chunks_.empty() || used_ + s.size() > chunk_size) {
    if (!chunks_.empty()) ++current_;
    if (current_ >= chunks_.size()) chunks_.push_back(std::make_unique<char[]>(chunk_size));
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

std::uint32_t outbound_pool::hash_of(std::string_view s) noexcept {
  // One crc32 instruction per 8 bytes: cheaper than FNV on the 10-40 byte topics we see.
  return crc32c(s.data(), s.size());
}

std::uint32_t outbound_pool::find(std::string_view s) const noexcept {
  if (table_.empty()) return npos;
  const std::uint32_t h = hash_of(s);
  const std::size_t mask = table_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const slot& e = table_[i];
    if (e.id_plus_1 == 0) return npos;
    if (e.hash == h && entries_[e.id_plus_1 - 1] == s) return e.id_plus_1 - 1;
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
