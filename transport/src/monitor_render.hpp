// What the monitoring port shows (private to transport/): the sampler that turns counters into
// rates and keeps the dashboard's history, and a renderer per endpoint (monitor_render.cpp,
// monitor_metrics.cpp for /metrics).
#pragma once

#include <flowbus/transport/monitor.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace flowbus::transport::detail {

/// The query of a request target: `a=1&b=x` → {a: 1, b: x} (no percent-decoding beyond %2A, %3E
/// and %2E, which topics need).
std::map<std::string, std::string> parse_query(std::string_view query);

/// One sample of the node, taken every sample_interval.
struct monitor_sample {
  std::uint64_t t_ms = 0; ///< wall clock
  double in_msgs_per_s = 0, out_msgs_per_s = 0, in_bytes_per_s = 0, out_bytes_per_s = 0;
  double cpu_percent = 0;  ///< of one core
  std::uint64_t rss_bytes = 0;
  std::uint64_t connections = 0, agents = 0, subscriptions = 0, pending = 0;
  std::uint64_t dead_letters = 0;
  /// Over the interval: age at delivery (all lanes), µs; 0 when nothing was delivered.
  double p50_us = 0, p95_us = 0, p99_us = 0;
};

#ifndef FLOWBUS_VERSION
#define FLOWBUS_VERSION "0.0.0"
#endif

/// The priority lanes as the monitoring names them (labels, JSON keys), CRITICAL first.
inline constexpr const char* lane_names[] = {"critical", "high", "normal", "low", "background"};

/// What waits to be written to agents, summed over the connections.
struct backlog {
  std::uint64_t pending = 0;
  std::array<std::uint64_t, 5> lanes{};
  static backlog of(const std::vector<connection_info>& conns);
};

/// Agents whose circuit breaker is open, and half-open.
struct breaker_counts {
  std::uint64_t open = 0, half_open = 0;
  static breaker_counts of(const actors::node& n);
};

/// Process figures from /proc/self.
struct process_usage {
  double cpu_seconds = 0;
  std::uint64_t rss_bytes = 0;
  static process_usage now();
};

class monitor_state {
public:
  monitor_state(actors::node& n, const server* e, monitor_options o);

  monitor_response render(std::string_view target) const;
  void take_sample();

  actors::node& node;
  const server* edge;
  const monitor_options opt;
  std::atomic<bool> draining{false};

private:
  monitor_response healthz() const;
  monitor_response varz() const;
  monitor_response connz(const std::map<std::string, std::string>& q) const;
  monitor_response subsz(const std::map<std::string, std::string>& q) const;
  monitor_response agentz() const;
  monitor_response dlqz(const std::map<std::string, std::string>& q) const;
  monitor_response routez() const;
  monitor_response historyz() const;
  monitor_response tracez(const std::map<std::string, std::string>& q) const;
  monitor_response metrics() const; // monitor_metrics.cpp
  monitor_sample last_sample() const;

  const std::chrono::steady_clock::time_point start_steady_ = std::chrono::steady_clock::now();
  const std::uint64_t start_ns_;
  std::string server_name_;
  mutable std::mutex m_; ///< guards what follows (the sampler and the renderers)
  std::deque<monitor_sample> history_;
  struct totals {
    std::chrono::steady_clock::time_point at{};
    std::uint64_t in_msgs = 0, out_msgs = 0, in_bytes = 0, out_bytes = 0;
    double cpu_seconds = 0;
    scheduling::bucket_snapshot age;
  } last_;
  mutable std::map<std::string, std::uint64_t> requests_; ///< per path, as NATS's http_req_stats
};

} // namespace flowbus::transport::detail
