// Client-side capacity throttle for one direction (reads or writes): a token bucket with debt,
// adapted AIMD-style to throttling. Thread-safe; never blocks: reserve() says *when* a request
// may go, and the caller schedules it on the I/O thread's timer.
//
// Rate control (AIMD-like, multiplicative both ways): with a cap (max_rcu / max_wcu / capacity
// percent) the rate starts at the cap; without one it starts unlimited. A throttled response
// cuts the rate to 70% (at most once a second; from unlimited, to 70% of the consumption
// observed over the last second). After a second without throttling it grows by 20% a second,
// back up to the cap, or back to unlimited once it is well above what is consumed.
#pragma once

#include <chrono>
#include <mutex>

namespace dynamorph::pipeline {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateLimiter(double cap_per_second) : cap_(cap_per_second), rate_(cap_per_second) {}

  // Reserves `units` of capacity; returns when the request may be sent (now or later).
  Clock::time_point reserve(double units);
  // After the response: what it really consumed (the difference settles the debt) and whether
  // any attempt was throttled.
  void record(double reserved, double consumed, bool throttled);

  double rate() const;  // current units/s; 0 = unlimited
  double cap() const { return cap_; }

 private:
  void adapt(Clock::time_point now, bool throttled);

  const double cap_;
  mutable std::mutex mutex_;
  double rate_;  // 0: unlimited
  Clock::time_point next_free_{};
  // Consumption observed in the current one-second window and the previous one.
  Clock::time_point window_start_ = Clock::now();
  double window_units_ = 0, last_window_rate_ = 0;
  Clock::time_point last_throttle_{}, last_decrease_{}, last_increase_{};
};

}  // namespace dynamorph::pipeline
