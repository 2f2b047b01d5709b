// The layer under the WebSocket streams (transport/src/buffered_stream.hpp). Reading: every byte
// comes out once and in order whatever the request sizes; while the peer sends a lot it reads ahead
// into its own buffer (one recv() for many of Beast's small reads); while the peer is quiet it
// reads straight through and holds no buffer — an idle connection must stay small. Writing: frames
// the owner frames itself reach a real WebSocket peer as messages of the right sizes (all three
// length forms), and writes asked while one is in flight go out whole and in order.
#include "transport/src/buffered_stream.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using flowbus::transport::detail::append_masked_frame;
using flowbus::transport::detail::frame_header;
using flowbus::transport::detail::read_ahead_bytes;
using flowbus::transport::detail::buffered_stream;

namespace {

struct socket_pair {
  net::io_context ioc;
  tcp::socket writer{ioc};
  buffered_stream<tcp::socket> reader{ioc};

  socket_pair() {
    tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    writer.connect(acc.local_endpoint());
    acc.accept(reader.next_layer());
    reader.capacity(read_ahead_bytes);
  }

  /// One async_read_some of at most `n` bytes, run to completion.
  std::vector<std::uint8_t> read_some(std::size_t n) {
    std::vector<std::uint8_t> out(n);
    std::size_t got = 0;
    boost::system::error_code err;
    reader.async_read_some(net::buffer(out), [&](boost::system::error_code ec, std::size_t k) {
      err = ec;
      got = k;
    });
    ioc.restart();
    ioc.run();
    REQUIRE_FALSE(err);
    out.resize(got);
    return out;
  }
};

std::vector<std::uint8_t> pattern(std::size_t n, std::size_t from = 0) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = static_cast<std::uint8_t>((from + i) * 131 + 7);
  return v;
}

} // namespace

