// What a bare client gets from a flowbus node: the same fixed-rate latency load as `flowbus bench
// latency`, through a running node, by the leanest client the protocol allows — blocking sockets,
// the WebSocket framing done by hand (masked as RFC 6455 asks of a client), FLOW frames from the
// codec, one write per message, no I/O thread. Set beside `flowbus bench latency --connect`, it
// says how much the C++ client library adds (issue 19: at most ~10 us).
//
//   flowbus node --port 8081 &
//   flowbus_bare_ws_bench --port 8081 [--rate 10000] [--seconds 10] [--size 128]
//
//   flowbus node --port 8081 --lossless bench.bare.data &
//   flowbus_bare_ws_bench --port 8081 --messages 1000000 [--subscribers 10] [--size 128]
//       throughput of the unbatched client (issue 19): every message its own WebSocket message,
//       gathered into 64 KiB writes; subscribers count PUBLISH headers — the NATS bench's twin
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

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
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
    out_.clear();
    append(m, out_);
    write_all(out_.data(), out_.size());
  }

  /// Encodes `m` as one masked binary WebSocket message at the end of `out` (several make one write).
  void append(codec::message& m, std::vector<unsigned char>& out) {
    frame_.resize(enc_.literal_size(m));
    const codec::encode_result r = enc_.encode(m, frame_.data(), frame_.size());
    if (!r) die("encode");
    const std::size_t n = r.size;
    out.push_back(0x82); // FIN, binary
    if (n < 126) {
      out.push_back(static_cast<unsigned char>(0x80 | n));
    } else {
      out.push_back(0x80 | 126);
      out.push_back(static_cast<unsigned char>(n >> 8));
      out.push_back(static_cast<unsigned char>(n));
    }
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    out.insert(out.end(), key, key + 4);
    const std::size_t at = out.size();
    out.resize(at + n);
    // eight bytes at a time (the key repeats every four), as a lean client masks
    std::uint64_t k8;
    std::memcpy(&k8, key, 4);
    std::memcpy(reinterpret_cast<unsigned char*>(&k8) + 4, key, 4);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, frame_.data() + i, 8);
      w ^= k8;
      std::memcpy(out.data() + at + i, &w, 8);
    }
    for (; i < n; ++i)
      out[at + i] = static_cast<unsigned char>(frame_[i] ^ key[i % 4]);
  }

  void write(const std::vector<unsigned char>& out) { write_all(out.data(), out.size()); }

  /// Throughput: counts the PUBLISH frames of the WebSocket messages that come (a BATCH's inner
  /// ones by their headers alone: no decoding, no checksum — as the NATS bench's subscriber counts
  /// MSG lines) until `want` arrived; the steady-clock times of the first and the last.
  void count_publishes(std::uint64_t want, std::uint64_t& first_ns, std::uint64_t& last_ns) {
    constexpr std::size_t h = codec::defaults::header_size;
    std::uint64_t got = 0;
    auto counted = [&] {
      last_ns = scheduling::steady_ns();
      if (got++ == 0) first_ns = last_ns;
    };
    while (got < want) {
      const codec::bytes_view body = next_binary();
      if (body.size() < h) die("a short frame from the node");
      const codec::frame_header fh = codec::read_header(body.data());
      if (fh.type == static_cast<std::uint8_t>(codec::msg_type::publish)) counted();
      if (fh.type != static_cast<std::uint8_t>(codec::msg_type::batch)) continue;
      for (std::size_t at = h; at + h <= body.size();) {
        const codec::frame_header inner = codec::read_header(body.data() + at);
        if (inner.total_size < h) die("a bad BATCH from the node");
        if (inner.type == static_cast<std::uint8_t>(codec::msg_type::publish)) counted();
        at += inner.total_size;
      }
    }
  }

  /// Calls f(message) for every FLOW message of the next WebSocket message (a BATCH's inner ones).
  template <class F> void receive(F&& f) {
    const codec::bytes_view body = next_binary();
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
  }

  /// The body of the next binary WebSocket message (valid until the next read); pings and pongs
  /// (not within a bench's seconds) are skipped.
  codec::bytes_view next_binary() {
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
      pos_ += head + len;
      if (op == 2) return codec::bytes_view(p + head, len);
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

/// REGISTER as `id`, SUBSCRIBE to the bench topic, its ACK awaited.
void subscribe_as(ws_conn& c, const std::string& id) {
  register_as(c, id.c_str());
  codec::message s = control(codec::msg_type::subscribe);
  s.set_topic(topic);
  s.set(codec::field::message_id, std::uint64_t{1});
  c.send(s);
  c.await(codec::msg_type::ack);
}

/// Throughput, as the NATS bench's: subscribers (threads of a forked process, a connection each)
/// count PUBLISHes; the publisher sends each message as its own WebSocket message, gathered into
/// 64 KiB writes (what a buffered client does) — the unbatched client of issue 19. The node must
/// hold the publisher rather than shed (`flowbus node --lossless bench.bare.data`).
int throughput(std::uint16_t port, std::uint64_t count, std::size_t subscribers, std::size_t size) {
  const pid_t child = bench::fork_when_ready([&](auto ready) {
    std::vector<std::unique_ptr<ws_conn>> conns;
    for (std::size_t i = 0; i < subscribers; ++i) {
      conns.push_back(std::make_unique<ws_conn>(port));
      subscribe_as(*conns.back(), "bare-sub-" + std::to_string(i));
    }
    ready();
    std::vector<std::uint64_t> first(subscribers), last(subscribers);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < subscribers; ++i)
      threads.emplace_back([&, i] { conns[i]->count_publishes(count, first[i], last[i]); });
    for (auto& t : threads)
      t.join();
    const std::uint64_t t0 = *std::min_element(first.begin(), first.end());
    const std::uint64_t t1 = *std::max_element(last.begin(), last.end());
    bench::print_rate("ws_bare", "websocket", "bare", size, subscribers, count, t0, t1);
    return 0;
  });
  if (child < 0) return 1;
  ws_conn pub(port);
  register_as(pub, "bare-pub");
  std::string payload(size, 'p');
  codec::message m = control(codec::msg_type::publish);
  m.set_topic(topic);
  m.payload = codec::bytes_view(payload);
  std::vector<unsigned char> out;
  out.reserve(65536 + size + 256);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::memcpy(payload.data(), &i, 8);
    m.timestamp_ns = codec::wall_clock_ns();
    pub.append(m, out);
    if (out.size() >= 65536 || i + 1 == count) {
      pub.write(out);
      out.clear();
    }
  }
  return bench::child_status(child); // the connection stays open until every subscriber has all
}

} // namespace

int main(int argc, char** argv) {
  const auto args = bench::load_args::parse(argc, argv, 8081);
  const double rate = args.rate;
  const std::size_t size = args.size;
  const std::uint16_t port = args.port;
  if (args.messages) return throughput(port, args.messages, args.subscribers, size);
  const std::uint64_t count = args.count();

  const pid_t subscriber = bench::fork_when_ready([&](auto ready) {
    ws_conn c(port);
    subscribe_as(c, "bare-sub");
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
