// The floor under the WebSocket benchmarks: publisher → relay → subscriber over loopback TCP in
// three processes, where the relay only copies bytes from one socket to the other (no framing, no
// routing, one write per message from the publisher, TCP_NODELAY everywhere). Same load as
// `flowbus bench latency`: 128-byte messages offered at a fixed rate, latency from each message's
// intended send time into an HDR histogram. flowbus's figures divided by these are the node's cost.
//
//   flowbus_tcp_relay_bench [--rate 10000] [--seconds 10] [--size 128]
#include "loopback.hpp"
#include "one_way.hpp"

#include <flowbus/scheduling/fixed_rate.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {


int connect_to(std::uint16_t port) {
  const int fd = flowbus::bench::connect_loopback(port);
  if (fd < 0) std::exit(3);
  return fd;
}

bool read_full(int fd, char* p, std::size_t n) {
  while (n) {
    const ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  const auto args = flowbus::bench::load_args::parse(argc, argv, 0);
  const double rate = args.rate;
  const std::size_t size = args.size;
  const std::uint64_t count = args.count();

  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 4) != 0) return 1;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::uint16_t port = ntohs(a.sin_port);

  const pid_t relay = fork();
  if (relay == 0) { // the relay: subscriber connects first, then the publisher
    const int sub = accept(lfd, nullptr, nullptr), pub = accept(lfd, nullptr, nullptr);
    const int one = 1;
    setsockopt(sub, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(pub, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(65536);
    for (;;) {
      const ssize_t r = read(pub, buf.data(), buf.size());
      if (r <= 0) break;
      for (ssize_t off = 0; off < r;) {
        const ssize_t w = write(sub, buf.data() + off, static_cast<std::size_t>(r - off));
        if (w <= 0) _exit(4);
        off += w;
      }
    }
    _exit(0);
  }
  close(lfd);
  int ready[2];
  if (pipe(ready) != 0) return 1;
  const pid_t subscriber = fork();
  if (subscriber == 0) {
    close(ready[0]);
    const int fd = connect_to(port);
    (void)!write(ready[1], "R", 1);
    flowbus::bench::one_way w;
    std::vector<char> msg(size);
    for (std::uint64_t i = 0; i < count; ++i) {
      if (!read_full(fd, msg.data(), size)) break;
      w.record(msg.data());
    }
    w.print("tcp_relay_latency", "tcp", size, rate);
    _exit(w.h.count() == count ? 0 : 5);
  }
  close(ready[1]);
  char r;
  if (read(ready[0], &r, 1) != 1) return 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(50)); // the subscriber is accepted first
  const int fd = connect_to(port);
  std::vector<char> msg(size, 'p');
  flowbus::scheduling::offer_at_fixed_rate(rate, count, [&](std::uint64_t i, std::uint64_t intended) {
    std::memcpy(msg.data(), &i, 8);
    std::memcpy(msg.data() + 8, &intended, 8);
    if (write(fd, msg.data(), size) != static_cast<ssize_t>(size)) std::exit(6);
  });
  int st = 0;
  waitpid(subscriber, &st, 0);
  close(fd);
  int rst = 0;
  waitpid(relay, &rst, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
