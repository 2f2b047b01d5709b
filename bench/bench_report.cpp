#include "bench_report.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace flowbus::bench {
namespace {

struct result {
  std::vector<double> ns_per_iter;
  double ops = 0, bytes = 0;
  std::string label;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

class json_lines_reporter : public benchmark::BenchmarkReporter {
public:
  explicit json_lines_reporter(bool summary) : summary_(summary) {}

  bool ReportContext(const Context& ctx) override {
    std::fprintf(stderr, "# %d CPUs at %.0f MHz; JSON lines on stdout (medians of repetitions)\n",
                 ctx.cpu_info.num_cpus, ctx.cpu_info.cycles_per_second / 1e6);
    return true;
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred || r.iterations == 0) continue;
      const std::string name = r.run_name.function_name + (r.run_name.args.empty() ? "" : "_" + r.run_name.args);
      result& res = results_[name];
      if (res.ns_per_iter.empty()) order_.push_back(name);
      res.ns_per_iter.push_back(r.real_accumulated_time * 1e9 / static_cast<double>(r.iterations));
      if (auto it = r.counters.find("ops"); it != r.counters.end()) res.ops = it->second.value;
      if (auto it = r.counters.find("bytes"); it != r.counters.end()) res.bytes = it->second.value;
      res.label = r.report_label;
    }
  }

  void Finalize() override {
    for (const std::string& name : order_) {
      const result& r = results_[name];
      const double med = median(r.ns_per_iter);
      const double lo = *std::min_element(r.ns_per_iter.begin(), r.ns_per_iter.end());
      const double hi = *std::max_element(r.ns_per_iter.begin(), r.ns_per_iter.end());
      std::string line = "{\"bench\":\"" + name + "\"";
      char buf[256];
      if (r.ops > 0) {
        const double per_op = med / r.ops;
        std::snprintf(buf, sizeof buf,
                      ",\"ns_per_op\":%.2f,\"msgs_per_s\":%.0f,\"ns_per_op_min\":%.2f,\"ns_per_op_max\":%.2f", per_op,
                      1e9 / per_op, lo / r.ops, hi / r.ops);
        line += buf;
      } else if (r.bytes > 0) {
        std::snprintf(buf, sizeof buf, ",\"bytes\":%.0f,\"gb_per_s\":%.2f,\"gb_per_s_min\":%.2f,\"gb_per_s_max\":%.2f",
                      r.bytes, r.bytes / med, r.bytes / hi, r.bytes / lo);
        line += buf;
      } else {
        std::snprintf(buf, sizeof buf, ",\"ns_per_op\":%.2f,\"ns_per_op_min\":%.2f,\"ns_per_op_max\":%.2f", med, lo,
                      hi);
        line += buf;
      }
      std::snprintf(buf, sizeof buf, ",\"repetitions\":%zu", r.ns_per_iter.size());
      line += buf;
      if (!r.label.empty()) line += ",\"impl\":\"" + r.label + "\"";
      line += "}";
      std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    if (summary_) print_summary();
  }

private:
  void print_summary() {
    std::printf("\n%-36s %14s %16s\n", "benchmark (median)", "time", "throughput");
    for (const std::string& name : order_) {
      const result& r = results_[name];
      const double med = median(r.ns_per_iter);
      if (r.ops > 0)
        std::printf("%-36s %11.1f ns %13.2f M/s\n", name.c_str(), med / r.ops, r.ops / med * 1e3);
      else if (r.bytes > 0)
        std::printf("%-36s %11.1f ns %12.2f GB/s\n", name.c_str(), med, r.bytes / med);
      else
        std::printf("%-36s %11.1f ns\n", name.c_str(), med);
    }
  }

  bool summary_;
  std::map<std::string, result> results_;
  std::vector<std::string> order_;
};

} // namespace

int run_main(int argc, char** argv) {
  bool summary = false, quick = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--summary") == 0)
      summary = true;
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else
      args.push_back(argv[i]);
  }
  std::string reps = quick ? "--benchmark_repetitions=3" : "--benchmark_repetitions=7";
  std::string min_time = quick ? "--benchmark_min_time=0.05" : "--benchmark_min_time=0.2";
  args.insert(args.begin() + 1, {reps.data(), min_time.data()}); // user flags after ours win
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  json_lines_reporter reporter(summary);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

} // namespace flowbus::bench
