// Byte spans and little-endian access: the vocabulary every codec file speaks.
// C++17 has no std::span; bytes_view is the read-only (pointer, size) pair the decoder hands out
// as zero-copy views into a caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace flowbus::codec {

using byte = std::uint8_t;

/// A read-only view of contiguous bytes. Does not own; the caller keeps the bytes alive.
class bytes_view {
public:
  constexpr bytes_view() noexcept = default;
  constexpr bytes_view(const byte* data, std::size_t size) noexcept : data_(data), size_(size) {}
  bytes_view(const void* data, std::size_t size) noexcept : data_(static_cast<const byte*>(data)), size_(size) {}
  explicit bytes_view(std::string_view s) noexcept : data_(reinterpret_cast<const byte*>(s.data())), size_(s.size()) {}

  constexpr const byte* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr const byte* begin() const noexcept { return data_; }
  constexpr const byte* end() const noexcept { return data_ + size_; }
  constexpr byte operator[](std::size_t i) const noexcept { return data_[i]; }

  /// @pre offset + count <= size()
  constexpr bytes_view subview(std::size_t offset, std::size_t count) const noexcept { return {data_ + offset, count}; }
  /// @pre offset <= size()
  constexpr bytes_view subview(std::size_t offset) const noexcept { return {data_ + offset, size_ - offset}; }
  std::string_view as_string() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }
  friend bool operator==(bytes_view a, bytes_view b) noexcept {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }
  friend bool operator!=(bytes_view a, bytes_view b) noexcept { return !(a == b); }

private:
  const byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Little-endian loads and stores. memcpy compiles to one mov on x86-64 and stays legal for
// unaligned addresses; big-endian hosts swap.
namespace detail {
template <class T> inline T to_le(T v) noexcept {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if constexpr (sizeof(T) == 2) return __builtin_bswap16(v);
  if constexpr (sizeof(T) == 4) return __builtin_bswap32(v);
  if constexpr (sizeof(T) == 8) return __builtin_bswap64(v);
#endif
  return v;
}
} // namespace detail

template <class T> inline T load_le(const byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return detail::to_le(v);
}
template <class T> inline void store_le(byte* p, T v) noexcept {
  v = detail::to_le(v);
  std::memcpy(p, &v, sizeof(T));
}

} // namespace flowbus::codec
