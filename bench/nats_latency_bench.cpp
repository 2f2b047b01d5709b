// NATS side by side: the same load as `flowbus bench latency` (fixed-rate 128-byte messages,
// latency from the intended send time) through a nats-server on this machine, publisher and
// subscriber in two processes speaking the NATS text protocol directly over TCP (the leanest
// possible client: one write per PUB, no flusher thread). scripts/bench-ws.sh starts Debian's
// nats-server when it is installed.
//
//   flowbus_nats_latency_bench --port 4222 [--rate 10000] [--seconds 10] [--size 128]
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

constexpr const char* subject = "bench.nats.data";

/// A NATS connection: CONNECT sent, INFO consumed, PING/PONG answered while reading.
class nats_conn {
public:
  explicit nats_conn(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      std::fprintf(stderr, "nats bench: no nats-server on port %u\n", unsigned(port));
      std::exit(2);
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    line(); // INFO {...}
    send("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n");
  }
  void send(const std::string& s) { send(s.data(), s.size()); }
  void send(const char* p, std::size_t n) {
    while (n) {
      const ssize_t w = write(fd_, p, n);
      if (w <= 0) std::exit(3);
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  /// The next protocol line (without CRLF); answers PINGs on the way.
  std::string line() {
    for (;;) {
      const auto end = buf_.find("\r\n", pos_);
      if (end != std::string::npos) {
        std::string l = buf_.substr(pos_, end - pos_);
        pos_ = end + 2;
        if (l == "PING") {
          send("PONG\r\n");
          continue;
        }
        return l;
      }
      fill();
    }
  }
  /// n payload bytes then CRLF.
  std::string payload(std::size_t n) {
    while (buf_.size() - pos_ < n + 2)
      fill();
    std::string p = buf_.substr(pos_, n);
    pos_ += n + 2;
    return p;
  }

private:
  void fill() {
    if (pos_ > 65536) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char tmp[65536];
    const ssize_t r = read(fd_, tmp, sizeof tmp);
    if (r <= 0) std::exit(4);
    buf_.append(tmp, static_cast<std::size_t>(r));
  }
  int fd_;
  std::string buf_;
  std::size_t pos_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  double rate = 10000, seconds = 10;
  std::size_t size = 128;
  std::uint16_t port = 4222;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rate") rate = std::atof(argv[i + 1]);
    else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--size") size = static_cast<std::size_t>(std::atol(argv[i + 1]));
    else if (a == "--port") port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
  }
  size = std::max<std::size_t>(size, 16);
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  const auto count = static_cast<std::uint64_t>(rate * seconds);

  int ready[2];
  if (pipe(ready) != 0) return 1;
  const pid_t subscriber = fork();
  if (subscriber == 0) {
    close(ready[0]);
    nats_conn c(port);
    c.send(std::string("SUB ") + subject + " 1\r\nPING\r\n");
    while (c.line() != "PONG") {
    }
    (void)!write(ready[1], "R", 1);
    flowbus::bench::one_way w;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::string l = c.line(); // MSG <subject> <sid> <bytes>
      if (l.rfind("MSG ", 0) != 0) continue;
      const std::size_t n = static_cast<std::size_t>(std::atol(l.c_str() + l.rfind(' ') + 1));
      const std::string p = c.payload(n);
      if (p.size() >= 16) w.record(p.data());
    }
    w.print("nats_latency", "nats", size, rate);
    _exit(w.h.count() == count ? 0 : 5);
  }
  close(ready[1]);
  char r;
  if (read(ready[0], &r, 1) != 1) return 1;
  nats_conn pub(port);
  const std::string head = std::string("PUB ") + subject + " " + std::to_string(size) + "\r\n";
  std::string frame = head + std::string(size, 'p') + "\r\n";
  char* body = frame.data() + head.size();
  flowbus::scheduling::offer_at_fixed_rate(rate, count, [&](std::uint64_t i, std::uint64_t intended) {
    std::memcpy(body, &i, 8);
    std::memcpy(body + 8, &intended, 8);
    pub.send(frame);
  });
  int st = 0;
  waitpid(subscriber, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
