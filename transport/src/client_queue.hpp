// A client's small queues of encoded frames (private to transport/): control frames, CRITICAL
// messages and frames sent again, beside the sending threads' lock-free ring (client_impl.hpp).
// A frame_queue holds frames back to back, encoded with literal strings (no
// connection's pool, so they stay valid across reconnects; sequence and checksum are rewritten
// when written, outbound.hpp) and is taken from the front in whole frames into one WebSocket
// message. send_pacing tells sparse traffic (which a sender writes itself) from dense (which the
// I/O thread gathers). No socket, no lock: the client says who may touch which (threading.md).
// @threadsafe no
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/message.hpp>
#include <flowbus/transport/outbound.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace flowbus::transport::detail {

/// Encodes `m` at the end of `out` with literal strings and no checksum (the sequence and the
/// checksum are written with the frame); false (nothing written) if it does not fit a frame of
/// `max_frame`.
bool append_literal(codec::message& m, std::uint32_t max_frame, std::vector<codec::byte>& out);

class frame_queue {
public:
  /// Encodes `m` at the end (literal strings); false if it does not fit a frame of `max_frame`.
  bool append(codec::message& m, std::uint32_t max_frame) { return append_literal(m, max_frame, buf_); }
  /// Appends a frame encoded before (an acknowledged publish sent again).
  void append_frame(codec::bytes_view frame) { buf_.insert(buf_.end(), frame.data(), frame.data() + frame.size()); }
  /// Adds whole frames from the front to `b` while they fit; returns how many. Once all are
  /// taken the queue is empty again, keeping its capacity.
  std::size_t take_into(outbound_batch& b);
  /// The one frame queued, whole (a sender's direct write). @pre exactly one frame, none taken
  codec::bytes_view only_frame() const noexcept { return codec::bytes_view(buf_.data(), buf_.size()); }
  bool empty() const noexcept { return pos_ == buf_.size(); }
  void clear() noexcept {
    buf_.clear();
    pos_ = 0;
  }
  /// Moves everything (not yet taken) to the end of `to`.
  void move_to(frame_queue& to);

private:
  std::size_t frame_size_at(std::size_t pos) const noexcept;
  std::vector<codec::byte> buf_;
  std::size_t pos_ = 0;
};

/// Whether messages come far enough apart for a sending thread to write each itself: the average
/// gap (each gap weighs 1/4; at most 4 × the wanted gap, so a burst after a quiet spell turns to
/// gathering within a few messages) is at least `want`. Jitter in a steady rate moves single
/// gaps, not the average.
class send_pacing {
public:
  /// A message sent at `now_ns`; true if traffic is sparse. `want_ns` < 0: never sparse.
  bool sparse(std::int64_t now_ns, std::int64_t want_ns) noexcept {
    if (want_ns < 0) return false;
    const std::int64_t gap = std::clamp<std::int64_t>(now_ns - last_ns_, 0, 4 * want_ns);
    last_ns_ = now_ns;
    avg_ns_ += (gap - avg_ns_) / 4;
    return avg_ns_ >= want_ns;
  }

private:
  std::int64_t last_ns_ = 0; ///< the previous message's time
  std::int64_t avg_ns_ = 0;  ///< the moving average of the gaps
};

} // namespace flowbus::transport::detail
