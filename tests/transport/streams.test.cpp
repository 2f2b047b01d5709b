// Durable streams in the node (issue 23): a stream captures its topics' messages into its log, the
// frames as routed; an acknowledged publish to a captured topic is ACKed once the record is stored
// by the policy, and NACKed with store_failed when the stream cannot write it (a full disk); what
// was stored is there after the node stops and starts again.
#include <flowbus/actors/segment_log.hpp>
#include <flowbus/actors/stream_settings.hpp>
#include <flowbus/codec/decoder.hpp>

#include "test_support.hpp"
#include "transport/transport_support.hpp"
#include <flowbus/transport/structured_file.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
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

/// Asks the node's stream API ($streams) and parses its answer.
nlohmann::json ask(transport::client& c, const nlohmann::json& request) {
  const transport::reply_result r =
      c.request(transport::destination::agent("$streams"), request.dump(), std::chrono::milliseconds(5000)).get();
  REQUIRE_MESSAGE(r.code == errc::ok, "the stream API did not answer: ", actors::to_string(r.code));
  return nlohmann::json::parse(r.payload);
}

/// Workers in one queue group on a consumer's deliver topic: each acks what it gets, and the
/// stream sequence numbers (header stream-seq) are kept per worker.
struct workers {
  std::mutex m;
  std::map<std::string, std::vector<std::uint64_t>> got; ///< worker -> sequence numbers
  std::map<std::uint64_t, std::string> topics;           ///< sequence -> header stream-topic
  std::vector<std::unique_ptr<transport::client>> clients;
  workers(std::uint16_t port, int n, const std::string& deliver) {
    for (int i = 0; i < n; ++i) {
      const std::string id = "st-worker-" + std::to_string(i);
      auto& c = *clients.emplace_back(std::make_unique<transport::client>(client_opts(port, id)));
      REQUIRE(c.connect() == errc::ok);
      REQUIRE(c.subscribe(deliver, [this, &c, id](const transport::incoming& in) {
                   {
                     std::lock_guard<std::mutex> g(m);
                     const std::uint64_t seq = std::stoull(std::string(in.header("stream-seq")));
                     got[id].push_back(seq);
                     topics[seq] = std::string(in.header("stream-topic"));
                   }
                   c.respond(in, ""); // the ack
                 }, "workers").get() == errc::ok);
    }
  }
  std::set<std::uint64_t> all() {
    std::lock_guard<std::mutex> g(m);
    std::set<std::uint64_t> out;
    for (const auto& [w, seqs] : got)
      out.insert(seqs.begin(), seqs.end());
    return out;
  }
  std::size_t deliveries() {
    std::lock_guard<std::mutex> g(m);
    std::size_t n = 0;
    for (const auto& [w, seqs] : got)
      n += seqs.size();
    return n;
  }
};

} // namespace

