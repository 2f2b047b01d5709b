#include <flowbus/transport/outbound.hpp>

#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/frame_header.hpp>
#include <flowbus/codec/types.hpp>

#include <algorithm>

namespace flowbus::transport {

namespace {
constexpr std::size_t header = codec::defaults::header_size;
} // namespace

bool outbound_batch::fits(std::size_t frame_size) const noexcept {
  if (count_ == 0) return frame_size <= max_frame_;
  // as a BATCH: buf_ already holds the BATCH header's slot and the frames so far
  const std::size_t total = buf_.size() + frame_size;
  return count_ < max_count_ && total <= max_frame_;
}

void outbound_batch::add(codec::bytes_view frame) {
  if (buf_.empty()) buf_.resize(header); // the BATCH header's slot, used if a second frame comes
  buf_.insert(buf_.end(), frame.data(), frame.data() + frame.size());
  ++count_;
}

codec::bytes_view outbound_batch::finish(std::uint64_t& next_sequence) {
  codec::byte* first = buf_.data() + header;
  if (count_ == 1) {
    const std::size_t n = buf_.size() - header;
    codec::store_le<std::uint64_t>(first + codec::offset::sequence, next_sequence++);
    codec::store_le<std::uint32_t>(first + codec::offset::checksum, 0);
    codec::store_le<std::uint32_t>(first + codec::offset::checksum, codec::crc32c(first, n));
    return codec::bytes_view(first, n);
  }
  // BATCH: inner frames numbered consecutively with checksum 0; the batch checksum covers them
  codec::frame_header bh;
  bh.type = static_cast<std::uint8_t>(codec::msg_type::batch);
  bh.priority = codec::priority_count - 1;
  bh.sequence = next_sequence;
  bh.total_size = static_cast<std::uint32_t>(buf_.size());
  bh.payload_size = static_cast<std::uint32_t>(buf_.size() - header);
  for (codec::byte* p = first; p < buf_.data() + buf_.size();) {
    const codec::frame_header h = codec::read_header(p);
    if (p == first) bh.timestamp_ns = h.timestamp_ns;
    bh.priority = std::min(bh.priority, h.priority);
    codec::store_le<std::uint64_t>(p + codec::offset::sequence, next_sequence++);
    codec::store_le<std::uint32_t>(p + codec::offset::checksum, 0);
    p += h.total_size;
  }
  codec::write_header(buf_.data(), bh);
  codec::store_le<std::uint32_t>(buf_.data() + codec::offset::checksum, codec::crc32c(buf_.data(), buf_.size()));
  return codec::bytes_view(buf_.data(), buf_.size());
}

void outbound_batch::clear() noexcept {
  buf_.clear();
  count_ = 0;
}

} // namespace flowbus::transport
