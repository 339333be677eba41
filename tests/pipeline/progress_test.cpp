// The ETA's rate: exponentially smoothed over a window, on the clock the caller gives it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "pipeline/progress.h"

namespace dynamorph::pipeline {
namespace {

TEST(RateSmoother, ExactValuesOnAnInjectedClock) {
  RateSmoother r(20);
  EXPECT_FALSE(r.rate());
  r.add(0, 0);
  EXPECT_FALSE(r.rate());  // one sample: no rate yet
  EXPECT_FALSE(r.eta_s(1000));
  r.add(1, 100);
  EXPECT_DOUBLE_EQ(*r.rate(), 100);  // the first interval sets it
  r.add(2, 100);                     // a second without progress: down by e^(-1/20), not to 0
  EXPECT_DOUBLE_EQ(*r.rate(), 100 * std::exp(-0.05));
  r.add(2, 500);  // no time passed: ignored
  EXPECT_DOUBLE_EQ(*r.rate(), 100 * std::exp(-0.05));
  r.add(12, 1100);  // 10 s at 100/s: weighted by the time it covers
  const double expected = 100 - 100 * (1 - std::exp(-0.05)) * std::exp(-0.5);
  EXPECT_DOUBLE_EQ(*r.rate(), expected);
  EXPECT_DOUBLE_EQ(*r.eta_s(1000), 1000 / expected);
  // A rate that halves: after one window the smoothed rate has moved 1 - 1/e of the way.
  RateSmoother h(20);
  h.add(0, 0);
  h.add(1, 200);
  for (int t = 2; t <= 21; ++t) h.add(t, 200 + 100.0 * (t - 1));
  EXPECT_NEAR(*h.rate(), 100 + 100 * std::exp(-1.0), 1e-9);
}

TEST(RateSmoother, NoEtaWithoutProgress) {
  RateSmoother r(20);
  r.add(0, 50);
  r.add(1, 50);
  EXPECT_DOUBLE_EQ(*r.rate(), 0);
  EXPECT_FALSE(r.eta_s(10));
}

ProgressEvent event(double t, std::int64_t scanned) {
  ProgressEvent e;
  e.elapsed_s = t;
  e.counters.scanned = scanned;
  e.table_items = 10000;
  e.segments_total = 1;
  e.items_per_s = scanned / std::max(t, 1.0);  // the whole-run average: not the ETA's basis
  return e;
}

TEST(ProgressPrinter, EtaFromTheSmoothedRate) {
  std::ostringstream out, err;
  auto print = make_progress_printer(ProgressStyle{false, true, false, "", {}}, out, err);
  print(event(1, 1000));
  print(event(2, 2000));  // 1000/s
  EXPECT_NE(err.str().find(", ETA 8s"), std::string::npos) << err.str();
  print(event(12, 2000));  // ten seconds stalled: the rate falls to 1000·e^(-0.5)
  const std::string line = err.str().substr(err.str().rfind('\r'));
  EXPECT_NE(line.find(fmt::format(", ETA {:.0f}s", 8000 / (1000 * std::exp(-0.5)))),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace dynamorph::pipeline
