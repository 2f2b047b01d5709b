// Bad input at the WebSocket edge: each defect closes only the offending connection, with an ERROR
// frame naming the reason and a WebSocket close code, while a publisher and a subscriber on the
// same node keep exchanging messages and lose none.
#include "transport/transport_support.hpp"

#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/frame_header.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/reasons.hpp>

#include <boost/asio/write.hpp>

#include <atomic>

using namespace flowbus;
using namespace flowbus::test;
using transport::code_of;
using transport::reason;

namespace {

/// Re-seals a frame's checksum after a test edited its bytes.
void reseal(std::vector<codec::byte>& f) {
  codec::store_le<std::uint32_t>(f.data() + codec::offset::checksum, 0);
  codec::store_le(f.data() + codec::offset::checksum, codec::crc32c(f.data(), f.size()));
}

std::vector<codec::byte> publish_frame(raw_peer& p, std::string_view payload = "some payload") {
  codec::message m;
  m.type = codec::msg_type::publish;
  m.set_topic("ok.topic");
  m.payload = codec::bytes_view(payload);
  return p.frame(m);
}

/// A publisher and a subscriber that must not notice anything: `n` messages, all of them, in order.
void healthy_traffic(std::uint16_t port, raw_peer& sub, int n) {
  raw_peer pub(port);
  pub.join("healthy-pub-" + std::to_string(n));
  for (int i = 0; i < n; ++i)
    pub.send_publish("ok.topic", "m" + std::to_string(i));
  for (int i = 0; i < n; ++i) {
    auto f = sub.next();
    REQUIRE(f);
    CHECK(f->type == codec::msg_type::publish);
    REQUIRE(f->payload == "m" + std::to_string(i));
  }
}

/// A peer `id` that does `act` is closed with `code` and a close reason naming `what`: nothing it
/// sent is routed, the others go on.
template <class Act>
void websocket_violation(const std::string& id, websocket::close_code code, const std::string& what, Act act) {
  edge e;
  raw_peer sub(e.port());
  sub.join("healthy-sub", {"ok.topic"});
  raw_peer bad(e.port());
  bad.join(id);
  act(bad);
  bad.until_closed();
  REQUIRE(bad.closed());
  CHECK(bad.close_code() == static_cast<std::uint16_t>(code));
  CHECK(bad.close_reason().find(what) != std::string::npos);
  CHECK_FALSE(sub.next(200ms));
  healthy_traffic(e.port(), sub, 20);
}

struct defect {
  std::string name;
  std::function<void(raw_peer&)> act;
  std::uint64_t code;
  websocket::close_code close;
};

} // namespace

