// How the commands speak: text lines for people (stdout; warnings on stderr), JSON lines with
// --json, both from here and nowhere else. The runner and the dry-run planner report what
// happens; the Renderer decides what is printed and how. Main thread, except the progress
// printers it makes (called on the pipeline's reporter thread; they serialize themselves).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "migrations/command_options.h"
#include "migrations/estimate.h"
#include "migrations/migration_file.h"
#include "migrations/state_table.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

// One row of `status`.
// A `follow: stream` step's replay, from its saved positions.
struct FollowStatus {
  int step = 0;                 // 1-based
  std::optional<double> lag_s;  // now minus what is applied; absent: unknown
  std::int64_t applied = 0;     // changes written by the replay so far
};

struct StatusRow {
  std::int64_t version = 0;
  std::string name;
  std::string word;  // pending | running | applied | failed | drift
  std::optional<std::string> when, file, checksum, recorded_checksum;  // absent: null
  int step = 0;
  pipeline::Counters counters;
  CheckpointCost checkpoints;
  std::string note;
  std::optional<ModelSchema> schema;  // recorded, or the file's while pending
  std::optional<FollowStatus> follow;
  std::map<std::string, VersionRecord::WorkerShare> workers;  // `up --worker` runs
  // Items in its dead-letter file (skipped, not yet retried), and the file; 0: none.
  std::int64_t dead_letters = 0;
  std::string dead_letter_file;
};

// The most a step's checkpoints can cost (see checkpoint_estimate in dry_run.h).
struct CheckpointEstimate {
  std::int64_t writes = 0, deletes = 0;
  double wcu = 0;
};

// A sampled dry run: which share it read, and the uncertainty of what it extrapolated.
struct DryRunSample {
  int segments_read = 0, segments_total = 0;
  double percent = 0;
  std::int64_t items_read = 0;  // what the sample itself read
  Extrapolated scanned, matched;  // the counters themselves are scaled by total / read
};

// What a dry run found for one pipeline step.
struct DryRunStep {
  std::int64_t version = 0;
  int index = 0;  // 1-based
  pipeline::Counters counters;
  double estimated_wcu = 0;
  std::vector<std::pair<std::string, double>> index_wcu;  // the global indexes' share
  CheckpointEstimate checkpoints;
  std::vector<pipeline::ChangeSample> samples;
  std::optional<DryRunSample> sampled;
  Estimate estimate;
  double read_s = 0;  // how long the dry run's reads took
  // With `journal:` set: what the journal would keep (gzip'd bytes, before-images).
  std::optional<std::int64_t> journal_bytes, journal_records;
};

class Renderer {
 public:
  Renderer(const GlobalOptions& options, std::ostream& out, std::ostream& err);

  void info(const std::string& line);     // for people: not with --json or -q
  void result(const std::string& line);   // what a command did: not with --json, even with -q
  void detail(const std::string& line);   // -v only
  void warning(const std::string& line);  // "warning: …" on stderr, always
  // The pipeline's progress printer for one version (none with -q).
  std::function<void(const pipeline::ProgressEvent&)> progress(const Migration& m) const;

  // ---- status
  void status_header();
  void status_row(const StatusRow& row);
  void status_lock(const LockRecord& lock, bool expired);

  // ---- up and down
  void version_start(const Migration& m, Direction direction, const VersionRecord& record,
                     bool resumed);
  void step_start(std::size_t index, std::size_t count, const Step& step);
  void version_done(const Migration& m, Direction direction, const VersionRecord& record);

  // ---- dry runs: text on stdout, or only dry_run_step events with --json
  void dry_run_empty();
  void dry_run_version(const Migration& m, Direction direction);
  void dry_run_step_start(std::size_t index, std::size_t count, const Step& step);
  void dry_run_schema(const ModelSchema& schema);
  void dry_run_note(const std::string& line);     // "    …"
  void dry_run_warning(const std::string& line);  // "    warning: …"
  void dry_run_step(const DryRunStep& step);
  void dry_run_total(const Estimate& total, const Prices& prices);
  void dry_run_end(bool would_fail);

 private:
  std::ostream& plan_text();

  GlobalOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::ostringstream discard_;
};

}  // namespace dynamorph::migrations
