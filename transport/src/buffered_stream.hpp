// The layer under Beast's WebSocket stream (private to transport/): reads ahead, and lets the
// owner write whole WebSocket frames of its own, in order with Beast's.
//
// Reading. Beast reads a WebSocket message's header into a 1.5 KiB buffer and the rest of its
// payload straight into the caller's buffer, never past the message: at least two recv() calls per
// message however much the socket holds. Under load a socket holds many messages (BATCHes of up to
// 32), and on this VM every system call costs microseconds. This layer reads what the socket has,
// up to `capacity`, into its own buffer and hands it out from there: a burst costs one recv().
// Memory: an idle connection must stay small (docs/benchmarks.md, memory per idle connection), and
// a pending read holds its buffer until data comes. So the layer reads ahead only while the stream
// is busy — a direct read that filled the caller's buffer (more is likely waiting) turns it on, a
// read-ahead that brought less than a quarter of `capacity` turns it off — and frees the buffer
// once drained while not busy: a quiet connection reads straight into Beast's buffers as before.
//
// Writing. Beast writes one WebSocket message per write(); a node sending a backlog to an agent
// frames several messages itself (`frame_header`) and hands them over in one `write_frames`. Beast
// still writes its own frames (handshake, pings, pongs, close) through this layer: every write is
// whole (never split around another) and they go out one at a time in the order they were asked.
//
// Writing from another thread. Handing a message to the I/O thread costs a wake-up (~25 µs of
// latency on this VM); a client whose socket is idle may instead write from the sending thread
// (`try_write_now`): one non-blocking send() while no other write is in flight or waiting. Who
// writes is decided by one atomic (`state::owner`): free, the I/O thread, or a sending thread
// (noting whether the I/O thread queued a write meanwhile: the sender then posts it a resume). A
// send() that takes only part leaves the rest to the I/O thread, ahead of everything else.
#pragma once

