// What a node session writes to its agent, without a socket (transport/src/egress_queue.hpp):
// control frames first, data by lane, the receive and ack windows, deadlines, shedding, and the
// numbering each written frame gets.
#include "transport/src/delivery_tracker.hpp"
#include "transport/src/egress_queue.hpp"

#include "edge_frames.hpp"

#include <flowbus/codec/decoder.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

using namespace flowbus;
using transport::detail::delivery_tracker;
using transport::detail::egress_queue;
using test::stored_frame;

namespace {

/// The frames of one written WebSocket message, as (sequence, payload) — a BATCH's inner ones.
std::vector<std::pair<std::uint64_t, std::string>> unpack(codec::bytes_view msg) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  codec::decoder dec;
  codec::message m;
  REQUIRE(dec.decode(msg, m));
  if (m.type != codec::msg_type::batch) {
    out.emplace_back(m.sequence, m.type == codec::msg_type::credit ? "CREDIT" : std::string(m.payload.as_string()));
    return out;
  }
  codec::batch_reader r(dec, m);
  codec::message inner;
  while (!r.done()) {
    REQUIRE(r.next(inner));
    out.emplace_back(inner.sequence,
                     inner.type == codec::msg_type::credit ? "CREDIT" : std::string(inner.payload.as_string()));
  }
  return out;
}

std::vector<codec::byte> credit_frame() {
  codec::encoder enc;
  codec::message m;
  m.type = codec::msg_type::credit;
  m.prio = codec::priority::critical;
  m.set(codec::field::credit, 1);
  std::vector<codec::byte> out(enc.literal_size(m));
  const auto r = enc.encode(m, out.data(), out.size());
  REQUIRE(r);
  out.resize(r.size);
  return out;
}

scheduling::lane_options lanes_of(std::size_t capacity) {
  scheduling::lane_options o;
  o.capacity = capacity;
  return o;
}

struct fixture {
  actors::dead_letters dead;
  std::string agent = "worker-1";
  transport::outbound_batch batch{64 * 1024, 32};
  std::uint64_t seq = 100;
};

} // namespace

