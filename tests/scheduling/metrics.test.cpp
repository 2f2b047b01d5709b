// The monitoring histograms: bucket edges, counts and sums from many threads at once, and the
// quantiles estimated inside a bucket.
#include <flowbus/scheduling/metrics.hpp>

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace flowbus::scheduling;

TEST_SUITE("metrics") {
  TEST_CASE("a value falls in the first bucket whose upper bound is at least it") {
    CHECK(bucket_histogram::bucket_of(0) == 0);
    CHECK(bucket_histogram::bucket_of(1'000) == 0);   // le="1e-06" includes 1 µs
    CHECK(bucket_histogram::bucket_of(1'001) == 1);
    CHECK(bucket_histogram::bucket_of(100'000) == 6); // 100 µs
    CHECK(bucket_histogram::bucket_of(10'000'000'000) == latency_bounds_ns.size() - 1);
    CHECK(bucket_histogram::bucket_of(10'000'000'001) == latency_bounds_ns.size()); // +Inf
  }

  TEST_CASE("records from several threads are all counted, with their sum") {
    bucket_histogram h;
    constexpr int threads = 4, each = 20000;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&h, t] {
        for (int i = 0; i < each; ++i)
          h.record(static_cast<std::uint64_t>(t + 1) * 1'000'000); // 1, 2, 3, 4 ms
      });
    for (auto& t : ts)
      t.join();
    const bucket_snapshot s = h.read();
    CHECK(s.count == threads * each);
    CHECK(s.sum_ns == doctest::Approx(static_cast<double>(each) * (1 + 2 + 3 + 4) * 1e6));
    CHECK(s.counts[bucket_histogram::bucket_of(1'000'000)] == each);                 // le 1 ms
    CHECK(s.counts[bucket_histogram::bucket_of(2'000'000)] == each);                 // le 2.5 ms
    CHECK(s.counts[bucket_histogram::bucket_of(3'000'000)] == 2 * each);             // le 5 ms: 3 and 4
  }

  TEST_CASE("a run recorder adds runs of one bucket at once, and loses nothing across histograms") {
    bucket_histogram a, b;
    run_recorder r;
    for (int i = 0; i < 10; ++i)
      r.record(a, 3'000); // one run (a, 5 µs bucket)
    r.record(a, 30'000);  // another bucket
    r.record(b, 30'000);  // another histogram
    r.record(a, 3'000);
    CHECK(a.read().count == 11); // each run is added when the next begins; the last one waits
    CHECK(b.read().count == 1);
    r.flush();
    r.flush(); // (twice: nothing more)
    const bucket_snapshot sa = a.read(), sb = b.read();
    CHECK(sa.count == 12);
    CHECK(sa.counts[bucket_histogram::bucket_of(3'000)] == 11);
    CHECK(sa.counts[bucket_histogram::bucket_of(30'000)] == 1);
    CHECK(sa.sum_ns == doctest::Approx(11 * 3'000 + 30'000));
    CHECK(sb.count == 1);
    CHECK(sb.sum_ns == doctest::Approx(30'000));
  }

  TEST_CASE("quantiles interpolate inside the bucket, and merge adds") {
    bucket_histogram h;
    for (int i = 0; i < 100; ++i)
      h.record(30'000); // all in (25 µs, 50 µs]
    bucket_snapshot s = h.read();
    CHECK(s.quantile(0.5) == doctest::Approx(37'500));
    CHECK(s.quantile(1.0) == doctest::Approx(50'000));
    bucket_histogram other;
    for (int i = 0; i < 100; ++i)
      other.record(20'000'000'000); // beyond the last bound
    s.merge(other.read());
    CHECK(s.count == 200);
    CHECK(s.quantile(0.125) == doctest::Approx(31'250));
    CHECK(s.quantile(0.99) == doctest::Approx(10'000'000'000.0)); // +Inf reports the last bound
    CHECK(bucket_snapshot{}.quantile(0.5) == 0);
  }
}
