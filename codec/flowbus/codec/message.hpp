// One message, as the encoder takes it and the decoder gives it back. Strings and the payload are
// views: into the caller's data when encoding, into the received frame (or the connection's
// string pool) when decoding. Nothing here allocates.
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/types.hpp>

#include <cstddef>
#include <string_view>

namespace flowbus::codec {

class inbound_pool;

/// One repeated routing field: a header (key, value), a capability or a subscription (key only).
struct repeated_entry {
  field id = field::header;
  std::string_view key;
  std::string_view value;
  friend bool operator==(const repeated_entry& a, const repeated_entry& b) noexcept {
    return a.id == b.id && a.key == b.key && a.value == b.value;
  }
};

/// The repeated fields of a message, in wire order. Either the caller's array (to encode) or a
/// decoded routing section walked lazily (decoding stored only the count; walking again resolves
/// pool references, which stay valid because pool ids are never reused).
class repeated_fields {
public:
  class iterator {
  public:
    using value_type = repeated_entry;
    const repeated_entry& operator*() const noexcept { return cur_; }
    const repeated_entry* operator->() const noexcept { return &cur_; }
    iterator& operator++() noexcept {
      advance();
      return *this;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.left_ == b.left_; }
    friend bool operator!=(const iterator& a, const iterator& b) noexcept { return a.left_ != b.left_; }

  private:
    friend class repeated_fields;
    void advance() noexcept;
    void advance_wire() noexcept; // decoder.cpp
    const repeated_entry* array_ = nullptr;
    const byte* p_ = nullptr;
    const byte* end_ = nullptr;
    const inbound_pool* pool_ = nullptr;
    std::size_t left_ = 0; ///< entries not yet consumed, including cur_
    repeated_entry cur_;
  };

  repeated_fields() noexcept = default;
  /// Encode side: the caller's entries, which must outlive every use of this object.
  repeated_fields(const repeated_entry* entries, std::size_t count) noexcept : array_(entries), count_(count) {}
  /// Decode side (used by the decoder): `count` repeated fields inside a validated routing section.
  static repeated_fields from_wire(bytes_view section, const inbound_pool* pool, std::size_t count) noexcept {
    repeated_fields r;
    r.section_ = section;
    r.pool_ = pool;
    r.count_ = count;
    return r;
  }

  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  iterator begin() const noexcept;
  iterator end() const noexcept { return iterator{}; }

private:
  const repeated_entry* array_ = nullptr;
  bytes_view section_;
  const inbound_pool* pool_ = nullptr;
  std::size_t count_ = 0;
};

class message {
public:
  msg_type type = msg_type::publish;
  std::uint8_t flags = 0; ///< flag:: bits; HAS_DEADLINE is written by the encoder from has(deadline)
  priority prio = priority::normal;
  std::uint64_t timestamp_ns = 0; ///< sender's clock, ns since the Unix epoch
  std::uint64_t sequence = 0;     ///< set by the encoder; read back by the decoder
  std::uint32_t checksum = 0;     ///< decoded: as received (already verified)
  std::uint32_t frame_size = 0;   ///< decoded: the frame's total size
  bytes_view payload;
  repeated_fields repeated;

  bool has(field f) const noexcept { return (present_ & bit(f)) != 0; }
  std::uint32_t present_mask() const noexcept { return present_; }

  /// Value of a singular string (or bytes) field; empty if absent. @pre describe(f)->kind is string or bytes
  std::string_view str(field f) const noexcept { return has(f) ? strs_[describe(f)->slot] : std::string_view{}; }
  /// Value of a singular varint field; 0 if absent. @pre describe(f)->kind == wire_kind::varint
  std::uint64_t num(field f) const noexcept { return has(f) ? nums_[describe(f)->slot] : 0; }

  /// @pre f is a singular string (or bytes) field
  message& set(field f, std::string_view v) noexcept {
    std::string_view& slot = strs_[describe(f)->slot];
    if (has(f)) str_bytes_ -= slot.size();
    slot = v;
    str_bytes_ += v.size();
    present_ |= bit(f);
    return *this;
  }
  /// @pre f is a singular varint field
  message& set(field f, std::uint64_t v) noexcept {
    nums_[describe(f)->slot] = v;
    present_ |= bit(f);
    return *this;
  }
  message& unset(field f) noexcept {
    if (has(f) && describe(f)->kind != wire_kind::varint) str_bytes_ -= strs_[describe(f)->slot].size();
    present_ &= ~bit(f);
    return *this;
  }
  void clear_fields() noexcept {
    present_ = 0;
    str_bytes_ = 0;
    repeated = {};
  }
  /// Total length of the singular string fields present (lets the encoder bound a size in O(1)).
  std::size_t string_bytes() const noexcept { return str_bytes_; }

  // Shorthands for the fields every agent uses.
  std::string_view topic() const noexcept { return str(field::topic); }
  message& set_topic(std::string_view t) noexcept { return set(field::topic, t); }
  std::uint64_t correlation_id() const noexcept { return num(field::correlation_id); }
  std::uint64_t message_id() const noexcept { return num(field::message_id); }
  std::uint64_t deadline_ns() const noexcept { return num(field::deadline); }

private:
  std::uint32_t present_ = 0;
  std::size_t str_bytes_ = 0;
  std::string_view strs_[string_slots];
  std::uint64_t nums_[number_slots] = {};
};

inline repeated_fields::iterator repeated_fields::begin() const noexcept {
  iterator it;
  if (count_ == 0) return it;
  it.array_ = array_;
  it.p_ = section_.begin();
  it.end_ = section_.end();
  it.pool_ = pool_;
  it.left_ = count_ + 1; // advance() consumes one
  it.advance();
  return it;
}

inline void repeated_fields::iterator::advance() noexcept {
  if (left_ == 0) return;
  if (--left_ == 0) return;
  if (array_) {
    cur_ = *array_++;
  } else {
    advance_wire();
  }
}

} // namespace flowbus::codec
