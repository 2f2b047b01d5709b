// Routing cost per message with 100K subscriptions: 90K exact topics (one per agent) and 10K
// wildcard patterns (`tenant.K.*.events`, `alerts.K.>`, `agent.*.K.status` overlapping the exact
// ones). Published topics hit all three kinds. Cached: 1000 hot topics cycled (the steady state of
// a broker); uncached: every lookup walks the hash table and the trie.
#include <flowbus/actors/topic_index.hpp>

#include "bench_report.hpp"

#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

using namespace flowbus::actors;

namespace {

void populate(topic_index& idx) {
  subscriber_id id = 0;
  for (int i = 0; i < 90000; ++i)
    idx.subscribe("agent.worker." + std::to_string(i) + ".status", id++);
  for (int k = 0; k < 5000; ++k)
    idx.subscribe("tenant." + std::to_string(k) + ".*.events", id++);
  for (int k = 0; k < 4000; ++k)
    idx.subscribe("alerts." + std::to_string(k) + ".>", id++);
  for (int k = 0; k < 1000; ++k)
    idx.subscribe("agent.*." + std::to_string(k) + ".status", id++);
}

std::vector<std::string> topics(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    switch (rng() % 3) {
    case 0:
      out.push_back("agent.worker." + std::to_string(rng() % 100000) + ".status");
      break;
    case 1:
      out.push_back("tenant." + std::to_string(rng() % 6000) + ".eu.events");
      break;
    default:
      out.push_back("alerts." + std::to_string(rng() % 5000) + ".disk.full");
      break;
    }
  }
  return out;
}

void route(benchmark::State& state, std::size_t cache, std::size_t distinct) {
  topic_index idx(cache);
  populate(idx);
  if (idx.subscription_count() != 100000) state.SkipWithError("populate failed");
  const auto ts = topics(distinct, 7);
  std::size_t i = 0, delivered = 0;
  for (auto _ : state) {
    delivered += idx.match(ts[i])->size();
    if (++i == ts.size()) i = 0;
  }
  benchmark::DoNotOptimize(delivered);
  state.counters["ops"] = 1;
}

void route_100k_cached(benchmark::State& state) { route(state, 4096, 1000); }
void route_100k_uncached(benchmark::State& state) { route(state, 0, 100000); }

} // namespace

BENCHMARK(route_100k_cached);
BENCHMARK(route_100k_uncached);

int main(int argc, char** argv) { return flowbus::bench::run_main(argc, argv); }
