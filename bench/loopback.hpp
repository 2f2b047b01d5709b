// What the baseline benchmarks (TCP relay, NATS, the bare WebSocket client) share: their command
// line, a loopback connection with TCP_NODELAY, and a blocking write of everything.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace flowbus::bench {

/// `--rate R --seconds S --size B --port P --messages N --subscribers K --client C` (pairs, any
/// order; --client for the benches that offer more than one client).
struct load_args {
  double rate = 10000, seconds = 10;
  std::size_t size = 128, subscribers = 1;
  std::uint64_t messages = 0;
  std::uint16_t port = 0;
  std::string client;

  /// Parses the pairs; a payload is at least 16 bytes (index and intended send time). Also sets
  /// a 1 µs timer slack: the fixed-rate sender sleeps between messages.
  static load_args parse(int argc, char** argv, std::uint16_t default_port) {
    load_args l;
    l.port = default_port;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string a = argv[i];
      if (a == "--rate") l.rate = std::atof(argv[i + 1]);
      else if (a == "--seconds") l.seconds = std::atof(argv[i + 1]);
      else if (a == "--size") l.size = static_cast<std::size_t>(std::atol(argv[i + 1]));
      else if (a == "--port") l.port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
      else if (a == "--messages") l.messages = static_cast<std::uint64_t>(std::atoll(argv[i + 1]));
      else if (a == "--client") l.client = argv[i + 1];
      else if (a == "--subscribers") l.subscribers = std::max<std::size_t>(1, static_cast<std::size_t>(std::atol(argv[i + 1])));
    }
    l.size = std::max<std::size_t>(l.size, 16);
    prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    return l;
  }
  std::uint64_t count() const noexcept { return static_cast<std::uint64_t>(rate * seconds); }
};

/// A TCP connection to 127.0.0.1:port with TCP_NODELAY; -1 if nothing listens there.
inline int connect_loopback(std::uint16_t port) noexcept {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/// Writes all of p[0, n) (blocking); false if the connection failed.
inline bool write_all(int fd, const void* data, std::size_t n) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n) {
    const ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

/// Runs `child(ready)` in a forked process (which exits with what it returns) and waits until
/// the child calls ready() — it has subscribed: its pid, or -1.
template <class Child> pid_t fork_when_ready(Child&& child) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const int w = fds[1];
    _exit(child([w] { (void)!write(w, "R", 1); }));
  }
  close(fds[1]);
  char r;
  const bool ok = pid > 0 && read(fds[0], &r, 1) == 1;
  close(fds[0]);
  return ok ? pid : -1;
}

/// Waits for a child of fork_when_ready(): 0 if it exited with 0, else 1.
inline int child_status(pid_t pid) noexcept {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

} // namespace flowbus::bench
