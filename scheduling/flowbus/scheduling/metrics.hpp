// Latency histograms for a node's metrics (Prometheus exposition, the monitoring endpoints): fixed
// buckets on a 1-2.5-5 scale from 1 µs to 10 s, counted with relaxed atomics in a few cache-line
// shards so that the I/O threads and actors recording at once do not share a line. Unlike
// histogram.hpp (one writer, 0.8 % precision, for benchmarks) this one is written by any thread
// and read at any time by the monitor; its quantiles are estimates within a bucket, as
// Prometheus's histogram_quantile makes them.
// @threadsafe record() from any threads; read() at any time (a read concurrent with records sees
// each count at some moment: sum and counts may be a few records apart).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace flowbus::scheduling {

/// The upper bounds (ns) of the buckets, ascending; a last bucket (+Inf) takes the rest.
inline constexpr std::array<std::uint64_t, 22> latency_bounds_ns{
    1'000,       2'500,       5'000,       10'000,        25'000,        50'000,        100'000,    250'000,
    500'000,     1'000'000,   2'500'000,   5'000'000,     10'000'000,    25'000'000,    50'000'000, 100'000'000,
    250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
inline constexpr std::size_t latency_buckets = latency_bounds_ns.size() + 1;

/// A histogram's counts at one moment: per bucket (not cumulative; the last is +Inf).
struct bucket_snapshot {
  std::array<std::uint64_t, latency_buckets> counts{};
  std::uint64_t count = 0;
  double sum_ns = 0;
  /// The value (ns) under which a fraction q (0..1] of the records fall, interpolated linearly
  /// inside its bucket (the first bucket from 0); a quantile in +Inf is the last bound. 0 if empty.
  double quantile(double q) const noexcept;
  void merge(const bucket_snapshot& o) noexcept;
};

class bucket_histogram {
public:
  static std::size_t bucket_of(std::uint64_t ns) noexcept {
    std::size_t i = 0;
    while (i < latency_bounds_ns.size() && ns > latency_bounds_ns[i])
      ++i;
    return i;
  }
  void record(std::uint64_t ns) noexcept { record_n(bucket_of(ns), 1, ns); }
  /// `n` values in `bucket` whose sum is `sum_ns` (a run_recorder's flush).
  void record_n(std::size_t bucket, std::uint64_t n, std::uint64_t sum_ns) noexcept {
    shard& s = shards_[shard_index()];
    s.counts[bucket].fetch_add(n, std::memory_order_relaxed);
    s.sum.fetch_add(sum_ns, std::memory_order_relaxed);
  }
  bucket_snapshot read() const noexcept;

private:
  static constexpr std::size_t shard_count = 8;
  static std::size_t shard_index() noexcept;
  struct alignas(64) shard {
    std::array<std::atomic<std::uint64_t>, latency_buckets> counts{};
    std::atomic<std::uint64_t> sum{0};
  };
  std::array<shard, shard_count> shards_{};
};

/// Records values into histograms in runs: consecutive values for the same histogram and bucket
/// cost one add to the shared counts when the run ends (flush()), not one each. A burst of frames
/// written together mostly falls in one or two buckets of its lane.
/// @threadsafe no: one per recording thread (or strand); the histograms themselves are shared
class run_recorder {
public:
  void record(bucket_histogram& h, std::uint64_t ns) noexcept {
    const std::size_t b = bucket_histogram::bucket_of(ns);
    if (&h != h_ || b != bucket_) {
      flush();
      h_ = &h;
      bucket_ = b;
    }
    ++n_;
    sum_ += ns;
  }
  void flush() noexcept {
    if (n_) h_->record_n(bucket_, n_, sum_);
    n_ = sum_ = 0;
  }

private:
  bucket_histogram* h_ = nullptr;
  std::size_t bucket_ = 0;
  std::uint64_t n_ = 0, sum_ = 0;
};

} // namespace flowbus::scheduling
