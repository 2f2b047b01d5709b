// Helpers for the WebSocket edge tests: a node with a server on a free loopback port, and a raw
// peer that speaks FLOW frames byte by byte (so tests can send what a real client never would).
#pragma once

#include <flowbus/actors/node.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/transport/client.hpp>
#include <flowbus/transport/server.hpp>

#include "test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace flowbus::test {

using namespace std::chrono_literals;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;

inline actors::node_config small_node() {
  actors::node_config c;
  c.workers = 2;
  return c;
}

/// Client options for a test agent on 127.0.0.1:`port`.
inline transport::client_options client_opts(std::uint16_t port, std::string id, std::vector<std::string> subs = {}) {
  transport::client_options o;
  o.port = port;
  o.id = std::move(id);
  o.type = "test";
  o.subscriptions = std::move(subs);
  return o;
}

/// client_opts for a client that reconnects quickly (backoff 20 ms, at most 200 ms): for tests
/// that take its node away and bring it back.
inline transport::client_options quick_reconnect_opts(std::uint16_t port, std::string id) {
  transport::client_options o = client_opts(port, std::move(id));
  o.backoff_initial = std::chrono::milliseconds(20);
  o.backoff_max = std::chrono::milliseconds(200);
  return o;
}

/// Collects received payloads from any thread.
struct inbox {
  std::mutex m;
  std::vector<std::string> got;
  transport::message_handler handler() {
    return [this](const transport::incoming& in) {
      std::lock_guard<std::mutex> g(m);
      got.emplace_back(in.payload);
    };
  }
  std::size_t size() {
    std::lock_guard<std::mutex> g(m);
    return got.size();
  }
  std::vector<std::string> all() {
    std::lock_guard<std::mutex> g(m);
    return got;
  }
  void clear() {
    std::lock_guard<std::mutex> g(m);
    got.clear();
  }
};

/// A node with its WebSocket edge on 127.0.0.1 and a free port.
/// Takes the node's in-memory dead letters and counts those for `recipient`.
inline std::size_t dead_letters_for(actors::node& n, const std::string& recipient) {
  std::size_t k = 0;
  for (const auto& d : n.dead().take())
    if (d.recipient == recipient) ++k;
  return k;
}

/// small_node() whose topics all hold a publisher for a slow subscriber (node_config::
/// lossless_topics), for tests of that backpressure; by default a slow subscriber is isolated.
inline actors::node_config lossless_node() {
  actors::node_config c = small_node();
  c.lossless_topics = {">"};
  return c;
}

struct edge {
  actors::node node;
  transport::server server;
  explicit edge(transport::server_options o = {}, actors::node_config c = small_node())
      : node(c), server(node, with_free_port(std::move(o))) {}
  std::uint16_t port() const { return server.port(); }
  static transport::server_options with_free_port(transport::server_options o) {
    o.port = 0;
    return o;
  }
};


struct handshake_result {
  bool upgraded = false;
  unsigned status = 0;
  std::string body;
};

/// A WebSocket upgrade request to the node with `origin` (empty: no Origin header, as programs
/// send), written by hand; the node's HTTP answer read whole.
inline handshake_result upgrade_with_origin(std::uint16_t port, const std::string& origin) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  beast::http::request<beast::http::empty_body> req(beast::http::verb::get, "/", 11);
  req.set(beast::http::field::host, "127.0.0.1:" + std::to_string(port));
  req.set(beast::http::field::upgrade, "websocket");
  req.set(beast::http::field::connection, "Upgrade");
  req.set(beast::http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(beast::http::field::sec_websocket_version, "13");
  if (!origin.empty()) req.set(beast::http::field::origin, origin);
  beast::http::write(s, req);
  beast::flat_buffer buf;
  beast::http::response_parser<beast::http::string_body> p;
  p.skip(false);
  beast::error_code ec;
  beast::http::read_header(s, buf, p, ec);
  handshake_result r;
  r.status = ec ? 0 : p.get().result_int();
  r.upgraded = r.status == 101;
  if (!ec && !r.upgraded) beast::http::read(s, buf, p, ec); // the refusal's body, up to its close
  r.body = p.get().body();
  return r;
}

