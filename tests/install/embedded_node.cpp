// A node embedded in an application, with its WebSocket edge on a free port and an actor agent that
// answers requests on install.echo. Prints "port N", serves until standard input closes.
#include <flowbus/actors/node.hpp>
#include <flowbus/transport/server.hpp>

#include <cstdio>
#include <iostream>
#include <string>

using namespace flowbus;

int main() {
  actors::node n;
  actors::agent_spec echo{"install-echo", "service"};
  echo.subscriptions = {"install.echo"};
  auto a = n.spawn(echo, [](actors::agent_context& ctx, const actors::delivery& d) {
    if (d.is_request()) ctx.respond(d, "echo: " + std::string(d.payload));
  });
  if (!a) return std::fprintf(stderr, "spawn: %s\n", actors::to_string(a.error())), 1;
  transport::server_options o;
  o.port = 0;
  transport::server s(n, o);
  std::printf("port %u\n", static_cast<unsigned>(s.port()));
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  s.stop();
  return n.shutdown().drained ? 0 : 1;
}
