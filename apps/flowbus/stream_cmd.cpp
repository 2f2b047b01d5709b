#include "stream_cmd.hpp"

#include "client_session.hpp"

#include <flowbus/codec/clock.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>

namespace flowbus::app {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using clk = std::chrono::steady_clock;
using transport::errc;

/// An answer of the stream API, or the exit code saying why there is none (said on stderr).
struct answer {
  json body;
  int rc = exit_ok;
};

answer ask(transport::client& c, const json& request) {
  const transport::reply_result r = c.request(transport::destination::agent("$streams"), request.dump(), 5s).get();
  if (r.code != errc::ok) {
    if (r.code == errc::no_responders || r.code == errc::agent_unavailable)
      std::fprintf(stderr, "flowbus stream: the node has no stream API (start it with --stream-dir, or --dlq-dir)\n");
    else
      std::fprintf(stderr, "flowbus stream: %s\n", transport::to_string(r.code));
    return {{}, exit_for(r.code)};
  }
  answer a;
  try {
    a.body = json::parse(r.payload);
  } catch (const json::exception&) {
    std::fprintf(stderr, "flowbus stream: the node answered what is not JSON: %s\n", r.payload.c_str());
    return {{}, exit_refused};
  }
  if (a.body.contains("error")) {
    std::fprintf(stderr, "flowbus stream: %s: %s\n", a.body["error"].value("code", "error").c_str(),
                 a.body["error"].value("description", "").c_str());
    a.rc = exit_refused;
  }
  return a;
}

/// Opens a session, asks once, prints the answer (JSON, or `show`'s text).
template <class Show> int ask_once(const connection_options& conn, const json& request, bool as_json, Show&& show) {
  session s = open_session(conn, "stream", false, false);
  if (!s.client) return s.rc;
  const answer a = ask(*s.client, request);
  s.client->close();
  if (a.rc != exit_ok) return a.rc;
  if (as_json)
    std::printf("%s\n", a.body.dump(2).c_str());
  else
    show(a.body);
  return exit_ok;
}

void show_stream(const json& s) {
  std::string subjects;
  for (const auto& p : s["subjects"])
    subjects += (subjects.empty() ? "" : ",") + p.get<std::string>();
  if (s.contains("dlq")) subjects = "dead letters (" + s["dlq"].get<std::string>() + ")";
  std::printf("stream %s: %s, %s, fsync %s; %llu records (%llu..%llu), %llu bytes, %zu consumers\n",
              s["name"].get<std::string>().c_str(), subjects.c_str(), s["storage"].get<std::string>().c_str(),
              s["fsync"].get<std::string>().c_str(), s["records"].get<unsigned long long>(),
              s["first"].get<unsigned long long>(), s["last"].get<unsigned long long>(),
              s["bytes"].get<unsigned long long>(), s["consumers"].size());
  for (const auto& c : s["consumers"])
    std::printf(
        "  consumer %s -> %s: next %llu, ack floor %llu, %llu pending, %llu acked, %llu redelivered, %llu dead%s\n",
        c["config"]["name"].get<std::string>().c_str(), c["config"]["deliver_to"].get<std::string>().c_str(),
        c["next"].get<unsigned long long>(), c["ack_floor"].get<unsigned long long>(),
        c["pending"].get<unsigned long long>(), c["acked"].get<unsigned long long>(),
        c["redelivered"].get<unsigned long long>(), c["dead"].get<unsigned long long>(),
        c["interest"].get<bool>() ? "" : " (nobody listening)");
}

/// A record as a consumer received it, copied out of the handler's views.
struct record {
  std::uint64_t seq = 0, timestamp_ns = 0, correlation_id = 0;
  std::string topic, payload, reply_to;
  codec::priority prio = codec::priority::normal;
  std::vector<std::pair<std::string, std::string>> headers; ///< the record's own (not stream-*)
};

/// An ephemeral consumer of `o.name` delivering to this session's agent, from the position the
/// options say, up to the newest record when it started (or `until`). Calls `each` for each record
/// in order, on this thread; `each` returns false to stop. Returns the exit code.
template <class Each>
int read_stream(const connection_options& conn, const stream_read_options& o, const std::string& command, Each&& each) {
  std::mutex m;
  std::condition_variable cv;
  std::deque<record> got;
  const auto direct = [&](const transport::incoming& in) {
    if (!in.is_request() || in.header("stream") != o.name) return;
    record r;
    r.seq = std::strtoull(std::string(in.header("stream-seq")).c_str(), nullptr, 10);
    r.timestamp_ns = in.timestamp_ns;
    r.correlation_id = in.correlation_id;
    r.topic = std::string(in.header("stream-topic"));
    r.payload = std::string(in.payload);
    r.reply_to = std::string(in.reply_to);
    r.prio = in.prio;
    for (const codec::repeated_entry& e : in.repeated)
      if (e.id == codec::field::header && e.key.rfind("stream", 0) != 0) r.headers.emplace_back(e.key, e.value);
    std::lock_guard<std::mutex> g(m);
    got.push_back(std::move(r));
    cv.notify_one();
  };
  session s = open_session(conn, command, false, false, direct);
  if (!s.client) return s.rc;
  transport::client& c = *s.client;
  const answer info = ask(c, {{"op", "stream.info"}, {"name", o.name}});
  if (info.rc != exit_ok) return info.rc;
  const std::uint64_t now = codec::wall_clock_ns();
  std::optional<std::uint64_t> since, until;
  if (!o.since.empty() && !(since = parse_time_ns(o.since, now))) {
    std::fprintf(stderr, "flowbus %s: --since %s: Unix seconds, or -Ns, -Nm, -Nh\n", command.c_str(), o.since.c_str());
    return exit_usage;
  }
  if (!o.until.empty() && !(until = parse_time_ns(o.until, now))) {
    std::fprintf(stderr, "flowbus %s: --until %s: Unix seconds, or -Ns, -Nm, -Nh\n", command.c_str(), o.until.c_str());
    return exit_usage;
  }
  const std::uint64_t last = info.body["stream"]["last"].get<std::uint64_t>();
  const std::string name = "cli-" + std::to_string(getpid());
  json consumer{{"name", name},         {"durable", false},     {"deliver_to", "agent:" + c.options().id},
                {"max_in_flight", 256}, {"ack_wait_ms", 30000}, {"inactive_ms", 2000}};
  if (!o.filter.empty()) consumer["filter"] = o.filter;
  if (o.from_seq)
    consumer["start_seq"] = o.from_seq;
  else if (since)
    consumer["start_time_ns"] = *since;
  const answer added = ask(c, {{"op", "consumer.add"}, {"stream", o.name}, {"consumer", consumer}});
  if (added.rc != exit_ok) return added.rc;
  std::uint64_t n = 0;
  bool done = last == 0 || (o.from_seq && o.from_seq > last);
  auto idle_since = clk::now();
  while (!done && !interrupted.load()) {
    std::unique_lock<std::mutex> g(m);
    if (!cv.wait_for(g, 200ms, [&] { return !got.empty(); })) {
      g.unlock();
      if (clk::now() - idle_since < 500ms) continue;
      // nothing for a while: a filter may have skipped the rest; done once the consumer passed `last`
      const answer ci = ask(c, {{"op", "consumer.info"}, {"stream", o.name}, {"name", name}});
      if (ci.rc != exit_ok) return ci.rc;
      done = ci.body["consumer"]["next"].get<std::uint64_t>() > last && ci.body["consumer"]["pending"] == 0;
      idle_since = clk::now();
      continue;
    }
    record r = std::move(got.front());
    got.pop_front();
    g.unlock();
    idle_since = clk::now();
    if (until && r.timestamp_ns > *until) break;
    if (r.seq <= last) { // what came after the start is not part of it
      if (!each(c, r)) break;
      ++n;
    }
    respond_later(c, r.reply_to, r.correlation_id, r.prio, ""); // the ack
    done = r.seq >= last || (o.count && n >= o.count);
  }
  ask(c, {{"op", "consumer.rm"}, {"stream", o.name}, {"name", name}});
  c.close();
  return exit_ok;
}

/// --speed: 1x, 10x, 0.5x...; max: 0 (no waiting). Nothing if it is neither.
std::optional<double> parse_speed(const std::string& s) {
  if (s == "max") return 0.0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v <= 0 || (*end != '\0' && std::string(end) != "x")) return std::nullopt;
  return v;
}