TEST_SUITE("streams") {
  TEST_CASE("the stream API: an agent adds a stream and a consumer; a queue group shares it; all survives a restart") {
    stream_dir d;
    actors::node_config cfg = small_node();
    cfg.stream_directory = d.path.string();
    {
      edge e({}, cfg);
      transport::client admin(client_opts(e.port(), "st-admin"));
      REQUIRE(admin.connect() == errc::ok);
      const auto added = ask(admin, {{"op", "stream.add"}, {"name", "jobs"}, {"subjects", {"jobs.>"}}, {"fsync", "always"}});
      REQUIRE_MESSAGE(added.contains("stream"), added.dump());
      CHECK(added["stream"]["fsync"] == "always");
      CHECK(ask(admin, {{"op", "stream.add"}, {"name", "jobs"}, {"subjects", {"other.>"}}})["error"]["code"] == "exists");
      CHECK(ask(admin, {{"op", "stream.add"}, {"name", "bad/name"}, {"subjects", {"x"}}})["error"]["code"] == "bad_request");
      CHECK(ask(admin, {{"op", "nonsense"}})["error"]["code"] == "bad_request");
      CHECK(ask(admin, {{"op", "stream.info"}, {"name", "none"}})["error"]["code"] == "not_found");
      // a consumer may not deliver into the stream it reads (it would store its own deliveries)
      CHECK(ask(admin, {{"op", "consumer.add"}, {"stream", "jobs"},
                        {"consumer", {{"name", "loop"}, {"deliver_to", "jobs.again"}}}})["error"]["code"] == "bad_request");

      transport::client pub(client_opts(e.port(), "st-pub"));
      REQUIRE(pub.connect() == errc::ok);
      std::vector<std::future<errc>> acks;
      for (int i = 0; i < 100; ++i)
        acks.push_back(pub.publish_acked(i % 2 ? "jobs.a" : "jobs.b", "job-" + std::to_string(i)));
      for (auto& a : acks)
        REQUIRE(a.get() == errc::ok);

      workers w(e.port(), 2, "work.jobs");
      const auto c = ask(admin, {{"op", "consumer.add"}, {"stream", "jobs"},
                                 {"consumer", {{"name", "proc"}, {"deliver_to", "work.jobs"}, {"max_in_flight", 16}}}});
      REQUIRE_MESSAGE(c.contains("consumer"), c.dump());
      REQUIRE(eventually([&] { return w.all().size() == 100; }, 10s));
      CHECK(w.all() == [] { std::set<std::uint64_t> s; for (std::uint64_t i = 1; i <= 100; ++i) s.insert(i); return s; }());
      CHECK(w.topics[1] == "jobs.b");
      CHECK(w.topics[2] == "jobs.a");
      CHECK(w.got.size() == 2); // both workers took a share
      REQUIRE(eventually([&] {
        const auto info = ask(admin, {{"op", "consumer.info"}, {"stream", "jobs"}, {"name", "proc"}});
        return info["consumer"]["acked"] == 100 && info["consumer"]["pending"] == 0;
      }, 5s));
      CHECK(w.deliveries() == 100); // each once: every ack arrived within its wait
      const auto ls = ask(admin, {{"op", "stream.ls"}});
      REQUIRE(ls["streams"].size() == 1);
      CHECK(ls["streams"][0]["records"] == 100);
      CHECK(ls["streams"][0]["consumers"][0]["ack_floor"] == 100);
      e.server.stop();
      e.node.shutdown();
    }
    // started again on the directory alone: the stream and its consumer's position are back
    edge e({}, cfg);
    REQUIRE(e.node.streams().size() == 1);
    CHECK(e.node.streams()[0].records == 100);
    REQUIRE(e.node.streams()[0].consumers.size() == 1);
    CHECK(e.node.streams()[0].consumers[0].next == 101);
    workers w(e.port(), 1, "work.jobs");
    transport::client pub(client_opts(e.port(), "st-pub"));
    REQUIRE(pub.connect() == errc::ok);
    for (int i = 0; i < 10; ++i)
      REQUIRE(pub.publish_acked("jobs.c", "late-" + std::to_string(i)).get() == errc::ok);
    REQUIRE(eventually([&] { return w.deliveries() >= 10; }, 10s));
    std::this_thread::sleep_for(200ms);
    CHECK(w.all() == [] { std::set<std::uint64_t> s; for (std::uint64_t i = 101; i <= 110; ++i) s.insert(i); return s; }());
    transport::client admin(client_opts(e.port(), "st-admin"));
    REQUIRE(admin.connect() == errc::ok);
    CHECK(ask(admin, {{"op", "stream.rm"}, {"name", "jobs"}})["ok"] == true);
    CHECK_FALSE(fs::exists(d.path / "jobs"));
    CHECK(e.node.streams().empty());
  }

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

  TEST_CASE("a memory stream: acked, consumed, nothing on disk, empty again after a restart") {
    stream_dir d;
    actors::node_config cfg = small_node();
    cfg.stream_directory = d.path.string();
    {
      edge e({}, cfg);
      transport::client c(client_opts(e.port(), "st-mem"));
      REQUIRE(c.connect() == errc::ok);
      const auto added = ask(c, {{"op", "stream.add"}, {"name", "ram"}, {"subjects", {"ram.>"}}, {"storage", "memory"}});
      REQUIRE_MESSAGE(added.contains("stream"), added.dump());
      CHECK(added["stream"]["storage"] == "memory");
      for (int i = 0; i < 50; ++i)
        REQUIRE(c.publish_acked("ram.x", "m" + std::to_string(i)).get() == errc::ok);
      workers w(e.port(), 1, "work.ram");
      ask(c, {{"op", "consumer.add"}, {"stream", "ram"}, {"consumer", {{"name", "all"}, {"deliver_to", "work.ram"}}}});
      REQUIRE(eventually([&] { return w.all().size() == 50; }, 10s));
      CHECK(e.node.streams()[0].syncs == 0);
      CHECK(e.node.streams()[0].inline_steps > 0); // sparse pushes: served on the pushing thread
      std::size_t files = 0;
      for (const auto& f : fs::recursive_directory_iterator(d.path))
        files += f.is_regular_file() && f.path().filename() != "stream.json";
      CHECK(files == 0); // only its settings are on disk
      e.server.stop();
      e.node.shutdown();
    }
    edge e({}, cfg);
    REQUIRE(e.node.streams().size() == 1); // the stream is back, empty, and without consumers
    CHECK(e.node.streams()[0].records == 0);
    CHECK(e.node.streams()[0].in_memory);
    CHECK(e.node.streams()[0].consumers.empty());
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

  TEST_CASE("a stream holds its publisher when it falls behind: a burst far beyond its mailbox is all stored") {
    stream_dir d;
    edge e({}, with_stream(d.path, actors::fsync_policy::always, {"burst.>"})); // slower than the publisher
    auto o = client_opts(e.port(), "st-burst");
    o.max_block = 30s; // a held publisher waits instead of being refused
    transport::client pub(o);
    REQUIRE(pub.connect() == errc::ok);
    constexpr int n = 200000; // its mailbox holds 65 536
    for (int i = 0; i < n; ++i)
      REQUIRE(pub.publish("burst.x", std::to_string(i)) == errc::ok);
    REQUIRE(eventually([&] { return e.node.streams()[0].records == n; }, 60s));
    CHECK(dead_letters_for(e.node, "$stream.orders") == 0);

    // the signal itself: a sender faster than the stream is told to hold (send_result::throttled)
    // once the stream's backlog passes half its mailbox, on a topic that is not --lossless
    auto fast = e.node.connect({"st-burst-inproc", "bench"});
    REQUIRE(fast);
    std::uint64_t sent = 0, throttled = 0;
    while (!throttled && sent < 5'000'000) {
      const auto r = (*fast)->publish("burst.y", "x");
      REQUIRE_MESSAGE(r.code == errc::ok, std::string(actors::to_string(r.code)), " after ", sent);
      ++sent;
      throttled += r.throttled;
    }
    CHECK(throttled > 0);
    REQUIRE(eventually([&] { return e.node.streams()[0].records == n + sent; }, 60s));
    CHECK(dead_letters_for(e.node, "$stream.orders") == 0);
  }

  TEST_CASE("a stream, in memory or in files, serves sparse pushes inline, and still holds a sender faster than it") {
    for (const bool in_memory : {true, false}) {
      CAPTURE(in_memory);
      stream_dir d;
      auto cfg = with_stream(d.path, actors::fsync_policy::never, {"ram.>"});
      cfg.streams[0].log.in_memory = in_memory;
      edge e({}, cfg);
      auto fast = e.node.connect({"st-ram-inproc", "bench"});
      REQUIRE(fast);
      std::uint64_t sent = 0, throttled = 0;
      while (!throttled && sent < 5'000'000) { // a flood: the stream's thread takes it, and falls behind
        const auto r = (*fast)->publish("ram.y", "x");
        REQUIRE_MESSAGE(r.code == errc::ok, std::string(actors::to_string(r.code)), " after ", sent);
        ++sent;
        throttled += r.throttled;
      }
      CHECK(throttled > 0);
      REQUIRE(eventually([&] { return e.node.streams()[0].records == sent; }, 60s));
      CHECK(dead_letters_for(e.node, "$stream.orders") == 0);
      const std::uint64_t inline_before = e.node.streams()[0].inline_steps;
      for (int i = 0; i < 20; ++i) { // sparse: each push finds the stream idle
        REQUIRE((*fast)->publish("ram.z", "sparse").code == errc::ok);
        std::this_thread::sleep_for(2ms);
      }
      REQUIRE(eventually([&] { return e.node.streams()[0].records == sent + 20; }, 10s));
      CHECK(e.node.streams()[0].inline_steps > inline_before);
      if (!in_memory) { // a file stream's inline rounds handed the bytes over: all of them reach the file
        REQUIRE(eventually([&] { return e.node.streams()[0].durable == sent + 20; }, 10s));
        e.node.shutdown();
        CHECK(stored_payloads(d.path).size() == sent + 20);
      }
    }
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

TEST_SUITE("streams") {
  // The dead-letter queues are streams of the API (docs/streams.md, "Dead-letter queues as
  // streams"): listed, described and read by consumers like a stream, each entry with why it died;
  // not removable; the consumer's position survives a restart like a stream consumer's.
  TEST_CASE("a dead-letter queue is a stream of the API: $dlq.<kind> is listed, consumed with its reason and acked") {
    temp_dir dlq("dlq-stream");
    actors::node_config cfg = small_node();
    cfg.dlq_directory = dlq.path.string(); // and no stream directory: the API serves the queues all the same
    struct seen {
      std::uint64_t seq;
      std::string payload, reason, recipient, stream, job;
      std::uint32_t deliveries;
    };
    std::mutex m;
    std::vector<seen> got;
    auto count = [&] {
      std::lock_guard<std::mutex> g(m);
      return got.size();
    };
    // dead-letters `n` tasks for an agent nobody runs, from `first` on
    auto dead_letter = [](transport::client& c, int first, int n) {
      for (int i = first; i < first + n; ++i) {
        const std::string job = std::to_string(i);
        const codec::repeated_entry h{codec::field::header, "job", job};
        transport::send_options o;
        o.headers = codec::repeated_fields(&h, 1);
        REQUIRE(c.send(transport::destination::agent("dq-absent"), "task-" + job, o) == errc::ok);
      }
    };
    // a watcher on dlq.watch: it NAKs the first delivery of "task-1" once, acks everything else
    auto watch = [&](std::uint16_t port) {
      auto c = std::make_unique<transport::client>(client_opts(port, "dq-watcher"));
      REQUIRE(c->connect() == errc::ok);
      transport::client* cp = c.get();
      REQUIRE(c->subscribe("dlq.watch", [&, cp](const transport::incoming& in) {
                   seen s{std::stoull(std::string(in.header("stream-seq"))),
                          std::string(in.payload),
                          std::string(in.header("dlq-reason")),
                          std::string(in.header("dlq-recipient")),
                          std::string(in.header("stream")),
                          std::string(in.header("job")),
                          static_cast<std::uint32_t>(std::stoul(std::string(in.header("stream-deliveries"))))};
                   {
                     std::lock_guard<std::mutex> g(m);
                     got.push_back(s);
                   }
                   cp->respond(in, s.payload == "task-1" && s.deliveries == 1 ? "-NAK" : "+ACK");
                 }).get() == errc::ok);
      return c;
    };
    {
      edge e({}, cfg);
      transport::client admin(client_opts(e.port(), "dq-admin"));
      REQUIRE(admin.connect() == errc::ok);
      const auto ls = ask(admin, {{"op", "stream.ls"}});
      REQUIRE(ls["streams"].size() == actors::dlq_kind_count);
      CHECK(ls["streams"][1]["name"] == "$dlq.agent_unavailable");
      CHECK(ls["streams"][1]["dlq"] == "agent_unavailable");
      CHECK(ls["streams"][1]["records"] == 0);
      CHECK(ask(admin, {{"op", "stream.rm"}, {"name", "$dlq.poison"}})["error"]["code"] == "bad_request");
      CHECK(ask(admin, {{"op", "stream.add"}, {"name", "x"}, {"subjects", {"x"}}})["error"]["code"] == "bad_request");

      dead_letter(admin, 0, 3);
      // the sends are on their way to the node: the queue has them once the node has routed them
      REQUIRE(eventually([&] {
        return e.node.dlq_flush() &&
               ask(admin, {{"op", "stream.info"}, {"name", "$dlq.agent_unavailable"}})["stream"]["records"] == 3;
      }, 5s));
      const auto info = ask(admin, {{"op", "stream.info"}, {"name", "$dlq.agent_unavailable"}});
      CHECK(info["stream"]["records"] == 3);
      CHECK(info["stream"]["last"] == 3);

      auto watcher = watch(e.port());
      const auto added = ask(admin, {{"op", "consumer.add"},
                                     {"stream", "$dlq.agent_unavailable"},
                                     {"consumer", {{"name", "ops"}, {"deliver_to", "dlq.watch"}, {"backoff_ms", 1}}}});
      REQUIRE_MESSAGE(added.contains("consumer"), added.dump());
      REQUIRE(eventually([&] { return count() == 4; }, 10s)); // three, and task-1 again after its NAK
      {
        std::lock_guard<std::mutex> g(m);
        std::set<std::uint64_t> seqs;
        for (const seen& s : got) {
          seqs.insert(s.seq);
          CHECK(s.payload == "task-" + s.job); // the original payload and its application header
          CHECK(s.reason == "agent_unavailable");
          CHECK(s.recipient == "dq-absent");
          CHECK(s.stream == "$dlq.agent_unavailable");
        }
        CHECK(seqs == std::set<std::uint64_t>{1, 2, 3});
        CHECK(got.back().payload == "task-1");
        CHECK(got.back().deliveries == 2);
      }
      REQUIRE(eventually([&] {
        const auto c = ask(admin, {{"op", "consumer.info"}, {"stream", "$dlq.agent_unavailable"}, {"name", "ops"}});
        return c["consumer"]["acked"] == 3 && c["consumer"]["naked"] == 1 && c["consumer"]["pending"] == 0;
      }, 5s));
      // a dead letter that comes while the consumer is there is given to it at once
      dead_letter(admin, 3, 1);
      REQUIRE(eventually([&] { return count() == 5; }, 5s));
      // entries stay in their queue once acked: flowbus dlq list/replay/purge see them as before
      std::vector<actors::dlq_entry> listed;
      REQUIRE_FALSE(e.node.dlq_list(actors::dlq_kind::agent_unavailable, listed));
      CHECK(listed.size() == 4);
      REQUIRE_FALSE(e.node.dlq_purge(actors::dlq_kind::agent_unavailable));
      dead_letter(admin, 4, 1); // ids go on after a purge
      REQUIRE(eventually([&] { return count() == 6; }, 5s));
      {
        std::lock_guard<std::mutex> g(m);
        CHECK(got.back().seq == 5);
        CHECK(got.back().job == "4");
      }
      REQUIRE(eventually([&] {
        return ask(admin, {{"op", "consumer.info"}, {"stream", "$dlq.agent_unavailable"}, {"name", "ops"}})["consumer"]["ack_floor"] == 5;
      }, 5s));
      watcher->close();
      e.server.stop();
      e.node.shutdown();
    }
    // started again: the consumer is back at its position; only what is new is delivered
    edge e({}, cfg);
    transport::client admin(client_opts(e.port(), "dq-admin"));
    REQUIRE(admin.connect() == errc::ok);
    const auto c = ask(admin, {{"op", "consumer.info"}, {"stream", "$dlq.agent_unavailable"}, {"name", "ops"}});
    REQUIRE_MESSAGE(c.contains("consumer"), c.dump());
    CHECK(c["consumer"]["next"] == 6);
    auto watcher = watch(e.port());
    dead_letter(admin, 5, 1);
    REQUIRE(eventually([&] { return count() == 7; }, 10s));
    std::this_thread::sleep_for(200ms);
    std::lock_guard<std::mutex> g(m);
    CHECK(got.size() == 7);
    CHECK(got.back().seq == 6);
    CHECK(got.back().job == "5");
  }

  // flowbus node --streams-file (docs/streams.md, "Configured in a file"): streams each with its own
  // settings, in the shape stream.add takes them; TOML and JSON say the same; what is wrong is
  // refused naming the stream and the key.
  TEST_CASE("a streams file: each stream with its own settings, TOML as JSON; a wrong key, value or name is refused") {
    stream_dir d;
    temp_dir files("streams-file");
    const auto write = [&](const std::string& name, const std::string& text) {
      std::ofstream(files.path / name) << text;
      return (files.path / name).string();
    };
    const std::string toml = write("streams.toml", R"([[streams]]
name = "orders"
subjects = ["orders.>", "refunds.*"]
fsync = "always"
max_age_s = 604800

[[streams]]
name = "scratch"
subjects = ["tmp.>"]
storage = "memory"
max_records = 1000
)");
    const std::string json = write("streams.json", R"({"streams": [
  {"name": "orders", "subjects": ["orders.>", "refunds.*"], "fsync": "always", "max_age_s": 604800},
  {"name": "scratch", "subjects": ["tmp.>"], "storage": "memory", "max_records": 1000}]})");
    const auto from_toml = actors::streams_from_document(transport::read_json_or_toml(toml, "streams file"), d.path);
    const auto from_json = actors::streams_from_document(transport::read_json_or_toml(json, "streams file"), d.path);
    REQUIRE(from_toml.size() == 2);
    REQUIRE(from_json.size() == 2);
    for (const auto* list : {&from_toml, &from_json}) {
      const actors::stream_config& orders = (*list)[0];
      const actors::stream_config& scratch = (*list)[1];
      CHECK(orders.name == "orders");
      CHECK(orders.subjects == std::vector<std::string>{"orders.>", "refunds.*"});
      CHECK(orders.log.sync == actors::fsync_policy::always);
      CHECK(orders.log.max_age == std::chrono::seconds(604800));
      CHECK_FALSE(orders.log.in_memory);
      CHECK(orders.directory == d.path);
      CHECK(scratch.log.in_memory);
      CHECK(scratch.log.sync == actors::fsync_policy::group); // the default, as stream.add's
      CHECK(scratch.log.max_records == 1000);
    }
    const auto refusal = [&](const std::string& text) -> std::string {
      try {
        actors::streams_from_document(nlohmann::json::parse(text), d.path);
      } catch (const std::invalid_argument& e) {
        return e.what();
      }
      return "(accepted)";
    };
    CHECK(refusal(R"({"streams": [{"name": "a", "subjects": ["a"]}, {"name": "b", "subjects": ["b"], "max_age": 60}]})") ==
          "stream 2 (b): 'max_age': not a stream setting");
    CHECK(refusal(R"({"streams": [{"name": "a", "subjects": ["a"], "fsync": "sometimes"}]})") ==
          "stream 1 (a): 'fsync': always, group or never");
    CHECK(refusal(R"({"streams": [{"name": "a", "subjects": ["a"]}, {"name": "a", "subjects": ["b"]}]})") ==
          "stream 2 (a): a second stream of that name");
    CHECK(refusal(R"({"streams": [{"subjects": ["a"]}]})").rfind("stream 1: 'name'", 0) == 0);
    CHECK(refusal(R"({"stream": []})") == "'stream': unknown (the file holds \"streams\")");
    CHECK(refusal(R"({"streams": {"name": "a"}})") == "'streams': a list of streams ([[streams]] tables in TOML)");
    CHECK_THROWS_WITH_AS(transport::read_json_or_toml(write("bad.toml", "[[streams]\nname ="), "streams file"),
                         doctest::Contains("streams file"), std::runtime_error);

    // the node opens them with those settings
    actors::node_config cfg = small_node();
    cfg.stream_directory = d.path.string();
    cfg.streams = from_toml;
    edge e({}, cfg);
    transport::client admin(client_opts(e.port(), "sf-admin"));
    REQUIRE(admin.connect() == errc::ok);
    const auto orders = ask(admin, {{"op", "stream.info"}, {"name", "orders"}});
    CHECK(orders["stream"]["fsync"] == "always");
    CHECK(orders["stream"]["storage"] == "file");
    CHECK(orders["stream"]["subjects"] == nlohmann::json{"orders.>", "refunds.*"});
    CHECK(ask(admin, {{"op", "stream.info"}, {"name", "scratch"}})["stream"]["storage"] == "memory");
    REQUIRE(admin.publish_acked("refunds.r1", "refund").get() == errc::ok);
    CHECK(ask(admin, {{"op", "stream.info"}, {"name", "orders"}})["stream"]["records"] == 1);
  }
}
