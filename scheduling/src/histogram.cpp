#include <flowbus/scheduling/histogram.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace flowbus::scheduling {

std::uint64_t histogram::lowest_of(std::size_t index) noexcept {
  if (index < 256) return index;
  const std::size_t shift = (index - 256) / 128 + 1;
  const std::uint64_t top = (index - 256) % 128 + 128;
  return top << shift;
}

std::uint64_t histogram::width_of(std::size_t index) noexcept {
  return index < 256 ? 1 : std::uint64_t{1} << ((index - 256) / 128 + 1);
}

void histogram::merge(const histogram& o) noexcept {
  for (std::size_t i = 0; i < bucket_count; ++i)
    counts_[i] += o.counts_[i];
  if (o.total_) {
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }
  total_ += o.total_;
  saturated_ += o.saturated_;
  sum_ += o.sum_;
  sum_sq_ += o.sum_sq_;
  jitter_sum_ += o.jitter_sum_; // per-thread sequences concatenated; the seam is not counted
}

double histogram::stddev() const noexcept {
  if (total_ < 2) return 0;
  const double n = static_cast<double>(total_), m = sum_ / n;
  return std::sqrt(std::max(0.0, sum_sq_ / n - m * m));
}

std::uint64_t histogram::percentile(double p) const noexcept {
  if (total_ == 0) return 0;
  if (p >= 100) return max_;
  const double want = std::max(1.0, std::ceil(p / 100.0 * static_cast<double>(total_)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += counts_[i];
    if (static_cast<double>(seen) >= want) {
      const std::uint64_t mid = lowest_of(i) + width_of(i) / 2;
      return std::min(std::max(mid, min_), max_); // never outside what was recorded
    }
  }
  return max_;
}

std::string histogram::json_fields(const char* unit, double divisor) const {
  char buf[512];
  auto v = [&](double x) { return x / divisor; };
  std::snprintf(buf, sizeof buf,
                "\"count\":%llu,\"p50_%s\":%.3f,\"p90_%s\":%.3f,\"p95_%s\":%.3f,\"p99_%s\":%.3f,"
                "\"p999_%s\":%.3f,\"max_%s\":%.3f,\"mean_%s\":%.3f,\"jitter_%s\":%.3f",
                static_cast<unsigned long long>(total_), unit, v(static_cast<double>(percentile(50))), unit,
                v(static_cast<double>(percentile(90))), unit, v(static_cast<double>(percentile(95))), unit,
                v(static_cast<double>(percentile(99))), unit, v(static_cast<double>(percentile(99.9))), unit,
                v(static_cast<double>(max_)), unit, v(mean()), unit, v(jitter()));
  return buf;
}

} // namespace flowbus::scheduling