/// One frame the node sent (BATCHes unwrapped), copied out of the decoder's views.
struct got_frame {
  codec::msg_type type;
  std::string topic, source, target, payload, reason;
  std::uint64_t error_code = 0, message_id = 0, correlation_id = 0;
  std::uint64_t timestamp_ns = 0;
  std::string nonce; ///< CHALLENGE's
};

/// A WebSocket peer driven step by step from the test thread, with deadlines.
class raw_peer {
public:
  /// @param receive_buffer SO_RCVBUF (0: the kernel's): small, a peer that does not read blocks the node soon.
  explicit raw_peer(std::uint16_t port, int receive_buffer = 0) : ws_(ioc_) {
    net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    auto& sock = beast::get_lowest_layer(ws_).socket();
    sock.open(ep.protocol());
    if (receive_buffer) sock.set_option(net::socket_base::receive_buffer_size(receive_buffer));
    sock.connect(ep);
    ws_.handshake("127.0.0.1:" + std::to_string(port), "/");
    ws_.binary(true);
  }
  ~raw_peer() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  void write_bytes(const std::vector<codec::byte>& bytes, bool binary = true) {
    ws_.binary(binary);
    beast::error_code ec;
    ws_.write(net::buffer(bytes), ec);
    ws_.binary(true);
    last_write_ = ec;
  }
  beast::error_code last_write() const { return last_write_; }
  /// Writes `bytes` as one binary message in fragments of `piece` bytes (RFC 6455 §5.4).
  void write_fragmented(const std::vector<codec::byte>& bytes, std::size_t piece) {
    beast::error_code ec;
    for (std::size_t at = 0; at < bytes.size() && !ec; at += piece) {
      const std::size_t n = std::min(piece, bytes.size() - at);
      ws_.write_some(at + n == bytes.size(), net::buffer(bytes.data() + at, n), ec);
    }
    last_write_ = ec;
  }
  /// Sends a ping with `payload`; pongs() counts the pongs seen while reading (next()).
  void ping(const std::string& payload) {
    ws_.control_callback([this](websocket::frame_type k, beast::string_view) {
      if (k == websocket::frame_type::pong) ++pongs_;
    });
    ws_.ping(websocket::ping_data(payload.c_str()));
  }
  int pongs() const { return pongs_; }
  /// The TCP socket under the WebSocket stream, to write what no WebSocket library would.
  net::ip::tcp::socket& socket() { return beast::get_lowest_layer(ws_).socket(); }

  /// Encodes `m` with this peer's encoder (pooled strings, its sequence) and writes it.
  std::vector<codec::byte> frame(codec::message& m) {
    std::vector<codec::byte> out(enc_.literal_size(m));
    const auto r = enc_.encode(m, out.data(), out.size());
    REQUIRE(r);
    out.resize(r.size);
    return out;
  }
  void send(codec::message& m) { write_bytes(frame(m)); }

  /// @param window a receive window in data messages (0: none)
  void send_register(const std::string& id, std::vector<std::string> subs = {}, std::uint64_t heartbeat_ms = 0,
                     std::uint64_t window = 0) {
    codec::message m;
    m.type = codec::msg_type::register_agent;
    m.set(codec::field::source, id);
    m.set(codec::field::agent_type, "raw");
    if (heartbeat_ms) m.set(codec::field::heartbeat_ms, heartbeat_ms);
    if (window) m.set(codec::field::credit, window);
    subs_ = std::move(subs);
    entries_.clear();
    for (const auto& s : subs_)
      entries_.push_back({codec::field::subscription, s, {}});
    m.repeated = codec::repeated_fields(entries_.data(), entries_.size());
    send(m);
  }
  void send_publish(const std::string& topic, const std::string& payload, std::uint64_t timestamp_ns = 0) {
    codec::message m;
    m.type = codec::msg_type::publish;
    m.timestamp_ns = timestamp_ns;
    m.set_topic(topic);
    m.payload = codec::bytes_view(payload);
    send(m);
  }
  /// Grants the node `n` more data messages (receive window).
  void send_credit(std::uint64_t n) {
    codec::message m;
    m.type = codec::msg_type::credit;
    m.set(codec::field::credit, n);
    send(m);
  }
  /// REGISTER and wait for WELCOME.
  void join(const std::string& id, std::vector<std::string> subs = {}, std::uint64_t window = 0) {
    send_register(id, std::move(subs), 0, window);
    auto f = next(3s);
    REQUIRE(f);
    REQUIRE(f->type == codec::msg_type::welcome);
  }

