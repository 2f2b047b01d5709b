#include <flowbus/scheduling/metrics.hpp>

namespace flowbus::scheduling {

std::size_t bucket_histogram::shard_index() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % shard_count;
  return mine;
}

bucket_snapshot bucket_histogram::read() const noexcept {
  bucket_snapshot out;
  for (const shard& s : shards_) {
    for (std::size_t i = 0; i < latency_buckets; ++i)
      out.counts[i] += s.counts[i].load(std::memory_order_relaxed);
    out.sum_ns += static_cast<double>(s.sum.load(std::memory_order_relaxed));
  }
  for (std::uint64_t c : out.counts)
    out.count += c;
  return out;
}

void bucket_snapshot::merge(const bucket_snapshot& o) noexcept {
  for (std::size_t i = 0; i < latency_buckets; ++i)
    counts[i] += o.counts[i];
  count += o.count;
  sum_ns += o.sum_ns;
}

double bucket_snapshot::quantile(double q) const noexcept {
  if (count == 0) return 0;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  const double rank = q * static_cast<double>(count);
  double below = 0;
  for (std::size_t i = 0; i < latency_buckets; ++i) {
    const double c = static_cast<double>(counts[i]);
    if (c > 0 && below + c >= rank) {
      if (i == latency_bounds_ns.size()) return static_cast<double>(latency_bounds_ns.back());
      const double lo = i ? static_cast<double>(latency_bounds_ns[i - 1]) : 0.0;
      const double hi = static_cast<double>(latency_bounds_ns[i]);
      return lo + (hi - lo) * ((rank - below) / c);
    }
    below += c;
  }
  return static_cast<double>(latency_bounds_ns.back());
}

} // namespace flowbus::scheduling