#include "ws_reader.hpp" // mask_copy

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/async_base.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace flowbus::transport::detail {

// the names every Beast-facing unit of the layer uses (the node's session, the client)
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

/// What one recv() may take while a stream is busy: a dozen full BATCHes of 128-byte messages.
constexpr std::size_t read_ahead_bytes = 64 * 1024;
/// The most one write gathers (several WebSocket messages): beyond ~32 KiB a CRITICAL frame that
/// arrives meanwhile waits too long behind it (docs/benchmarks.md, the write size against the
/// priority lanes). A writer that finds nothing to send releases a buffer above a quarter of it.
constexpr std::size_t write_gather_bytes = 32 * 1024;

/// Appends an unmasked (server-to-client), final, binary WebSocket frame of `payload` to `out`.
inline void append_frame(std::vector<unsigned char>& out, const unsigned char* payload, std::size_t n) {
  unsigned char header[10];
  const std::size_t hn = frame_header(n, header);
  out.insert(out.end(), header, header + hn);
  out.insert(out.end(), payload, payload + n);
}

/// Appends a masked (client-to-server), final, binary WebSocket frame of `payload` to `out`: the
/// header with the mask bit and `key`, then the payload XORed with the key (RFC 6455 §5.3) — one
/// pass, 8 bytes at a time.
inline void append_masked_frame(std::vector<unsigned char>& out, const unsigned char* payload, std::size_t n,
                                std::uint32_t key) {
  unsigned char header[14];
  std::size_t hn = frame_header(n, header);
  header[1] |= 0x80; // MASK
  std::memcpy(header + hn, &key, 4);
  hn += 4;
  const std::size_t at = out.size();
  out.resize(at + hn + n);
  unsigned char* dst = out.data() + at;
  std::memcpy(dst, header, hn);
  dst += hn;
  // byte i of the payload is XORed with byte i % 4 of the key as it appears on the wire
  mask_copy(payload, dst, n, dst - 4);
}

template <class Next> class buffered_stream {
public:
  using executor_type = boost::beast::executor_type<Next>;

  template <class... Args>
  explicit buffered_stream(Args&&... args) : next_(std::forward<Args>(args)...), st_(std::make_shared<state>()) {}
  ~buffered_stream() {
    st_->gone = true;      // completions still pending touch only st_, and start nothing more
    st_->waiting.clear(); // writes never started are dropped with their handlers
  }
  buffered_stream(const buffered_stream&) = delete;
  buffered_stream& operator=(const buffered_stream&) = delete;

  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }
  executor_type get_executor() noexcept { return next_.get_executor(); }

  /// The most one recv() takes; 0 reads straight into the caller's buffers (no read-ahead).
  void capacity(std::size_t n) noexcept { st_->capacity = n; }
  std::size_t buffered() const noexcept { return st_->end - st_->begin; }
  /// Bytes held for read-ahead (0 once drained while not busy).
  std::size_t allocated() const noexcept { return st_->buf ? st_->capacity : 0; }

  template <class MutableBuffers, class Handler> auto async_read_some(const MutableBuffers& b, Handler&& h) {
    return boost::asio::async_initiate<Handler, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& buffers) {
          read_op<MutableBuffers, std::decay_t<decltype(handler)>>(std::move(handler), *this, buffers);
        },
        h, b);
  }

  /// Beast's writes: whole, in turn with the owner's (write_frames).
  template <class ConstBuffers, class Handler> auto async_write_some(const ConstBuffers& b, Handler&& h) {
    return boost::asio::async_initiate<Handler, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& buffers) { write_whole(buffers, std::move(handler)); }, h, b);
  }

  /// The owner's writes: complete WebSocket frames (frame_header + payload, back to back) written
  /// whole, after whatever was asked before; `h(error_code, bytes)` runs on the stream's executor.
  /// The bytes must stay valid until then.
  template <class ConstBuffers, class Handler> void write_frames(const ConstBuffers& b, Handler&& h) {
    write_whole(b, boost::asio::bind_executor(get_executor(), std::forward<Handler>(h)));
  }

  /// A write in flight (one of ours or Beast's, or a sending thread's).
  bool writing() const noexcept { return st_->owner.load(std::memory_order_acquire) != owner_free; }

  enum class direct { refused, written, partial };
  /// Any thread: writes bytes[0, n) (whole WebSocket frames) now with one non-blocking send(), if
  /// no write is in flight or waiting — else `refused` and nothing is written. `partial`: the
  /// socket took only part; the layer writes the rest on its executor before anything else and
  /// then calls `rest_done(ec)` there. A send() error is `refused` too (nothing was written: the
  /// I/O thread's next write meets the error). The caller keeps the layer alive meanwhile.
  /// (`rest_done` is only kept when the send is partial: nothing is allocated otherwise.)
  template <class RestDone> direct try_write_now(const unsigned char* bytes, std::size_t n, RestDone&& rest_done) {
    state& st = *st_;
    std::uint8_t expect = owner_free;
    if (!st.owner.compare_exchange_strong(expect, owner_sender, std::memory_order_acquire)) return direct::refused;
    const int fd = native_fd(boost::beast::get_lowest_layer(next_));
    ssize_t sent;
    do
      sent = ::send(fd, bytes, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) sent = 0; // EAGAIN, or an error the I/O thread's write will meet
    if (sent == 0 || static_cast<std::size_t>(sent) == n) {
      if (st.owner.exchange(owner_free, std::memory_order_acq_rel) == owner_sender_waited)
        boost::asio::post(get_executor(), [st = st_] { resume(st); }); // a write waits for us
      return sent ? direct::written : direct::refused;
    }
    st.rest.assign(bytes + sent, bytes + n);
    st.owner.store(owner_io, std::memory_order_release); // the I/O thread finishes it, then what waits
    boost::asio::post(get_executor(), [this, st = st_, done = std::forward<RestDone>(rest_done)]() mutable {
      if (st->gone) return;
      boost::asio::async_write(next_, boost::asio::buffer(st->rest),
                               [st, done = std::move(done)](boost::beast::error_code ec, std::size_t) {
                                 st->rest = {};
                                 finished(st);
                                 done(ec);
                               });
    });
    return direct::partial;
  }

  template <class MutableBuffers> std::size_t read_some(const MutableBuffers& b, boost::beast::error_code& ec) {
    state& st = *st_;
    if (!buffered()) {
      if (st.reads_straight(boost::asio::buffer_size(b))) {
        const std::size_t n = next_.read_some(b, ec);
        st.read_straight(ec, n, boost::asio::buffer_size(b));
        return n;
      }
      st.filled(next_.read_some(boost::asio::buffer(st.ensure(), st.capacity), ec));
      if (ec) return 0;
    }
    return st.hand_out(b);
  }
  template <class ConstBuffers> std::size_t write_some(const ConstBuffers& b, boost::beast::error_code& ec) {
    return next_.write_some(b, ec);
  }

