// Request/reply: a `translate` service agent answers requests; a client asks it by capability,
// by agent id and by topic, and a request to an agent that never answers ends in a typed timeout.
#include <flowbus/actors/node.hpp>

#include <cstdio>
#include <string>

using namespace flowbus::actors;
using namespace std::chrono_literals;

int main() {
  node n;
  agent_spec svc{"translator-1", "service"};
  svc.capabilities = {"translate"};
  svc.subscriptions = {"svc.translate"};
  auto t = n.spawn(svc, [](agent_context& ctx, const delivery& d) {
    if (!d.is_request()) return;
    const std::string in(d.payload);
    ctx.respond(d, in == "hello" ? "bonjour" : "?");
  });
  if (!t) return std::fprintf(stderr, "spawn: %s\n", to_string(t.error())), 1;
  auto silent = n.connect({"silent", "service"}); // registered, never answers
  auto c = n.connect({"asker", "app"});
  if (!c || !silent) return 1;

  int failures = 0;
  for (const destination& to : {destination::capability("translate"), destination::agent("translator-1"),
                                destination::topic("svc.translate")}) {
    const reply r = (*c)->request(to, "hello", 1s);
    std::printf("request via %-10s -> %s %.*s\n",
                to.what == destination::kind::capability ? "capability"
                : to.what == destination::kind::agent    ? "agent"
                                                         : "topic",
                to_string(r.code), int(r.response.msg.payload.size()), r.response.msg.payload.data());
    failures += !(r && r.response.msg.payload == "bonjour");
  }
  const reply late = (*c)->request(destination::agent("silent"), "hello", 100ms);
  std::printf("request to a silent agent -> %s\n", to_string(late.code));
  failures += late.code != errc::timeout;
  return failures == 0 ? 0 : 1;
}