int run_replay(const connection_options& conn, const stream_read_options& o) {
  const std::optional<double> speed = parse_speed(o.speed);
  if (!speed) {
    std::fprintf(stderr, "flowbus stream replay: --speed %s: 1x, 10x, 0.5x... or max\n", o.speed.c_str());
    return exit_usage;
  }
  std::uint64_t first_ts = 0, last_ts = 0, replayed = 0, skipped = 0;
  clk::time_point start;
  const bool own_topic = o.to_topic.find("{topic}") != std::string::npos;
  const int rc = read_stream(conn, o, "stream replay", [&](transport::client& c, const record& r) {
    if (own_topic && r.topic.empty()) { // a dead letter sent to an agent: no topic to put in {topic}
      if (!skipped++)
        std::fprintf(stderr, "flowbus stream replay: record %llu was sent to an agent, not a topic: skipped\n",
                     static_cast<unsigned long long>(r.seq));
      return true;
    }
    if (!first_ts) {
      first_ts = r.timestamp_ns;
      start = clk::now();
    }
    last_ts = r.timestamp_ns;
    if (*speed > 0 && r.timestamp_ns > first_ts) // the original gap, scaled
      std::this_thread::sleep_until(start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                                static_cast<double>(r.timestamp_ns - first_ts) / *speed)));
    std::string topic = o.to_topic;
    if (const std::size_t at = topic.find("{topic}"); at != std::string::npos) topic.replace(at, 7, r.topic);
    const std::string of = o.name + "/" + std::to_string(r.seq);
    std::vector<codec::repeated_entry> headers;
    for (const auto& [k, v] : r.headers)
      headers.push_back({codec::field::header, k, v});
    headers.push_back({codec::field::header, "replay-of", of});
    transport::send_options so;
    so.prio = r.prio;
    so.headers = codec::repeated_fields(headers.data(), headers.size());
    const errc e = c.publish(topic, r.payload, so);
    if (e != errc::ok) {
      std::fprintf(stderr, "flowbus stream replay: record %llu to %s: %s\n", static_cast<unsigned long long>(r.seq),
                   topic.c_str(), transport::to_string(e));
      return false;
    }
    ++replayed;
    return true;
  });
  if (rc == exit_ok)
    std::fprintf(stderr, "flowbus stream replay: %llu records spanning %.3f s, replayed in %.3f s\n",
                 static_cast<unsigned long long>(replayed), static_cast<double>(last_ts - first_ts) / 1e9,
                 replayed ? std::chrono::duration<double>(clk::now() - start).count() : 0.0);
  if (rc == exit_ok && skipped) {
    std::fprintf(
        stderr,
        "flowbus stream replay: %llu records skipped: sent to an agent, they have no topic for {topic} "
        "(flowbus dlq replay re-sends dead letters to their agents; a --to-topic without {topic} takes them)\n",
        static_cast<unsigned long long>(skipped));
    return exit_refused;
  }
  return rc;
}

