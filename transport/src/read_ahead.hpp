// A read-ahead layer under Beast's WebSocket stream (private to transport/).
//
// Beast reads a WebSocket message's header into a 1.5 KiB buffer and the rest of its payload
// straight into the caller's buffer, never past the message: at least two recv() calls per message
// however much the socket holds. Under load a socket holds many messages (BATCHes of up to 32), and
// on this VM every system call costs microseconds. This layer reads what the socket has, up to
// `capacity`, into its own buffer and hands it out from there: a burst of messages costs one recv().
//
// Memory: an idle connection must stay small (docs/benchmarks.md, memory per idle connection), and
// a pending read holds its buffer until data comes. So the layer reads ahead only while the stream
// is busy — a direct read that filled the caller's buffer (more is likely waiting) turns it on, a
// read-ahead that brought less than a quarter of `capacity` turns it off — and frees the buffer
// once drained while not busy: a quiet connection reads straight into Beast's buffers as before.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/beast/core/async_base.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

namespace flowbus::transport::detail {

/// What one recv() may take while a stream is busy: a dozen full BATCHes of 128-byte messages.
constexpr std::size_t read_ahead_bytes = 64 * 1024;

template <class Next> class read_ahead_stream {
public:
  using executor_type = boost::beast::executor_type<Next>;

  template <class... Args>
  explicit read_ahead_stream(Args&&... args) : next_(std::forward<Args>(args)...) {}

  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }
  executor_type get_executor() noexcept { return next_.get_executor(); }

  /// The most one recv() takes; 0 reads straight into the caller's buffers (no read-ahead).
  void capacity(std::size_t n) noexcept { capacity_ = n; }
  std::size_t buffered() const noexcept { return end_ - begin_; }
  /// Bytes held for read-ahead (0 once drained while not busy).
  std::size_t allocated() const noexcept { return buf_ ? capacity_ : 0; }

  template <class MutableBuffers, class Handler> auto async_read_some(const MutableBuffers& b, Handler&& h) {
    return boost::asio::async_initiate<Handler, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& buffers) {
          read_op<MutableBuffers, std::decay_t<decltype(handler)>>(std::move(handler), *this, buffers);
        },
        h, b);
  }

  template <class ConstBuffers, class Handler> auto async_write_some(const ConstBuffers& b, Handler&& h) {
    return next_.async_write_some(b, std::forward<Handler>(h));
  }

  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& b, boost::beast::error_code& ec) {
    if (!buffered() && !fill_sync(ec)) {
      if (ec) return 0;
      const std::size_t n = next_.read_some(b, ec);
      busy_ = capacity_ && n == boost::asio::buffer_size(b);
      return n;
    }
    return hand_out(b);
  }
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& b, boost::beast::error_code& ec) {
    return next_.write_some(b, ec);
  }

private:
  bool fill_sync(boost::beast::error_code& ec) {
    if (!capacity_ || !busy_) return false;
    filled(next_.read_some(boost::asio::buffer(ensure(), capacity_), ec));
    return !ec;
  }

  unsigned char* ensure() {
    if (!buf_) buf_.reset(new unsigned char[capacity_]); // not value-initialised: 64 KiB of zeroing saved
    return buf_.get();
  }

  void filled(std::size_t n) noexcept {
    begin_ = 0;
    end_ = n;
    busy_ = n >= capacity_ / 4;
    if (!n) buf_.reset();
  }

  /// Copies what is buffered into `b`; frees the buffer once drained while not busy.
  template <class MutableBuffers> std::size_t hand_out(const MutableBuffers& b) {
    const std::size_t n = boost::asio::buffer_copy(b, boost::asio::buffer(buf_.get() + begin_, end_ - begin_));
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
      if (!busy_) buf_.reset();
    }
    return n;
  }

  template <class MutableBuffers, class Handler>
  class read_op : public boost::beast::async_base<Handler, executor_type> {
  public:
    read_op(Handler&& h, read_ahead_stream& s, const MutableBuffers& b)
        : boost::beast::async_base<Handler, executor_type>(std::move(h), s.get_executor()), s_(s), b_(b) {
      if (s_.buffered()) { // complete from the buffer, never inside the initiating call
        step_ = 2;
        boost::asio::post(s_.get_executor(), boost::beast::bind_front_handler(std::move(*this), boost::beast::error_code{}, 0));
        return;
      }
      if (!s_.busy_ || boost::asio::buffer_size(b_) >= s_.capacity_) { // quiet, or nothing to gain: read straight
        step_ = 0;
        s_.next_.async_read_some(b_, std::move(*this));
        return;
      }
      step_ = 1;
      s_.next_.async_read_some(boost::asio::buffer(s_.ensure(), s_.capacity_), std::move(*this));
    }
    read_op(read_op&&) = default;

    void operator()(boost::beast::error_code ec, std::size_t n) {
      if (step_ == 0) {
        s_.busy_ = s_.capacity_ && !ec && n == boost::asio::buffer_size(b_); // filled: more is likely waiting
      } else if (step_ == 1) {
        s_.filled(ec ? 0 : n);
        n = ec ? 0 : s_.hand_out(b_);
      } else {
        n = s_.hand_out(b_);
      }
      this->complete_now(ec, n);
    }

  private:
    read_ahead_stream& s_;
    MutableBuffers b_;
    int step_ = 0;
  };

  Next next_;
  std::unique_ptr<unsigned char[]> buf_;
  std::size_t capacity_ = 0, begin_ = 0, end_ = 0;
  bool busy_ = false; ///< read ahead (see above)
};

// The WebSocket close handshake ends by tearing the transport down: the next layer's business.
template <class Next>
void teardown(boost::beast::role_type role, read_ahead_stream<Next>& s, boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, s.next_layer(), ec);
}

template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, read_ahead_stream<Next>& s, Handler&& h) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, s.next_layer(), std::forward<Handler>(h));
}

} // namespace flowbus::transport::detail
