// Frames as the node stores them for an agent (literal strings, as port::encode makes them), for
// the socket-free tests of the edge's units (egress_queue, delivery_tracker).
#pragma once

#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/buffer.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flowbus::test {

struct frame_spec {
  codec::msg_type type = codec::msg_type::publish;
  codec::priority prio = codec::priority::normal;
  std::string topic = "t";
  std::string payload = "x";
  std::uint64_t deadline_ns = 0;  ///< 0: none
  std::uint64_t max_attempts = 0; ///< 0: none
};

inline scheduling::buffer_ref stored_frame(const frame_spec& s) {
  codec::encoder_options o;
  o.pool_strings = false;
  codec::encoder enc(o);
  codec::message m;
  m.type = s.type;
  m.prio = s.prio;
  m.set_topic(s.topic);
  if (s.deadline_ns) m.set(codec::field::deadline, s.deadline_ns);
  if (s.max_attempts) m.set(codec::field::max_attempts, s.max_attempts);
  m.payload = codec::bytes_view(s.payload);
  std::vector<codec::byte> out(enc.literal_size(m));
  const auto r = enc.encode(m, out.data(), out.size());
  REQUIRE(r);
  return scheduling::buffer_ref::copy_of(out.data(), r.size);
}

inline scheduling::buffer_ref stored_frame(const std::string& payload,
                                           codec::priority prio = codec::priority::normal) {
  frame_spec s;
  s.payload = payload;
  s.prio = prio;
  return stored_frame(s);
}

} // namespace flowbus::test
