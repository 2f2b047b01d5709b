// Same-host agents over shared memory (docs/protocol.md §13): the C++ client through the rings
// (pub/sub, request/reply, a full ring, busy-poll, publish-then-close), the fallback to WebSocket
// when the node does not offer it, and a peer written from the protocol document alone — the
// handshake header, the region, REGISTER over WebSocket, WELCOME in the ring — whose damaged
// ring closes its own connection and nobody else's.
#include "transport/transport_support.hpp"

#include <flowbus/scheduling/shm_channel.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/reasons.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace flowbus;
using namespace flowbus::test;
using actors::errc;

namespace {

transport::client_options shm_opts(std::uint16_t port, std::string id) {
  transport::client_options o = client_opts(port, std::move(id));
  o.shared_memory = std::getenv("NOSHM") == nullptr;
  return o;
}

/// A peer that asks for shared memory in its handshake and, if offered, opens the channel by
/// hand: everything as protocol.md §13 says, nothing of the client library.
class raw_shm_peer {
public:
  explicit raw_shm_peer(std::uint16_t port) : ws_(ioc_) {
    beast::get_lowest_layer(ws_).connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& r) { r.set("Flowbus-Shm", "1"); }));
    websocket::response_type res;
    ws_.handshake(res, "127.0.0.1:" + std::to_string(port), "/");
    ws_.binary(true);
    name_ = std::string(res["Flowbus-Shm"]);
    if (name_.empty()) return;
    std::error_code ec;
    ch_ = scheduling::shm_channel::open(name_, ec);
    REQUIRE_FALSE(ec);
    ep_ = ch_.endpoint(scheduling::shm_side::opener);
  }
  const std::string& name() const { return name_; }
  scheduling::shm_endpoint& ring() { return ep_; }

  /// REGISTER over WebSocket (the switch to the rings), the way any client sends it.
  void send_register(const std::string& id) {
    codec::message m;
    m.type = codec::msg_type::register_agent;
    m.set(codec::field::source, id);
    write_ws(m);
  }
  void write_ws(codec::message& m) {
    std::vector<codec::byte> out(enc_.literal_size(m));
    const auto r = enc_.encode(m, out.data(), out.size());
    REQUIRE(r);
    ws_.write(net::buffer(out.data(), r.size));
  }
  /// A FLOW frame as a record of our ring (no doorbell: the node is rung only if it parked).
  void write_record(codec::message& m) {
    std::vector<codec::byte> out(enc_.literal_size(m));
    const auto r = enc_.encode(m, out.data(), out.size());
    REQUIRE(r);
    bool wake = false;
    REQUIRE(ep_.try_write(out.data(), r.size, &wake));
    if (wake) doorbell();
  }
  void doorbell() { ws_.write(net::const_buffer(nullptr, 0)); } // an empty binary message
  /// The next frame the node put in its ring (polled), BATCHes unwrapped into frame types.
  std::vector<codec::msg_type> read_ring(std::chrono::milliseconds t = 3s) {
    std::vector<codec::msg_type> types;
    const auto until = std::chrono::steady_clock::now() + t;
    while (types.empty() && std::chrono::steady_clock::now() < until) {
      ep_.read(
          [&](const unsigned char* p, std::size_t n) {
            codec::message m;
            REQUIRE(dec_.decode(codec::bytes_view(p, n), m));
            if (m.type == codec::msg_type::error) last_error_ = m.num(codec::field::error_code);
            types.push_back(m.type);
          },
          64);
      if (types.empty()) std::this_thread::sleep_for(1ms);
    }
    return types;
  }
  std::uint64_t last_error() const { return last_error_; }
  /// Reads the WebSocket until the node closes it (doorbells skipped): the close code, or 0.
  std::uint16_t wait_close(std::chrono::milliseconds t = 3s) {
    beast::get_lowest_layer(ws_).expires_after(t);
    beast::flat_buffer b;
    for (;;) {
      beast::error_code ec;
      ws_.read(b, ec);
      b.clear();
      if (ec == websocket::error::closed) return static_cast<std::uint16_t>(ws_.reason().code);
      if (ec) return 0;
    }
  }

private:
  net::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_;
  std::string name_;
  scheduling::shm_channel ch_;
  scheduling::shm_endpoint ep_;
  codec::encoder enc_;
  codec::decoder dec_;
  std::uint64_t last_error_ = 0;
};

} // namespace

