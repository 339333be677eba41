// Which write requests ask for their ConsumedCapacity, and how the others are priced.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "pipeline/write_meter.h"

namespace dynamorph::pipeline {
namespace {

std::vector<int> sampled(WriteMeter& m, int n) {
  std::vector<int> at;
  for (int i = 0; i < n; ++i) {
    if (m.sample()) at.push_back(i);
  }
  return at;
}

TEST(WriteMeter, TheFirstEightThenOneInSixteen) {
  WriteMeter m;
  EXPECT_EQ(sampled(m, 8 + 48), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 23, 39, 55}));
  EXPECT_EQ(m.requests(), 56);
  EXPECT_EQ(m.metered(), 0);  // sampling is not an answer
}

TEST(WriteMeter, EveryOneMetersEveryRequest) {
  WriteMeter m(1);
  EXPECT_EQ(sampled(m, 40).size(), 40u);
  WriteMeter zero(0);  // taken as 1
  EXPECT_EQ(sampled(zero, 20).size(), 20u);
}

TEST(WriteMeter, UntilAnAnswerTheEstimateStands) {
  WriteMeter m;
  EXPECT_EQ(m.ratio(), 1.0);
  EXPECT_EQ(m.cost(25), 25.0);
  m.observe(0, 3);  // estimated at nothing: cannot calibrate
  EXPECT_EQ(m.cost(25), 25.0);
}

TEST(WriteMeter, AnExactEstimateStaysExact) {
  // Integral units, consumed == estimate: the decayed sums are bitwise equal, so a run's
  // consumed WCU equals its estimate exactly (tests/cli/plan_output_test.py relies on it).
  WriteMeter m;
  for (int i = 0; i < 1000; ++i) m.observe(1 + i % 25, 1 + i % 25);
  EXPECT_EQ(m.ratio(), 1.0);
  EXPECT_EQ(m.cost(17), 17.0);
  EXPECT_EQ(m.metered(), 1000);
}

TEST(WriteMeter, ABiasIsCorrectedAndFollowed) {
  WriteMeter m;
  for (int i = 0; i < 10; ++i) m.observe(25, 50);  // items twice the size the sink assumed
  EXPECT_DOUBLE_EQ(m.ratio(), 2.0);
  EXPECT_DOUBLE_EQ(m.cost(10), 20.0);
  // The bias goes away: n answers at 1:1 later, the old answers weigh r^n of what they did
  // (r = 63/64 per answer).
  const int n = 64;
  for (int i = 0; i < n; ++i) m.observe(25, 25);
  const double r = 63.0 / 64.0;
  const double old_weight = (1 - std::pow(r, 10)) * std::pow(r, n);  // the first ten, decayed
  const double new_weight = 1 - std::pow(r, n);
  EXPECT_NEAR(m.ratio(), (2 * old_weight + new_weight) / (old_weight + new_weight), 1e-12);
  EXPECT_LT(m.ratio(), 1.15);
}

}  // namespace
}  // namespace dynamorph::pipeline
