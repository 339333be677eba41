#include "pipeline/rate_limiter.h"

#include <algorithm>

namespace dynamorph::pipeline {

namespace {
constexpr double kMinRate = 1.0;
double seconds(RateLimiter::Clock::duration d) { return std::chrono::duration<double>(d).count(); }
RateLimiter::Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<RateLimiter::Clock::duration>(std::chrono::duration<double>(s));
}
}  // namespace

RateLimiter::Clock::time_point RateLimiter::reserve(double units) {
  std::lock_guard lock(mutex_);
  auto now = Clock::now();
  if (rate_ <= 0) return now;
  // Unused capacity does not pile up beyond one second's worth (the bucket's depth).
  next_free_ = std::max(next_free_, now - std::chrono::seconds(1));
  auto at = std::max(now, next_free_);
  next_free_ += from_seconds(units / rate_);
  return at;
}

void RateLimiter::record(double reserved, double consumed, bool throttled) {
  std::lock_guard lock(mutex_);
  auto now = Clock::now();
  if (seconds(now - window_start_) >= 1.0) {
    last_window_rate_ = window_units_ / seconds(now - window_start_);
    window_units_ = 0;
    window_start_ = now;
  }
  window_units_ += consumed;
  if (rate_ > 0) next_free_ += from_seconds((consumed - reserved) / rate_);
  adapt(now, throttled);
}

void RateLimiter::adapt(Clock::time_point now, bool throttled) {
  if (throttled) {
    last_throttle_ = now;
    if (seconds(now - last_decrease_) < 1.0) return;
    last_decrease_ = now;
    double observed = std::max(last_window_rate_, window_units_ / std::max(0.1, seconds(now - window_start_)));
    rate_ = rate_ <= 0 ? std::max(kMinRate, observed * 0.7) : std::max(kMinRate, rate_ * 0.7);
    return;
  }
  if (rate_ <= 0 || seconds(now - last_throttle_) < 1.0 || seconds(now - last_increase_) < 1.0) return;
  last_increase_ = now;
  rate_ *= 1.2;
  if (cap_ > 0) {
    rate_ = std::min(rate_, cap_);
  } else if (rate_ > 4 * std::max(kMinRate, last_window_rate_)) {
    rate_ = 0;  // far above what is consumed: unlimited again
  }
}

double RateLimiter::rate() const {
  std::lock_guard lock(mutex_);
  return rate_;
}

}  // namespace dynamorph::pipeline
