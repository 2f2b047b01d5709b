// A stream's consumers (issue 23), their bookkeeping alone over a real log with a recording
// consumer_io: what is delivered from each start position up to the durable mark and the window,
// acks, NAKs, work in progress and TERM, redelivery after the ack wait, poison after max_deliver,
// no interest, refusals, and the position kept across a restart.
#include "actors/src/stream_consumers.hpp"

#include "actors/actors_support.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

using namespace flowbus::actors;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;

namespace {

log_options never_synced() {
  log_options o;
  o.sync = fsync_policy::never;
  return o;
}

struct sent_record {
  std::uint64_t seq, token;
  std::uint32_t deliveries;
};

/// A recording consumer_io: what was sent and poisoned; interest and refusal as the test sets them.
struct recorder {
  std::vector<sent_record> sent;
  std::vector<std::uint64_t> poisoned;
  bool interest = true, refuse = false;
  std::uint64_t skip_divisor = 0; ///< records whose seq it divides are filtered out
  consumer_io io;
  recorder() {
    io.deliver = [this](const consumer_config&, const log_record& r, std::uint64_t token, std::uint32_t n) {
      if (skip_divisor && r.seq % skip_divisor == 0) return consumer_io::outcome::filtered;
      if (refuse) return consumer_io::outcome::refused;
      sent.push_back({r.seq, token, n});
      return consumer_io::outcome::sent;
    };
    io.has_interest = [this](const consumer_config&) { return interest; };
    io.poison = [this](const consumer_config&, const log_record& r, std::uint32_t) { poisoned.push_back(r.seq); };
  }
  std::vector<std::uint64_t> seqs() const {
    std::vector<std::uint64_t> out;
    for (const auto& s : sent)
      out.push_back(s.seq);
    return out;
  }
};

struct fixture {
  flowbus::test::temp_dir dir{"consumers"};
  segment_log log{dir.path / "log", never_synced()};
  void append(int n, std::uint64_t time_ns = 1000) {
    for (int i = 0; i < n; ++i)
      log.append(flowbus::codec::bytes_view(std::string_view("frame")), time_ns);
    log.commit();
  }
};

consumer_config durable(std::string name, std::uint32_t window = 256) {
  consumer_config c;
  c.name = std::move(name);
  c.deliver_to = "work.orders";
  c.max_in_flight = window;
  c.backoff = 0ms; // redelivered at the first pump after its ack wait
  return c;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t s = from; s <= to; ++s)
    v.push_back(s);
  return v;
}

} // namespace

