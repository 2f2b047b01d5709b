// End to end across processes: the node runs as its own process (`flowbus node`), agents connect
// to it over loopback from this one — pub/sub, request/reply, a queue group, bad input from one
// peer while the others go on, and reconnect after the node process is killed and started again.
#include "transport/node_process.hpp"
#include "transport/transport_support.hpp"

#include <flowbus/transport/client.hpp>
#include <flowbus/transport/reasons.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>


using namespace flowbus;
using namespace flowbus::test;
using actors::errc;

namespace {

} // namespace

TEST_SUITE("processes") {
  TEST_CASE("a node in its own process: pub/sub, request/reply and a queue group") {
    node_process node;
    inbox got;
    transport::client sub(client_opts(node.port, "p-sub", {"proc.>"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    transport::client pub(client_opts(node.port, "p-pub"));
    REQUIRE(pub.connect() == errc::ok);
    for (int i = 0; i < 100; ++i)
      REQUIRE(pub.publish("proc.data", std::to_string(i)) == errc::ok);
    REQUIRE(eventually([&] { return got.size() == 100; }));
    const auto all = got.all();
    for (int i = 0; i < 100; ++i)
      CHECK(all[static_cast<std::size_t>(i)] == std::to_string(i));

    // request/reply: a responder in this process, answered through the node's process
    REQUIRE(sub.subscribe("svc.echo", [&](const transport::incoming& req) {
                 sub.respond(req, "echo:" + std::string(req.payload));
               }).get() == errc::ok);
    auto r = pub.request(actors::destination::topic("svc.echo"), "hi", 3s).get();
    CHECK(r.code == errc::ok);
    CHECK(r.payload == "echo:hi");
    CHECK(r.source == "p-sub");
    CHECK(pub.request(actors::destination::topic("svc.nobody"), "?", 3s).get().code == errc::no_responders);

    // a queue group: each job to exactly one of its members, spread over all of them
    constexpr int members = 3, jobs = 90;
    std::vector<std::unique_ptr<transport::client>> workers;
    std::vector<std::unique_ptr<inbox>> boxes;
    for (int i = 0; i < members; ++i) {
      workers.push_back(std::make_unique<transport::client>(client_opts(node.port, "p-w" + std::to_string(i))));
      boxes.push_back(std::make_unique<inbox>());
      REQUIRE(workers.back()->connect() == errc::ok);
      REQUIRE(workers.back()->subscribe("jobs", boxes.back()->handler(), "workers").get() == errc::ok);
    }
    for (int i = 0; i < jobs; ++i)
      REQUIRE(pub.publish("jobs", std::to_string(i)) == errc::ok);
    REQUIRE(eventually([&] {
      std::size_t n = 0;
      for (auto& b : boxes)
        n += b->size();
      return n == jobs;
    }));
    std::this_thread::sleep_for(50ms); // nothing more comes: each job went to one member only
    std::size_t total = 0;
    for (auto& b : boxes) {
      CHECK(b->size() > 0);
      total += b->size();
    }
    CHECK(total == jobs);
    CHECK(node.stop(SIGTERM) == 0); // a drained, clean exit
  }

  TEST_CASE("bad input to a node process closes that connection only; the others go on") {
    node_process node;
    inbox got;
    transport::client sub(client_opts(node.port, "b-sub", {"ok.>"}));
    sub.on_message(got.handler());
    REQUIRE(sub.connect() == errc::ok);
    transport::client pub(client_opts(node.port, "b-pub"));
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(pub.publish("ok.before", "1") == errc::ok);

    raw_peer bad(node.port);
    bad.join("b-bad");
    const std::string junk = "this is not a FLOW frame, just some forty-odd bytes of text";
    bad.write_bytes(std::vector<codec::byte>(junk.begin(), junk.end()));
    const auto seen = bad.until_closed();
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back().type == codec::msg_type::error);
    CHECK(seen.back().error_code == static_cast<std::uint64_t>(codec::errc::bad_magic));
    CHECK(bad.closed());
    CHECK(bad.close_code() == websocket::close_code::protocol_error);

    REQUIRE(pub.publish("ok.after", "2") == errc::ok);
    REQUIRE(eventually([&] { return got.size() == 2; }));
    CHECK(got.all() == std::vector<std::string>{"1", "2"});
    CHECK(sub.stats().connects == 1);
    CHECK(pub.stats().connects == 1);
  }

  TEST_CASE("the node process killed and started again: clients reconnect, re-register and re-subscribe") {
    auto node = std::make_unique<node_process>();
    const std::uint16_t port = node->port;
    inbox got;
    transport::client sub(quick_reconnect_opts(port, "r-sub"));
    REQUIRE(sub.connect() == errc::ok);
    REQUIRE(sub.subscribe("again.>", got.handler()).get() == errc::ok);
    transport::client pub(quick_reconnect_opts(port, "r-pub"));
    REQUIRE(pub.connect() == errc::ok);
    REQUIRE(pub.publish("again.one", "before") == errc::ok);
    REQUIRE(eventually([&] { return got.size() == 1; }));

    node->stop(SIGKILL); // no GOODBYE, no close handshake: the sockets just die
    REQUIRE(eventually([&] { return !sub.connected() && !pub.connected(); }));
    node = std::make_unique<node_process>(port); // the same address
    REQUIRE(eventually([&] { return sub.connected() && pub.connected(); }, 10s));
    CHECK(sub.stats().connects == 2);
    // the subscription was made again on the new node: a message published now arrives
    REQUIRE(eventually(
        [&] {
          (void)pub.publish("again.two", "after");
          return got.size() >= 2;
        },
        10s));
    CHECK(got.all()[1] == "after");
  }
}
