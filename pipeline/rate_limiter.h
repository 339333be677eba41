// Client-side capacity throttle for one direction (reads or writes): a token bucket with debt
// whose rate adapts to *overload*, not to the mere presence of throttles. Thread-safe; never
// blocks: reserve() says *when* a request may go, and the caller schedules it on the I/O
// thread's timer.
//
// Spacing. reserve(u) books u units at the current rate and returns when the request may go;
// record() settles the difference between what was booked and what the answer says was consumed
// (debt delays later requests, credit advances them). The bucket starts empty and keeps at most
// kBurst (0.25 s) of unused capacity, so from the start N units at rate C go out over N/C
// seconds (the last request starts at (N - u)/C), and any interval T after an idle spell sees at
// most C * (T + 0.25 s) plus one request.
//
// What it measures. Responses are counted in windows, the first opening at the first
// reservation (not over the idle time before it): a window closes at the first response at
// least 1 s after it opened and after at least kMinSamples (20) responses, or at least
// kLongWindow (3 s) after it opened and after kFewSamples (10): a slow trickle is judged over more
// time, never on one or two answers, and a slow run (a table of 100 WCU sees four batches a
// second; partly unprocessed ones answer after their retries) still decides every few seconds,
// not every ten or twenty. Per window: the throttled share s
// (responses whose request saw at least one throttled attempt or unprocessed round, over all
// responses) and the consumption c (units consumed / window length).
//
// When it cuts. At most once per window, and only when s > b + kThreshold (0.15), where b is the
// baseline share: the share that cutting was found not to reduce (below). A cut sets the rate to
// kBeta (0.7) times min(current rate, c * (1 - s)) — from unlimited, 0.7 of what was consumed
// by the requests answered without throttling, which is surely below the server's limit — never
// below the floor, never above the cap. The windows that open within kSettleSeconds (3 s) of a
// cut are left to settle (their answers are mostly to requests sent before the cut, and to their
// retries, whose back-off spans seconds) — three windows at 1 s, one when few answers make
// windows long; the next one is a probe: if its share is not
// below half the share that caused the cut, the throttles do not depend on our rate (a hot
// partition, a random fault: the client retries those) and the cut is undone — the rate goes
// back to what it was (unlimited, if it was) and b becomes the probe's share (at most kMaxBaseline,
// 0.5). If the share fell, it was overload: b becomes the probe's share (about 0) and the rate
// grows from the cut. b follows the share down in quiet windows (b = min(b, moving average of s)),
// so a trickle that stops stops being tolerated.
//
// How it grows. After a cut from W to W0 (W: the cap, at the first cut from the cap; otherwise
// at most what was consumed without throttling in the window that cut, never above the rate
// before the cut), while s stays at or below b + kThreshold, the rate t seconds after the probe
// that confirmed the overload is CUBIC's W(t) = W + (W - W0) * ((t - K) / K)^3 with K = kCubicK
// (4 s): concave back up to W within K seconds, flat near W, then convex probing above it (at
// 2K, 2W - W0). It follows the curve at every reservation up to W, and above W only when a
// window closes (a window's verdict comes first). It never exceeds the cap; without a cap it becomes unlimited again once it is more than
// twice the highest consumption of the recent windows (we are not using it). Without a cap and
// without a cut the rate stays unlimited.
//
// The floor. No cut goes below kFloor (0.5) times the highest consumption of the last
// kFloorWindows (10) windows — the rate last sustained — so an unlucky run of windows cannot
// take the rate down to nothing; after a real drop of capacity the floor follows within ten
// windows. Only when nothing was ever consumed does the floor fall back to 1 unit/s.
//
// The clock is injectable (a function returning steady_clock time points) so that tests can
// simulate minutes in microseconds.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <mutex>

