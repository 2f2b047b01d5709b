// The receiving end of the baseline latency benchmarks (TCP relay, NATS): each message carries its
// intended send time (steady clock) at bytes 8..15; the latency from it goes into an HDR histogram,
// printed as one JSON line like `flowbus bench latency`. And the throughput line of the baseline
// benches (NATS, the bare WebSocket client).
#pragma once

#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace flowbus::bench {

struct one_way {
  scheduling::histogram h;
  std::uint64_t first = 0, last = 0;

  void record(const char* payload) {
    const std::uint64_t t = scheduling::steady_ns();
    std::uint64_t intended = 0;
    std::memcpy(&intended, payload + 8, 8);
    h.record(t > intended ? t - intended : 0);
    if (h.count() == 1) first = t;
    last = t;
  }
  void print(const char* name, const char* transport, std::size_t size, double rate) const {
    std::printf("{\"bench\":\"%s_%.0f\",\"transport\":\"%s\",\"payload_bytes\":%zu,\"offered_per_s\":%.0f,"
                "\"msgs_per_s\":%.0f,%s}\n",
                name, rate, transport, size, rate,
                last > first ? static_cast<double>(h.count()) * 1e9 / static_cast<double>(last - first) : 0.0,
                h.json_fields("us", 1e3).c_str());
    std::fflush(stdout);
  }
};

/// The throughput line of the baseline benches: `<base>_pubsub_1to1` or `<base>_fanout_1to<K>`,
/// deliveries per second from the first subscriber's first message (t0) to the last's last (t1).
/// `client`: the client's name, or null for none.
inline void print_rate(const char* base, const char* transport, const char* client, std::size_t size,
                       std::size_t subscribers, std::uint64_t count, std::uint64_t t0, std::uint64_t t1) {
  const std::string name = std::string(base) + (subscribers == 1 ? "_pubsub_1to1" : "_fanout_1to" + std::to_string(subscribers));
  const std::string client_field = client ? std::string(",\"client\":\"") + client + "\"" : std::string();
  const double total = static_cast<double>(count) * static_cast<double>(subscribers);
  std::printf("{\"bench\":\"%s\",\"transport\":\"%s\"%s,\"payload_bytes\":%zu,\"subscribers\":%zu,"
              "\"received\":%.0f,\"msgs_per_s\":%.0f}\n",
              name.c_str(), transport, client_field.c_str(), size, subscribers, total,
              t1 > t0 ? total * 1e9 / static_cast<double>(t1 - t0) : 0.0);
  std::fflush(stdout);
}

} // namespace flowbus::bench
