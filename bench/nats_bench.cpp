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
//   flowbus_nats_bench --port 4222 --client cnats [--messages N [--subscribers K] | --rate R ...]
//       the same loads through NATS's own C client (cnats, Debian's libnats-dev): buffered
//       publishes with its flusher thread, a callback per message on the subscription's thread —
//       what a NATS user's program does, and the baseline issue 19 names
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

#if FLOWBUS_HAVE_CNATS
#include <nats/nats.h>
#endif

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
    flowbus::bench::print_rate("nats", "nats", nullptr, size, subscribers, count, t0, t1);
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

#if FLOWBUS_HAVE_CNATS
namespace cnats {

[[noreturn]] void die(const char* what, natsStatus s) {
  std::fprintf(stderr, "nats bench (cnats): %s: %s\n", what, natsStatus_GetText(s));
  std::exit(2);
}
void check(natsStatus s, const char* what) {
  if (s != NATS_OK) die(what, s);
}

/// send_asap: every publish written at once (what a latency-minded NATS user sets) instead of
/// buffered for the flusher thread (cnats's default, for throughput).
natsConnection* connect(std::uint16_t port, bool send_asap = false) {
  natsOptions* o = nullptr;
  check(natsOptions_Create(&o), "options");
  check(natsOptions_SetURL(o, ("nats://127.0.0.1:" + std::to_string(port)).c_str()), "url");
  check(natsOptions_SetSendAsap(o, send_asap), "send asap");
  natsConnection* nc = nullptr;
  check(natsConnection_Connect(&nc, o), "connect");
  natsOptions_Destroy(o);
  return nc;
}

/// One subscriber connection: counts what its callback gets (on the subscription's thread).
struct counter {
  natsConnection* nc = nullptr;
  natsSubscription* sub = nullptr;
  std::atomic<std::uint64_t> got{0};
  std::uint64_t first_ns = 0, last_ns = 0;
  flowbus::bench::one_way* latency = nullptr; // latency mode: each payload's intended send time

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
    auto* c = static_cast<counter*>(self);
    if (c->latency && natsMsg_GetDataLength(msg) >= 16) c->latency->record(natsMsg_GetData(msg));
    c->last_ns = flowbus::scheduling::steady_ns();
    if (c->got.load(std::memory_order_relaxed) == 0) c->first_ns = c->last_ns;
    c->got.fetch_add(1, std::memory_order_release);
    natsMsg_Destroy(msg);
  }
  void subscribe(std::uint16_t port) {
    nc = connect(port);
    check(natsConnection_Subscribe(&sub, nc, subject, on_msg, this), "subscribe");
    check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits"); // count, never drop
    check(natsConnection_Flush(nc), "flush");
  }
  void wait_for(std::uint64_t want) const {
    while (got.load(std::memory_order_acquire) < want)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ~counter() {
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }
};

/// The publisher's end: what cnats buffered goes out, then the subscribers' process is awaited.
int finish(natsConnection* nc, pid_t child) {
  check(natsConnection_Flush(nc), "flush");
  const int st = flowbus::bench::child_status(child);
  natsConnection_Destroy(nc);
  nats_Close();
  return st;
}

int throughput(std::uint16_t port, std::uint64_t count, std::size_t subscribers, std::size_t size) {
  const pid_t child = flowbus::bench::fork_when_ready([&](auto ready) {
    std::vector<std::unique_ptr<counter>> subs;
    for (std::size_t i = 0; i < subscribers; ++i) {
      subs.push_back(std::make_unique<counter>());
      subs.back()->subscribe(port);
    }
    ready();
    for (auto& c : subs)
      c->wait_for(count);
    std::uint64_t t0 = UINT64_MAX, t1 = 0;
    for (auto& c : subs) {
      t0 = std::min(t0, c->first_ns);
      t1 = std::max(t1, c->last_ns);
    }
    flowbus::bench::print_rate("cnats", "nats", "cnats", size, subscribers, count, t0, t1);
    subs.clear();
    nats_Close();
    return 0;
  });
  if (child < 0) return 1;
  natsConnection* nc = connect(port);
  std::string payload(size, 'p');
  for (std::uint64_t i = 0; i < count; ++i) {
    std::memcpy(payload.data(), &i, 8);
    check(natsConnection_Publish(nc, subject, payload.data(), static_cast<int>(size)), "publish");
  }
  return finish(nc, child);
}

int latency(std::uint16_t port, double rate, std::uint64_t count, std::size_t size) {
  const pid_t child = flowbus::bench::fork_when_ready([&](auto ready) {
    flowbus::bench::one_way w;
    {
      counter c;
      c.latency = &w;
      c.subscribe(port);
      ready();
      c.wait_for(count);
    }
    w.print("cnats_latency", "nats", size, rate);
    nats_Close();
    return 0;
  });
  if (child < 0) return 1;
  natsConnection* nc = connect(port, true);
  std::string payload(size, 'p');
  flowbus::scheduling::offer_at_fixed_rate(rate, count, [&](std::uint64_t i, std::uint64_t intended) {
    std::memcpy(payload.data(), &i, 8);
    std::memcpy(payload.data() + 8, &intended, 8);
    check(natsConnection_Publish(nc, subject, payload.data(), static_cast<int>(size)), "publish");
  });
  return finish(nc, child);
}

} // namespace cnats
#endif

int main(int argc, char** argv) {
  const auto args = flowbus::bench::load_args::parse(argc, argv, 4222);
  if (args.client == "cnats") {
#if FLOWBUS_HAVE_CNATS
    return args.messages ? cnats::throughput(args.port, args.messages, args.subscribers, args.size)
                         : cnats::latency(args.port, args.rate, args.count(), args.size);
#else
    std::fprintf(stderr, "nats bench: built without cnats (install libnats-dev and rebuild)\n");
    return 2;
#endif
  }
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
