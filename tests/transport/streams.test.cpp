// Durable streams in the node (issue 23): a stream captures its topics' messages into its log, the
// frames as routed; an acknowledged publish to a captured topic is ACKed once the record is stored
// by the policy, and NACKed with store_failed when the stream cannot write it (a full disk); what
// was stored is there after the node stops and starts again.
#include <flowbus/actors/segment_log.hpp>
#include <flowbus/codec/decoder.hpp>

#include "test_support.hpp"
#include "transport/transport_support.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace flowbus;
using namespace flowbus::test;
using namespace std::chrono_literals;
using actors::errc;
namespace fs = std::filesystem;

namespace {

struct stream_dir : temp_dir {
  stream_dir() : temp_dir("streams") { fs::remove_all(path); } // the node creates it
};

actors::node_config with_stream(const fs::path& dir, actors::fsync_policy sync, std::vector<std::string> subjects) {
  actors::node_config c = small_node();
  actors::stream_config s;
  s.name = "orders";
  s.subjects = std::move(subjects);
  s.directory = dir;
  s.log.sync = sync;
  c.streams.push_back(s);
  return c;
}

/// The payloads stored in a stream's log, in order (the node must be stopped).
std::vector<std::string> stored_payloads(const fs::path& dir) {
  actors::segment_log log(dir / "orders", actors::log_options{});
  std::vector<std::string> out;
  log.read(0, SIZE_MAX, [&](const actors::log_record& r) {
    codec::decoder dec(codec::stored_frame_decoding());
    codec::message m;
    if (dec.decode(r.frame, m)) out.emplace_back(m.payload.as_string());
    return true;
  });
  return out;
}

} // namespace

TEST_SUITE("streams") {
  TEST_CASE("a stream stores its topics' messages; acked publishes are ACKed once stored; they survive a restart") {
    stream_dir d;
    {
      edge e({}, with_stream(d.path, actors::fsync_policy::always, {"orders.>"}));
      transport::client pub(client_opts(e.port(), "st-pub"));
      REQUIRE(pub.connect() == errc::ok);
      std::vector<std::future<errc>> acks;
      for (int i = 0; i < 300; ++i)
        acks.push_back(pub.publish_acked("orders.eu." + std::to_string(i % 3), "order-" + std::to_string(i)));
      REQUIRE(pub.publish("other.topic", "not captured") == errc::ok);
      for (auto& a : acks)
        REQUIRE(a.get() == errc::ok); // no subscriber at all: the stream is the recipient that confirms
      const auto st = e.node.streams();
      REQUIRE(st.size() == 1);
      CHECK(st[0].name == "orders");
      CHECK(st[0].durable >= 300); // every ACKed message is durable in the log by then
      CHECK(st[0].syncs >= 1);
      e.server.stop();
      e.node.shutdown();
      CHECK(e.node.streams()[0].records == 300);
    }
    const auto stored = stored_payloads(d.path);
    REQUIRE(stored.size() == 300);
    std::vector<std::string> want;
    for (int i = 0; i < 300; ++i)
      want.push_back("order-" + std::to_string(i));
    CHECK(stored == want); // in the order the publisher sent them, nothing else captured
    // a node started on the same directory goes on after what is there
    edge again({}, with_stream(d.path, actors::fsync_policy::group, {"orders.>"}));
    CHECK(again.node.streams()[0].records == 300);
    transport::client pub(client_opts(again.port(), "st-pub2"));
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(pub.publish_acked("orders.us.1", "after restart").get() == errc::ok);
    CHECK(again.node.streams()[0].last == 301);
  }

  TEST_CASE("with group commit an ACK waits for the group's sync") {
    stream_dir d;
    auto cfg = with_stream(d.path, actors::fsync_policy::group, {"orders.>"});
    cfg.streams[0].log.group_interval = 800ms;
    edge e({}, cfg);
    auto o = client_opts(e.port(), "st-pub");
    o.ack_timeout = 5s; // no redelivery while the group waits
    transport::client pub(o);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(pub.publish_acked("orders.1", "first").get() == errc::ok); // a quiet log syncs at once
    auto second = pub.publish_acked("orders.2", "second");
    CHECK(second.wait_for(200ms) == std::future_status::timeout); // stored, not yet synced: no ACK yet
    REQUIRE(second.get() == errc::ok);                           // the group's sync, within 800 ms
    CHECK(e.node.streams()[0].durable == 2);                     // an ACK means durable
    CHECK(e.node.streams()[0].records == 2);
  }

  TEST_CASE("subscribers get the messages as before: the stream is one more recipient") {
    stream_dir d;
    edge e({}, with_stream(d.path, actors::fsync_policy::group, {"orders.*"}));
    inbox in;
    transport::client sub(client_opts(e.port(), "st-sub")), pub(client_opts(e.port(), "st-pub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.subscribe("orders.*", in.handler()).get() == errc::ok);
    for (int i = 0; i < 50; ++i)
      REQUIRE(pub.publish_acked("orders.x", std::to_string(i)).get() == errc::ok);
    REQUIRE(eventually([&] { return in.size() == 50; }, 5s));
    CHECK(e.node.streams()[0].records == 50);
  }

  TEST_CASE("a stream that cannot write (a full disk) NACKs with store_failed, and the node goes on") {
    stream_dir d;
    edge e({}, with_stream(d.path, actors::fsync_policy::always, {"orders.>"}));
    inbox in;
    transport::client pub(client_opts(e.port(), "st-pub")), sub(client_opts(e.port(), "st-sub"));
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(sub.subscribe("orders.>", in.handler()).get() == errc::ok);
    REQUIRE(pub.publish_acked("orders.1", "fits").get() == errc::ok);
    errc refused = errc::ok;
    {
      file_size_limit full(4096); // the segment (a few hundred bytes) may not grow past this
      for (int i = 0; i < 50 && refused == errc::ok; ++i)
        refused = pub.publish_acked("orders.2", std::string(1000, 'x')).get();
    }
    CHECK(refused == errc::store_failed);
    CHECK(e.node.streams()[0].failures >= 1);
    REQUIRE(eventually([&] { return in.size() >= 2; }, 5s)); // the subscriber got them all the same
    REQUIRE(pub.publish_acked("orders.3", "room again").get() == errc::ok); // the disk has room: stored again
  }

  TEST_CASE("bad stream configs refuse the node with the reason") {
    stream_dir d;
    auto bad_name = with_stream(d.path, actors::fsync_policy::never, {"orders.>"});
    bad_name.streams[0].name = "no/slash";
    CHECK_THROWS_AS(actors::node{bad_name}, std::invalid_argument);
    CHECK_THROWS_AS(actors::node{with_stream(d.path, actors::fsync_policy::never, {"orders..x"})}, std::invalid_argument);
  }
}