TEST_SUITE("shm") {
  TEST_CASE("clients on the node's host talk through shared memory: pub/sub in order, request/reply") {
    edge e({}, lossless_node()); // a publisher faster than its subscriber is held, not shed
    transport::client sub(shm_opts(e.port(), "shm-sub")), pub(shm_opts(e.port(), "shm-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    std::atomic<std::uint64_t> got{0}, out_of_order{0};
    REQUIRE(sub.subscribe("shm.>", [&](const transport::incoming& in) {
                 if (std::stoull(std::string(in.payload)) != got) ++out_of_order;
                 ++got;
               }).get() == errc::ok);
    const std::uint64_t n = 20000;
    for (std::uint64_t i = 0; i < n; ++i)
      REQUIRE(pub.publish("shm.seq", std::to_string(i)) == errc::ok);
    const bool all = eventually([&] { return got.load() == n; }, 10s);
    INFO("got " << got.load() << " sent " << pub.stats().sent << " direct " << pub.stats().direct_writes
                << " node in " << e.server.stats().frames_in << " out " << e.server.stats().frames_out
                << " pub bells " << pub.stats().doorbells << " node bells " << e.server.stats().shm_doorbells
                << " holds " << e.server.stats().holds << " pubholds " << pub.stats().holds << " dead " << [&] {
                     std::string r;
                     for (const auto& d : e.node.dead().take()) r += std::string(actors::to_string(d.reason)) + "/" + d.recipient + " ";
                     return r;
                   }());
    REQUIRE(all);
    CHECK(out_of_order.load() == 0);

    REQUIRE(sub.subscribe("svc.echo", [&](const transport::incoming& in) {
                 (void)sub.respond(in, "echo:" + std::string(in.payload));
               }).get() == errc::ok);
    const auto r = pub.request(actors::destination::topic("svc.echo"), "hi", 2s).get();
    CHECK(r.code == errc::ok);
    CHECK(r.payload == "echo:hi");

    CHECK(sub.stats().shm_connects == 1);
    CHECK(pub.stats().shm_connects == 1);
    const auto s = e.server.stats();
    CHECK(s.shm_attached == 2);
    // the node wrote WELCOMEs, ACKs and 20 000 messages through the rings: its socket writes are
    // doorbells, far fewer than the messages (over WebSocket alone each write carries at most 32)
    CHECK(s.writes < 10);
    CHECK(s.frames_out >= n);
  }

  TEST_CASE("a node that does not offer shared memory: the client goes on over WebSocket") {
    transport::server_options o;
    o.shared_memory = false;
    edge e(o);
    transport::client sub(shm_opts(e.port(), "ws-sub")), pub(shm_opts(e.port(), "ws-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    inbox box;
    REQUIRE(sub.subscribe("plain.>", box.handler()).get() == errc::ok);
    REQUIRE(pub.publish("plain.one", "x") == errc::ok);
    REQUIRE(eventually([&] { return box.size() == 1; }));
    CHECK(sub.stats().shm_connects == 0);
    CHECK(e.server.stats().shm_attached == 0);
    CHECK(e.server.stats().writes > 0);
  }

  TEST_CASE("a subscriber slower than its ring: the node waits for space (doorbells), nothing is lost") {
    transport::server_options o;
    o.shm_ring_bytes = 64 * 1024; // (made 4 x the largest message: 256 KiB)
    edge e(o, lossless_node());
    transport::client_options so = shm_opts(e.port(), "slow-shm");
    so.receive_window = 0; // no window: the ring itself fills
    transport::client sub(so), pub(shm_opts(e.port(), "fast-shm"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    std::atomic<std::uint64_t> got{0};
    REQUIRE(sub.subscribe("bulk.>", [&](const transport::incoming&) {
                 if (got++ < 200) std::this_thread::sleep_for(1ms); // slow at first
               }).get() == errc::ok);
    const std::string payload(1000, 'p');
    const std::uint64_t n = 3000; // 3 MB: a dozen rings' worth
    for (std::uint64_t i = 0; i < n; ++i)
      while (pub.publish("bulk.x", payload) != errc::ok)
        std::this_thread::sleep_for(1ms);
    const bool all = eventually([&] { return got.load() == n; }, 20s);
    INFO("got " << got.load() << " dead " << dead_letters_for(e.node, "slow-shm"));
    REQUIRE(all);
    CHECK(sub.stats().doorbells > 0); // it rang the node when it freed space
    CHECK(dead_letters_for(e.node, "slow-shm") == 0);
  }

  TEST_CASE("busy-polling both ways, and a publisher that closes at once: every message arrives") {
    transport::server_options o;
    o.shm_spin = std::chrono::microseconds(200);
    edge e(o, lossless_node());
    transport::client_options so = shm_opts(e.port(), "spin-sub");
    so.shm_spin = std::chrono::microseconds(200);
    transport::client sub(so);
    REQUIRE(sub.connect() == errc::ok);
    std::atomic<std::uint64_t> got{0};
    REQUIRE(sub.subscribe("spin.>", [&](const transport::incoming&) { ++got; }).get() == errc::ok);
    const std::uint64_t n = 5000;
    {
      transport::client pub(shm_opts(e.port(), "spin-pub"));
      REQUIRE(pub.connect() == errc::ok);
      for (std::uint64_t i = 0; i < n; ++i)
        REQUIRE(pub.publish("spin.x", "m") == errc::ok);
      pub.close(); // the close frame overtakes nothing still in the ring
    }
    const bool all = eventually([&] { return got.load() == n; }, 10s);
    INFO("got " << got.load() << " dead " << [&] {
      std::string r;
      for (const auto& d : e.node.dead().take()) r += std::string(actors::to_string(d.reason)) + "/" + d.recipient + " ";
      return r;
    }());
    REQUIRE(all);
  }

  TEST_CASE("a node removes channels left behind by node processes that died") {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(0);
    waitpid(child, nullptr, 0); // its pid names no process now
    const std::string dead = "flowbus-" + std::to_string(child) + "-1";
    const std::string alive = "flowbus-" + std::to_string(getpid()) + "-999999";
    std::error_code ec;
    auto a = scheduling::shm_channel::create(4096, dead, ec);
    REQUIRE_FALSE(ec);
    auto b = scheduling::shm_channel::create(4096, alive, ec);
    REQUIRE_FALSE(ec);
    {
      edge e;
      (void)scheduling::shm_channel::open(dead, ec);
      CHECK(ec == std::errc::no_such_file_or_directory); // removed at start
      auto still = scheduling::shm_channel::open(alive, ec);
      CHECK_FALSE(ec); // a live node's (ours) is left alone
    }
    scheduling::shm_channel::unlink(alive);
  }

  TEST_CASE("a peer written from the protocol document: WELCOME in the ring; a damaged ring closes that connection only") {
    edge e;
    transport::client other(shm_opts(e.port(), "bystander"));
    REQUIRE(other.connect() == errc::ok);
    inbox box;
    REQUIRE(other.subscribe("still.>", box.handler()).get() == errc::ok);

    raw_shm_peer p(e.port());
    REQUIRE_FALSE(p.name().empty());
    CHECK(p.ring().park()); // nothing yet: the node rings us once it writes
    p.send_register("raw-shm");
    auto t = p.read_ring();
    REQUIRE(t.size() == 1);
    CHECK(t[0] == codec::msg_type::welcome);
    std::error_code ec;
    (void)scheduling::shm_channel::open(p.name(), ec);
    CHECK(ec == std::errc::no_such_file_or_directory); // the name is gone at REGISTER: nobody else opens it

    codec::message pubm;
    pubm.type = codec::msg_type::publish;
    pubm.set_topic("still.here");
    pubm.payload = codec::bytes_view(std::string_view("from-shm"));
    pubm.sequence = 1;
    p.write_record(pubm);
    REQUIRE(eventually([&] { return box.size() == 1; }));

    // a record header no writer makes (a length beyond the ring), where the next record goes
    auto c = p.ring().try_claim(8);
    REQUIRE(c);
    __atomic_store_n(reinterpret_cast<std::uint64_t*>(c.data - 8), std::uint64_t{1} << 62 | 1, __ATOMIC_SEQ_CST);
    p.doorbell(); // the node parked: wake it
    CHECK(p.wait_close() == static_cast<std::uint16_t>(websocket::close_code::policy_error));
    auto last = p.read_ring(500ms);
    CHECK(std::find(last.begin(), last.end(), codec::msg_type::error) != last.end());
    CHECK(p.last_error() == transport::code_of(transport::reason::shm_damaged));

    REQUIRE(other.publish("still.after", "ok") == errc::ok);
    REQUIRE(eventually([&] { return box.size() == 2; }));
  }
}
