// Full-run estimates and the extrapolation of sampled dry runs, on known figures.
#include "migrations/estimate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

namespace dynamorph::migrations {
namespace {

TEST(Estimate, ScalesTheMeasuredPartToTheTable) {
  Prices prices;  // us-east-1: $0.125 / $0.625 per million
  Measured m{10'000, 2.0, 500, 10'000};
  Estimate e = estimate_full_run(1'000'000, m, 0, 0, prices);
  EXPECT_EQ(e.table_items, 1'000'000);
  EXPECT_DOUBLE_EQ(e.full_run_s, 200.0);
  EXPECT_DOUBLE_EQ(e.rcu, 50'000);
  EXPECT_DOUBLE_EQ(e.wcu, 1'000'000);
  EXPECT_NEAR(e.cost_usd_on_demand, 50'000 * 0.125e-6 + 1'000'000 * 0.625e-6, 1e-12);
  EXPECT_EQ(e.limited_by, "measured rate");
}

TEST(Estimate, CapsSlowTheRunDown) {
  Measured m{10'000, 2.0, 500, 10'000};
  Estimate w = estimate_full_run(1'000'000, m, 0, 1000, Prices{});
  EXPECT_DOUBLE_EQ(w.full_run_s, 1000.0);  // 1 M WCU at 1000/s
  EXPECT_EQ(w.limited_by, "max_wcu");
  Estimate r = estimate_full_run(1'000'000, m, 10, 0, Prices{});
  EXPECT_DOUBLE_EQ(r.full_run_s, 5000.0);
  EXPECT_EQ(r.limited_by, "max_rcu");
  Estimate none = estimate_full_run(0, m, 0, 0, Prices{});  // unknown size: what was measured
  EXPECT_EQ(none.table_items, 10'000);
  EXPECT_DOUBLE_EQ(none.full_run_s, 2.0);
}

TEST(Estimate, SampleSegmentsAtLeastOneDistinctSorted) {
  auto s = sample_segments(100, 25, 7);
  ASSERT_EQ(s.size(), 25u);
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  EXPECT_EQ(std::set<int>(s.begin(), s.end()).size(), 25u);
  EXPECT_EQ(sample_segments(8, 1, 7).size(), 1u);
  EXPECT_EQ(sample_segments(8, 100, 7).size(), 8u);
}

TEST(Estimate, ExtrapolationIntervalCoversTheTruth) {
  // 40,000 items hashed into 100 segments, 80% of them matching; sample 25 segments many
  // times: the stated 99% interval holds the true count in about 99% of the samples or more.
  std::mt19937_64 rng(11);
  std::vector<double> matched(100, 0);
  std::uniform_int_distribution<int> seg(0, 99);
  std::bernoulli_distribution match(0.8);
  double truth = 0;
  for (int i = 0; i < 40'000; ++i) {
    if (match(rng)) {
      matched[static_cast<std::size_t>(seg(rng))] += 1;
      truth += 1;
    }
  }
  int covered = 0;
  const int trials = 400;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> picked;
    for (int s : sample_segments(100, 25, static_cast<unsigned>(t)))
      picked.push_back(matched[static_cast<std::size_t>(s)]);
    Extrapolated e = extrapolate(picked, 100);
    EXPECT_GT(e.plus_minus, 0);
    EXPECT_LT(e.plus_minus, truth * 0.1);  // and it is not uselessly wide
    if (std::fabs(e.value - truth) <= e.plus_minus) ++covered;
  }
  EXPECT_GE(covered, trials * 97 / 100);
}

TEST(Estimate, ReadingEverythingIsExact) {
  Extrapolated e = extrapolate({10, 20, 30}, 3);
  EXPECT_DOUBLE_EQ(e.value, 60);
  EXPECT_DOUBLE_EQ(e.plus_minus, 0);
}

TEST(Estimate, FormatSeconds) {
  EXPECT_EQ(format_seconds(0.44), "0.4 s");
  EXPECT_EQ(format_seconds(42), "42 s");
  EXPECT_EQ(format_seconds(200), "3 min 20 s");
  EXPECT_EQ(format_seconds(7500), "2 h 05 min");
  EXPECT_EQ(format_seconds(3 * 86400 + 4 * 3600), "3 d 4 h");
}

}  // namespace
}  // namespace dynamorph::migrations
