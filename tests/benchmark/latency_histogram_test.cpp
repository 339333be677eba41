// The log-linear histogram against exact nearest-rank percentiles of known distributions,
// within its stated precision; merging per-thread histograms equals recording into one.
#include "benchmark/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace dynamorph::benchmark {
namespace {

double exact_percentile(std::vector<std::uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

void expect_within_precision(const std::vector<std::uint64_t>& values, int bits) {
  LatencyHistogram h(bits);
  for (auto v : values) h.record(v);
  ASSERT_EQ(h.count(), values.size());
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
  for (double p : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0}) {
    const double exact = exact_percentile(values, p);
    const double got = h.percentile(p);
    EXPECT_LE(std::fabs(got - exact), h.relative_error() * exact + 1e-9)
        << "p" << p << ": histogram " << got << ", exact " << exact;
  }
}

TEST(LatencyHistogram, StatedPrecisionIsHalfABucket) {
  EXPECT_DOUBLE_EQ(LatencyHistogram(7).relative_error(), 1.0 / 256);
  EXPECT_DOUBLE_EQ(LatencyHistogram(3).relative_error(), 1.0 / 16);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::uint64_t v = 0; v < 128; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 63);  // rank 64 of 0..127
  EXPECT_EQ(h.percentile(100), 127);
  EXPECT_EQ(h.percentile(1), 1);  // rank ceil(1.28) = 2
}

TEST(LatencyHistogram, UniformDistribution) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<std::uint64_t> d(100, 2'000'000);
  std::vector<std::uint64_t> v(200'000);
  for (auto& x : v) x = d(rng);
  expect_within_precision(v, 7);
  expect_within_precision(v, 4);  // coarser: the bound widens with it, and still holds
}

TEST(LatencyHistogram, LogNormalLatencies) {
  // Request latencies: a long right tail (median ~5 ms, p99.9 hundreds of ms, in µs).
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(std::log(5000.0), 1.0);
  std::vector<std::uint64_t> v(100'000);
  for (auto& x : v) x = static_cast<std::uint64_t>(d(rng));
  expect_within_precision(v, 7);
}

TEST(LatencyHistogram, ExponentialAndHugeValues) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> d(1.0 / 30000.0);
  std::vector<std::uint64_t> v(50'000);
  for (auto& x : v) x = static_cast<std::uint64_t>(d(rng));
  v.push_back(UINT64_MAX / 3);  // one absurd outlier: max stays exact
  expect_within_precision(v, 7);
}

TEST(LatencyHistogram, MergeEqualsOneHistogram) {
  std::mt19937_64 rng(4);
  std::lognormal_distribution<double> d(8.0, 1.5);
  LatencyHistogram all, parts[4];
  for (int i = 0; i < 40'000; ++i) {
    auto x = static_cast<std::uint64_t>(d(rng));
    all.record(x);
    parts[i % 4].record(x);
  }
  LatencyHistogram merged;
  for (const auto& p : parts) merged.merge(p);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(merged.percentile(p), all.percentile(p));
  EXPECT_THROW(merged.merge(LatencyHistogram(5)), std::invalid_argument);
}

TEST(LatencyHistogram, EmptyAndSingle) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile(50), 0);
  EXPECT_EQ(h.count(), 0u);
  h.record(123456);
  for (double p : {0.1, 50.0, 99.9, 100.0}) EXPECT_EQ(h.percentile(p), 123456);  // capped at max
}

}  // namespace
}  // namespace dynamorph::benchmark
