// The C++ client's units without a socket or a thread: what it waits for (client_pending.hpp:
// replies with their timeouts, acknowledged publishes sent again and given up, by time passed
// in), what it receives (client_receiver.hpp: handlers by subscription, duplicates, the ACK and
// CREDIT owed) and its queues (client_queue.hpp: whole frames into one message, pacing).
#include "transport/src/client_pending.hpp"
#include "transport/src/client_queue.hpp"
#include "transport/src/client_receiver.hpp"

#include <flowbus/codec/decoder.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace flowbus;
using namespace flowbus::transport::detail;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

codec::message data(std::string_view topic, std::uint64_t seq, std::uint64_t id = 0, std::string_view source = "p") {
  codec::message m;
  m.type = codec::msg_type::publish;
  m.sequence = seq;
  m.set_topic(topic);
  m.set(codec::field::source, source);
  if (id) m.set(codec::field::message_id, id);
  return m;
}

std::vector<codec::byte> frame_bytes(std::string_view payload) {
  codec::message m;
  m.type = codec::msg_type::publish;
  m.set_topic("t");
  m.payload = codec::bytes_view(payload);
  std::vector<codec::byte> out;
  REQUIRE(append_literal(m, 64 * 1024, out));
  return out;
}

} // namespace

TEST_SUITE("client_units") {
  TEST_CASE("pending_answers: a reply in time is delivered once; one too late finds nobody; the timeout fires at its tick") {
    const auto t0 = clk::now();
    pending_answers p(t0);
    int answered = 0, timed_out = 0;
    p.expect_reply(1, [&](transport::reply_result) { ++answered; }, t0 + 10ms);
    p.expect_reply(2, [&](transport::reply_result) { ++timed_out; }, t0 + 10ms);
    auto done = p.take_reply(1);
    REQUIRE(done);
    done({});
    CHECK_FALSE(static_cast<bool>(p.take_reply(1))); // answered: a second reply finds nobody
    auto nothing = [](std::vector<codec::byte>&) -> std::uint64_t { FAIL("nothing to resend"); return 0; };
    auto d = p.advance(t0 + 9ms, 0, 3, 50ms, nothing);
    CHECK(d.timed_out.empty()); // never early
    d = p.advance(t0 + 10ms, 0, 3, 50ms, nothing);
    REQUIRE(d.timed_out.size() == 1);
    d.timed_out[0]({});
    CHECK(timed_out == 1);
    CHECK(answered == 1);
    CHECK_FALSE(static_cast<bool>(p.take_reply(2))); // the reply after its timeout
    CHECK(p.waiting() == 0);
  }

  TEST_CASE("pending_answers: an acknowledged publish is sent again after each ack_timeout once written, then given up") {
    const auto t0 = clk::now();
    pending_answers p(t0);
    auto promise = std::make_shared<std::promise<transport::errc>>();
    auto f = promise->get_future();
    p.expect_ack(7, promise, t0 + 20ms);
    REQUIRE(p.attach_frame(7, frame_bytes("x"), 5)); // out once 5 frames are written
    std::vector<std::size_t> copies;
    std::uint64_t written = 4; // still queued at the first look: no copy
    auto resend = [&](std::vector<codec::byte>& fr) -> std::uint64_t {
      copies.push_back(fr.size());
      return written + 1;
    };
    auto d = p.advance(t0 + 20ms, written, 3, 20ms, resend);
    CHECK(d.resent == 0);
    CHECK(d.gave_up.empty());
    written = 5;
    d = p.advance(t0 + 40ms, written, 3, 20ms, resend);
    CHECK(d.resent == 1);
    written = 6;
    d = p.advance(t0 + 60ms, written, 3, 20ms, resend);
    REQUIRE(d.gave_up.size() == 1); // three attempts spent, written or not
    d.gave_up[0]->set_value(transport::errc::timeout);
    CHECK(f.get() == transport::errc::timeout);
    CHECK(copies.size() == 1);
    CHECK_FALSE(static_cast<bool>(p.take_answer(7).p)); // a late ACK finds nobody
  }

  TEST_CASE("pending_answers: ACK/NACK ids find a subscription or a publish; everything can be failed at once") {
    const auto t0 = clk::now();
    pending_answers p(t0);
    auto s = std::make_shared<std::promise<transport::errc>>();
    auto a = std::make_shared<std::promise<transport::errc>>();
    auto sf = s->get_future(), af = a->get_future();
    p.expect_subscription(1, s);
    p.expect_ack(2, a, t0 + 1s);
    auto first = p.take_answer(1); // answering it answers the subscription's future
    first.p->set_value(transport::errc::ok);
    CHECK(sf.wait_for(0s) == std::future_status::ready);
    CHECK(af.wait_for(0s) == std::future_status::timeout);
    CHECK_FALSE(first.publish);
    auto second = p.take_answer(2);
    second.p->set_value(transport::errc::not_permitted);
    CHECK(af.get() == transport::errc::not_permitted);
    CHECK(second.publish);
    CHECK_FALSE(static_cast<bool>(p.take_answer(3).p));
    // a publish answered through a callback (publish_acked's callback form)
    transport::errc heard = transport::errc::timeout;
    p.expect_ack(9, transport::detail::answer_to([&](transport::errc e) { heard = e; }), t0 + 1s);
    auto third = p.take_answer(9);
    CHECK(third.publish);
    third.p->set_value(transport::errc::ok);
    CHECK(heard == transport::errc::ok);
    auto s2 = std::make_shared<std::promise<transport::errc>>();
    auto s2f = s2->get_future();
    p.expect_subscription(4, s2);
    p.expect_reply(5, [](transport::reply_result) {}, t0 + 1s);
    p.expect_ack(6, std::make_shared<std::promise<transport::errc>>(), t0 + 1s);
    auto forgotten = p.forget_subscription(4);
    forgotten->set_value(transport::errc::node_stopped);
    CHECK(s2f.get() == transport::errc::node_stopped);
    CHECK_FALSE(static_cast<bool>(p.forget_subscription(4)));
    p.expect_subscription(4, std::make_shared<std::promise<transport::errc>>());
    const auto all = p.take_all();
    CHECK(all.subscriptions.size() == 1);
    CHECK(all.requests.size() == 1);
    CHECK(all.publishes.size() == 1);
    CHECK(p.waiting() == 0);
    auto none = [](std::vector<codec::byte>&) -> std::uint64_t { return 0; };
    const auto d = p.advance(t0 + 2s, 0, 3, 1s, none); // their timers find nothing
    CHECK(d.timed_out.empty());
    CHECK(d.gave_up.empty());
  }

  TEST_CASE("subscription_table: first match in subscribe order, the same subscription keeps its place, fallback") {
    subscription_table t;
    std::string got;
    t.add("a.>", "", [&](const transport::incoming&) { got = "tail"; });
    t.add("a.*", "", [&](const transport::incoming&) { got = "star"; });
    t.add("a.>", "", [&](const transport::incoming&) { got = "tail2"; }); // new handler, same place
    CHECK(t.size() == 2);
    (*t.handler_for("a.b"))({});
    CHECK(got == "tail2");
    CHECK_FALSE(static_cast<bool>(t.handler_for("b.c")));
    t.set_fallback([&](const transport::incoming&) { got = "fallback"; });
    (*t.handler_for("b.c"))({});
    CHECK(got == "fallback");
    t.remove("a.>", "");
    (*t.handler_for("a.b"))({});
    CHECK(got == "star");
    t.add("a.b", "g", {});
    REQUIRE(t.all().size() == 2);
    CHECK(t.all().back().group == "g");
  }

  TEST_CASE("handler_cache: what handler_for gave, per topic, until the table changes") {
    subscription_table t;
    handler_cache c;
    std::string got;
    auto lookup = [&](std::string_view topic) { // as the client's dispatch does
      const handler_cache::shared_handler* h = c.find(topic, t.generation());
      if (!h) h = &c.put(topic, t.generation(), t.handler_for(topic));
      return *h;
    };
    CHECK(c.find("a.b", t.generation()) == nullptr); // nothing known yet
    t.add("a.*", "", [&](const transport::incoming&) { got = "star"; });
    (*lookup("a.b"))({});
    CHECK(got == "star");
    const handler_cache::shared_handler* known = c.find("a.b", t.generation());
    REQUIRE(known != nullptr);
    CHECK(known->get() == t.handler_for("a.b").get()); // the same handler, not a copy
    CHECK_FALSE(static_cast<bool>(lookup("b.c"))); // no handler: remembered as none
    REQUIRE(c.find("b.c", t.generation()) != nullptr);
    // every change of the table makes the cache look again
    t.set_fallback([&](const transport::incoming&) { got = "fallback"; });
    CHECK(c.find("b.c", t.generation()) == nullptr);
    (*lookup("b.c"))({});
    CHECK(got == "fallback");
    t.add("a.*", "", [&](const transport::incoming&) { got = "star2"; }); // a new handler, same subscription
    (*lookup("a.b"))({});
    CHECK(got == "star2");
    t.remove("a.*", "");
    (*lookup("a.b"))({});
    CHECK(got == "fallback");
    // a handler the cache holds outlives its subscription until the cache sees the change
    t.add("x.y", "", [&](const transport::incoming&) { got = "xy"; });
    const handler_cache::shared_handler held = lookup("x.y");
    t.remove("x.y", "");
    (*held)({});
    CHECK(got == "xy");
    CHECK(lookup("x.y").get() != held.get());
  }

  TEST_CASE("receipts: duplicates dropped unless our handler failed the first; ACK owed cumulatively; CREDIT at half the window") {
    receipts r(true, 4);
    r.connected();
    CHECK_FALSE(r.ack_owed());
    r.arrived(codec::msg_type::publish);
    CHECK(r.accept(data("t", 10, 1)));
    r.arrived(codec::msg_type::publish);
    CHECK_FALSE(r.accept(data("t", 11, 1))); // the same (source, id) again
    CHECK(r.accept(data("t", 12, 1, "other"))); // another source's id 1
    CHECK(r.accept(data("t", 13)));              // no id: never a duplicate
    const auto ack = r.ack_owed();
    REQUIRE(ack);
    CHECK(*ack == 13);
    CHECK_FALSE(r.ack_owed()); // owed once
    const auto credit = r.credit_owed(); // two data messages of a window of 4
    REQUIRE(credit);
    CHECK(*credit == 2);
    CHECK_FALSE(r.credit_owed());
    const auto failing = data("t", 20, 9);
    CHECK(r.accept(failing));
    r.failed(failing);
    CHECK(r.accept(data("t", 21, 9)));       // its redelivery is let through, once
    CHECK_FALSE(r.accept(data("t", 22, 9)));
    r.arrived(codec::msg_type::ack); // control frames take no window
    CHECK_FALSE(r.credit_owed());
    receipts plain(false, 0);
    CHECK(plain.accept(data("t", 1, 1)));
    CHECK_FALSE(plain.ack_owed()); // without acks nothing is owed
  }

  TEST_CASE("frame_queue: whole frames into one message while they fit, the rest stays in order") {
    frame_queue q;
    CHECK(q.empty());
    for (int i = 0; i < 5; ++i) {
      codec::message m;
      m.type = codec::msg_type::publish;
      m.set_topic("t");
      const std::string p = "m" + std::to_string(i);
      m.payload = codec::bytes_view(p);
      REQUIRE(q.append(m, 64 * 1024));
    }
    codec::message huge;
    huge.type = codec::msg_type::publish;
    huge.set_topic("t");
    const std::string big(2000, 'x');
    huge.payload = codec::bytes_view(big);
    CHECK_FALSE(q.append(huge, 1024)); // above the frame size: refused, nothing written
    transport::outbound_batch b(64 * 1024, 3);
    CHECK(q.take_into(b) == 3);
    CHECK_FALSE(q.empty());
    std::uint64_t seq = 0;
    const auto first = b.finish(seq);
    codec::decoder dec;
    codec::message bm;
    REQUIRE(dec.decode(first, bm));
    CHECK(bm.type == codec::msg_type::batch);
    b.clear();
    frame_queue other;
    q.move_to(other);
    CHECK(q.empty());
    CHECK(other.take_into(b) == 2);
    CHECK(other.empty());
    const auto second = b.finish(seq);
    codec::message sm;
    REQUIRE(dec.decode(second, sm));
    codec::batch_reader r(dec, sm);
    codec::message inner;
    REQUIRE(r.next(inner));
    CHECK(inner.payload.as_string() == "m3");
    CHECK(seq == 5);
  }

  TEST_CASE("send_pacing: sparse at a steady low rate, dense within a few messages of a burst") {
    send_pacing p;
    const std::int64_t want = 50'000; // 50 us
    std::int64_t t = 1'000'000'000;
    bool sparse = false;
    for (int i = 0; i < 20; ++i)
      sparse = p.sparse(t += 100'000, want); // 10 000 msgs/s
    CHECK(sparse);
    int dense_after = -1;
    for (int i = 0; i < 20 && dense_after < 0; ++i)
      if (!p.sparse(t += 1'000, want)) dense_after = i; // 1 M msgs/s
    CHECK(dense_after >= 0);
    CHECK(dense_after <= 4);
    CHECK_FALSE(send_pacing{}.sparse(t, -1)); // direct writes off
  }
}
