#include "pipeline/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dynamorph::pipeline {

namespace {
constexpr double kMinRate = 1.0;  // only when nothing was ever consumed
constexpr double kShareSmoothing = 0.25;
constexpr double kEstimateSmoothing = 0.2;
double seconds(RateLimiter::Clock::duration d) { return std::chrono::duration<double>(d).count(); }
RateLimiter::Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<RateLimiter::Clock::duration>(std::chrono::duration<double>(s));
}
}  // namespace

double RateLimiter::cap() const {
  std::lock_guard lock(mutex_);
  return cap_;
}

void RateLimiter::set_cap(double cap_per_second) {
  if (cap_per_second <= 0) return;
  std::lock_guard lock(mutex_);
  if (cap_ <= 0) return;  // unlimited stays unlimited: there is no share of nothing
  const bool at_cap = rate_ <= 0 || rate_ >= cap_;
  cap_ = cap_per_second;
  if (at_cap || rate_ > cap_) rate_ = cap_;
}

RateLimiter::RateLimiter(double cap_per_second, Now now)
    : cap_(cap_per_second > 0 ? cap_per_second : 0),
      now_(std::move(now)),
      rate_(cap_),
      next_free_(now_()),
      window_start_(next_free_) {}

RateLimiter::Clock::time_point RateLimiter::reserve(double units) {
  std::lock_guard lock(mutex_);
  return reserve_locked(now_(), units);
}

RateLimiter::Clock::time_point RateLimiter::reserve_locked(Clock::time_point now, double units) {
  if (!used_) {
    // The first request: the first window opens now, so that its consumption is measured over
    // the time requests were sent, not over the scan's first pages before them.
    used_ = true;
    window_start_ = now;
  }
  // Along the curve between windows too, not only in steps of one (seconds, when few answer).
  grow(now, false);
  if (rate_ <= 0) return now;
  next_free_ = std::max(next_free_, now - from_seconds(kBurst));
  auto at = std::max(now, next_free_);
  next_free_ += from_seconds(units / rate_);
  return at;
}

void RateLimiter::record(double reserved, double consumed, bool throttled) {
  std::lock_guard lock(mutex_);
  record_locked(now_(), reserved, consumed, throttled);
}

RateLimiter::Clock::time_point RateLimiter::reserve_estimated() {
  std::lock_guard lock(mutex_);
  double units = estimate_known_ ? estimate_ : 0;
  outstanding_units_ += units;
  ++outstanding_;
  return reserve_locked(now_(), units);
}

void RateLimiter::record_estimated(double consumed, bool throttled) {
  std::lock_guard lock(mutex_);
  double reserved = 0;
  if (outstanding_ > 0) {
    reserved = outstanding_units_ / static_cast<double>(outstanding_);
    outstanding_units_ -= reserved;
    if (--outstanding_ == 0) outstanding_units_ = 0;  // no drift left behind
  }
  estimate_ = estimate_known_ ? estimate_ + kEstimateSmoothing * (consumed - estimate_) : consumed;
  estimate_known_ = true;
  record_locked(now_(), reserved, consumed, throttled);
}

void RateLimiter::record_locked(Clock::time_point now, double reserved, double consumed,
                                bool throttled) {
  if (rate_ > 0) next_free_ += from_seconds((consumed - reserved) / rate_);
  ++window_responses_;
  if (throttled) ++window_throttled_;
  window_units_ += consumed;
  const double open_s = seconds(now - window_start_);
  if ((window_responses_ >= kMinSamples && open_s >= 1.0) ||
      (window_responses_ >= kFewSamples && open_s >= kLongWindow))
    close_window(now);
}

double RateLimiter::floor_rate() const {
  double best = *std::max_element(recent_.begin(), recent_.end());
  return best > 0 ? kFloor * best : kMinRate;
}