TEST_SUITE("buffered_stream") {
  TEST_CASE("a quiet stream reads straight through and holds no buffer") {
    socket_pair p;
    net::write(p.writer, net::buffer(pattern(100)));
    const auto got = p.read_some(1536); // what Beast asks for: its header buffer
    CHECK(got == pattern(100));
    CHECK(p.reader.allocated() == 0);
    CHECK(p.reader.buffered() == 0);
  }

  TEST_CASE("a busy stream reads ahead, hands out every byte in order, and lets go once quiet") {
    socket_pair p;
    constexpr std::size_t total = 3 * read_ahead_bytes;
    const auto sent = pattern(total);
    std::thread w([&] { net::write(p.writer, net::buffer(sent)); });
    std::vector<std::uint8_t> got;
    bool read_ahead_seen = false;
    while (got.size() < total) {
      const auto chunk = p.read_some(1536);
      REQUIRE_FALSE(chunk.empty());
      got.insert(got.end(), chunk.begin(), chunk.end());
      if (p.reader.buffered() > 0) {
        read_ahead_seen = true;
        CHECK(p.reader.allocated() == read_ahead_bytes);
      }
    }
    w.join();
    CHECK(got == sent);
    CHECK(read_ahead_seen); // the first full 1536-byte read turned read-ahead on
    // the stream goes quiet: a small message, read ahead (still busy) but small, ends it
    net::write(p.writer, net::buffer(pattern(40, total)));
    CHECK(p.read_some(1536) == pattern(40, total));
    CHECK(p.reader.buffered() == 0);
    CHECK(p.reader.allocated() == 0);
    // and the next one is read straight through again
    net::write(p.writer, net::buffer(pattern(10, total + 40)));
    CHECK(p.read_some(1536) == pattern(10, total + 40));
    CHECK(p.reader.allocated() == 0);
  }

  TEST_CASE("reads served from memory complete at once, a bounded number deep, every byte in order") {
    socket_pair p;
    constexpr std::size_t total = 4 * read_ahead_bytes;
    const auto sent = pattern(total);
    std::thread w([&] { net::write(p.writer, net::buffer(sent)); });
    std::vector<std::uint8_t> got, chunk(1536);
    int depth = 0, max_depth = 0;
    std::function<void()> next = [&] {
      p.reader.async_read_some(net::buffer(chunk), [&](boost::system::error_code ec, std::size_t n) {
        REQUIRE_FALSE(ec);
        ++depth; // handlers running inside one another: reads completed inside the call
        max_depth = std::max(max_depth, depth);
        got.insert(got.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
        if (got.size() < total) next(); // the session's pattern: the handler reads again
        --depth;
      });
    };
    next();
    p.ioc.restart();
    p.ioc.run();
    w.join();
    CHECK(got == sent);
    CHECK(max_depth >= 2); // some reads completed without a round of the scheduler
    CHECK(max_depth <= 9); // and the chain is cut (posted) every 8: the stack stays shallow
  }

  TEST_CASE("a request no smaller than the read-ahead is read straight into the caller's buffer") {
    socket_pair p;
    net::write(p.writer, net::buffer(pattern(5000)));
    std::vector<std::uint8_t> got(5000);
    net::read(p.reader, net::buffer(got)); // synchronous reads take the same path
    CHECK(got == pattern(5000));
    CHECK(p.reader.allocated() == 0);
  }

  TEST_CASE("end of stream reaches the reader after what was buffered") {
    socket_pair p;
    std::thread w([&] {
      net::write(p.writer, net::buffer(pattern(2 * read_ahead_bytes)));
      p.writer.shutdown(tcp::socket::shutdown_send);
    });
    std::size_t total = 0;
    boost::system::error_code last;
    for (;;) {
      std::vector<std::uint8_t> buf(1536);
      std::size_t k = 0;
      p.reader.async_read_some(net::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
        last = ec;
        k = n;
      });
      p.ioc.restart();
      p.ioc.run();
      if (last) break;
      total += k;
    }
    w.join();
    CHECK(total == 2 * read_ahead_bytes);
    CHECK(last == net::error::eof);
    CHECK(p.reader.allocated() == 0);
  }

  TEST_CASE("frames written by the owner are WebSocket messages to a real peer, in all three length forms") {
    net::io_context ioc;
    tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    boost::beast::websocket::stream<tcp::socket> client(ioc);
    client.next_layer().connect(acc.local_endpoint());
    buffered_stream<tcp::socket> server(ioc);
    acc.accept(server.next_layer());
    // the payloads of three messages, framed here and handed over in one write
    const std::vector<std::size_t> sizes{5, 300, 70000};
    std::vector<unsigned char> wire;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      unsigned char h[10];
      const std::size_t hn = frame_header(sizes[k], h);
      CHECK(hn == (k == 0 ? 2u : k == 1 ? 4u : 10u));
      wire.insert(wire.end(), h, h + hn);
      const auto body = pattern(sizes[k], k * 1000);
      wire.insert(wire.end(), body.begin(), body.end());
    }
    // the handshake: the client asks, the server side answers with plain Beast on the same socket
    std::thread hs([&] {
      boost::beast::websocket::stream<tcp::socket&> s(server.next_layer());
      s.accept();
    });
    client.handshake("127.0.0.1", "/");
    hs.join();
    bool written = false;
    server.write_frames(net::buffer(wire), [&](boost::system::error_code ec, std::size_t n) {
      CHECK_FALSE(ec);
      CHECK(n == wire.size());
      written = true;
    });
    std::thread runner([&] { ioc.run(); });
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      boost::beast::flat_buffer b;
      client.read(b);
      CHECK(client.got_binary());
      REQUIRE(b.size() == sizes[k]);
      const auto* p = static_cast<const std::uint8_t*>(b.data().data());
      CHECK(std::vector<std::uint8_t>(p, p + b.size()) == pattern(sizes[k], k * 1000));
    }
    runner.join();
    CHECK(written);
  }

  TEST_CASE("writes asked while one is in flight go out whole, in the order asked") {
    socket_pair p;
    // a write big enough to stay in flight while the others are asked for
    const auto big = pattern(4 * read_ahead_bytes);
    const std::string beast_like = "<control>", mine = "<mine>";
    std::vector<int> order;
    p.reader.write_frames(net::buffer(big), [&](boost::system::error_code ec, std::size_t) {
      CHECK_FALSE(ec);
      order.push_back(1);
    });
    CHECK(p.reader.writing());
    p.reader.async_write_some(net::buffer(beast_like), [&](boost::system::error_code ec, std::size_t n) {
      CHECK_FALSE(ec);
      CHECK(n == beast_like.size()); // whole, never a part
      order.push_back(2);
    });
    p.reader.write_frames(net::buffer(mine), [&](boost::system::error_code ec, std::size_t) {
      CHECK_FALSE(ec);
      order.push_back(3);
    });
    std::vector<std::uint8_t> got(big.size() + beast_like.size() + mine.size());
    std::thread r([&] { net::read(p.writer, net::buffer(got)); }); // (the "writer" socket reads here)
    p.ioc.restart();
    p.ioc.run();
    r.join();
    CHECK(order == std::vector<int>{1, 2, 3});
    CHECK(std::vector<std::uint8_t>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(big.size())) == big);
    CHECK(std::string(got.begin() + static_cast<std::ptrdiff_t>(big.size()),
                      got.begin() + static_cast<std::ptrdiff_t>(big.size() + beast_like.size())) == beast_like);
    CHECK(std::string(got.end() - static_cast<std::ptrdiff_t>(mine.size()), got.end()) == mine);
    CHECK_FALSE(p.reader.writing());
  }

  TEST_CASE("a sending thread writes at once while the socket is free, and is refused while a write is in flight") {
    socket_pair p;
    using direct = buffered_stream<tcp::socket>::direct;
    const std::string now = "<now>";
    int rest_calls = 0;
    auto rest = [&](boost::system::error_code) { ++rest_calls; };
    CHECK(p.reader.try_write_now(reinterpret_cast<const unsigned char*>(now.data()), now.size(), rest) == direct::written);
    CHECK_FALSE(p.reader.writing());
    std::string got(now.size(), '\0');
    net::read(p.writer, net::buffer(got));
    CHECK(got == now);
    // a write of the I/O thread in flight: the sender is refused and nothing of its bytes goes
    const auto big = pattern(4 * read_ahead_bytes);
    p.reader.write_frames(net::buffer(big), [](boost::system::error_code ec, std::size_t) { CHECK_FALSE(ec); });
    REQUIRE(p.reader.writing());
    CHECK(p.reader.try_write_now(reinterpret_cast<const unsigned char*>(now.data()), now.size(), rest) == direct::refused);
    std::vector<std::uint8_t> all(big.size());
    std::thread r([&] { net::read(p.writer, net::buffer(all)); });
    p.ioc.restart();
    p.ioc.run();
    r.join();
    CHECK(all == big);
    CHECK_FALSE(p.reader.writing());
    CHECK(rest_calls == 0);
  }

  TEST_CASE("what a sending thread's send() left goes out next, before writes asked after it, then rest_done") {
    net::io_context ioc;
    tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    tcp::socket peer(ioc);
    buffered_stream<tcp::socket> layer(ioc);
    peer.open(tcp::v4());
    peer.set_option(net::socket_base::receive_buffer_size(4096));
    peer.connect(acc.local_endpoint());
    acc.accept(layer.next_layer());
    layer.next_layer().set_option(net::socket_base::send_buffer_size(4096));
    using direct = buffered_stream<tcp::socket>::direct;
    const auto big = pattern(1 << 20); // far more than both socket buffers hold: send() takes part
    std::vector<int> order;
    const auto r = layer.try_write_now(big.data(), big.size(), [&](boost::system::error_code ec) {
      CHECK_FALSE(ec);
      order.push_back(1);
    });
    REQUIRE(r == direct::partial);
    CHECK(layer.writing()); // the I/O thread's now
    const std::string after = "<after>";
    CHECK(layer.try_write_now(reinterpret_cast<const unsigned char*>(after.data()), after.size(),
                              [](boost::system::error_code) {}) == direct::refused);
    layer.write_frames(net::buffer(after), [&](boost::system::error_code ec, std::size_t) {
      CHECK_FALSE(ec);
      order.push_back(2);
    });
    std::vector<std::uint8_t> got(big.size() + after.size());
    std::thread reader([&] { net::read(peer, net::buffer(got)); });
    ioc.run();
    reader.join();
    CHECK(order == std::vector<int>{1, 2});
    CHECK(std::vector<std::uint8_t>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(big.size())) == big);
    CHECK(std::string(got.end() - static_cast<std::ptrdiff_t>(after.size()), got.end()) == after);
    CHECK_FALSE(layer.writing());
  }

  TEST_CASE("a sending thread and the I/O thread writing at once: every record whole, each side's in order") {
    // records of 40 bytes: a tag (S: the sending thread, I: the I/O thread, B: Beast's writes),
    // a counter, filler; the peer reads slowly at times, so sends are refused and split too
    socket_pair p;
    p.reader.next_layer().set_option(net::socket_base::send_buffer_size(8192));
    constexpr std::size_t rec = 40;
    constexpr std::uint32_t per_side = 3000;
    auto record = [](char tag, std::uint32_t n) {
      std::vector<unsigned char> v(rec, static_cast<unsigned char>(tag));
      std::memcpy(v.data() + 1, &n, sizeof n);
      return v;
    };
    using direct = buffered_stream<tcp::socket>::direct;
    std::atomic<std::uint32_t> partials{0}, rests{0};
    // the I/O thread: our writes chained, Beast-like writes asked while they are in flight
    std::uint32_t io_next = 0, beast_next = 0;
    std::vector<unsigned char> io_rec, beast_rec;
    std::function<void()> io_write = [&] {
      if (io_next == per_side) return;
      io_rec = record('I', io_next++);
      p.reader.write_frames(net::buffer(io_rec), [&](boost::system::error_code ec, std::size_t) {
        CHECK_FALSE(ec);
        if (beast_next < per_side / 10 && io_next % 10 == 0) {
          beast_rec = record('B', beast_next++);
          p.reader.async_write_some(net::buffer(beast_rec), [](boost::system::error_code e2, std::size_t) { CHECK_FALSE(e2); });
        }
        io_write();
      });
    };
    net::post(p.ioc, io_write);
    auto work = net::make_work_guard(p.ioc);
    std::thread io([&] { p.ioc.run(); });
    std::thread sender([&] {
      for (std::uint32_t n = 0; n < per_side;) {
        const auto v = record('S', n);
        const auto r = p.reader.try_write_now(v.data(), v.size(), [&](boost::system::error_code ec) {
          CHECK_FALSE(ec);
          ++rests;
        });
        if (r == direct::refused) {
          std::this_thread::yield();
          continue;
        }
        if (r == direct::partial) ++partials;
        ++n;
      }
    });
    // the peer: reads every record, slowly now and then (the socket fills)
    std::map<char, std::uint32_t> next;
    std::vector<unsigned char> buf(rec);
    const std::uint32_t total = 2 * per_side + per_side / 10;
    for (std::uint32_t k = 0; k < total; ++k) {
      net::read(p.writer, net::buffer(buf));
      const char tag = static_cast<char>(buf[0]);
      std::uint32_t n = 0;
      std::memcpy(&n, buf.data() + 1, sizeof n);
      REQUIRE((tag == 'S' || tag == 'I' || tag == 'B'));
      REQUIRE(std::all_of(buf.begin() + 5, buf.end(), [&](unsigned char c) { return c == static_cast<unsigned char>(tag); }));
      REQUIRE(n == next[tag]);
      next[tag] = n + 1;
      if (k % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    sender.join();
    work.reset();
    io.join();
    CHECK(next['S'] == per_side);
    CHECK(next['I'] == per_side);
    CHECK(next['B'] == per_side / 10);
    CHECK(rests.load() == partials.load());
    CHECK_FALSE(p.reader.writing());
  }

  TEST_CASE("a layer destroyed with a read and writes pending: their completions touch nothing of it") {
    net::io_context ioc;
    tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    tcp::socket peer(ioc);
    auto layer = std::make_unique<buffered_stream<tcp::socket>>(ioc);
    peer.open(tcp::v4());
    peer.set_option(net::socket_base::receive_buffer_size(4096));
    peer.connect(acc.local_endpoint());
    acc.accept(layer->next_layer());
    layer->next_layer().set_option(net::socket_base::send_buffer_size(4096));
    layer->capacity(read_ahead_bytes);
    const auto big = pattern(8 * read_ahead_bytes); // more than the socket buffers take: stays in flight
    int write_done = 0, read_done = 0;
    bool read_failed = false;
    layer->write_frames(net::buffer(big), [&](boost::system::error_code, std::size_t) { ++write_done; });
    layer->write_frames(net::buffer(big), [&](boost::system::error_code, std::size_t) { ++write_done; });
    std::vector<std::uint8_t> in(1536);
    layer->async_read_some(net::buffer(in), [&](boost::system::error_code ec, std::size_t) {
      ++read_done;
      read_failed = static_cast<bool>(ec);
    });
    ioc.poll(); // the first write starts; the peer reads nothing
    layer.reset(); // closes the socket: what was pending completes with an error, the queued write never starts
    ioc.restart();
    ioc.run();
    CHECK(write_done == 1);
    CHECK(read_done == 1);
    CHECK(read_failed);
  }

  TEST_CASE("masked frames a client writes itself are read by a WebSocket server, in all three length forms") {
    net::io_context ioc;
    tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    buffered_stream<tcp::socket> client(ioc);
    client.next_layer().connect(acc.local_endpoint());
    boost::beast::websocket::stream<tcp::socket> server(ioc);
    acc.accept(server.next_layer());
    server.read_message_max(1 << 20);
    std::thread hs([&] { server.accept(); });
    {
      boost::beast::websocket::stream<tcp::socket&> c(client.next_layer());
      c.handshake("127.0.0.1", "/");
    }
    hs.join();
    const std::vector<std::size_t> sizes{0, 7, 125, 126, 300, 65535, 70001};
    std::vector<unsigned char> wire;
    std::uint32_t key = 0x9e3779b9;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const auto body = pattern(sizes[k], k * 77);
      append_masked_frame(wire, body.data(), body.size(), key);
      key = key * 2654435761u + 1; // a different key per frame
    }
    std::thread runner([&] {
      client.write_frames(net::buffer(wire), [](boost::system::error_code ec, std::size_t) { CHECK_FALSE(ec); });
      ioc.run();
    });
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      boost::beast::flat_buffer b;
      server.read(b); // Beast refuses an unmasked frame from a client: these are masked and unmask right
      CHECK(server.got_binary());
      REQUIRE(b.size() == sizes[k]);
      const auto* p = static_cast<const std::uint8_t*>(b.data().data());
      CHECK(std::vector<std::uint8_t>(p, p + b.size()) == pattern(sizes[k], k * 77));
    }
    runner.join();
  }
}
