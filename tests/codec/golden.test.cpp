// Golden vectors: the hex examples in docs/protocol.md are read from the document itself, so the
// document and the code cannot drift apart. Each example is (1) produced byte for byte by the
// encoder from the inputs the document states and (2) decoded back with its fields checked.
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/codec/trace.hpp>

#include "codec/codec_test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

using namespace flowbus::codec;

namespace {

constexpr std::uint64_t t0 = 1'700'000'000'000'000'000ull; // 2023-11-14T22:13:20Z

std::map<std::string, std::vector<byte>> load_golden() {
  std::ifstream in(std::string(FLOWBUS_SOURCE_DIR) + "/docs/protocol.md");
  REQUIRE_MESSAGE(in.good(), "docs/protocol.md not found");
  std::map<std::string, std::vector<byte>> out;
  std::string line, name, hex;
  bool in_block = false;
  while (std::getline(in, line)) {
    const std::string tag = "<!-- golden:";
    if (line.rfind(tag, 0) == 0) {
      name = line.substr(tag.size(), line.find(' ', tag.size()) - tag.size());
    } else if (!name.empty() && line == "```hex") {
      in_block = true;
      hex.clear();
    } else if (in_block && line == "```") {
      out[name] = test::from_hex(hex);
      in_block = false;
      name.clear();
    } else if (in_block) {
      hex += line.substr(0, line.find('#')) + " "; // '#' starts an annotation
    }
  }
  return out;
}

// The example conversation of docs/protocol.md. Client -> node frames share one encoder
// (one direction of one connection), node -> client frames another.
struct example {
  std::string name;
  bool from_node;
  std::vector<byte> frame;
};

std::vector<example> build_examples() {
  // node -> agent frames as the node's sessions write them (transport/src/session.cpp,
  // node_encoder): strings always literal — the node never defines pool entries towards an agent
  encoder_options literal;
  literal.pool_strings = false;
  encoder client, node(literal);
  std::vector<example> out;
  std::vector<byte> buf(4096);
  auto add = [&](const std::string& name, bool from_node, message m) {
    const encode_result r = (from_node ? node : client).encode(m, buf.data(), buf.size());
    REQUIRE(r);
    out.push_back({name, from_node, std::vector<byte>(buf.begin(), buf.begin() + r.size)});
  };

  static const repeated_entry reg_rep[] = {{field::capability, "summarize", {}}, {field::subscription, "tasks.>", {}}};
  message reg;
  reg.type = msg_type::register_agent;
  reg.prio = priority::high;
  reg.timestamp_ns = t0;
  reg.set(field::source, "agent-7").set(field::agent_type, "worker").set(field::heartbeat_ms, std::uint64_t{1000});
  reg.repeated = repeated_fields(reg_rep, 2);
  add("register", false, reg);

  message welcome;
  welcome.type = msg_type::welcome;
  welcome.prio = priority::critical; // every frame of the node's own (control) is CRITICAL
  welcome.timestamp_ns = t0 + 150'000;
  welcome.set(field::target, "agent-7");
  add("welcome", true, welcome);

  message sub;
  sub.type = msg_type::subscribe;
  sub.timestamp_ns = t0 + 200'000;
  sub.set_topic("tasks.*.new").set(field::queue_group, "workers");
  add("subscribe", false, sub);

  static const char doc42[] = "summarize doc 42";
  message task;
  task.type = msg_type::task_assignment;
  task.prio = priority::high;
  task.flags = flag::ack_requested;
  task.timestamp_ns = t0 + 1'000'000;
  task.set_topic("tasks.eu.new").set(field::source, "agent-7").set(field::message_id, std::uint64_t{1001});
  task.set(field::correlation_id, std::uint64_t{42}).set(field::deadline, t0 + 51'000'000);
  task.payload = bytes_view(doc42, sizeof doc42 - 1);
  add("task", false, task);

  static const char doc43[] = "summarize doc 43";
  message task2 = task;
  task2.timestamp_ns = t0 + 2'000'000;
  task2.set(field::message_id, std::uint64_t{1002}).set(field::correlation_id, std::uint64_t{43});
  task2.set(field::deadline, t0 + 52'000'000);
  task2.payload = bytes_view(doc43, sizeof doc43 - 1);
  add("task_pooled", false, task2);

  message hb;
  hb.type = msg_type::heartbeat;
  hb.prio = priority::critical;
  hb.timestamp_ns = t0 + 3'000'000;
  add("heartbeat", false, hb);

  {
    batch_builder b(client, buf.data(), buf.size());
    message a;
    a.type = msg_type::task_result;
    a.timestamp_ns = t0 + 4'000'000;
    a.set_topic("results.agent-7").set(field::correlation_id, std::uint64_t{42});
    a.payload = bytes_view("ok", 2);
    REQUIRE(b.add(a) == errc::ok);
    a.timestamp_ns = t0 + 4'000'100;
    a.set(field::correlation_id, std::uint64_t{43});
    a.payload = bytes_view("ok", 2);
    REQUIRE(b.add(a) == errc::ok);
    const encode_result r = b.finish();
    REQUIRE(r);
    out.push_back({"batch", false, std::vector<byte>(buf.begin(), buf.begin() + r.size)});
  }

  static const repeated_entry err_rep[] = {{field::header, "reason", "checksum mismatch"}};
  message err;
  err.type = msg_type::error;
  err.prio = priority::critical;
  err.timestamp_ns = t0 + 5'000'000;
  err.set(field::error_code, static_cast<std::uint64_t>(errc::checksum_mismatch));
  err.repeated = repeated_fields(err_rep, 1);
  add("error", true, err);
  static const repeated_entry pub_rep[] = {{field::header, "trace-id", "4bf92f35"}};
  message pub;
  pub.type = msg_type::publish;
  pub.prio = priority::low;
  pub.timestamp_ns = t0 + 6'000'000;
  pub.set_topic("agent.worker.7.status").set(field::source, "agent-7");
  pub.repeated = repeated_fields(pub_rep, 1);
  pub.payload = bytes_view("idle", 4);
  add("publish", false, pub);

  message req;
  req.type = msg_type::request;
  req.timestamp_ns = t0 + 7'000'000;
  req.set(field::target, "planner-1").set(field::correlation_id, std::uint64_t{77});
  req.set(field::reply_to, "_inbox.agent-7").set(field::source, "agent-7");
  req.payload = bytes_view("plan?", 5);
  add("request", false, req);

  message rep;
  rep.type = msg_type::reply;
  rep.timestamp_ns = t0 + 7'400'000;
  // as the node delivers it: to the requester's id (the REQUEST's reply_to, which the node set)
  rep.set(field::target, "agent-7").set(field::correlation_id, std::uint64_t{77}).set(field::source, "planner-1");
  rep.payload = bytes_view("plan!", 5);
  add("reply", true, rep);

  message ack;
  ack.type = msg_type::ack;
  ack.prio = priority::critical;
  ack.timestamp_ns = t0 + 8'000'000;
  ack.set(field::message_id, std::uint64_t{1001});
  add("ack", true, ack);

  message nack;
  nack.type = msg_type::nack;
  nack.prio = priority::critical;
  nack.timestamp_ns = t0 + 8'100'000;
  nack.set(field::message_id, std::uint64_t{1002}).set(field::error_code, std::uint64_t{99}); // 96 + no responders
  add("nack", true, nack);

  message credit;
  credit.type = msg_type::credit;
  credit.prio = priority::critical;
  credit.timestamp_ns = t0 + 8'200'000;
  credit.set(field::credit, std::uint64_t{0}); // the node's CREDIT is a switch: 0 hold, 1 go on
  add("credit", true, credit);

  message coord;
  coord.type = msg_type::coordination;
  coord.flags = flag::broadcast;
  coord.timestamp_ns = t0 + 9'000'000;
  coord.set(field::agent_type, "worker").set(field::source, "agent-7").set(field::hop_count, std::uint64_t{1});
  coord.set(field::attempt, std::uint64_t{2});
  coord.payload = bytes_view("rebalance", 9);
  add("coordination", false, coord);

  message unsub;
  unsub.type = msg_type::unsubscribe;
  unsub.timestamp_ns = t0 + 9'500'000;
  unsub.set_topic("tasks.*.new");
  add("unsubscribe", false, unsub);

  message bye;
  bye.type = msg_type::goodbye;
  bye.timestamp_ns = t0 + 10'000'000;
  add("goodbye", false, bye);

  // the node writes a sampled PUBLISH to its subscriber: the agent's send time and the node's
  // receive time 25 µs later in field 23 trace (§14), TRACED set
  std::string hops;
  append_hop(hops, hop::client_send, t0 + 11'000'000);
  append_hop(hops, hop::node_in, t0 + 11'025'000);
  message traced;
  traced.type = msg_type::publish;
  traced.timestamp_ns = t0 + 11'000'000;
  traced.set_topic("jobs.done").set(field::source, "w-1").set(field::trace, hops);
  traced.payload = bytes_view("ok", 2);
  add("traced", true, traced);

  // the stream API (§15): a REQUEST to the agent $streams, JSON in the payload
  message sadd;
  sadd.type = msg_type::request;
  sadd.timestamp_ns = t0 + 12'000'000;
  sadd.set(field::target, "$streams").set(field::correlation_id, std::uint64_t{90}).set(field::source, "agent-7");
  static const char add_json[] = R"({"op":"stream.add","name":"jobs","subjects":["jobs.>"],"fsync":"always"})";
  sadd.payload = bytes_view(add_json, sizeof add_json - 1);
  add("stream_add", false, sadd);

  // a consumer's delivery as the node writes it: a REQUEST from $stream.jobs to the consumer's
  // deliver_to topic, the record's first publish time, its place in the stream in headers, and a
  // correlation id that is the delivery's token (consumer 1, sequence 1)
  static const repeated_entry delivery_headers[] = {
      {field::header, "stream", "jobs"},          {field::header, "stream-seq", "1"},
      {field::header, "stream-time", "1700000000013000000"},
      {field::header, "stream-topic", "jobs.b"},  {field::header, "stream-source", "agent-7"},
      {field::header, "stream-consumer", "proc"}, {field::header, "stream-deliveries", "1"}};
  message sdel;
  sdel.type = msg_type::request;
  sdel.timestamp_ns = t0 + 13'000'000;
  sdel.set_topic("work.jobs").set(field::correlation_id, (std::uint64_t{1} << 48) | 1);
  sdel.set(field::reply_to, "$stream.jobs").set(field::source, "$stream.jobs");
  sdel.repeated = repeated_fields(delivery_headers, 7);
  sdel.payload = bytes_view("job-0", 5);
  add("stream_delivery", true, sdel);

  // the worker's ack: an empty REPLY with the delivery's correlation id
  message sack;
  sack.type = msg_type::reply;
  sack.timestamp_ns = t0 + 14'000'000;
  sack.set(field::target, "$stream.jobs").set(field::correlation_id, (std::uint64_t{1} << 48) | 1);
  sack.set(field::source, "agent-7");
  add("stream_ack", false, sack);
  return out;
}

} // namespace

