// The byte stream under a connection's WebSocket (private to transport/): plain TCP, or TLS over
// it (wss://), chosen per connection at run time, so that the node's session and the client are
// one type either way and the plain path pays one branch.
//
// Plain reads and writes go to the socket itself, not through beast::tcp_stream's timed
// operations: nothing here uses its timeouts after the connect (the WebSocket handshake has its
// own timer, the session and the client their own keep-alive). TLS is an asio::ssl::stream over
// the same socket; OpenSSL encrypts in place into its own buffers, so the layers above
// (buffered_stream, the session's parser) see the same plaintext bytes as over plain TCP.
//
// What TLS changes above: the speculative non-blocking read after a wake-up (session.cpp) and
// writing from a sending thread (buffered_stream::try_write_now) reach the socket past OpenSSL,
// so they are off on a TLS connection; shared memory is not offered over TLS (a same-host agent
// that wants it connects in plain: nothing it sends leaves the host).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <memory>
#include <utility>

namespace flowbus::transport::detail {

class edge_stream {
public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

  explicit edge_stream(boost::asio::ip::tcp::socket&& s) : tcp_(std::move(s)) {}
  explicit edge_stream(boost::asio::io_context& ioc) : tcp_(ioc) {}
  edge_stream(const edge_stream&) = delete;
  edge_stream& operator=(const edge_stream&) = delete;

  /// From here everything is encrypted (before the TLS handshake, which the owner runs on tls()).
  void use_tls(boost::asio::ssl::context& ctx) { tls_ = std::make_unique<tls_stream>(tcp_.socket(), ctx); }
  /// Null on a plain connection.
  tls_stream* tls() noexcept { return tls_.get(); }

  boost::beast::tcp_stream& next_layer() noexcept { return tcp_; }
  const boost::beast::tcp_stream& next_layer() const noexcept { return tcp_; }
  executor_type get_executor() noexcept { return tcp_.get_executor(); }

  template <class MutableBuffers, class Handler> void async_read_some(const MutableBuffers& b, Handler&& h) {
    if (tls_) return tls_->async_read_some(b, std::forward<Handler>(h));
    tcp_.socket().async_read_some(b, std::forward<Handler>(h));
  }
  template <class ConstBuffers, class Handler> void async_write_some(const ConstBuffers& b, Handler&& h) {
    if (tls_) return tls_->async_write_some(b, std::forward<Handler>(h));
    tcp_.socket().async_write_some(b, std::forward<Handler>(h));
  }
  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& b, boost::beast::error_code& ec) {
    return tls_ ? tls_->read_some(b, ec) : tcp_.socket().read_some(b, ec);
  }
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& b, boost::beast::error_code& ec) {
    return tls_ ? tls_->write_some(b, ec) : tcp_.socket().write_some(b, ec);
  }

private:
  boost::beast::tcp_stream tcp_;
  std::unique_ptr<tls_stream> tls_;
};

/// Beast's close of the WebSocket ends with the socket's teardown; over TLS it does not wait for
/// the peer's close_notify first (the WebSocket close handshake already said the stream is over).
inline void teardown(boost::beast::role_type role, edge_stream& s, boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, s.next_layer().socket(), ec);
}
template <class Handler> void async_teardown(boost::beast::role_type role, edge_stream& s, Handler&& h) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, s.next_layer().socket(), std::forward<Handler>(h));
}

} // namespace flowbus::transport::detail
