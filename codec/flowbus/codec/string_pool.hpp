// Per-connection, per-direction string pools. The first use of a string by a sender carries the
// literal and defines the next id; later uses send only the id. Ids are assigned in order from 0
// and never reused or evicted, so a view handed out for an id stays valid for the pool's life.
//
// Bounds (protocol constants, defaults.hpp): 1024 entries and 64 KiB of string bytes per
// direction, strings of 2..255 bytes. When a sender's pool is full it sends new strings literally;
// a receiver asked to define past a bound fails the frame (errc::pool_full). Memory grows with use
// (4 KiB arena chunks, a hash table that doubles) so an idle connection pays nothing.
#pragma once

#include <flowbus/codec/defaults.hpp>
#include <flowbus/codec/errc.hpp>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace flowbus::codec {

namespace detail {
/// Append-only storage whose strings never move. Chunks of 4 KiB; a string never spans chunks.
class string_arena {
public:
  /// @pre s.size() <= defaults::pool_max_string
  std::string_view store(std::string_view s);
  void truncate(std::size_t chunk, std::size_t used) noexcept;
  std::size_t chunk_index() const noexcept { return current_; }
  std::size_t chunk_used() const noexcept { return used_; }
  void clear() noexcept;

private:
  // Chunks double from 256 bytes (one longest pooled string) to 4 KiB: a connection that pools
  // a few ids costs 256 bytes, not 4 KiB (it matters with 10K idle connections).
  static constexpr std::size_t first_chunk = 256, chunk_size = 4096;
  static constexpr std::size_t capacity(std::size_t index) noexcept {
    return index >= 4 ? chunk_size : first_chunk << index;
  }
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::size_t current_ = 0; ///< chunk being filled
  std::size_t used_ = 0;    ///< bytes used in it
};
} // namespace detail

/// Receiver side: id -> string.
class inbound_pool {
public:
  /// Defines the next id. Errors: pooled_string_too_long, pool_full.
  errc define(std::string_view s);
  /// nullptr-free lookup: ok with the string, or unknown_pool_id.
  errc lookup(std::uint64_t id, std::string_view& out) const noexcept {
    if (id >= entries_.size()) return errc::unknown_pool_id;
    out = entries_[static_cast<std::size_t>(id)];
    return errc::ok;
  }
  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }

  /// A point to roll back to if the frame being decoded turns out bad.
  struct mark {
    std::size_t entries, bytes, chunk, chunk_used;
  };
  mark save() const noexcept { return {entries_.size(), bytes_, arena_.chunk_index(), arena_.chunk_used()}; }
  void rollback(const mark& m) noexcept;
  void clear() noexcept;

private:
  std::vector<std::string_view> entries_;
  std::size_t bytes_ = 0;
  detail::string_arena arena_;
};

/// Sender side: string -> id, with the same bounds as the receiver so both stay in step.
class outbound_pool {
public:
  static constexpr std::uint32_t npos = 0xFFFFFFFFu;
  /// The id of s, or npos.
  std::uint32_t find(std::string_view s) const noexcept;
  /// Whether s may be defined now (length within bounds, pool not full).
  bool can_define(std::string_view s) const noexcept {
    return s.size() >= defaults::pool_min_string && s.size() <= defaults::pool_max_string &&
           entries_.size() < defaults::pool_max_entries && bytes_ + s.size() <= defaults::pool_max_bytes;
  }
  /// Defines s as the next id and returns it. @pre can_define(s) && find(s) == npos
  std::uint32_t define(std::string_view s);
  std::size_t size() const noexcept { return entries_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  void clear() noexcept;

private:
  struct slot {
    std::uint32_t hash;
    std::uint32_t id_plus_1; ///< 0 = empty
  };
  static std::uint32_t hash_of(std::string_view s) noexcept;
  void grow();

  std::vector<std::string_view> entries_;
  std::vector<slot> table_; ///< open addressing, power-of-two size, load <= 1/2
  std::size_t bytes_ = 0;
  detail::string_arena arena_;
};

} // namespace flowbus::codec