void RateLimiter::close_window(Clock::time_point now) {
  const Clock::time_point opened = window_start_;
  const double length = seconds(now - opened);
  const double share = static_cast<double>(window_throttled_) / window_responses_;
  const double consumption = window_units_ / length;
  recent_[static_cast<std::size_t>(recent_next_)] = consumption;
  recent_next_ = (recent_next_ + 1) % kFloorWindows;
  share_average_ += kShareSmoothing * (share - share_average_);
  window_start_ = now;
  window_responses_ = window_throttled_ = 0;
  window_units_ = 0;

  if (opened < settle_until_) {
    // Mostly answers to requests sent before the cut and their retries (whose back-off spans
    // seconds): not yet the cut's effect.
    return;
  }
  if (probing_) {
    // The window after a cut tells overload from throttles our rate does not cause: only the
    // former falls when we slow down.
    probing_ = false;
    baseline_ = std::min(kMaxBaseline, share);
    share_average_ = share;
    if (share >= cut_share_ / 2) {
      rate_ = cut_from_;
      growing_ = saved_growing_;
      grow_w_ = saved_w_;
      grow_w0_ = saved_w0_;
      grow_at_ = saved_at_;
      cut_at_cap_ = saved_cut_at_cap_;
    } else {
      grow_at_ = now;  // overload confirmed: CUBIC from here
    }
    return;
  }

  if (share > baseline_ + kThreshold) {
    saved_growing_ = growing_;
    saved_w_ = grow_w_;
    saved_w0_ = grow_w0_;
    saved_at_ = grow_at_;
    cut_from_ = rate_;
    cut_share_ = share;
    const double current = rate_ > 0 ? rate_ : std::numeric_limits<double>::infinity();
    // Of what was consumed, only the share answered without throttling is surely below the
    // server's limit (failed requests are booked at their estimate, retried ones may be stale).
    const double sustained = consumption * (1 - share);
    double target = kBeta * std::min(current, sustained);
    target = with_cap(std::min(current, std::max(target, floor_rate())));
    // What to regain. The first cut from the cap regains the cap: a cap is the user's (or the
    // table's provisioned) statement of what the server serves, and a first window at it is
    // the least reliable measure of consumption there is (the server's bucket may have started
    // empty; throttled answers come late, after their back-off, so its consumption is far below
    // what the server gave). Any other cut regains what was consumed without throttling (at
    // most the rate before the cut): the cap was shown too high, or there is none.
    const bool from_cap = cap_ > 0 && rate_ >= cap_ && !cut_at_cap_;
    rate_ = target;
    saved_cut_at_cap_ = cut_at_cap_;
    cut_at_cap_ = cut_at_cap_ || from_cap;
    grow_w_ = from_cap ? cap_ : std::max(target, std::min(current, sustained));
    grow_w0_ = target;
    grow_at_ = now;
    growing_ = true;
    settle_until_ = now + from_seconds(kSettleSeconds);
    probing_ = true;
    return;
  }

  baseline_ = std::min(baseline_, share_average_);
  grow(now, true);
}

void RateLimiter::grow(Clock::time_point now, bool window_closed) {
  if (!growing_ || probing_ || rate_ <= 0) return;
  // CUBIC: concave up to the rate before the cut, flat near it, then probing above it. The
  // amplitude has a minimum so that a cut held up by the floor still probes upwards.
  const double t = seconds(now - grow_at_);
  const double amplitude = std::max(grow_w_ - grow_w0_, (1 - kBeta) * grow_w_);
  const double x = (t - kCubicK) / kCubicK;
  double next = std::max(grow_w0_, grow_w_ + amplitude * x * x * x);
  // Between windows only back up to W (regaining what was in use is safe); probing above it
  // waits for a window's verdict.
  if (!window_closed) next = std::max(rate_, std::min(next, grow_w_));
  rate_ = next;
  if (cap_ > 0 && rate_ >= cap_) {
    rate_ = cap_;
    growing_ = false;
  } else if (window_closed && cap_ <= 0 &&
             rate_ > 2 * *std::max_element(recent_.begin(), recent_.end())) {
    rate_ = 0;  // far above what is consumed: unlimited again
    growing_ = false;
  }
}

double RateLimiter::rate() const {
  std::lock_guard lock(mutex_);
  return rate_;
}

double RateLimiter::baseline_share() const {
  std::lock_guard lock(mutex_);
  return baseline_;
}

}  // namespace dynamorph::pipeline
