// What one link message carries (internal): a batch of FLOW frames as they are, each tagged with
// what the sending node chose the receiver for — its agents and plain subscribers (tag 0), or one
// of its queue groups (named once per batch). CAF sees one byte buffer (`std::vector<char>`, a
// type it knows), so one CAF message crosses the link per batch and nothing is re-encoded.
//
//   u16 group count, then per group: u16 length, key bytes (pattern '\x1f' group)
//   per frame: u32 length, u16 tag (0: main, k: group k-1), the frame's bytes
// Integers little-endian. A reader refuses a batch that does not add up (truncated, a tag
// naming no group) instead of reading past it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::actors::wire {

class batch_writer {
public:
  /// Starts a batch whose groups are `keys` (tag k names keys[k-1]).
  explicit batch_writer(const std::vector<std::string>& keys) {
    put16(static_cast<std::uint16_t>(keys.size()));
    for (const std::string& k : keys) {
      put16(static_cast<std::uint16_t>(k.size()));
      buf_.insert(buf_.end(), k.begin(), k.end());
    }
  }
  void add(std::uint16_t tag, const std::uint8_t* frame, std::size_t size) {
    put32(static_cast<std::uint32_t>(size));
    put16(tag);
    buf_.insert(buf_.end(), reinterpret_cast<const char*>(frame), reinterpret_cast<const char*>(frame) + size);
    ++frames_;
  }
  std::size_t frames() const noexcept { return frames_; }
  std::vector<char>& bytes() noexcept { return buf_; }

private:
  void put16(std::uint16_t v) {
    const char b[2] = {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
    buf_.insert(buf_.end(), b, b + 2);
  }
  void put32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      buf_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::vector<char> buf_;
  std::size_t frames_ = 0;
};

class batch_reader {
public:
  explicit batch_reader(const std::vector<char>& b) : p_(b.data()), end_(b.data() + b.size()) {
    std::uint16_t n = 0;
    if (!get16(n)) {
      fail();
      return;
    }
    for (std::uint16_t i = 0; i < n; ++i) {
      std::uint16_t len = 0;
      if (!get16(len) || static_cast<std::size_t>(end_ - p_) < len) {
        fail();
        return;
      }
      keys_.emplace_back(p_, len);
      p_ += len;
    }
  }
  /// The next frame and its group key (empty: main). False at the end or on a malformed batch (ok() tells).
  bool next(std::string_view& frame, std::string_view& group) {
    if (!ok_ || p_ == end_) return false;
    std::uint32_t len = 0;
    std::uint16_t tag = 0;
    if (!get32(len) || !get16(tag) || static_cast<std::size_t>(end_ - p_) < len || tag > keys_.size()) {
      fail();
      return false;
    }
    frame = std::string_view(p_, len);
    group = tag ? std::string_view(keys_[tag - 1]) : std::string_view{};
    p_ += len;
    return true;
  }
  bool ok() const noexcept { return ok_; }

private:
  void fail() noexcept { ok_ = false; }
  bool get16(std::uint16_t& v) {
    if (end_ - p_ < 2) return false;
    v = static_cast<std::uint16_t>(static_cast<std::uint8_t>(p_[0]) | static_cast<std::uint8_t>(p_[1]) << 8);
    p_ += 2;
    return true;
  }
  bool get32(std::uint32_t& v) {
    if (end_ - p_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(p_[i])) << (8 * i);
    p_ += 4;
    return true;
  }
  const char* p_;
  const char* end_;
  std::vector<std::string_view> keys_;
  bool ok_ = true;
};

} // namespace flowbus::actors::wire
