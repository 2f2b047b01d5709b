// The monitoring port of a node (docs/monitoring.md): HTTP on its own address and thread, served
// with Boost.Beast, never on the edge's I/O threads. JSON endpoints shaped like nats-server's
// (/varz /connz /subsz /routez /healthz) plus /dlqz, Prometheus text exposition 0.0.4 on /metrics,
// and a live dashboard on / (one static page, polling the JSON endpoints; nothing from a CDN).
// No authentication, as NATS's: it binds 127.0.0.1 unless told otherwise.
#pragma once

#include <flowbus/actors/node.hpp>
#include <flowbus/transport/server.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::transport {

struct monitor_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8222; ///< 0: any free port (see monitor::port())
  /// The rates (msgs/s, bytes/s, CPU) and the dashboard's history are sampled this often.
  std::chrono::milliseconds sample_interval{1000};
  std::size_t history = 120;   ///< samples kept for the dashboard's charts
  std::string server_name;     ///< shown as server_name (default: the host name)
  /// What the node was started with, as JSON (an object), shown under /varz "config".
  std::string config_json = "{}";
  /// Other nodes whose link must be up for /healthz to say ok (by name).
  std::vector<std::string> required_peers;
  bool per_agent_metrics = false; ///< /metrics: per-connection series labelled by agent id (bounded by connections)
};

/// An HTTP answer (what render() returns; also what the port sends).
struct monitor_response {
  unsigned status = 200;
  std::string content_type;
  std::string body;
};

class monitor {
public:
  /// Binds and starts serving; throws std::system_error if the address cannot be bound. `edge`
  /// may be null (a node without a WebSocket edge); both must outlive the monitor.
  monitor(actors::node& node, const server* edge, monitor_options options);
  ~monitor(); ///< stop()
  monitor(const monitor&) = delete;
  monitor& operator=(const monitor&) = delete;

  std::uint16_t port() const noexcept;
  /// /healthz answers 503 "draining" from now on (the node is shutting down).
  void set_draining() noexcept;
  /// The answer to a GET of `target` (path and query), as the port would send it.
  monitor_response render(std::string_view target) const;
  /// Takes a sample now (rates, history) instead of waiting for the timer: for tests.
  void sample();
  void stop();

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace flowbus::transport