TEST_SUITE("golden") {

  TEST_CASE("the encoder writes exactly the bytes docs/protocol.md shows") {
    const auto golden = load_golden();
    for (const example& e : build_examples()) {
      CAPTURE(e.name);
      const auto it = golden.find(e.name);
      CHECK_MESSAGE(it != golden.end(), "docs/protocol.md lacks golden:", e.name, "; encoder gives:\n",
                    test::to_hex(e.frame.data(), e.frame.size()));
      if (it == golden.end()) continue;
      CHECK_MESSAGE(it->second == e.frame, "encoder gives:\n", test::to_hex(e.frame.data(), e.frame.size()));
    }
  }

  TEST_CASE("the documented examples decode to what the document says") {
    const auto g = load_golden();
    for (std::string n :
         {"register", "welcome", "subscribe", "task", "task_pooled", "heartbeat", "batch", "error", "publish",
          "request", "reply", "ack", "nack", "credit", "coordination", "unsubscribe", "goodbye"})
      REQUIRE_MESSAGE(g.count(n), "missing golden:", n);
    decoder from_client, from_node;
    message m;
    auto dec = [&](decoder& d, const char* name) {
      const auto& f = g.at(name);
      const decode_status s = d.decode(bytes_view(f.data(), f.size()), m);
      REQUIRE_MESSAGE(s, name, ": ", to_string(s.code), " at ", s.offset);
    };

    dec(from_client, "register");
    CHECK(m.type == msg_type::register_agent);
    CHECK(m.prio == priority::high);
    CHECK(m.sequence == 0);
    CHECK(m.timestamp_ns == t0);
    CHECK(m.str(field::source) == "agent-7");
    CHECK(m.str(field::agent_type) == "worker");
    CHECK(m.num(field::heartbeat_ms) == 1000);
    REQUIRE(m.repeated.size() == 2);
    CHECK(m.repeated.begin()->id == field::capability);
    CHECK(m.repeated.begin()->key == "summarize");
    CHECK(from_client.pool().size() == 4); // agent-7, worker, summarize, tasks.>

    dec(from_node, "welcome");
    CHECK(m.type == msg_type::welcome);
    CHECK(m.str(field::target) == "agent-7");
    CHECK(m.sequence == 0);

    dec(from_client, "subscribe");
    CHECK(m.type == msg_type::subscribe);
    CHECK(m.topic() == "tasks.*.new");
    CHECK(m.str(field::queue_group) == "workers");
    CHECK(m.sequence == 1);

    dec(from_client, "task");
    CHECK(m.type == msg_type::task_assignment);
    CHECK(m.flags == (flag::ack_requested | flag::has_deadline));
    CHECK(m.topic() == "tasks.eu.new");
    CHECK(m.str(field::source) == "agent-7"); // a pool reference to the REGISTER's definition
    CHECK(m.message_id() == 1001);
    CHECK(m.correlation_id() == 42);
    CHECK(m.deadline_ns() == t0 + 51'000'000);
    CHECK(m.payload.as_string() == "summarize doc 42");
    const std::size_t task_size = g.at("task").size();

    dec(from_client, "task_pooled");
    CHECK(m.topic() == "tasks.eu.new");
    CHECK(m.message_id() == 1002);
    CHECK(m.payload.as_string() == "summarize doc 43");
    CHECK(g.at("task_pooled").size() < task_size); // the topic went as an id

    dec(from_client, "heartbeat");
    CHECK(m.type == msg_type::heartbeat);
    CHECK(m.prio == priority::critical);
    CHECK(m.frame_size == 40);

    dec(from_client, "batch");
    CHECK(m.type == msg_type::batch);
    CHECK(m.sequence == 5);
    batch_reader br(from_client, m);
    message inner;
    REQUIRE(br.next(inner));
    CHECK(inner.type == msg_type::task_result);
    CHECK(inner.sequence == 5);
    CHECK(inner.topic() == "results.agent-7");
    CHECK(inner.correlation_id() == 42);
    REQUIRE(br.next(inner));
    CHECK(inner.sequence == 6);
    CHECK(inner.correlation_id() == 43);
    CHECK(inner.topic() == "results.agent-7");
    CHECK(br.done());

    dec(from_node, "error");
    CHECK(m.type == msg_type::error);
    CHECK(m.num(field::error_code) == static_cast<std::uint64_t>(errc::checksum_mismatch));
    REQUIRE(m.repeated.size() == 1);
    CHECK(m.repeated.begin()->key == "reason");
    CHECK(m.repeated.begin()->value == "checksum mismatch");

    // what the node sends: literal strings, its own frames at CRITICAL, a REPLY to the requester
    dec(from_node, "reply");
    CHECK(m.type == msg_type::reply);
    CHECK(m.str(field::target) == "agent-7");
    CHECK_FALSE(m.has(field::topic));
    CHECK(m.correlation_id() == 77);
    dec(from_node, "ack");
    CHECK(m.prio == priority::critical);
    CHECK(m.message_id() == 1001);
    dec(from_node, "nack");
    CHECK(m.prio == priority::critical);
    CHECK(m.num(field::error_code) == 99);
    dec(from_node, "credit");
    CHECK(m.prio == priority::critical);
    CHECK(m.num(field::credit) == 0);
  }
}