int run_view(const connection_options& conn, const stream_read_options& o) {
  std::uint64_t n = 0;
  return read_stream(conn, o, "stream view", [&](transport::client&, const record& r) {
    ++n;
    if (o.raw) {
      std::fwrite(r.payload.data(), 1, r.payload.size(), stdout);
      std::fputc('\n', stdout);
      return true;
    }
    json headers = json::object();
    for (const auto& [k, v] : r.headers)
      headers[k] = v;
    if (o.json) {
      json j{{"seq", r.seq}, {"topic", r.topic}, {"timestamp_ns", r.timestamp_ns}};
      if (!headers.empty()) j["headers"] = headers;
      try {
        j["payload"] = r.payload;
        std::printf("%s\n", j.dump().c_str());
      } catch (const json::exception&) { // not UTF-8
        j.erase("payload");
        j["payload_base64"] = base64(r.payload);
        std::printf("%s\n", j.dump().c_str());
      }
      return true;
    }
    std::printf("[%llu] %s (%.3f s ago)\n", static_cast<unsigned long long>(r.seq), r.topic.c_str(),
                static_cast<double>(codec::wall_clock_ns() - r.timestamp_ns) / 1e9);
    for (const auto& [k, v] : r.headers)
      std::printf("  %s: %s\n", k.c_str(), v.c_str());
    std::printf("%s\n\n", r.payload.c_str());
    return true;
  });
}

} // namespace

std::optional<std::uint64_t> parse_time_ns(const std::string& text, std::uint64_t now_ns) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  const std::string unit(end);
  if (text[0] == '-') {
    const double per = unit == "s" ? 1e9 : unit == "m" ? 60e9 : unit == "h" ? 3600e9 : 0;
    if (per == 0) return std::nullopt;
    const double back = -v * per;
    return back >= static_cast<double>(now_ns) ? 0 : now_ns - static_cast<std::uint64_t>(back);
  }
  if (!unit.empty() || v < 0) return std::nullopt;
  return static_cast<std::uint64_t>(v * 1e9);
}

