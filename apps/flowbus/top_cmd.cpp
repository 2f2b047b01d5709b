#include "top_cmd.hpp"

#include "node_cmd.hpp" // split_host_port

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace flowbus::app {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using json = nlohmann::json;

std::string si(double v) {
  char b[32];
  if (v >= 1e9) std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

std::string us(double v) {
  char b[32];
  if (v >= 1000) std::snprintf(b, sizeof b, "%.2f ms", v / 1000);
  else std::snprintf(b, sizeof b, "%.0f us", v);
  return b;
}

std::string screen(const json& v, const json& c, const std::string& sort) {
  std::string o;
  char line[512];
  std::snprintf(line, sizeof line, "flowbus %s  %s  up %s  cpu %.0f%%  mem %.0f MiB  %zu scheduler / %zu I/O threads\n",
                v.value("version", "?").c_str(), v.value("server_name", "").c_str(), v.value("uptime", "?").c_str(),
                v.value("cpu", 0.0), v.value("mem", 0.0) / 1048576.0, v.value("scheduler_threads", std::size_t{0}),
                v.value("io_threads", std::size_t{0}));
  o += line;
  const json& lat = v["latency"].contains("last_interval") ? v["latency"]["last_interval"] : json::object();
  std::snprintf(line, sizeof line,
                "msgs/s in %s  out %s   bytes/s in %s  out %s   age p50 %s  p95 %s  p99 %s\n",
                si(v.value("in_msgs_per_s", 0.0)).c_str(), si(v.value("out_msgs_per_s", 0.0)).c_str(),
                si(v.value("in_bytes_per_s", 0.0)).c_str(), si(v.value("out_bytes_per_s", 0.0)).c_str(),
                us(lat.value("p50_us", 0.0)).c_str(), us(lat.value("p95_us", 0.0)).c_str(),
                us(lat.value("p99_us", 0.0)).c_str());
  o += line;
  std::snprintf(line, sizeof line,
                "connections %llu  agents %llu (+%llu remote)  subscriptions %llu  pending %llu  slow consumers %llu  "
                "breakers open %llu\n",
                v.value("connections", 0ull), v.value("agents", 0ull), v.value("remote_agents", 0ull),
                v.value("subscriptions", 0ull), v.value("pending", 0ull), v.value("slow_consumers", 0ull),
                v["breakers"].value("open", 0ull));
  o += line;
  std::string dead = "dead letters " + std::to_string(v["dead_letters"].value("total", 0ull));
  for (const auto& [reason, n] : v["dead_letters"]["by_reason"].items())
    if (n.get<std::uint64_t>() > 0) dead += "  " + reason + " " + std::to_string(n.get<std::uint64_t>());
  o += dead + "\n\n";
  std::snprintf(line, sizeof line, "%6s %-28s %-12s %10s %10s %10s %10s %8s %5s %-9s  (sorted by %s)\n", "cid", "agent",
                "type", "msgs in", "msgs out", "bytes in", "bytes out", "pending", "subs", "breaker", sort.c_str());
  o += line;
  for (const json& x : c["connections"]) {
    std::snprintf(line, sizeof line, "%6llu %-28.28s %-12.12s %10s %10s %10s %10s %8s %5llu %-9s\n",
                  x.value("cid", 0ull), x.value("name", "").c_str(), x.value("agent_type", "").c_str(),
                  si(x.value("in_msgs", 0.0)).c_str(), si(x.value("out_msgs", 0.0)).c_str(),
                  si(x.value("in_bytes", 0.0)).c_str(), si(x.value("out_bytes", 0.0)).c_str(),
                  si(x.value("pending", 0.0)).c_str(), x.value("subscriptions", 0ull), x.value("breaker", "").c_str());
    o += line;
  }
  if (c.value("total", 0ull) > c["connections"].size())
    o += "... " + std::to_string(c.value("total", 0ull) - c["connections"].size()) + " more\n";
  return o;
}

} // namespace

nlohmann::json fetch(const std::string& host, std::uint16_t port, const std::string& target) {
  net::io_context ioc;
  net::ip::tcp::resolver resolver(ioc);
  beast::tcp_stream s(ioc);
  s.expires_after(std::chrono::seconds(5));
  s.connect(resolver.resolve(host, std::to_string(port)));
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, host);
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  if (res.result() != http::status::ok) throw std::runtime_error(target + ": HTTP " + std::to_string(res.result_int()));
  return nlohmann::json::parse(res.body());
}

int run_top(const top_options& o) {
  std::string host;
  std::uint16_t port = 0;
  split_host_port(o.monitor, host, port, 8222);
  for (;;) {
    std::string out;
    try {
      const json v = fetch(host, port, "/varz");
      const json c = fetch(host, port, "/connz?sort=" + o.sort + "&limit=" + std::to_string(o.rows));
      out = screen(v, c, o.sort);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowbus top: %s: %s\n", o.monitor.c_str(), e.what());
      return 1;
    }
    if (o.once) {
      std::fputs(out.c_str(), stdout);
      return 0;
    }
    std::fputs("\x1b[H\x1b[2J", stdout); // home, clear
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval_s));
  }
}

} // namespace flowbus::app
