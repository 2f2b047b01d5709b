// The read-ahead layer under the WebSocket streams (transport/src/read_ahead.hpp): every byte comes
// out once and in order whatever the request sizes; while the peer sends a lot it reads ahead into
// its own buffer (one recv() for many of Beast's small reads); while the peer is quiet it reads
// straight through and holds no buffer — an idle connection must stay small.
#include "transport/src/read_ahead.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using flowbus::transport::detail::read_ahead_bytes;
using flowbus::transport::detail::read_ahead_stream;

namespace {

struct socket_pair {
  net::io_context ioc;
  tcp::socket writer{ioc};
  read_ahead_stream<tcp::socket> reader{ioc};

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

TEST_SUITE("read_ahead") {
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
}
