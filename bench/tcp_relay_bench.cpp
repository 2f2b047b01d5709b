// The floor under the WebSocket benchmarks: publisher → relay → subscriber over loopback TCP in
// three processes, where the relay only copies bytes from one socket to the other (no framing, no
// routing, one write per message from the publisher, TCP_NODELAY everywhere). Same load as
// `flowbus bench latency`: 128-byte messages offered at a fixed rate, latency from each message's
// intended send time into an HDR histogram. flowbus's figures divided by these are the node's cost.
//
//   flowbus_tcp_relay_bench [--rate 10000] [--seconds 10] [--size 128]
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>

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

using clk = std::chrono::steady_clock;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count());
}

int connect_to(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::exit(3);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
  double rate = 10000, seconds = 10;
  std::size_t size = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rate") rate = std::atof(argv[i + 1]);
    else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--size") size = static_cast<std::size_t>(std::atol(argv[i + 1]));
  }
  size = std::max<std::size_t>(size, 16);
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  const auto count = static_cast<std::uint64_t>(rate * seconds);

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
    flowbus::scheduling::histogram h;
    std::vector<char> msg(size);
    std::uint64_t first = 0, last = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (!read_full(fd, msg.data(), size)) break;
      const std::uint64_t t = now_ns();
      std::uint64_t intended;
      std::memcpy(&intended, msg.data() + 8, 8);
      h.record(t > intended ? t - intended : 0);
      if (i == 0) first = t;
      last = t;
    }
    std::printf("{\"bench\":\"tcp_relay_latency_%.0f\",\"transport\":\"tcp\",\"payload_bytes\":%zu,\"offered_per_s\":%.0f,"
                "\"msgs_per_s\":%.0f,%s}\n",
                rate, size, rate, last > first ? static_cast<double>(h.count()) * 1e9 / static_cast<double>(last - first) : 0.0,
                h.json_fields("us", 1e3).c_str());
    std::fflush(stdout);
    _exit(h.count() == count ? 0 : 5);
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
