// Progress output of a running step, shared by the CLI and the benchmarks: a bar redrawn in
// place on a TTY (stderr), a plain line every few seconds when stderr is not a TTY, one JSON
// object per event on stdout with --json, and the final summary either way. The printer is
// called from the pipeline's reporter thread and serializes its own output.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>

#include "pipeline/pipeline.h"

namespace dynamorph::pipeline {

struct ProgressStyle {
  bool json = false;                     // JSON lines on `out`
  bool tty = false;                      // redraw a bar on `err`
  bool quiet = false;                    // nothing but JSON (when asked for)
  std::string label;                     // "20261122101500 normalize_usernames, step 2"
  std::chrono::seconds plain_every{10};  // non-TTY: one line this often
};

// A rate smoothed exponentially over about `window_s` seconds, the ETA's basis: the last
// second alone jumps with every page and pause, the whole-run average trails a changed rate
// (a raised cap, a throttled table) for minutes. Time comes from the caller (the events'
// elapsed_s), so it is tested with exact values. Not thread-safe.
class RateSmoother {
 public:
  explicit RateSmoother(double window_s = 20) : window_s_(window_s) {}
  // A cumulative count at time t_s (seconds from any origin, not decreasing).
  void add(double t_s, double count);
  std::optional<double> rate() const { return rate_; }  // per second; none before two samples
  std::optional<double> eta_s(double remaining) const;

 private:
  double window_s_;
  std::optional<double> last_t_, last_count_, rate_;
};

std::function<void(const ProgressEvent&)> make_progress_printer(ProgressStyle style,
                                                                std::ostream& out,
                                                                std::ostream& err);

// {"scanned":…,"matched":…,…} and "scanned 10, matched 4, written 4[, skipped …]" ("-" when empty).
std::string format_counters_json(const Counters& c);
std::string format_counters_text(const Counters& c);

}  // namespace dynamorph::pipeline