stream_commands::stream_commands(CLI::App& app) {
  stream_cmd_ = app.add_subcommand(
      "stream", "a node's durable streams (its --stream-dir) and dead-letter queues ($dlq.<kind>; docs/streams.md)");
  stream_cmd_->require_subcommand(1);
  add_cmd_ = stream_cmd_->add_subcommand("add", "add a stream (the same settings again: nothing changes)");
  add_cmd_->add_option("name", add_.name, "the stream's name")->required();
  add_cmd_->add_option("--subject", add_.subjects, "a topic pattern it captures (repeatable)")->required();
  add_cmd_->add_option("--fsync", add_.fsync, "always, group or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "group", "never"}));
  add_cmd_->add_option("--storage", add_.storage, "file, or memory (lost when the node stops)")
      ->capture_default_str()
      ->check(CLI::IsMember({"file", "memory"}));
  add_cmd_->add_option("--group-ms", add_.group_ms, "group commit: at most this long between syncs")
      ->capture_default_str();
  add_cmd_->add_option("--segment-mb", add_.segment_mb, "segment files' size")->capture_default_str();
  add_cmd_->add_option("--max-bytes", add_.max_bytes, "retention: bytes kept (0: no limit)");
  add_cmd_->add_option("--max-records", add_.max_records, "retention: records kept (0: no limit)");
  add_cmd_->add_option("--max-age-s", add_.max_age_s, "retention: seconds kept (0: no limit)");
  ls_cmd_ = stream_cmd_->add_subcommand("ls", "the node's streams and their consumers");
  info_cmd_ = stream_cmd_->add_subcommand("info", "one stream and its consumers");
  info_cmd_->add_option("name", name_, "the stream")->required();
  rm_cmd_ = stream_cmd_->add_subcommand("rm", "remove a stream and delete its log");
  rm_cmd_->add_option("name", name_, "the stream")->required();

  cadd_cmd_ =
      stream_cmd_->add_subcommand("consumer-add", "add a durable consumer (or rebind one: it keeps its position)");
  cadd_cmd_->add_option("stream", consumer_.stream, "the stream")->required();
  cadd_cmd_->add_option("name", consumer_.name, "the consumer's name")->required();
  cadd_cmd_
      ->add_option("--deliver-to", consumer_.deliver_to, "a topic (a queue group on it shares the work) or agent:ID")
      ->required();
  cadd_cmd_->add_option("--filter", consumer_.filter, "only records whose topic matches this pattern");
  cadd_cmd_->add_option("--start", consumer_.start, "first, last or new")
      ->capture_default_str()
      ->check(CLI::IsMember({"first", "last", "new"}));
  cadd_cmd_->add_option("--from-seq", consumer_.start_seq, "start at this sequence number");
  cadd_cmd_->add_option("--since", consumer_.since, "start at this time: Unix seconds, or -Ns, -Nm, -Nh");
  cadd_cmd_->add_option("--ack-wait-ms", consumer_.ack_wait_ms, "redelivered if not acknowledged by then")
      ->capture_default_str();
  cadd_cmd_->add_option("--max-in-flight", consumer_.max_in_flight, "unacknowledged deliveries, at most")
      ->capture_default_str();
  cadd_cmd_->add_option("--max-deliver", consumer_.max_deliver, "deliveries before the poison DLQ (0: no limit)")
      ->capture_default_str();
  crm_cmd_ = stream_cmd_->add_subcommand("consumer-rm", "remove a consumer");
  crm_cmd_->add_option("stream", consumer_.stream, "the stream")->required();
  crm_cmd_->add_option("name", consumer_.name, "the consumer")->required();

  view_cmd_ = stream_cmd_->add_subcommand("view", "print a stream's records, from a position up to the newest");
  replay_cmd_ = stream_cmd_->add_subcommand(
      "replay", "publish a stream's records again with their original gaps (scaled by --speed), for debugging agents");
  for (CLI::App* cmd : {view_cmd_, replay_cmd_}) {
    cmd->add_option("name", read_.name, "the stream")->required();
    cmd->add_option("--from-seq", read_.from_seq, "from this sequence number (default: the oldest kept)");
    cmd->add_option("--since", read_.since, "from this time: Unix seconds, or -Ns, -Nm, -Nh before now");
    cmd->add_option("--until", read_.until, "up to this time (default: the newest record when it started)");
    cmd->add_option("--filter", read_.filter, "only records whose topic matches this pattern");
  }
  view_cmd_->add_option("--count,-n", read_.count, "at most this many records");
  auto* raw = view_cmd_->add_flag("--raw,-r", read_.raw, "the payloads only, one per line");
  view_cmd_->add_flag("--json", read_.json, "one JSON object per record")->excludes(raw);
  replay_cmd_->add_option("--to-topic", read_.to_topic, "publish to this topic ({topic}: the record's own topic)")
      ->required();
  replay_cmd_->add_option("--speed", read_.speed, "1x (the original timing), 10x, 0.5x... or max")
      ->capture_default_str();
  for (CLI::App* cmd : {add_cmd_, ls_cmd_, info_cmd_, rm_cmd_, cadd_cmd_, crm_cmd_})
    cmd->add_flag("--json", json_, "print the node's JSON answer");
  for (CLI::App* cmd : {add_cmd_, ls_cmd_, info_cmd_, rm_cmd_, cadd_cmd_, crm_cmd_, view_cmd_, replay_cmd_})
    add_connection_options(*cmd, conn_);
}

std::optional<int> stream_commands::run() const {
  if (!stream_cmd_->parsed()) return std::nullopt;
  catch_interrupts();
  if (add_cmd_->parsed()) {
    const json req{{"op", "stream.add"},
                   {"name", add_.name},
                   {"subjects", add_.subjects},
                   {"storage", add_.storage},
                   {"fsync", add_.fsync},
                   {"group_ms", add_.group_ms},
                   {"segment_mb", add_.segment_mb},
                   {"max_bytes", add_.max_bytes},
                   {"max_records", add_.max_records},
                   {"max_age_s", add_.max_age_s}};
    return ask_once(conn_, req, json_, [](const json& a) { show_stream(a["stream"]); });
  }
  if (ls_cmd_->parsed())
    return ask_once(conn_, {{"op", "stream.ls"}}, json_, [](const json& a) {
      if (a["streams"].empty()) std::printf("no streams\n");
      for (const auto& s : a["streams"])
        show_stream(s);
    });
  if (info_cmd_->parsed())
    return ask_once(conn_, {{"op", "stream.info"}, {"name", name_}}, json_,
                    [](const json& a) { show_stream(a["stream"]); });
  if (rm_cmd_->parsed())
    return ask_once(conn_, {{"op", "stream.rm"}, {"name", name_}}, json_,
                    [&](const json&) { std::printf("stream %s removed\n", name_.c_str()); });
  if (cadd_cmd_->parsed()) {
    json c{{"name", consumer_.name},
           {"deliver_to", consumer_.deliver_to},
           {"start", consumer_.start},
           {"ack_wait_ms", consumer_.ack_wait_ms},
           {"max_in_flight", consumer_.max_in_flight},
           {"max_deliver", consumer_.max_deliver}};
    if (!consumer_.filter.empty()) c["filter"] = consumer_.filter;
    if (consumer_.start_seq) c["start_seq"] = consumer_.start_seq, c["start"] = "sequence";
    if (!consumer_.since.empty()) {
      const auto t = parse_time_ns(consumer_.since, codec::wall_clock_ns());
      if (!t) {
        std::fprintf(stderr, "flowbus stream consumer-add: --since %s: Unix seconds, or -Ns, -Nm, -Nh\n",
                     consumer_.since.c_str());
        return exit_usage;
      }
      c["start_time_ns"] = *t;
      c["start"] = "time";
    }
    return ask_once(
        conn_, {{"op", "consumer.add"}, {"stream", consumer_.stream}, {"consumer", c}}, json_, [](const json& a) {
          std::printf("consumer %s -> %s: next %llu\n", a["consumer"]["config"]["name"].get<std::string>().c_str(),
                      a["consumer"]["config"]["deliver_to"].get<std::string>().c_str(),
                      a["consumer"]["next"].get<unsigned long long>());
        });
  }
  if (crm_cmd_->parsed())
    return ask_once(conn_, {{"op", "consumer.rm"}, {"stream", consumer_.stream}, {"name", consumer_.name}}, json_,
                    [&](const json&) { std::printf("consumer %s removed\n", consumer_.name.c_str()); });
  if (view_cmd_->parsed()) return run_view(conn_, read_);
  if (replay_cmd_->parsed()) return run_replay(conn_, read_);
  return exit_usage;
}

} // namespace flowbus::app
