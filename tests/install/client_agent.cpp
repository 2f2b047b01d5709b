// An agent process on the C++ client library alone: connects to the node at 127.0.0.1:PORT, asks
// the node's echo agent, and receives its own publish. Exit 0 when both came back.
#include <flowbus/transport/client.hpp>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>

namespace transport = flowbus::transport;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 2) return std::fprintf(stderr, "usage: client_agent PORT\n"), 2;
  transport::client_options o;
  o.port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  o.id = "install-client";
  o.type = "worker";
  transport::client c(o);
  if (const transport::errc e = c.connect(5s); e != transport::errc::ok)
    return std::fprintf(stderr, "connect: %s\n", transport::to_string(e)), 1;
  std::promise<std::string> got;
  auto seen = got.get_future();
  if (c.subscribe("install.self", [&](const transport::incoming& m) { got.set_value(std::string(m.payload)); }).get() !=
      transport::errc::ok)
    return std::fprintf(stderr, "subscribe refused\n"), 1;
  c.publish("install.self", "to myself");
  const transport::reply_result r = c.request(transport::destination::topic("install.echo"), "ping", 5s).get();
  if (r.code != transport::errc::ok) return std::fprintf(stderr, "request: %s\n", transport::to_string(r.code)), 1;
  if (seen.wait_for(5s) != std::future_status::ready) return std::fprintf(stderr, "own publish not received\n"), 1;
  const std::string mine = seen.get();
  std::printf("reply from %s: %s; own publish: %s\n", r.source.c_str(), r.payload.c_str(), mine.c_str());
  c.close();
  return r.payload == "echo: ping" && mine == "to myself" ? 0 : 1;
}
