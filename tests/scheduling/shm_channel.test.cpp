// Shared-memory channel: record semantics in one process, then across fork()ed processes:
// ping-pong, a producer that dies mid-write, a peer found by name, a damaged ring; the zero-copy
// reader and the doorbell handshakes (park / commit, wait_for_space / publish), with two threads
// that sleep until rung and must never miss a wake-up.
#include <flowbus/scheduling/shm_channel.hpp>

#include "test_support.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <fcntl.h>
#include <ostream> // doctest prints std::error_code
#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace flowbus::scheduling;

namespace {
std::vector<unsigned char> pattern(std::uint64_t seq, std::size_t size) {
  std::vector<unsigned char> v(size);
  for (std::size_t i = 0; i < size; ++i)
    v[i] = static_cast<unsigned char>(seq * 31 + i);
  if (size >= 8) std::memcpy(v.data(), &seq, 8);
  return v;
}
int wait_child(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
} // namespace

TEST_SUITE("shm_channel") {

  TEST_CASE("records of every size go through in order across many wrap-arounds") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec);
    REQUIRE_FALSE(ec);
    CHECK(ch.ring_capacity() == 4096);
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    std::mt19937_64 rng(1);
    std::uint64_t sent = 0, received = 0, bad = 0, bytes = 0;
    for (int round = 0; round < 5000; ++round) {
      for (int k = 0; k < 4; ++k) {
        const std::size_t size = rng() % (a.max_message() + 1);
        const auto msg = pattern(sent, size);
        if (!a.try_write(msg.data(), msg.size())) break; // full: drain first
        ++sent;
        bytes += msg.size();
      }
      b.read(
          [&](const unsigned char* p, std::size_t n) {
            const auto expect = pattern(received, n);
            bad += n >= 8 ? std::memcmp(p, expect.data(), n) != 0 : 0;
            ++received;
          },
          static_cast<std::size_t>(rng() % 5));
    }
    b.read([&](const unsigned char*, std::size_t) { ++received; }, 1'000'000);
    CHECK(bad == 0);
    CHECK(received == sent);
    CHECK(bytes / ch.ring_capacity() > 500); // hundreds of laps, so hundreds of wrap-arounds
  }

  TEST_CASE("full, oversized and aborted claims") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec);
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    CHECK(a.max_message() == 1024);
    CHECK_FALSE(a.try_claim(1025));
    std::vector<unsigned char> big(1024, 1);
    int written = 0;
    while (a.try_write(big.data(), big.size()))
      ++written;
    CHECK(written == 3); // 4 x (8 + 1024) > 4096
    CHECK(b.read([](const unsigned char*, std::size_t) {}, 1) == 1);
    CHECK(a.try_write(big.data(), big.size())); // space came back
    shm_claim c = a.try_claim(8);
    REQUIRE_FALSE(c); // still full
    b.read([](const unsigned char*, std::size_t) {}, 10);
    c = a.try_claim(100);
    REQUIRE(c);
    std::memset(c.data, 0xEE, 100);
    a.abort(c);
    CHECK(a.try_write("after", 5));
    std::string got;
    CHECK(b.read([&](const unsigned char* p, std::size_t n) { got.assign(reinterpret_cast<const char*>(p), n); }, 10) ==
          1);
    CHECK(got == "after"); // the aborted record was skipped
  }

  TEST_CASE("two processes ping-pong through the channel") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(64 * 1024, "", ec);
    REQUIRE_FALSE(ec);
    const int n = 20000;
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) { // child: echo everything back, +1 on the first byte
      shm_endpoint e = ch.endpoint(shm_side::opener);
      int echoed = 0;
      while (echoed < n) {
        e.read(
            [&](const unsigned char* p, std::size_t len) {
              std::vector<unsigned char> copy(p, p + len);
              copy[0] = static_cast<unsigned char>(copy[0] + 1);
              while (!e.try_write(copy.data(), copy.size())) {
              }
              ++echoed;
            },
            64);
      }
      _exit(0);
    }
    shm_endpoint e = ch.endpoint(shm_side::creator);
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      unsigned char msg[40];
      std::memset(msg, i & 0x7F, sizeof msg);
      REQUIRE(e.try_write(msg, sizeof msg));
      bool got = false;
      while (!got)
        e.read(
            [&](const unsigned char* p, std::size_t len) {
              ok += len == 40 && p[0] == static_cast<unsigned char>((i & 0x7F) + 1) && p[39] == (i & 0x7F);
              got = true;
            },
            1);
    }
    CHECK(wait_child(pid) == 0);
    CHECK(ok == n);
  }

  TEST_CASE("a producer that dies mid-write leaves nothing half-written; the peer is seen dead") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(8192, "", ec);
    shm_endpoint parent = ch.endpoint(shm_side::creator);
    CHECK(parent.peer() == peer_status::never_attached);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      shm_endpoint e = ch.endpoint(shm_side::opener);
      e.try_write("complete", 8);
      shm_claim c = e.try_claim(500);
      std::memset(c.data, 'X', 250); // half the bytes, no commit
      _exit(0);                      // dies here
    }
    REQUIRE(wait_child(pid) == 0);
    std::vector<std::string> got;
    shm_read_status st;
    parent.read([&](const unsigned char* p, std::size_t n) { got.emplace_back(reinterpret_cast<const char*>(p), n); },
                10, &st);
    CHECK(st == shm_read_status::ok);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "complete");
    CHECK(parent.peer() == peer_status::dead);
  }

  TEST_CASE("another process finds the channel by name") {
    const std::string name = "flowbus-test-" + std::to_string(getpid());
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, name, ec);
    REQUIRE_FALSE(ec);
    shm_channel dup = shm_channel::create(4096, name, ec);
    CHECK(ec == std::errc::file_exists);
    shm_endpoint e = ch.endpoint(shm_side::creator);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::error_code cec;
      shm_channel mine = shm_channel::open(name, cec); // a fresh mapping, not the inherited one
      if (cec) _exit(2);
      shm_endpoint me = mine.endpoint(shm_side::opener);
      me.try_write("hello from the child", 20);
      for (int i = 0; i < 2000 && me.peer() != peer_status::alive; ++i)
        usleep(1000);
      _exit(me.peer() == peer_status::alive ? 0 : 3);
    }
    std::string got;
    for (int i = 0; i < 5000 && got.empty(); ++i) {
      e.read([&](const unsigned char* p, std::size_t n) { got.assign(reinterpret_cast<const char*>(p), n); }, 1);
      if (got.empty()) usleep(200);
    }
    CHECK(wait_child(pid) == 0);
    CHECK(got == "hello from the child");
    shm_channel::unlink(name);
    shm_channel gone = shm_channel::open(name, ec);
    CHECK(ec == std::errc::no_such_file_or_directory);
  }

  TEST_CASE("a damaged ring is reported, not followed; a foreign region is refused") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec);
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    REQUIRE(a.try_write("ok", 2));
    shm_claim c = a.try_claim(16);
    REQUIRE(c);
    std::uint64_t evil = (std::uint64_t{0xFFFFFF} << 32) | 1; // a data record longer than the ring
    std::memcpy(c.data - 8, &evil, 8);
    int n = 0;
    shm_read_status st;
    b.read([&](const unsigned char*, std::size_t) { ++n; }, 10, &st);
    CHECK(n == 1);
    CHECK(st == shm_read_status::corrupt);

    char path[] = "/tmp/flowbus-notshm-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    REQUIRE(ftruncate(fd, 8192) == 0);
    const int lowest_free = dup(0); // the lowest free descriptor number before the refused open
    close(lowest_free);
    shm_channel foreign = shm_channel::open_fd(fd, ec);
    CHECK(ec == std::errc::protocol_error);
    CHECK_FALSE(foreign);
    const int after = dup(0);
    CHECK(after == lowest_free); // the refused open did not leak its descriptor
    close(after);
    CHECK(fcntl(fd, F_GETFD) != -1); // and left the caller's open
    close(fd);
  }

  TEST_CASE("liveness: heartbeats keep a peer alive; silence makes it stale") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec);
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    CHECK(a.peer(std::chrono::hours(1)) == peer_status::alive);
    usleep(5000);
    CHECK(a.peer(std::chrono::milliseconds(1)) == peer_status::stale);
    b.heartbeat();
    CHECK(a.peer(std::chrono::milliseconds(1000)) == peer_status::alive);
  }

  TEST_CASE("zero-copy reading: a record stays until released, padding is skipped") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec);
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    shm_endpoint::record r;
    bool corrupt = true;
    CHECK_FALSE(b.next(r, corrupt));
    CHECK_FALSE(corrupt);
    std::vector<unsigned char> big(1000, 7);
    for (int lap = 0; lap < 12; ++lap) { // 1008-byte records in a 4096-byte ring: padding every lap
      REQUIRE(a.try_write(big.data(), big.size()));
      REQUIRE(a.try_write("x", 1));
      REQUIRE(b.next(r, corrupt));
      CHECK(r.size == 1000);
      shm_endpoint::record again;
      REQUIRE(b.next(again, corrupt)); // not released: the same record
      CHECK(again.data == r.data);
      b.release(r);
      REQUIRE(b.next(r, corrupt));
      CHECK(r.size == 1);
      CHECK(r.data[0] == 'x');
      b.release(r);
      CHECK_FALSE(b.publish()); // nobody waits for space
      CHECK_FALSE(b.next(r, corrupt));
    }
  }

  TEST_CASE("doorbells: a parked consumer is rung once; a waiting producer is rung once") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec);
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    bool wake = true;
    REQUIRE(a.try_write("1", 1, &wake));
    CHECK_FALSE(wake); // nobody parked
    CHECK_FALSE(b.park()); // a record is there: read on
    CHECK(a.try_write("2", 1, &wake));
    CHECK_FALSE(wake); // the failed park left no flag behind
    shm_endpoint::record r;
    bool corrupt = false;
    while (b.next(r, corrupt))
      b.release(r);
    b.publish();
    CHECK(b.park());
    CHECK(a.try_write("3", 1, &wake));
    CHECK(wake); // rung
    CHECK(a.try_write("4", 1, &wake));
    CHECK_FALSE(wake); // once
    CHECK(b.park() == false);
    b.unpark();

    // the producer's side: a full ring
    while (b.next(r, corrupt))
      b.release(r);
    b.publish();
    CHECK_FALSE(a.wait_for_space(8)); // room now: no doorbell needed
    CHECK_FALSE(b.publish());
    std::vector<unsigned char> big(1024, 1);
    while (a.try_write(big.data(), big.size()))
      ;
    CHECK(a.wait_for_space(big.size()));
    CHECK_FALSE(b.publish()); // nothing released: no space to announce, the producer waits on
    REQUIRE(b.next(r, corrupt));
    b.release(r);
    CHECK(b.publish()); // the producer waits: ring it
    CHECK_FALSE(b.publish()); // once
    CHECK(a.try_write(big.data(), big.size()));
  }

  TEST_CASE("two threads that sleep until rung pass 200 000 records without a lost wake-up") {
    std::error_code ec;
    shm_channel ch = shm_channel::create(4096, "", ec); // small: the producer fills it often
    shm_endpoint a = ch.endpoint(shm_side::creator), b = ch.endpoint(shm_side::opener);
    // each side's doorbell: a counter and a condition variable (a socket in the transport)
    struct bell {
      std::mutex m;
      std::condition_variable cv;
      std::uint64_t rung = 0;
      void ring() {
        std::lock_guard<std::mutex> g(m);
        ++rung;
        cv.notify_one();
      }
      bool wait(std::uint64_t& seen) { // false: not rung within 10 s (a lost wake-up)
        std::unique_lock<std::mutex> g(m);
        const bool ok = cv.wait_for(g, std::chrono::seconds(10), [&] { return rung != seen; });
        seen = rung;
        return ok;
      }
    } to_consumer, to_producer;
    const std::uint64_t n = 200000;
    std::atomic<bool> lost{false};
    std::uint64_t got = 0, out_of_order = 0, consumer_sleeps = 0, producer_sleeps = 0;
    std::thread consumer([&] {
      std::uint64_t seen = 0;
      shm_endpoint::record r;
      bool corrupt = false;
      while (got < n && !lost) {
        bool any = false;
        while (b.next(r, corrupt)) {
          std::uint64_t v = 0;
          std::memcpy(&v, r.data, 8);
          out_of_order += v != got;
          ++got;
          b.release(r);
          any = true;
        }
        if (b.publish()) to_producer.ring();
        if (any || !b.park()) continue;
        ++consumer_sleeps;
        if (!to_consumer.wait(seen)) lost = true;
      }
    });
    std::uint64_t seen = 0;
    for (std::uint64_t i = 0; i < n && !lost; ++i) {
      unsigned char rec[24] = {};
      std::memcpy(rec, &i, 8);
      bool wake = false;
      while (!a.try_write(rec, 8 + i % 17, &wake)) {
        if (!a.wait_for_space(8 + i % 17)) continue;
        ++producer_sleeps;
        if (!to_producer.wait(seen)) {
          lost = true;
          break;
        }
      }
      if (wake) to_consumer.ring();
    }
    consumer.join();
    CHECK_FALSE(lost);
    CHECK(got == n);
    CHECK(out_of_order == 0);
    CHECK(consumer_sleeps > 0); // both handshakes were exercised
    CHECK(producer_sleeps > 0);
  }
}