TEST_SUITE("egress_queue") {
  TEST_CASE("control frames go first, then data by lane (CRITICAL ahead), numbered in order") {
    fixture f;
    egress_queue q(f.dead, f.agent, lanes_of(64));
    q.admit(stored_frame("n1"));
    q.admit(stored_frame("low", codec::priority::low));
    q.admit(stored_frame("urgent", codec::priority::critical));
    q.push_control(credit_frame());
    CHECK_FALSE(q.drained());
    const auto g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
    CHECK(g.data == 3);
    CHECK(f.seq == 104);
    const auto got = unpack(g.message);
    REQUIRE(got.size() == 4);
    CHECK(got[0] == std::make_pair(std::uint64_t{100}, std::string("CREDIT")));
    CHECK(got[1].second == "urgent");
    CHECK(got[1].first == 101);
    CHECK(got[2].second == "n1");
    CHECK(got[3].second == "low");
    CHECK(q.drained());
    CHECK(q.gather(f.batch, true, nullptr, f.seq, 0, 0).message.empty()); // nothing waits
  }

  TEST_CASE("a failed connection writes its control frames only (deliver = false)") {
    fixture f;
    egress_queue q(f.dead, f.agent, lanes_of(64));
    q.admit(stored_frame("data"));
    q.push_control(credit_frame());
    const auto g = q.gather(f.batch, false, nullptr, f.seq, 0, 0);
    CHECK(g.data == 0);
    CHECK(unpack(g.message).size() == 1);
    CHECK(q.drop_all(actors::dead_reason::agent_unavailable) == 1);
    CHECK(f.dead.count(actors::dead_reason::agent_unavailable) == 1);
  }

  TEST_CASE("one message holds at most a BATCH: the rest leads the next, numbering goes on") {
    fixture f;
    transport::outbound_batch small(64 * 1024, 4);
    egress_queue q(f.dead, f.agent, lanes_of(64));
    for (int i = 0; i < 10; ++i)
      q.admit(stored_frame("m" + std::to_string(i)));
    std::vector<std::size_t> sizes;
    std::vector<std::string> order;
    for (;;) {
      const auto g = q.gather(small, true, nullptr, f.seq, 0, 0);
      if (g.message.empty()) break;
      const auto got = unpack(g.message);
      sizes.push_back(got.size());
      for (const auto& e : got)
        order.push_back(e.second);
    }
    CHECK(sizes == std::vector<std::size_t>{4, 4, 2});
    CHECK(order.front() == "m0");
    CHECK(order.back() == "m9");
    CHECK(f.seq == 110);
  }

  TEST_CASE("the receive window: data up to it, then CRITICAL alone, then nothing until CREDIT") {
    fixture f;
    egress_queue q(f.dead, f.agent, lanes_of(64));
    q.window().open(2);
    for (int i = 0; i < 4; ++i)
      q.admit(stored_frame("d" + std::to_string(i)));
    auto g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
    CHECK(g.data == 2);
    CHECK(q.waits_for_agent(nullptr));
    g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
    CHECK(g.message.empty());
    CHECK(g.window_waits == 1);
    q.admit(stored_frame("urgent", codec::priority::critical));
    g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
    REQUIRE(g.data == 1);
    CHECK(unpack(g.message)[0].second == "urgent");
    q.window().grant(2);
    g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
    CHECK(g.data == 1); // one of the two granted went to the CRITICAL overdraft
    CHECK(q.waits_for_agent(nullptr));
    q.window().grant(2);
    g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
    CHECK(g.data == 1);
    CHECK(q.drained());
    CHECK_FALSE(q.waits_for_agent(nullptr));
  }

  TEST_CASE("a frame whose deadline passed while it waited is dead-lettered as expired, not written") {
    fixture f;
    egress_queue q(f.dead, f.agent, lanes_of(64));
    test::frame_spec late;
    late.payload = "late";
    late.deadline_ns = 1000;
    test::frame_spec fine = late;
    fine.payload = "fine";
    fine.deadline_ns = 5000;
    q.admit(test::stored_frame(late));
    q.admit(test::stored_frame(fine));
    const auto g = q.gather(f.batch, true, nullptr, f.seq, 2000, 0);
    const auto got = unpack(g.message);
    REQUIRE(got.size() == 1);
    CHECK(got[0].second == "fine");
    CHECK(f.dead.count(actors::dead_reason::expired) == 1);
  }

  TEST_CASE("lanes over their shed mark refuse the least urgent, and the refusal is a dead letter") {
    fixture f;
    egress_queue q(f.dead, f.agent, lanes_of(10));
    for (int i = 0; i < 20; ++i)
      q.admit(stored_frame("bg", codec::priority::background));
    CHECK(q.throttled());
    const std::uint64_t shed = f.dead.count(actors::dead_reason::shed);
    CHECK(shed >= 10);
    std::size_t written = 0;
    for (;;) {
      const auto g = q.gather(f.batch, true, nullptr, f.seq, 0, 0);
      if (g.message.empty()) break;
      written += g.data;
    }
    CHECK(written + shed == 20); // every frame is either written or dead-lettered
    CHECK_FALSE(q.throttled());
  }

  TEST_CASE("an acknowledging agent: written frames go to the tracker with their own sequence; its window bounds them") {
    fixture f;
    transport::detail::delivery_options o;
    o.window = 3;
    delivery_tracker acks(f.dead, f.agent, o);
    egress_queue q(f.dead, f.agent, lanes_of(64));
    for (int i = 0; i < 5; ++i)
      q.admit(stored_frame("a" + std::to_string(i)));
    q.push_control(credit_frame()); // takes sequence 100: the data frames are 101..103
    auto g = q.gather(f.batch, true, &acks, f.seq, 0, 0);
    CHECK(g.data == 3);
    CHECK(acks.in_flight() == 3);
    CHECK(q.waits_for_agent(&acks));
    CHECK(q.gather(f.batch, true, &acks, f.seq, 0, 0).message.empty());
    CHECK(acks.ack(101, 0) == 1); // the CREDIT's own sequence is not one of them
    g = q.gather(f.batch, true, &acks, f.seq, 0, 0);
    REQUIRE(g.data == 1);
    CHECK(unpack(g.message)[0].first == 104);
    CHECK(acks.ack(104, 0) == 3);
    g = q.gather(f.batch, true, &acks, f.seq, 0, 0);
    CHECK(g.data == 1);
    CHECK(q.drained());
  }
}
