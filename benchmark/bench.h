// `dynamorph bench seed|scan|write|migrate`: throughput, latency, capacity and cost of a table
// and of a version's pipeline steps, before the real run. Benchmarks never touch data they did
// not create: seed and write only write tables they create (or empty ones they are given, which
// they leave empty again), scan only reads, migrate runs the pipeline with the none writer.
// Runs on the main thread; stop() is the flag the signal handlers set.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "benchmark/write_load.h"
#include "migrations/command_options.h"
#include "migrations/errors.h"

namespace dynamorph::benchmark {

struct BenchOptions {
  std::string command;  // seed, scan, write, migrate
  std::optional<std::string> table;
  std::int64_t items = 0;  // 0: the command's default
  int item_bytes = 300;
  std::vector<int> segments;   // scan, migrate: the sweep (empty: the default list)
  double duration_s = 0;       // scan: at most this long per setting (0: the whole table)
  int page_size = -1;          // scan: Limit per Scan (-1: the pipeline's default, 0: 1 MB pages)
  WriteKind mode = WriteKind::Batch;
  std::vector<int> in_flight;  // write: the sweep (empty: 4,16,64)
  std::optional<std::int64_t> version;  // migrate
  std::optional<double> sample_percent;  // migrate
  double max_rcu = 0, max_wcu = 0;
  std::optional<std::string> report;  // --report FILE.html
  bool keep = false;
  bool yes = false;
};

// "1,2,4,8" → {1, 2, 4, 8}; UsageError naming `flag` for anything else (0, negatives, junk).
std::vector<int> parse_positive_list(const std::string& text, const std::string& flag);

class Bench {
 public:
  Bench(migrations::GlobalOptions options, std::ostream& out, std::ostream& err);
  ~Bench();
  std::atomic<bool>& stop() { return stop_; }
  migrations::ExitCode run(const BenchOptions& options);

 private:
  struct Impl;
  migrations::GlobalOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::atomic<bool> stop_{false};
};

}  // namespace dynamorph::benchmark