namespace dynamorph::pipeline {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  static constexpr double kBurst = 0.25;       // seconds of unused capacity kept
  static constexpr int kMinSamples = 20;       // responses per window, at least…
  static constexpr int kFewSamples = 10;       // …or this many, once a window is this long:
  static constexpr double kLongWindow = 3.0;   // seconds
  static constexpr double kThreshold = 0.15;   // throttled share above the baseline that cuts
  static constexpr double kBeta = 0.7;         // multiplicative decrease
  static constexpr double kMaxBaseline = 0.5;  // the most throttling ever tolerated as "not ours"
  static constexpr double kCubicK = 4.0;       // seconds to regain the rate before a cut
  static constexpr double kFloor = 0.5;        // of the highest recent consumption
  static constexpr int kFloorWindows = 10;
  static constexpr double kSettleSeconds = 3.0;  // after a cut, before the probe

  // cap_per_second <= 0: no cap (unlimited until overload is seen).
  explicit RateLimiter(double cap_per_second, Now now = Clock::now);

  // Reserves `units` of capacity; returns when the request may be sent (now or later).
  Clock::time_point reserve(double units);
  // After the response: what it really consumed (the difference settles the debt) and whether
  // any attempt was throttled (or a batch round left items unprocessed).
  void record(double reserved, double consumed, bool throttled);

  // For requests whose cost is known only from the answer (Scan and Query pages): reserves the
  // running average of what such requests consumed, so that concurrent readers are spaced before
  // their debts land; record_estimated() settles against the average booked by the requests
  // still outstanding (the bookings balance exactly once all have answered).
  Clock::time_point reserve_estimated();
  void record_estimated(double consumed, bool throttled);

  double rate() const;  // current units/s; 0 = unlimited
  double cap() const;
  // Moves a cap (one worker's share of a whole run's cap, when the number of workers changes):
  // a rate at the old cap follows it, a rate above the new one comes down to it; a rate cut by
  // throttling stays where it is and grows towards the new cap. Only for a limiter made with a
  // cap; `cap_per_second` > 0.
  void set_cap(double cap_per_second);
  double baseline_share() const;  // b above, for tests and reports

 private:
  void record_locked(Clock::time_point now, double reserved, double consumed, bool throttled);
  Clock::time_point reserve_locked(Clock::time_point now, double units);
  void close_window(Clock::time_point now);
  // CUBIC after a confirmed cut: at each reservation back up to W, and at each window's close
  // (which alone probes above W, and may turn an uncapped rate unlimited again).
  void grow(Clock::time_point now, bool window_closed);
  double floor_rate() const;
  double with_cap(double r) const { return cap_ > 0 ? std::min(r, cap_) : r; }

  double cap_;  // under mutex_
  const Now now_;
  mutable std::mutex mutex_;
  double rate_;  // 0: unlimited
  Clock::time_point next_free_;

  bool used_ = false;  // a request was reserved
  // The open window (from the first reservation).
  Clock::time_point window_start_;
  int window_responses_ = 0, window_throttled_ = 0;
  double window_units_ = 0;
  // Consumption of the last kFloorWindows windows (a ring).
  std::array<double, kFloorWindows> recent_{};
  int recent_next_ = 0;

  double baseline_ = 0;       // b
  double share_average_ = 0;  // moving average of s, for b's decay
  // The last cut: rate before (0: unlimited), the share that caused it, and whether the window
  // after it is still settling, the probe still to be judged; the growth curve (W, W0, since when)
  // and the one before the cut, put back when the cut is undone.
  double cut_from_ = 0, cut_share_ = 0;
  Clock::time_point settle_until_{};  // windows opened before this settle; the next probes
  bool probing_ = false;
  bool growing_ = false, saved_growing_ = false;
  double grow_w_ = 0, grow_w0_ = 0, saved_w_ = 0, saved_w0_ = 0;
  Clock::time_point grow_at_{}, saved_at_{};
  // A cut from the cap was confirmed (not undone): later cuts regain what was consumed.
  bool cut_at_cap_ = false, saved_cut_at_cap_ = false;

  // reserve_estimated(): running average cost, and what outstanding requests booked.
  double estimate_ = 0;
  bool estimate_known_ = false;
  double outstanding_units_ = 0;
  long outstanding_ = 0;
};

}  // namespace dynamorph::pipeline