private:
  /// A write waiting for the one in flight: started when that completes.
  struct waiting_write {
    virtual ~waiting_write() = default;
    virtual void start() = 0;
  };
  template <class F> struct waiting_write_of final : waiting_write {
    explicit waiting_write_of(F&& f) : f_(std::move(f)) {}
    void start() override { f_(); }
    F f_;
  };

  /// The socket under a Beast stream (beast::tcp_stream) or a plain Asio socket.
  template <class S> static auto native_fd(S& s) -> decltype(s.socket().native_handle()) {
    return s.socket().native_handle();
  }
  template <class S> static auto native_fd(S& s) -> decltype(s.native_handle()) { return s.native_handle(); }

  /// Who writes (state::owner).
  static constexpr std::uint8_t owner_free = 0, owner_io = 1, owner_sender = 2, owner_sender_waited = 3;

  /// What completions touch. Shared with the operations in flight: a layer may be destroyed
  /// before they complete (a client replaces its stream on reconnect), and they must not touch it.
  struct state {
    std::unique_ptr<unsigned char[]> buf;
    std::size_t capacity = 0, begin = 0, end = 0;
    bool busy = false; ///< read ahead (see above)
    bool gone = false;
    /// free; the I/O thread (a write in flight); a sending thread (try_write_now), and whether a
    /// write was queued meanwhile (the sender then posts resume)
    std::atomic<std::uint8_t> owner{owner_free};
    /// (a vector, not a deque: an empty std::deque allocates ~600 bytes, per idle connection)
    std::vector<std::unique_ptr<waiting_write>> waiting; ///< I/O thread only
    std::vector<unsigned char> rest; ///< what a sending thread's send() left

    unsigned char* ensure() {
      if (!buf) buf.reset(new unsigned char[capacity]); // not value-initialised: 64 KiB of zeroing saved
      return buf.get();
    }
    /// Whether a read of `asked` bytes goes straight into the caller's buffers: the stream is
    /// quiet, or the caller asks for as much as a read-ahead would take (nothing to gain).
    bool reads_straight(std::size_t asked) const noexcept { return !busy || asked >= capacity; }
    /// A read straight into the caller's buffers brought `n` of the `asked` bytes: one that
    /// filled them turns read-ahead on (more is likely waiting).
    void read_straight(const boost::beast::error_code& ec, std::size_t n, std::size_t asked) noexcept {
      busy = capacity && !ec && n == asked;
    }
    void filled(std::size_t n) noexcept {
      begin = 0;
      end = n;
      busy = n >= capacity / 4;
      if (!n) buf.reset();
    }
    /// Copies what is buffered into `b`; frees the buffer once drained while not busy.
    template <class MutableBuffers> std::size_t hand_out(const MutableBuffers& b) {
      const std::size_t n = boost::asio::buffer_copy(b, boost::asio::buffer(buf.get() + begin, end - begin));
      begin += n;
      if (begin == end) {
        begin = end = 0;
        if (!busy) buf.reset();
      }
      return n;
    }
  };

  /// I/O thread: a write completed. The next in line starts (the I/O thread keeps the socket),
  /// else the socket is free — for a sending thread too.
  static void finished(const std::shared_ptr<state>& st) {
    if (!st->gone && !st->waiting.empty()) {
      auto next = std::move(st->waiting.front());
      st->waiting.erase(st->waiting.begin()); // rare: Beast's pings, pongs, close, or what waited for a sender
      next->start();
      return;
    }
    st->owner.store(owner_free, std::memory_order_release);
  }

  /// I/O thread: writes are waiting; start the first unless a write is in flight (its completion
  /// starts it) or a sending thread writes (it posts resume when it is done).
  static void resume(const std::shared_ptr<state>& st) {
    if (st->gone) return;
    std::uint8_t o = st->owner.load(std::memory_order_acquire);
    while (!st->waiting.empty()) {
      if (o == owner_free) {
        if (!st->owner.compare_exchange_weak(o, owner_io, std::memory_order_acquire)) continue;
        auto next = std::move(st->waiting.front());
        st->waiting.erase(st->waiting.begin());
        return next->start();
      }
      if (o != owner_sender || st->owner.compare_exchange_weak(o, owner_sender_waited, std::memory_order_acq_rel))
        return;
    }
  }

  template <class ConstBuffers, class Handler> void write_whole(const ConstBuffers& b, Handler&& h) {
    // called with the socket ours (owner_io)
    auto start = [this, b, h = std::forward<Handler>(h)]() mutable {
      auto ex = boost::asio::get_associated_executor(h, get_executor());
      boost::asio::async_write(next_, b,
                               boost::asio::bind_executor(ex, [st = st_, h = std::move(h)](boost::beast::error_code ec,
                                                                                          std::size_t n) mutable {
                                 finished(st); // the next in line starts first
                                 h(ec, n);
                               }));
    };
    std::uint8_t expect = owner_free;
    if (st_->waiting.empty() && st_->owner.compare_exchange_strong(expect, owner_io, std::memory_order_acquire))
      return start();
    st_->waiting.push_back(std::make_unique<waiting_write_of<decltype(start)>>(std::move(start)));
    resume(st_);
  }

  template <class MutableBuffers, class Handler>
  class read_op : public boost::beast::async_base<Handler, executor_type> {
  public:
    read_op(Handler&& h, buffered_stream& s, const MutableBuffers& b)
        : boost::beast::async_base<Handler, executor_type>(std::move(h), s.get_executor()), st_(s.st_), b_(b) {
      if (s.buffered()) {
        step_ = 2;
        // Served from memory. Posting the completion costs a round of the I/O thread's scheduler,
        // and every round an epoll_wait (a system call: on this VM the node made five for each
        // write). So a few reads in a row complete at once, inside the call — Beast's composed
        // operations take that — and every max_inline-th is posted, which bounds the recursion
        // (read, handler, read again, ...) and lets the other connections' handlers in.
        if (inline_depth < max_inline) {
          ++inline_depth;
          (*this)({}, 0);
          --inline_depth;
          return;
        }
        boost::asio::post(s.get_executor(), boost::beast::bind_front_handler(std::move(*this), boost::beast::error_code{}, 0));
        return;
      }
      if (st_->reads_straight(boost::asio::buffer_size(b_))) {
        step_ = 0;
        s.next_.async_read_some(b_, std::move(*this));
        return;
      }
      step_ = 1;
      s.next_.async_read_some(boost::asio::buffer(st_->ensure(), st_->capacity), std::move(*this));
    }
    read_op(read_op&&) = default;

    void operator()(boost::beast::error_code ec, std::size_t n) {
      state& st = *st_;
      if (step_ == 0) {
        st.read_straight(ec, n, boost::asio::buffer_size(b_));
      } else if (step_ == 1) {
        st.filled(ec ? 0 : n);
        n = ec ? 0 : st.hand_out(b_);
      } else {
        n = st.hand_out(b_);
      }
      this->complete_now(ec, n);
    }

  private:
    static constexpr int max_inline = 8;
    static inline thread_local int inline_depth = 0;
    std::shared_ptr<state> st_;
    MutableBuffers b_;
    int step_ = 0;
  };

  Next next_;
  std::shared_ptr<state> st_;
};

// The WebSocket close handshake ends by tearing the transport down: the next layer's business.
template <class Next>
void teardown(boost::beast::role_type role, buffered_stream<Next>& s, boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, s.next_layer(), ec);
}

template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, buffered_stream<Next>& s, Handler&& h) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, s.next_layer(), std::forward<Handler>(h));
}

} // namespace flowbus::transport::detail