  /// The next frame from the node, or nullopt on timeout or close (then closed() / close_code()).
  /// A read that times out stays in flight (cancelling would break the WebSocket stream): the
  /// next call goes on waiting for it.
  std::optional<got_frame> next(std::chrono::milliseconds t = 3s) {
    if (!ready_.empty()) return pop();
    if (closed_) return std::nullopt;
    if (!reading_) {
      reading_ = true;
      read_done_ = false;
      in_.clear();
      ws_.async_read(in_, [this](beast::error_code e, std::size_t) {
        read_ec_ = e;
        read_done_ = true;
      });
    }
    ioc_.restart();
    const auto until = std::chrono::steady_clock::now() + t;
    while (!read_done_ && std::chrono::steady_clock::now() < until) ioc_.run_one_until(until);
    if (!read_done_) return std::nullopt;
    reading_ = false;
    const beast::error_code ec = read_ec_;
    if (ec) {
      closed_ = true;
      close_ec_ = ec;
      return std::nullopt;
    }
    REQUIRE(ws_.got_binary());
    codec::message m;
    const auto* p = static_cast<const codec::byte*>(in_.data().data());
    REQUIRE(dec_.decode(codec::bytes_view(p, in_.size()), m));
    if (m.type == codec::msg_type::batch) {
      codec::batch_reader r(dec_, m);
      codec::message inner;
      while (!r.done()) {
        REQUIRE(r.next(inner));
        ready_.push_back(copy(inner));
      }
    } else {
      ready_.push_back(copy(m));
    }
    return pop();
  }

  /// Reads until the node closes (up to `t`), returning the frames seen before the close.
  std::vector<got_frame> until_closed(std::chrono::milliseconds t = 3s) {
    std::vector<got_frame> out;
    const auto until = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < until) {
      auto f = next(t);
      if (!f) break;
      out.push_back(std::move(*f));
    }
    return out;
  }
  bool closed() const { return closed_; }
  beast::error_code close_error() const { return close_ec_; }
  std::uint16_t close_code() const { return static_cast<std::uint16_t>(ws_.reason().code); }
  std::string close_reason() const { return std::string(ws_.reason().reason.c_str()); }

private:
  static got_frame copy(const codec::message& m) {
    got_frame f{m.type, std::string(m.topic()), std::string(m.str(codec::field::source)),
                std::string(m.str(codec::field::target)), std::string(m.payload.as_string()), {},
                m.num(codec::field::error_code), m.message_id(), m.correlation_id(), m.timestamp_ns, {}};
    for (const auto& e : m.repeated)
      if (e.id == codec::field::header && e.key == "reason") f.reason = std::string(e.value);
    f.nonce = std::string(m.str(codec::field::nonce));
    return f;
  }
  got_frame pop() {
    got_frame f = std::move(ready_.front());
    ready_.erase(ready_.begin());
    return f;
  }

  net::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer in_;
  codec::encoder enc_;
  codec::decoder dec_;
  std::vector<got_frame> ready_;
  std::vector<std::string> subs_;
  std::vector<codec::repeated_entry> entries_;
  beast::error_code last_write_, close_ec_, read_ec_;
  int pongs_ = 0;
  bool closed_ = false, reading_ = false, read_done_ = false;
};

} // namespace flowbus::test
