// The receiving end of the baseline latency benchmarks (TCP relay, NATS): each message carries its
// intended send time (steady clock) at bytes 8..15; the latency from it goes into an HDR histogram,
// printed as one JSON line like `flowbus bench latency`.
#pragma once

#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/histogram.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>

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

} // namespace flowbus::bench