TEST_SUITE("stream_consumers") {
  TEST_CASE("records are delivered in order up to the durable mark and the window; acks open the window") {
    fixture f;
    f.append(10);
    consumer_set set(f.dir.path / "consumers");
    recorder r;
    const auto now = clk::now();
    set.add(durable("c", 4), f.log, now);
    set.pump(f.log, 6, r.io, now);
    CHECK(r.seqs() == range(1, 4)); // the window
    set.pump(f.log, 6, r.io, now);
    CHECK(r.sent.size() == 4); // nothing new while the window is full
    CHECK(set.on_reply(r.sent[0].token, "", f.log, r.io, now));
    CHECK(set.on_reply(r.sent[1].token, "+ACK", f.log, r.io, now));
    CHECK_FALSE(set.on_reply(r.sent[1].token, "+ACK", f.log, r.io, now)); // a duplicate ack
    set.pump(f.log, 6, r.io, now);
    CHECK(r.seqs() == range(1, 6)); // 5 and 6: the durable mark stops it there
    const consumer_status s = *set.status("c");
    CHECK(s.next == 7);
    CHECK(s.ack_floor == 2);
    CHECK(s.pending == 4);
    CHECK(s.acked == 2);
    CHECK(s.delivered == 6);
  }

  TEST_CASE("start positions: first, last, new, a sequence, a time; a filter skips records") {
    fixture f;
    f.append(5, 1000);
    f.append(5, 2000); // 6..10 appended at t=2000
    consumer_set set({});
    const auto now = clk::now();
    auto first_of = [&](consumer_config c) {
      recorder r;
      c.durable = false;
      set.add(c, f.log, now);
      set.pump(f.log, f.log.durable(), r.io, now);
      set.remove(c.name);
      return r.sent.empty() ? 0 : r.sent.front().seq;
    };
    consumer_config c = durable("p");
    CHECK(first_of(c) == 1);
    c.start = consumer_config::start_at::last;
    CHECK(first_of(c) == 10);
    c.start = consumer_config::start_at::new_only;
    CHECK(first_of(c) == 0); // nothing until the next record
    c.start = consumer_config::start_at::sequence;
    c.start_seq = 7;
    CHECK(first_of(c) == 7);
    c.start = consumer_config::start_at::time;
    c.start_time_ns = 1500;
    CHECK(first_of(c) == 6);

    recorder r;
    r.skip_divisor = 2;
    set.add(durable("odd"), f.log, now);
    set.pump(f.log, f.log.durable(), r.io, now);
    CHECK(r.seqs() == std::vector<std::uint64_t>{1, 3, 5, 7, 9});
    CHECK(set.status("odd")->next == 11);
  }

  TEST_CASE("a delivery not acked within its wait is sent again; after max_deliver it is poison") {
    fixture f;
    f.append(2);
    consumer_set set({});
    recorder r;
    consumer_config c = durable("c");
    c.ack_wait = 100ms;
    c.max_deliver = 3;
    auto now = clk::now();
    set.add(c, f.log, now);
    set.pump(f.log, 2, r.io, now);
    CHECK(set.on_reply(r.sent[1].token, "", f.log, r.io, now)); // 2 is acked; 1 is not
    for (int round = 2; round <= 3; ++round) {
      now += 101ms;
      set.pump(f.log, 2, r.io, now);
      REQUIRE(r.sent.size() == static_cast<std::size_t>(round + 1));
      CHECK(r.sent.back().seq == 1);
      CHECK(r.sent.back().deliveries == static_cast<std::uint32_t>(round));
    }
    now += 101ms;
    set.pump(f.log, 2, r.io, now);
    CHECK(r.sent.size() == 4); // not a fourth time
    CHECK(r.poisoned == std::vector<std::uint64_t>{1});
    const consumer_status s = *set.status("c");
    CHECK(s.dead == 1);
    CHECK(s.redelivered == 2);
    CHECK(s.pending == 0);
    CHECK(s.ack_floor == 2);
  }

  TEST_CASE("NAK sends again after the backoff, +WPI restarts the wait, +TERM poisons at once") {
    fixture f;
    f.append(3);
    consumer_set set({});
    recorder r;
    consumer_config c = durable("c");
    c.ack_wait = 1000ms;
    c.backoff = 200ms;
    c.backoff_max = 200ms;
    auto now = clk::now();
    set.add(c, f.log, now);
    set.pump(f.log, 3, r.io, now);
    REQUIRE(r.sent.size() == 3);
    CHECK(set.on_reply(r.sent[0].token, "-NAK", f.log, r.io, now));
    CHECK(set.on_reply(r.sent[1].token, "+WPI", f.log, r.io, now + 900ms));
    CHECK(set.on_reply(r.sent[2].token, "+TERM", f.log, r.io, now));
    CHECK(r.poisoned == std::vector<std::uint64_t>{3});
    set.pump(f.log, 3, r.io, now + 201ms); // the NAKed one is back within its backoff's ceiling
    REQUIRE(r.sent.size() == 4);
    CHECK(r.sent[3].seq == 1);
    CHECK(r.sent[3].deliveries == 2);
    CHECK(set.on_reply(r.sent[3].token, "", f.log, r.io, now + 300ms)); // acked at last
    set.pump(f.log, 3, r.io, now + 1500ms);                             // 2's wait restarted at +900 ms: not yet due
    CHECK(r.sent.size() == 4);
    set.pump(f.log, 3, r.io, now + 1901ms); // its wait is over: sent again within the backoff
    set.pump(f.log, 3, r.io, now + 1901ms + 201ms);
    REQUIRE(r.sent.size() == 5);
    CHECK(r.sent.back().seq == 2);
    CHECK(set.status("c")->naked == 1);
  }

  TEST_CASE("nobody listening: nothing is sent; an ephemeral consumer goes after its inactivity; refusals retry") {
    fixture f;
    f.append(3);
    consumer_set set({});
    recorder r;
    r.interest = false;
    consumer_config e = durable("");
    e.durable = false;
    e.inactive = 500ms;
    auto now = clk::now();
    const std::string name = set.add(e, f.log, now).config.name;
    CHECK_FALSE(name.empty());
    set.add(durable("d"), f.log, now);
    set.pump(f.log, 3, r.io, now + 100ms);
    CHECK(r.sent.empty());
    CHECK(set.size() == 2);
    set.pump(f.log, 3, r.io, now + 600ms);
    CHECK_FALSE(set.status(name)); // gone; the durable one stays
    CHECK(set.status("d"));
    r.interest = true;
    r.refuse = true;
    set.pump(f.log, 3, r.io, now + 700ms);
    CHECK(set.status("d")->next == 1); // refused: not counted as given
    r.refuse = false;
    set.pump(f.log, 3, r.io, now + 800ms);
    CHECK(r.seqs() == range(1, 3));
  }

  TEST_CASE("a durable consumer's position survives a restart; what was pending is sent again") {
    fixture f;
    f.append(6);
    const fs::path state = f.dir.path / "consumers";
    fs::create_directories(state);
    auto now = clk::now();
    {
      consumer_set set(state);
      recorder r;
      set.add(durable("keep"), f.log, now);
      set.pump(f.log, 6, r.io, now);
      for (int i : {0, 1, 3}) // 1, 2 and 4 acked; 3, 5, 6 pending
        CHECK(set.on_reply(r.sent[static_cast<std::size_t>(i)].token, "", f.log, r.io, now));
      set.persist(true, now);
    }
    consumer_set again(state);
    again.load(f.log);
    const consumer_status s = *again.status("keep");
    CHECK(s.next == 7);
    CHECK(s.ack_floor == 2);
    CHECK(s.pending == 3);
    recorder r;
    f.append(1); // 7
    again.pump(f.log, 7, r.io, now);
    CHECK(r.seqs() == std::vector<std::uint64_t>{3, 5, 6, 7});
    CHECK(again.remove("keep"));
    CHECK_FALSE(fs::exists(state / "keep.json"));
  }

  TEST_CASE("bad settings are refused with what is wrong") {
    fixture f;
    consumer_set set({});
    const auto now = clk::now();
    consumer_config c = durable("bad name!");
    CHECK_THROWS_AS(set.add(c, f.log, now), std::invalid_argument);
    c = durable("c");
    c.deliver_to = "work.*";
    CHECK_THROWS_AS(set.add(c, f.log, now), std::invalid_argument);
    c.deliver_to = "agent:";
    CHECK_THROWS_AS(set.add(c, f.log, now), std::invalid_argument);
    c.deliver_to = "agent:w1";
    c.filter = "a..b";
    CHECK_THROWS_AS(set.add(c, f.log, now), std::invalid_argument);
    c.filter.clear();
    set.add(c, f.log, now);
    consumer_config e = durable("c");
    e.durable = false;
    CHECK_THROWS_AS(set.add(e, f.log, now), std::invalid_argument); // the name is a durable's
  }
}
