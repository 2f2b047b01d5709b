#include <flowbus/scheduling/histogram.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace flowbus::scheduling;

TEST_SUITE("histogram") {

  TEST_CASE("bucket arithmetic: contiguous, exact below 256, width 1/128 of the value above") {
    std::uint64_t expect_low = 0;
    for (std::size_t i = 0; i < histogram::bucket_count; ++i) {
      REQUIRE(histogram::lowest_of(i) == expect_low);
      REQUIRE(histogram::index_of(histogram::lowest_of(i)) == i);
      REQUIRE(histogram::index_of(histogram::lowest_of(i) + histogram::width_of(i) - 1) == i);
      if (i >= 256) REQUIRE(histogram::width_of(i) * 128 <= histogram::lowest_of(i));
      expect_low += histogram::width_of(i);
    }
    CHECK(histogram::index_of(histogram::max_trackable) == histogram::bucket_count - 1);
  }

  TEST_CASE("any single value from 1 ns to 60 s comes back within 1 %") {
    std::mt19937_64 rng(5);
    for (int i = 0; i < 20000; ++i) {
      const double lg = std::uniform_real_distribution<double>(0, std::log(60e9))(rng);
      const auto v = static_cast<std::uint64_t>(std::exp(lg)) + 1;
      histogram h;
      h.record(v);
      for (double p : {50.0, 99.0, 99.9}) {
        const auto got = static_cast<double>(h.percentile(p));
        REQUIRE(std::abs(got - static_cast<double>(v)) <= 0.01 * static_cast<double>(v));
      }
      CHECK(h.percentile(100) == v);
    }
  }

  TEST_CASE("percentiles of a known distribution match the sorted data within 1 %") {
    std::mt19937_64 rng(9);
    std::lognormal_distribution<double> dist(std::log(50'000.0), 1.0); // ~50 us median, long tail
    std::vector<std::uint64_t> values;
    histogram h;
    for (int i = 0; i < 200000; ++i) {
      const auto v = static_cast<std::uint64_t>(dist(rng)) + 100;
      values.push_back(v);
      h.record(v);
    }
    std::sort(values.begin(), values.end());
    for (double p : {50.0, 90.0, 95.0, 99.0, 99.9}) {
      CAPTURE(p);
      const auto idx = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(values.size()))) - 1;
      const auto exact = static_cast<double>(values[idx]);
      CHECK(std::abs(static_cast<double>(h.percentile(p)) - exact) <= 0.01 * exact);
    }
    CHECK(h.count() == values.size());
    CHECK(h.min() == values.front());
    CHECK(h.max() == values.back());
  }

  TEST_CASE("mean, stddev and jitter of a known sequence") {
    histogram h;
    for (std::uint64_t v : {100, 200, 100, 200})
      h.record(v);
    CHECK(h.mean() == doctest::Approx(150));
    CHECK(h.stddev() == doctest::Approx(50));
    CHECK(h.jitter() == doctest::Approx(100)); // |200-100| three times
    histogram steady;
    steady.record_n(1000, 10);
    CHECK(steady.jitter() == 0);
    CHECK(steady.stddev() == 0);
  }

  TEST_CASE("merging per-thread histograms equals recording everything in one") {
    std::mt19937_64 rng(3);
    histogram a, b, all;
    for (int i = 0; i < 50000; ++i) {
      const std::uint64_t v = rng() % 10'000'000;
      (i % 2 ? a : b).record(v);
      all.record(v);
    }
    histogram m = a;
    m.merge(b);
    CHECK(m.count() == all.count());
    CHECK(m.min() == all.min());
    CHECK(m.max() == all.max());
    CHECK(m.mean() == doctest::Approx(all.mean()));
    for (double p : {50.0, 90.0, 99.0, 99.9, 100.0})
      CHECK(m.percentile(p) == all.percentile(p));
  }

  TEST_CASE("values past the trackable range saturate but keep the exact max") {
    histogram h;
    h.record(1ull << 50);
    CHECK(h.saturated() == 1);
    CHECK(h.count() == 1);
    CHECK(h.percentile(50) == histogram::max_trackable);
    histogram empty;
    CHECK(empty.percentile(99) == 0);
    CHECK(empty.mean() == 0);
  }

  TEST_CASE("json fields carry the names the benchmarks promise") {
    histogram h;
    h.record(1500);
    const std::string j = h.json_fields("us", 1000.0);
    for (const char* k : {"\"p50_us\":", "\"p90_us\":", "\"p95_us\":", "\"p99_us\":", "\"max_us\":", "\"count\":1"})
      CHECK(j.find(k) != std::string::npos);
  }
}
