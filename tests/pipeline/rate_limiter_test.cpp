// The capacity throttle: spacing of reservations at a fixed rate, debt settled by what was really
// consumed, decrease on throttling and slow recovery (no sleeping: times are compared).
#include <gtest/gtest.h>

#include <thread>

#include "pipeline/rate_limiter.h"

using dynamorph::pipeline::RateLimiter;
using Clock = std::chrono::steady_clock;

namespace {

double ahead_s(Clock::time_point t) { return std::chrono::duration<double>(t - Clock::now()).count(); }

TEST(RateLimiter, UnlimitedNeverDelays) {
  RateLimiter r(0);
  for (int i = 0; i < 1000; ++i) EXPECT_LE(ahead_s(r.reserve(1000)), 0.0);
  EXPECT_EQ(r.rate(), 0);
}

TEST(RateLimiter, FixedRateSpacesReservations) {
  RateLimiter r(100);  // 100 units/s
  r.reserve(0);
  auto first = r.reserve(50);  // now (the bucket allows up to one second of burst)
  (void)first;
  // 200 more units at 100/s: the last one may go about 1-2 s from now, never sooner.
  Clock::time_point last;
  for (int i = 0; i < 4; ++i) last = r.reserve(50);
  EXPECT_GT(ahead_s(last), 0.4);
  EXPECT_LT(ahead_s(last), 2.6);
}

TEST(RateLimiter, ThrottlingCutsTheRateAndItRecoversUpToTheCap) {
  RateLimiter r(100);
  r.record(0, 10, true);
  EXPECT_DOUBLE_EQ(r.rate(), 70);
  r.record(0, 10, true);  // within the same second: no second cut
  EXPECT_DOUBLE_EQ(r.rate(), 70);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  r.record(0, 10, false);  // a second clear: +20%
  EXPECT_DOUBLE_EQ(r.rate(), 84);
  std::this_thread::sleep_for(std::chrono::milliseconds(1050));
  r.record(0, 10, false);
  EXPECT_DOUBLE_EQ(r.rate(), 100);  // capped
}

TEST(RateLimiter, UnlimitedTurnsAdaptiveOnThrottling) {
  RateLimiter r(0);
  r.record(0, 500, false);
  r.record(0, 10, true);
  EXPECT_GT(r.rate(), 0) << "a throttle caps the rate at a share of what was consumed";
  EXPECT_LE(r.rate(), 510 * 0.7 / 0.1 + 1);
}

}  // namespace
