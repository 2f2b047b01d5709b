#include "client_queue.hpp"

#include <flowbus/codec/encoder.hpp>
#include <flowbus/codec/frame_header.hpp>

namespace flowbus::transport::detail {

bool append_literal(codec::message& m, std::uint32_t max_frame, std::vector<codec::byte>& out) {
  // literal, so it stays valid on any connection; its checksum is written with its sequence
  // (outbound_batch::finish)
  codec::encoder lit(codec::stored_frame_encoding(max_frame));
  const std::size_t need = lit.literal_size(m);
  if (need > max_frame) return false;
  const std::size_t at = out.size();
  out.resize(at + need);
  out.resize(at + lit.encode(m, out.data() + at, need).size); // a failed encode writes 0 bytes
  return out.size() > at;
}

std::size_t frame_queue::frame_size_at(std::size_t pos) const noexcept {
  return codec::load_le<std::uint32_t>(buf_.data() + pos + codec::offset::total_size);
}

std::size_t frame_queue::take_into(outbound_batch& b) {
  std::size_t frames = 0;
  while (pos_ < buf_.size() && b.fits(frame_size_at(pos_))) {
    const std::size_t n = frame_size_at(pos_);
    b.add(codec::bytes_view(buf_.data() + pos_, n));
    pos_ += n;
    ++frames;
  }
  if (pos_ == buf_.size()) clear();
  return frames;
}

void frame_queue::move_to(frame_queue& to) {
  to.buf_.insert(to.buf_.end(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_), buf_.end());
  clear();
}

} // namespace flowbus::transport::detail
