// What a benchmark found, as plain values, and its two renderings for the terminal: the
// contract's JSON result object (`--json`) and a table for people. The HTML report
// (report.h) draws the same values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "benchmark/latency_histogram.h"
#include "migrations/estimate.h"

namespace dynamorph::benchmark {

struct LatencySummary {  // milliseconds
  std::uint64_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};
LatencySummary summarize(const LatencyHistogram& us);

// One second of a run (rates over the second that ends at t_s).
struct SeriesPoint {
  double t_s = 0;
  double items_per_s = 0, mb_per_s = 0, rcu_per_s = 0, wcu_per_s = 0;
  std::uint64_t throttled = 0;  // throttled attempts in that second
};

// One run: a whole bench, or one setting of a sweep.
struct RunFigures {
  std::string setting_name;  // "segments", "in_flight"; empty: no sweep
  int setting = 0;
  std::int64_t items = 0, bytes = 0;
  double wall_s = 0;
  double rcu = 0, wcu = 0;  // consumed (bench migrate: wcu is what the writes would consume)
  std::map<std::string, LatencySummary> latency_ms;  // by operation
  std::uint64_t throttled = 0, retries = 0;
  double client_cpu_s = 0, peak_rss_mib = 0;
  std::vector<SeriesPoint> series;
  // bench migrate: the writes the real run would send.
  std::int64_t matched = 0, puts = 0, updates = 0, deletes = 0, transactions = 0;

  double items_per_s() const { return wall_s > 0 ? items / wall_s : 0; }
  double mb_per_s() const { return wall_s > 0 ? bytes / 1e6 / wall_s : 0; }
  double rcu_per_s() const { return wall_s > 0 ? rcu / wall_s : 0; }
  double wcu_per_s() const { return wall_s > 0 ? wcu / wall_s : 0; }
};

struct BenchResult {
  std::string bench;   // seed, scan, write, migrate
  std::string target;  // the table (and version) benchmarked, for titles
  std::string main_operation;  // the request the bench is about: Scan, BatchWriteItem …
  std::vector<RunFigures> runs;
  std::size_t best = 0;  // index into runs: the highest items/s
  migrations::Estimate estimate;
  migrations::Prices prices;
  std::vector<std::string> notes;  // what the reader should know (sampling, stops)
  const RunFigures& best_run() const { return runs.at(best); }
};

// Picks `best`: the highest items/s; among settings within 3% of it, the smallest (less load
// for the same speed).
void choose_best(BenchResult& r);

std::string result_json(const BenchResult& r);
std::string progress_json(const std::string& bench, const std::string& setting_name, int setting,
                          const SeriesPoint& p, std::int64_t items_so_far);
std::string result_text(const BenchResult& r);

}  // namespace dynamorph::benchmark
