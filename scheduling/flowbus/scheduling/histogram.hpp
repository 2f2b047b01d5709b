// HDR-style latency histogram: log-linear buckets with 128 linear sub-buckets per power of two,
// so any recorded value is reported within 1/128 (< 0.8 %) of itself — from 1 ns up to ~18 minutes
// (2^40 ns), which covers the 100 ns .. 60 s range flowbus measures. Values below 256 ns are exact.
//
// One histogram per recording thread (record() is a couple of instructions, no atomics); merge()
// the per-thread histograms to report. 35 KiB each. The linear histogram of the seed design lost
// all resolution at the tail percentiles; this one keeps the same relative precision everywhere.
// @threadsafe no: one writer; merge/read after the writer is done or paused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace flowbus::scheduling {

class histogram {
public:
  static constexpr unsigned sub_bucket_bits = 7;                   ///< 128 sub-buckets per octave
  static constexpr std::uint64_t max_trackable = (1ull << 40) - 1; ///< larger values count here
  static constexpr std::size_t bucket_count = 256 + 32 * 128;

  /// Records one value (ns). Values above max_trackable are counted as max_trackable (and
  /// counted in saturated()); the exact maximum is kept separately.
  void record(std::uint64_t v) noexcept {
    if (v > max_trackable) {
      ++saturated_;
      v = max_trackable;
    }
    ++counts_[index_of(v)];
    ++total_;
    sum_ += static_cast<double>(v);
    sum_sq_ += static_cast<double>(v) * static_cast<double>(v);
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
    if (total_ > 1) jitter_sum_ += static_cast<double>(v > last_ ? v - last_ : last_ - v);
    last_ = v;
  }
  void record_n(std::uint64_t v, std::uint64_t n) noexcept {
    for (std::uint64_t i = 0; i < n; ++i)
      record(v);
  }

  void merge(const histogram& other) noexcept;
  void reset() noexcept { *this = histogram{}; }

  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t min() const noexcept { return total_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return total_ ? sum_ / static_cast<double>(total_) : 0; }
  double stddev() const noexcept;
  /// Mean absolute difference between consecutive recorded values (RFC 3550's inter-arrival
  /// jitter idea, without its smoothing). Only meaningful for one thread's recording order.
  double jitter() const noexcept { return total_ > 1 ? jitter_sum_ / static_cast<double>(total_ - 1) : 0; }
  std::uint64_t saturated() const noexcept { return saturated_; }

  /// The value at percentile p (0..100]: the smallest recorded-value bucket such that at least p %
  /// of the values are at or below it, reported as the bucket's midpoint (exact below 256; the
  /// exact max for p = 100).
  std::uint64_t percentile(double p) const noexcept;

  /// {"count":..,"p50_ns":..,"p90_ns":..,"p95_ns":..,"p99_ns":..,"p999_ns":..,"max_ns":..,
  ///  "mean_ns":..,"jitter_ns":..} — the fields flowbus benchmarks print.
  std::string json_fields(const char* unit = "ns", double divisor = 1.0) const;

  /// Bucket arithmetic, public for tests.
  static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < 256) return static_cast<std::size_t>(v);
    const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));
    const unsigned shift = msb - sub_bucket_bits; // >= 1
    return 256 + (shift - 1) * 128 + static_cast<std::size_t>((v >> shift) - 128);
  }
  static std::uint64_t lowest_of(std::size_t index) noexcept;
  static std::uint64_t width_of(std::size_t index) noexcept;

private:
  std::array<std::uint64_t, bucket_count> counts_{};
  std::uint64_t total_ = 0, saturated_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0}, max_ = 0, last_ = 0;
  double sum_ = 0, sum_sq_ = 0, jitter_sum_ = 0;
};

} // namespace flowbus::scheduling
