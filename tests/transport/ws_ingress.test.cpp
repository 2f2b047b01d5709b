// The node's own WebSocket reading (session.cpp: read / parse, over ws_reader.hpp) against a
// client that writes its bytes however TCP cuts them: messages from a few bytes to nearly the
// maximum, written in arbitrary chunks with pauses (a header split across reads, a message that
// outgrows the read buffer, many messages in one read), some of them in fragments — every one
// arrives once, in order, whole, and the connection stays up.
#include "transport/transport_support.hpp"
#include "transport/src/buffered_stream.hpp" // append_masked_frame: what a client writes

#include <flowbus/transport/reasons.hpp>

#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;
using namespace std::chrono_literals;

namespace {

/// `body` as a client's WebSocket frames: one frame, or `pieces` fragments (first, continuations,
/// final), each masked with its own key.
void append_message(std::vector<unsigned char>& wire, const std::vector<codec::byte>& body, std::size_t pieces,
                    std::mt19937& rng) {
  const std::size_t step = (body.size() + pieces - 1) / pieces;
  for (std::size_t at = 0, i = 0; at < body.size(); at += step, ++i) {
    const std::size_t n = std::min(step, body.size() - at);
    const std::size_t first = wire.size();
    flowbus::transport::detail::append_masked_frame(wire, body.data() + at, n, static_cast<std::uint32_t>(rng()));
    const bool last = at + n == body.size();
    wire[first] = static_cast<unsigned char>((last ? 0x80 : 0x00) | (i == 0 ? 0x02 : 0x00)); // FIN?, binary or continuation
  }
}

} // namespace

TEST_SUITE("ws_ingress") {
  TEST_CASE("messages cut anywhere by TCP, small and large, whole or in fragments, all arrive in order") {
    edge e;
    raw_peer sub(e.port());
    sub.join("sub", {"chunks"});
    raw_peer pub(e.port());
    pub.join("chunker");
    std::mt19937 rng(19);
    std::vector<std::string> sent;
    std::vector<unsigned char> wire;
    for (int i = 0; i < 400; ++i) {
      // mostly small, now and then large (a message outgrows the read buffer) or near the maximum
      const std::size_t n = i % 97 == 0 ? 60000 : i % 13 == 0 ? 5000 + rng() % 20000 : rng() % 300;
      std::string payload(n, '\0');
      for (auto& c : payload)
        c = static_cast<char>('a' + rng() % 26);
      payload.insert(0, std::to_string(i) + ":");
      codec::message m;
      m.type = codec::msg_type::publish;
      m.set_topic("chunks");
      m.payload = codec::bytes_view(payload);
      append_message(wire, pub.frame(m), i % 11 == 0 ? 1 + rng() % 5 : 1, rng);
      sent.push_back(std::move(payload));
    }
    std::size_t at = 0;
    while (at < wire.size()) {
      // chunks from 1 byte (a header split in two) to 40 KB (hundreds of messages in one read)
      const std::size_t n = std::min<std::size_t>(wire.size() - at, rng() % 4 == 0 ? 1 + rng() % 7 : 1 + rng() % 40000);
      net::write(pub.socket(), net::buffer(wire.data() + at, n));
      at += n;
      if (rng() % 8 == 0) std::this_thread::sleep_for(1ms); // let the node read what came so far
    }
    for (std::size_t i = 0; i < sent.size(); ++i) {
      auto f = sub.next(5s);
      REQUIRE(f);
      REQUIRE(f->payload.size() == sent[i].size());
      REQUIRE(f->payload == sent[i]);
    }
    CHECK_FALSE(pub.closed());
    CHECK(e.server.stats().protocol_errors == 0);
    CHECK(e.server.stats().sequence_gaps == 0);
    CHECK(e.node.dead().total() == 0);
  }

  TEST_CASE("a frame larger than the read buffer is gathered whole, then the messages behind it") {
    transport::server_options o;
    o.max_message = 256 * 1024; // above the session's 64 KiB read buffer: it must grow for this frame
    edge e(o);
    raw_peer sub(e.port());
    sub.join("sub", {"chunks"});
    raw_peer pub(e.port());
    pub.join("big");
    std::mt19937 rng(23);
    std::vector<unsigned char> wire;
    codec::message big;
    big.type = codec::msg_type::publish;
    big.flags |= codec::flag::ack_requested;
    big.set_topic("chunks");
    big.set(codec::field::message_id, 4242);
    const std::string huge(150000, 'h');
    big.payload = codec::bytes_view(huge);
    codec::encoder_options eo; // the peer's own encoder stops at 64 KiB
    eo.max_frame_size = o.max_message;
    eo.pool_strings = false;
    codec::encoder enc(eo);
    std::vector<codec::byte> body(enc.literal_size(big));
    const auto r = enc.encode(big, body.data(), body.size());
    REQUIRE(r);
    body.resize(r.size);
    append_message(wire, body, 1, rng);
    for (int i = 0; i < 20; ++i) {
      codec::message m;
      m.type = codec::msg_type::publish;
      m.set_topic("chunks");
      const std::string p = "after-" + std::to_string(i);
      m.payload = codec::bytes_view(p);
      append_message(wire, pub.frame(m), 1, rng);
    }
    for (std::size_t at = 0; at < wire.size();) { // in pieces of up to 30 KB: the big frame spans several reads
      const std::size_t n = std::min<std::size_t>(wire.size() - at, 1 + rng() % 30000);
      net::write(pub.socket(), net::buffer(wire.data() + at, n));
      at += n;
      std::this_thread::sleep_for(1ms);
    }
    // read whole and checked (its CRC covers all of it): above the node's largest frame buffer
    // (64 KiB) it is refused by message_id, not dropped, and the connection goes on
    auto nack = pub.next(5s);
    REQUIRE(nack);
    CHECK(nack->type == codec::msg_type::nack);
    CHECK(nack->message_id == 4242);
    CHECK(nack->error_code == transport::code_of(actors::errc::too_large));
    for (int i = 0; i < 20; ++i) {
      auto f = sub.next(5s);
      REQUIRE(f);
      REQUIRE(f->payload == "after-" + std::to_string(i));
    }
    CHECK_FALSE(pub.closed());
    CHECK(e.server.stats().protocol_errors == 0);
  }
}
