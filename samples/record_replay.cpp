// Recording a coordination session and replaying it (docs/streams.md): a stream records every
// message of `coord.>` while a coordinator hands out tasks at irregular moments and two workers
// answer. Afterwards a debugger replays the session through an ephemeral consumer of the stream,
// republishing each message to `replay.<topic>` at 4x speed with its original gaps (what
// `flowbus stream replay --speed 4x` does), and prints the timeline it sees: the same messages,
// in the same order, a quarter as far apart.
#include <flowbus/actors/node.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace flowbus::actors;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct seen {
  std::string topic, payload;
  std::uint64_t at_ns; ///< when it was first published
};

/// Asks the stream API (the agent $streams) and returns its JSON answer ("" if it did not answer).
std::string ask(client& c, const std::string& json) {
  reply r = c.request(destination::agent("$streams"), json, 5s);
  return r.code == errc::ok ? std::string(r.response.msg.payload) : std::string();
}

} // namespace

int main() {
  char tmpl[] = "/tmp/flowbus-record-replay-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  int rc = 1;
  {
    node_config cfg;
    cfg.stream_directory = dir.string();
    stream_config session;
    session.name = "session";
    session.subjects = {"coord.>"};
    session.directory = dir;
    session.log.sync = fsync_policy::never; // a debugging record: the page cache is enough
    cfg.streams.push_back(session);
    node n(cfg);

    // the session: a coordinator, two workers answering on coord.results.<worker>
    for (int w = 0; w < 2; ++w) {
      agent_spec s{"worker-" + std::to_string(w), "worker"};
      s.queue_groups = {{"coord.tasks", "pool"}};
      auto ok = n.spawn(s, [w](agent_context& ctx, const delivery& d) {
        ctx.publish("coord.results.worker-" + std::to_string(w), "done " + std::string(d.payload));
      });
      if (!ok) return 1;
    }
    auto coord = n.connect({"coordinator", "coordinator"});
    if (!coord) return 1;
    const std::vector<int> gaps_ms = {0, 40, 10, 120, 30, 80, 20, 60};
    for (std::size_t i = 0; i < gaps_ms.size(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(gaps_ms[i]));
      (*coord)->publish("coord.tasks", "task-" + std::to_string(i));
    }
    std::this_thread::sleep_for(200ms); // the last results come in
    const std::uint64_t recorded = n.streams()[0].records;
    std::printf("recorded %llu messages of the session (tasks and results)\n",
                static_cast<unsigned long long>(recorded));

    // the replay: an ephemeral consumer of the session delivering to the debugger's replayer
    auto replayer = n.connect({"replayer", "debugger"});
    auto watcher = n.connect({"watcher", "debugger"});
    if (!replayer || !watcher || (*watcher)->subscribe("replay.>") != errc::ok) return 1;
    const std::string added = ask(**replayer, R"({"op":"consumer.add","stream":"session","consumer":{"durable":false,)"
                                              R"("deliver_to":"agent:replayer","max_in_flight":64}})");
    if (added.empty() || added.find("\"error\"") != std::string::npos) {
      std::fprintf(stderr, "consumer.add: %s\n", added.c_str());
      return 1;
    }
    constexpr double speed = 4;
    std::vector<seen> original, replayed;
    std::chrono::steady_clock::time_point start;
    while (original.size() < recorded) {
      auto m = (*replayer)->receive(5s);
      if (!m) break;
      if (!m->msg.is_request() || m->msg.header("stream") != "session") continue;
      const seen s{std::string(m->msg.header("stream-topic")), std::string(m->msg.payload), m->msg.timestamp_ns};
      if (original.empty())
        start = std::chrono::steady_clock::now();
      else // the original gap since the first, divided by the speed
        std::this_thread::sleep_until(start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                                  static_cast<double>(s.at_ns - original.front().at_ns) / speed)));
      (*replayer)->publish("replay." + s.topic, s.payload);
      (*replayer)->respond(m->msg, ""); // the ack: the consumer moves on
      original.push_back(s);
    }
    while (replayed.size() < original.size()) {
      auto m = (*watcher)->receive(5s);
      if (!m) break;
      replayed.push_back({std::string(m->msg.topic), std::string(m->msg.payload), m->msg.timestamp_ns});
    }

    std::printf("%-32s %-14s %10s %10s\n", "replayed topic", "payload", "orig +ms", "replay +ms");
    bool same = replayed.size() == original.size() && !original.empty();
    double worst = 0;
    for (std::size_t i = 0; same && i < original.size(); ++i) {
      const double orig_ms = static_cast<double>(original[i].at_ns - original[0].at_ns) / 1e6;
      const double rep_ms = static_cast<double>(replayed[i].at_ns - replayed[0].at_ns) / 1e6;
      std::printf("%-32s %-14s %10.1f %10.1f\n", replayed[i].topic.c_str(), replayed[i].payload.c_str(), orig_ms,
                  rep_ms);
      same = replayed[i].topic == "replay." + original[i].topic && replayed[i].payload == original[i].payload;
      worst = std::max(worst, std::abs(rep_ms - orig_ms / speed));
    }
    const double span = original.empty() ? 0 : static_cast<double>(original.back().at_ns - original[0].at_ns) / 1e6;
    std::printf("%zu of %llu replayed in order at %.0fx: the session's %.0f ms in %.0f ms (worst drift %.1f ms)\n",
                replayed.size(), static_cast<unsigned long long>(recorded), speed, span,
                replayed.empty() ? 0.0 : static_cast<double>(replayed.back().at_ns - replayed[0].at_ns) / 1e6, worst);
    rc = same && recorded >= 2 * gaps_ms.size() ? 0 : 1;
  }
  fs::remove_all(dir);
  return rc;
}
