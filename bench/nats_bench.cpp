// NATS side by side: the same loads as `flowbus bench latency` and `flowbus bench throughput`
// through a nats-server on this machine, publisher and subscribers in two processes speaking the
// NATS text protocol directly over TCP (the leanest possible clients: no flusher thread, no
// allocation per message). scripts/bench-ws.sh starts Debian's nats-server when it is installed.
//
//   flowbus_nats_bench --port 4222 [--rate 10000] [--seconds 10] [--size 128]
//       fixed-rate latency (one write per PUB from the publishing thread), like `flowbus bench latency`
//   flowbus_nats_bench --port 4222 --messages 1000000 [--subscribers 1] [--size 128]
//       throughput: PUBs as fast as the server takes them, gathered into 64 KiB writes (what a
//       buffered NATS client does); each subscriber (a thread of the subscribing process, one
//       connection each) counts MSGs; deliveries/s from the first to the last, like
//       `flowbus bench throughput`
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

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* subject = "bench.nats.data";

/// A NATS connection: CONNECT sent, INFO consumed, PING/PONG answered while reading.
class nats_conn {
public:
  explicit nats_conn(std::uint16_t port) {
    fd_ = flowbus::bench::connect_loopback(port);
    if (fd_ < 0) {
      std::fprintf(stderr, "nats bench: no nats-server on port %u\n", unsigned(port));
      std::exit(2);
    }
    line(); // INFO {...}
    send("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n");
  }
  void send(const std::string& s) { send(s.data(), s.size()); }
  void send(const char* p, std::size_t n) {
    if (!flowbus::bench::write_all(fd_, p, n)) std::exit(3);
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

  /// Throughput: counts MSGs (skipping their payloads, answering PINGs) until `want` arrived;
  /// the steady-clock times of the first and the last.
  void count_msgs(std::uint64_t want, std::uint64_t& first_ns, std::uint64_t& last_ns) {
    std::uint64_t got = 0;
    while (got < want) {
      const char* b = buf_.data() + pos_;
      const std::size_t avail = buf_.size() - pos_;
      const char* nl = static_cast<const char*>(std::memchr(b, '\n', avail));
      if (!nl) {
        fill();
        continue;
      }
      const std::size_t head = static_cast<std::size_t>(nl - b) + 1;
      if (avail >= 4 && std::memcmp(b, "MSG ", 4) == 0) {
        const char* sp = nl;
        while (sp > b && sp[-1] != ' ')
          --sp;
        const std::size_t n = static_cast<std::size_t>(std::strtoul(sp, nullptr, 10));
        if (avail < head + n + 2) {
          fill();
          continue;
        }
        pos_ += head + n + 2;
        last_ns = flowbus::scheduling::steady_ns();
        if (got++ == 0) first_ns = last_ns;
      } else {
        if (avail >= 4 && std::memcmp(b, "PING", 4) == 0) send("PONG\r\n");
        pos_ += head;
      }
    }
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

namespace {

/// Subscribers (threads of a forked process) and a publisher writing 64 KiB batches of PUBs.
int throughput(std::uint16_t port, std::uint64_t count, std::size_t subscribers, std::size_t size) {
  int ready[2];
  if (pipe(ready) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    std::vector<std::unique_ptr<nats_conn>> conns;
    for (std::size_t i = 0; i < subscribers; ++i) {
      conns.push_back(std::make_unique<nats_conn>(port));
      conns.back()->send(std::string("SUB ") + subject + " 1\r\nPING\r\n");
      while (conns.back()->line() != "PONG") {
      }
    }
    (void)!write(ready[1], "R", 1);
    std::vector<std::uint64_t> first(subscribers), last(subscribers);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < subscribers; ++i)
      threads.emplace_back([&, i] { conns[i]->count_msgs(count, first[i], last[i]); });
    for (auto& t : threads)
      t.join();
    const std::uint64_t t0 = *std::min_element(first.begin(), first.end());
    const std::uint64_t t1 = *std::max_element(last.begin(), last.end());
    const double total = static_cast<double>(count) * static_cast<double>(subscribers);
    std::printf("{\"bench\":\"%s\",\"transport\":\"nats\",\"payload_bytes\":%zu,\"subscribers\":%zu,"
                "\"received\":%.0f,\"msgs_per_s\":%.0f}\n",
                subscribers == 1 ? "nats_pubsub_1to1" : ("nats_fanout_1to" + std::to_string(subscribers)).c_str(), size,
                subscribers, total, t1 > t0 ? total * 1e9 / static_cast<double>(t1 - t0) : 0.0);
    std::fflush(stdout);
    _exit(0);
  }
  close(ready[1]);
  char r;
  if (read(ready[0], &r, 1) != 1) return 1;
  nats_conn pub(port);
  const std::string head = std::string("PUB ") + subject + " " + std::to_string(size) + "\r\n";
  const std::string frame = head + std::string(size, 'p') + "\r\n";
  std::string out;
  out.reserve(65536 + frame.size());
  for (std::uint64_t i = 0; i < count; ++i) {
    out += frame;
    if (out.size() >= 65536 || i + 1 == count) {
      pub.send(out);
      out.clear();
    }
  }
  pub.send("PING\r\n"); // everything published has reached the server when its PONG comes
  while (pub.line() != "PONG") {
  }
  int st = 0;
  waitpid(child, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  const auto args = flowbus::bench::load_args::parse(argc, argv, 4222);
  const double rate = args.rate;
  const std::size_t size = args.size;
  const std::uint16_t port = args.port;
  if (args.messages) return throughput(port, args.messages, args.subscribers, size);
  const std::uint64_t count = args.count();

  const pid_t subscriber = flowbus::bench::fork_when_ready([&](auto ready) {
    nats_conn c(port);
    c.send(std::string("SUB ") + subject + " 1\r\nPING\r\n");
    while (c.line() != "PONG") {
    }
    ready();
    flowbus::bench::one_way w;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::string l = c.line(); // MSG <subject> <sid> <bytes>
      if (l.rfind("MSG ", 0) != 0) continue;
      const std::size_t n = static_cast<std::size_t>(std::atol(l.c_str() + l.rfind(' ') + 1));
      const std::string p = c.payload(n);
      if (p.size() >= 16) w.record(p.data());
    }
    w.print("nats_latency", "nats", size, rate);
    return w.h.count() == count ? 0 : 5;
  });
  if (subscriber < 0) return 1;
  nats_conn pub(port);
  const std::string head = std::string("PUB ") + subject + " " + std::to_string(size) + "\r\n";
  std::string frame = head + std::string(size, 'p') + "\r\n";
  char* body = frame.data() + head.size();
  flowbus::scheduling::offer_at_fixed_rate(rate, count, [&](std::uint64_t i, std::uint64_t intended) {
    std::memcpy(body, &i, 8);
    std::memcpy(body + 8, &intended, 8);
    pub.send(frame);
  });
  return flowbus::bench::child_status(subscriber);
}
