// libFuzzer target for the decoder, the batch reader and the string pool.
//
// Input byte 0 picks a mode; the rest is a stream of frames on one connection (so pool
// definitions in one frame are referenced by later ones):
//   bit 0: recompute each frame's checksum before decoding, so mutations reach the routing parser
//          and batch layout instead of stopping at checksum_mismatch;
//   bit 1: decode with checksum verification off (the same reach, the other code path).
// Properties checked beyond "no crash, no out-of-bounds read, no leak, no UB" (ASan+UBSan):
//   - a decoded message re-encodes (fresh encoder, no pooling) into a frame that decodes back to
//     the same message, or is refused only because literal strings made it too large;
//   - errors name an offset inside the frame; a refused frame leaves the pool as it was.
#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>

#include "codec/codec_test_util.hpp"

#include <cstdlib>
#include <vector>

using namespace flowbus::codec;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void reencode(const message& d) {
  if (d.type == msg_type::batch) return;
  encoder enc(encoder_options{defaults::max_frame_size, false});
  enc.set_next_sequence(d.sequence);
  std::vector<byte> out(defaults::max_frame_size);
  message copy = d;
  const encode_result r = enc.encode(copy, out.data(), out.size());
  if (r.code == errc::frame_too_large) return;
  check(r.code == errc::ok);
  decoder dec;
  message back;
  check(static_cast<bool>(dec.decode(bytes_view(out.data(), r.size), back)));
  check(test::same_message(d, back));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const byte mode = data[0];
  decoder dec(decoder_options{defaults::max_frame_size, (mode & 2) == 0});
  bytes_view rest(data + 1, size - 1);
  std::vector<byte> frame;
  for (int frames = 0; frames < 64 && !rest.empty(); ++frames) {
    const probe_result p = dec.probe(rest);
    if (p.code != errc::ok) {
      check(p.code != errc::need_more || p.needed > 0);
      break;
    }
    frame.assign(rest.begin(), rest.begin() + p.frame_size);
    rest = rest.subview(p.frame_size);
    if (mode & 1) {
      store_le<std::uint32_t>(frame.data() + offset::checksum, 0);
      store_le(frame.data() + offset::checksum, crc32c(frame.data(), frame.size()));
    }
    const std::size_t pool_before = dec.pool().size();
    message m;
    const decode_status s = dec.decode(bytes_view(frame.data(), frame.size()), m);
    if (!s) {
      check(s.offset <= frame.size());
      check(dec.pool().size() == pool_before);
      continue;
    }
    for (const repeated_entry& e : m.repeated)
      check(e.key.size() <= frame.size() || e.key.size() <= 255);
    reencode(m);
    if (m.type == msg_type::batch) {
      batch_reader br(dec, m);
      while (!br.done()) {
        message inner;
        const decode_status is = br.next(inner);
        if (!is) {
          check(is.offset < frame.size());
          break;
        }
        reencode(inner);
      }
    }
  }
  return 0;
}