TEST_SUITE("bad_input") {
  TEST_CASE("each defect closes that connection with a typed ERROR; the others lose nothing") {
    const std::vector<defect> defects = {
        {"garbage bytes",
         [](raw_peer& p) {
           const std::string junk = "GET / HTTP/1.1 this is not a FLOW frame, just forty-odd bytes";
           p.write_bytes(std::vector<codec::byte>(junk.begin(), junk.end()));
         },
         static_cast<std::uint64_t>(codec::errc::bad_magic), websocket::close_code::protocol_error},
        {"truncated frame",
         [](raw_peer& p) {
           auto f = publish_frame(p);
           f.resize(f.size() - 5);
           p.write_bytes(f);
         },
         static_cast<std::uint64_t>(codec::errc::truncated), websocket::close_code::protocol_error},
        {"bad checksum",
         [](raw_peer& p) {
           auto f = publish_frame(p);
           f.back() ^= 0x01;
           p.write_bytes(f);
         },
         static_cast<std::uint64_t>(codec::errc::checksum_mismatch), websocket::close_code::protocol_error},
        {"unknown type",
         [](raw_peer& p) {
           auto f = publish_frame(p);
           f[codec::offset::type] = 0x7F;
           reseal(f);
           p.write_bytes(f);
         },
         static_cast<std::uint64_t>(codec::errc::unknown_type), websocket::close_code::protocol_error},
        {"not REGISTER first", [](raw_peer& p) { p.send_publish("ok.topic", "too early"); },
         code_of(reason::expected_register), websocket::close_code::policy_error},
        {"a second REGISTER",
         [](raw_peer& p) {
           p.join("twice");
           p.send_register("twice-again");
         },
         code_of(reason::already_registered), websocket::close_code::policy_error},
        {"a type only the node sends",
         [](raw_peer& p) {
           p.join("welcomer");
           codec::message w;
           w.type = codec::msg_type::welcome;
           w.set(codec::field::target, "welcomer");
           p.send(w);
         },
         code_of(reason::unexpected_type), websocket::close_code::policy_error},
        {"a text message",
         [](raw_peer& p) {
           p.join("texter");
           const std::string text = "{\"topic\": \"ok.topic\"}"; // valid UTF-8: Beast passes it on
           p.write_bytes(std::vector<codec::byte>(text.begin(), text.end()), false);
         },
         code_of(reason::text_message), websocket::close_code::policy_error},
        {"a duplicate agent id",
         [](raw_peer& p) { p.send_register("healthy-sub"); },
         code_of(reason::registration_refused), websocket::close_code::policy_error},
        // issue 17.9: 2^42 ms overflowed the node's liveness clock and the agent was taken down
        // at once; it is refused as invalid, typed, and no clock is left running for it
        {"a heartbeat interval of 2^42 ms",
         [](raw_peer& p) { p.send_register("forever", {}, std::uint64_t{1} << 42); },
         code_of(reason::registration_refused), websocket::close_code::policy_error},
    };

    edge e;
    raw_peer sub(e.port());
    sub.join("healthy-sub", {"ok.topic"});
    int round = 0;
    for (const defect& d : defects) {
      CAPTURE(d.name);
      const auto errors_before = e.server.stats().protocol_errors;
      const auto corrupt_before = e.node.dead().count(actors::dead_reason::corruption);
      raw_peer bad(e.port());
      d.act(bad);
      const auto seen = bad.until_closed();
      REQUIRE(bad.closed());
      CHECK(bad.close_code() == static_cast<std::uint16_t>(d.close));
      REQUIRE_FALSE(seen.empty());
      const got_frame& err = seen.back();
      CHECK(err.type == codec::msg_type::error);
      CHECK(err.error_code == d.code);
      CHECK_FALSE(err.reason.empty());
      CHECK(e.server.stats().protocol_errors > errors_before);
      // a frame that does not decode is kept, as it came, in the corruption DLQ
      CHECK(e.node.dead().count(actors::dead_reason::corruption) - corrupt_before == (d.code < 64 ? 1u : 0u));
      healthy_traffic(e.port(), sub, 20 + round++);
    }
    // every defective peer (and each round's healthy publisher) is gone; the subscriber alone stays
    CHECK(eventually([&] { return e.server.stats().active == 1; }));
    CHECK(eventually([&] { return e.node.agents().size() == 1; })); // (the directory learns it a moment later)
  }

  TEST_CASE("a duplicate id is refused with the broker's reason before the close") {
    edge e;
    raw_peer first(e.port());
    first.join("dup");
    raw_peer second(e.port());
    second.send_register("dup");
    const auto seen = second.until_closed();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].error_code == code_of(actors::errc::duplicate_agent));
    CHECK(seen[0].reason == "duplicate_agent"); // every ERROR has its reason (it had none)
    CHECK(seen[1].error_code == code_of(reason::registration_refused));
    CHECK_FALSE(seen[1].reason.empty());
  }

  TEST_CASE("a heartbeat interval above 24 h is refused as invalid_agent; 24 h itself is taken") {
    edge e;
    raw_peer forever(e.port());
    forever.send_register("forever", {}, std::uint64_t{1} << 42);
    const auto seen = forever.until_closed();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].error_code == code_of(actors::errc::invalid_agent));
    CHECK(e.node.agents().empty());
    raw_peer day(e.port());
    day.send_register("a-day", {}, 24ull * 3600 * 1000);
    auto w = day.next();
    REQUIRE(w);
    CHECK(w->type == codec::msg_type::welcome);
    std::this_thread::sleep_for(200ms);
    CHECK(e.node.agents().size() == 1); // not taken down at once, as 2^42 ms was
  }

  TEST_CASE("a message above the maximum closes the connection as too large") {
    transport::server_options o;
    o.max_message = 4096;
    edge e(o);
    raw_peer sub(e.port());
    sub.join("healthy-sub", {"ok.topic"});
    raw_peer big(e.port());
    big.join("big");
    big.send_publish("ok.topic", std::string(8000, 'x'));
    const auto seen = big.until_closed();
    REQUIRE(big.closed());
    // refused from the frame header, before its payload is read: ERROR 73, then close 1009
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].type == codec::msg_type::error);
    CHECK(seen[0].error_code == code_of(reason::message_too_large));
    CHECK(big.close_code() == static_cast<std::uint16_t>(websocket::close_code::too_big));
    CHECK(big.close_reason() == seen[0].reason); // the close frame says it in words too
    healthy_traffic(e.port(), sub, 50);
  }

  TEST_CASE("a message in WebSocket fragments is one message; a ping gets its pong") {
    edge e;
    raw_peer sub(e.port());
    sub.join("sub", {"ok.topic"});
    raw_peer pub(e.port());
    pub.join("fragmenter");
    const std::string payload(3000, 'f');
    pub.write_fragmented(publish_frame(pub, payload), 100); // 31 frames: the first, continuations, the final one
    REQUIRE_FALSE(pub.last_write());
    auto f = sub.next();
    REQUIRE(f);
    CHECK(f->payload == payload);
    pub.ping("are you there");
    CHECK_FALSE(pub.next(300ms)); // nothing but the pong comes
    CHECK(pub.pongs() == 1);
    CHECK_FALSE(pub.closed());
    healthy_traffic(e.port(), sub, 10);
  }

  TEST_CASE("an unmasked frame from a client is a WebSocket violation: close 1002 with the reason") {
    websocket_violation("unmasked", websocket::close_code::protocol_error, "unmasked", [](raw_peer& bad) {
      const auto body = publish_frame(bad, "never routed");
      std::vector<unsigned char> wire = {0x82, static_cast<unsigned char>(body.size())}; // FIN binary, no MASK bit
      wire.insert(wire.end(), body.begin(), body.end());
      net::write(bad.socket(), net::buffer(wire));
    });
  }

  TEST_CASE("a text message that is not UTF-8 is refused by the WebSocket layer itself (1007)") {
    websocket_violation("binary-as-text", websocket::close_code::bad_payload, "not UTF-8", [](raw_peer& bad) {
      auto f = publish_frame(bad);
      f.push_back(0xFF); // never valid in UTF-8
      bad.write_bytes(f, false);
    });
  }

  TEST_CASE("beyond the connection limit: ERROR too_many_connections and close 1013; the others stay") {
    transport::server_options o;
    o.max_connections = 2;
    edge e(o);
    raw_peer sub(e.port());
    sub.join("healthy-sub", {"ok.topic"});
    raw_peer second(e.port());
    second.join("second");
    raw_peer third(e.port());
    const auto seen = third.until_closed();
    REQUIRE(third.closed());
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].error_code == code_of(reason::too_many_connections));
    CHECK(third.close_code() == static_cast<std::uint16_t>(websocket::close_code::try_again_later));
    CHECK(e.server.stats().refused == 1);
    // a slot frees when a connection leaves
    codec::message bye;
    bye.type = codec::msg_type::goodbye;
    second.send(bye);
    second.until_closed();
    REQUIRE(eventually([&] { return e.server.stats().active == 1; }));
    raw_peer fourth(e.port());
    fourth.join("fourth");
    raw_peer pub(e.port()); // over the limit again: refused
    pub.until_closed();
    CHECK(pub.closed());
  }

  TEST_CASE("a peer that stops reading and answering pings is closed after the idle timeout") {
    transport::server_options o;
    o.idle_timeout = 400ms;
    edge e(o);
    raw_peer mute(e.port());
    mute.join("mute");
    REQUIRE(e.node.agents().size() == 1);
    std::this_thread::sleep_for(1500ms); // not reading: the node's pings go unanswered
    REQUIRE(eventually([&] { return e.node.agents().empty(); }, 3s));
    CHECK(e.server.stats().active == 0);
  }

  TEST_CASE("no REGISTER within the handshake timeout closes the connection") {
    transport::server_options o;
    o.handshake_timeout = 300ms;
    edge e(o);
    raw_peer idle(e.port());
    const auto seen = idle.until_closed(3s);
    REQUIRE(idle.closed());
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].error_code == code_of(reason::expected_register));
  }

  TEST_CASE("a defect from a connection with frames still queued for it: ERROR, then the close at once") {
    edge e;
    raw_peer sub(e.port());
    sub.join("backlogged", {"ok.topic"}, 8); // a window of 8, never granted back: the rest waits in its lanes
    auto local = e.node.connect({"local-pub", "test"});
    REQUIRE(local.has_value());
    for (int i = 0; i < 50; ++i) REQUIRE((*local)->publish("ok.topic", "queued").code == actors::errc::ok);
    REQUIRE(eventually([&] { return e.server.stats().window_waits > 0; }));
    auto f = publish_frame(sub);
    f[0] ^= 0xFF; // bad magic
    sub.write_bytes(f);
    const auto seen = sub.until_closed(3s);
    REQUIRE(sub.closed()); // not left open with its backlog unwritable
    CHECK(sub.close_code() == static_cast<std::uint16_t>(websocket::close_code::protocol_error));
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back().error_code == static_cast<std::uint64_t>(codec::errc::bad_magic));
    // what was queued for it is accounted for: the 42 beyond its window, and the bad frame itself
    // (dead_letters_for takes what it counts: add up)
    std::size_t counted = 0;
    CHECK(eventually([&] { return (counted += dead_letters_for(e.node, "backlogged")) == 42 + 1; }));
  }

  TEST_CASE("a slow consumer is cut off; its backlog is dead-lettered; a fast one gets everything") {
    transport::server_options o;
    o.write_timeout = 300ms;
    o.mailbox_capacity = 256;
    actors::node_config c = small_node();
    // every frame the slow consumer misses stays referenced by its dead letter: room for all
    c.buffers = {{{256, 4096}, {4096, 6000}}, -1, false, false};
    edge e(o, c);
    raw_peer slow(e.port());
    slow.join("slow", {"flood"}); // and never reads again

    std::atomic<int> got{0};
    transport::client_options co;
    co.port = e.port();
    co.id = "fast";
    co.subscriptions = {"flood"};
    transport::client fast(co);
    fast.on_message([&](const transport::incoming& m) {
      if (m.payload.size() == 4000) got.fetch_add(1, std::memory_order_relaxed);
    });
    REQUIRE(fast.connect() == actors::errc::ok);

    auto pub = e.node.connect({"pub", "test"}).value();
    const std::string payload(4000, 'p');
    const int total = 5000; // 20 MB: far more than the loopback socket buffers hold (~4.5 MB unread)
    int published = 0;
    while (published < total) {
      if (published - got.load() > 128) { // pace to the fast subscriber; the slow one falls behind
        std::this_thread::sleep_for(100us);
        continue;
      }
      REQUIRE(pub->publish("flood", payload).code != actors::errc::no_buffer);
      ++published;
    }
    REQUIRE(eventually([&] { return got.load() == total; }, 20s));
    REQUIRE(eventually([&] { return e.server.stats().slow_consumers == 1; }, 10s));
    // what the slow consumer did not take is accounted for, not dropped
    std::size_t for_slow = 0;
    REQUIRE(eventually([&] { return (for_slow += dead_letters_for(e.node, "slow")) > 0; }));
    auto& dead = e.node.dead();
    CHECK(dead.count(actors::dead_reason::overflow) + dead.count(actors::dead_reason::agent_unavailable) +
              dead.count(actors::dead_reason::shed) >= for_slow);
    // and the node still takes new connections
    raw_peer after(e.port());
    after.join("after");
  }
}
