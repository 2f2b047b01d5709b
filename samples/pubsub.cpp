// Embed a node and exchange pub/sub messages between two agents: an actor agent that listens to
// `sensors.>` and a thread that publishes readings, then waits for the listener's summary.
#include <flowbus/actors/node.hpp>

#include <cstdio>
#include <string>

using namespace flowbus::actors;
using namespace std::chrono_literals;

int main() {
  node n; // CAF actor system, directory, routing table: all owned here

  // An actor agent: its handler runs in its actor, one message at a time.
  agent_spec listener{"listener", "monitor"};
  listener.subscriptions = {"sensors.>"};
  int seen = 0;
  auto l = n.spawn(listener, [&seen](agent_context& ctx, const delivery& d) {
    ++seen;
    std::printf("listener: %.*s = %.*s\n", int(d.topic.size()), d.topic.data(), int(d.payload.size()), d.payload.data());
    if (seen == 3) ctx.send_to(d.source, "got 3 readings");
  });
  if (!l) return std::fprintf(stderr, "spawn: %s\n", to_string(l.error())), 1;

  // An agent driven by this thread.
  auto c = n.connect({"thermometer", "sensor"});
  if (!c) return std::fprintf(stderr, "connect: %s\n", to_string(c.error())), 1;
  client& me = **c;
  for (const char* reading : {"20.5", "20.7", "21.0"}) {
    const send_result r = me.publish("sensors.kitchen.temperature", reading);
    if (r.delivered != 1) return std::fprintf(stderr, "publish: %s\n", to_string(r.code)), 1;
  }
  auto answer = me.receive(2s);
  if (!answer) return std::fprintf(stderr, "no answer from the listener\n"), 1;
  std::printf("thermometer: %.*s\n", int(answer->msg.payload.size()), answer->msg.payload.data());
  const shutdown_report rep = n.shutdown();
  std::printf("shutdown: drained=%d handled=%llu\n", rep.drained, static_cast<unsigned long long>(rep.handled));
  return seen == 3 && rep.drained ? 0 : 1;
}
