// How the node reads back a frame it stored for an agent (private to transport/): for one of its
// fields (the deadline when it is queued, the retry budget on a NACK). The frame was made by the
// node's own encoder in its own memory, from a frame whose checksum the edge verified: checking
// it again would be a CRC pass over every frame for nothing (it is rewritten when written out).
#pragma once

#include <flowbus/codec/decoder.hpp>

namespace flowbus::transport::detail {

inline codec::decoder_options stored_frames() noexcept {
  codec::decoder_options o;
  o.verify_checksum = false;
  return o;
}

} // namespace flowbus::transport::detail
