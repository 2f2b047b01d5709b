// What a bare client gets from a flowbus node: the same fixed-rate latency load as `flowbus bench
// latency`, through a running node, by the leanest client the protocol allows — blocking sockets,
// the WebSocket framing done by hand (masked as RFC 6455 asks of a client), FLOW frames from the
// codec, one write per message, no I/O thread. Set beside `flowbus bench latency --connect`, it
// says how much the C++ client library adds (issue 19: at most ~10 us).
//
//   flowbus node --port 8081 &
//   flowbus_bare_ws_bench --port 8081 [--rate 10000] [--seconds 10] [--size 128]
//
// Publisher (this process) and subscriber (a forked one) are two processes beside the node's,
// as in `flowbus bench latency`. Each message carries its intended send time (steady clock) at
// payload bytes 8..15; the subscriber records the latency from it (one_way.hpp) and prints one
// JSON line, `ws_bare_latency_<rate>`.
#include "loopback.hpp"
#include "one_way.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace flowbus;
constexpr const char* topic = "bench.bare.data";

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "bare ws bench: %s\n", what);
  std::exit(2);
}

/// One WebSocket connection to the node, blocking, framed by hand.
class ws_conn {
public:
  explicit ws_conn(std::uint16_t port) {
    fd_ = bench::connect_loopback(port);
    if (fd_ < 0) die("no node on that port");
    const std::string req = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    write_all(reinterpret_cast<const unsigned char*>(req.data()), req.size());
    std::size_t end;
    while ((end = std::string_view(reinterpret_cast<const char*>(buf_.data()), buf_.size()).find("\r\n\r\n")) ==
           std::string_view::npos)
      fill();
    if (std::string_view(reinterpret_cast<const char*>(buf_.data()), 12).find("101") == std::string_view::npos)
      die("the node refused the WebSocket upgrade");
    pos_ = end + 4; // what follows is the WebSocket stream
  }

  /// Encodes `m` and writes it as one masked binary WebSocket message.
  void send(codec::message& m) {
    frame_.resize(enc_.literal_size(m));
    const codec::encode_result r = enc_.encode(m, frame_.data(), frame_.size());
    if (!r) die("encode");
    out_.clear();
    const std::size_t n = r.size;
    out_.push_back(0x82); // FIN, binary
    if (n < 126) {
      out_.push_back(static_cast<unsigned char>(0x80 | n));
    } else {
      out_.push_back(0x80 | 126);
      out_.push_back(static_cast<unsigned char>(n >> 8));
      out_.push_back(static_cast<unsigned char>(n));
    }
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    out_.insert(out_.end(), key, key + 4);
    const std::size_t at = out_.size();
    out_.resize(at + n);
    for (std::size_t i = 0; i < n; ++i)
      out_[at + i] = static_cast<unsigned char>(frame_[i] ^ key[i % 4]);
    write_all(out_.data(), out_.size());
  }

  /// Calls f(message) for every FLOW message of the next WebSocket message (a BATCH's inner ones).
  template <class F> void receive(F&& f) {
    for (;;) {
      while (buf_.size() - pos_ < 2)
        fill();
      const unsigned char* p = buf_.data() + pos_;
      std::size_t len = p[1] & 0x7f, head = 2;
      if (len == 126) {
        while (buf_.size() - pos_ < 4)
          fill();
        p = buf_.data() + pos_;
        len = (std::size_t{p[2]} << 8) | p[3];
        head = 4;
      } else if (len == 127) {
        while (buf_.size() - pos_ < 10)
          fill();
        p = buf_.data() + pos_;
        len = 0;
        for (int i = 0; i < 8; ++i)
          len = (len << 8) | p[2 + i];
        head = 10;
      }
      while (buf_.size() - pos_ < head + len)
        fill();
      p = buf_.data() + pos_;
      const unsigned op = p[0] & 0x0f;
      const codec::bytes_view body(p + head, len);
      pos_ += head + len;
      if (op != 2) continue; // a ping (not within a bench's seconds) or a pong
      codec::message m;
      if (!dec_.decode(body, m)) die("a bad frame from the node");
      if (m.type == codec::msg_type::batch) {
        codec::batch_reader r(dec_, m);
        codec::message inner;
        while (!r.done()) {
          if (!r.next(inner)) die("a bad BATCH from the node");
          f(inner);
        }
      } else {
        f(m);
      }
      return;
    }
  }

  /// Waits for a message of type `t` (WELCOME, ACK).
  void await(codec::msg_type t) {
    bool seen = false;
    while (!seen)
      receive([&](const codec::message& m) {
        if (m.type == codec::msg_type::error) die("the node sent an ERROR");
        seen = seen || m.type == t;
      });
  }

private:
  void write_all(const unsigned char* p, std::size_t n) {
    if (!bench::write_all(fd_, p, n)) die("write");
  }
  void fill() {
    if (pos_ > 65536) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
    unsigned char tmp[65536];
    const ssize_t r = read(fd_, tmp, sizeof tmp);
    if (r <= 0) die("the node closed the connection");
    buf_.insert(buf_.end(), tmp, tmp + r);
  }

  int fd_;
  std::vector<unsigned char> buf_, frame_, out_;
  std::size_t pos_ = 0;
  codec::encoder enc_{codec::encoder_options{codec::defaults::max_frame_size, false}};
  codec::decoder dec_;
};

codec::message control(codec::msg_type t) {
  codec::message m;
  m.type = t;
  m.prio = codec::priority::normal;
  m.timestamp_ns = codec::wall_clock_ns();
  return m;
}

/// REGISTER as `id` (no receive window: TCP's flow control alone), WELCOME awaited.
void register_as(ws_conn& c, const char* id) {
  codec::message r = control(codec::msg_type::register_agent);
  r.set(codec::field::source, id);
  r.set(codec::field::heartbeat_ms, std::uint64_t{60000}); // no HEARTBEAT needed within a bench
  c.send(r);
  c.await(codec::msg_type::welcome);
}

} // namespace

int main(int argc, char** argv) {
  const auto args = bench::load_args::parse(argc, argv, 8081);
  const double rate = args.rate;
  const std::size_t size = args.size;
  const std::uint16_t port = args.port;
  const std::uint64_t count = args.count();

  const pid_t subscriber = bench::fork_when_ready([&](auto ready) {
    ws_conn c(port);
    register_as(c, "bare-sub");
    codec::message s = control(codec::msg_type::subscribe);
    s.set_topic(topic);
    s.set(codec::field::message_id, std::uint64_t{1});
    c.send(s);
    c.await(codec::msg_type::ack);
    ready();
    bench::one_way w;
    while (w.h.count() < count)
      c.receive([&](const codec::message& m) {
        if (m.type == codec::msg_type::publish && m.payload.size() >= 16)
          w.record(reinterpret_cast<const char*>(m.payload.data()));
      });
    w.print("ws_bare_latency", "websocket", size, rate);
    return 0;
  });
  if (subscriber < 0) return 1;
  ws_conn pub(port);
  register_as(pub, "bare-pub");
  std::string payload(size, 'p');
  codec::message m = control(codec::msg_type::publish);
  m.set_topic(topic);
  scheduling::offer_at_fixed_rate(rate, count, [&](std::uint64_t i, std::uint64_t intended) {
    std::memcpy(payload.data(), &i, 8);
    std::memcpy(payload.data() + 8, &intended, 8);
    m.timestamp_ns = codec::wall_clock_ns();
    m.payload = codec::bytes_view(payload);
    pub.send(m);
  });
  return bench::child_status(subscriber);
}
