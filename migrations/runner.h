// Runs one version up or down, from where its record says: the version record (conditional on
// the lease, like every write), pipeline steps with their checkpoints in the state table, schema
// steps, and the bookkeeping once every step is done. Reports through the Renderer. Main thread.
#pragma once

#include <optional>

#include "migrations/command_options.h"
#include "migrations/errors.h"
#include "migrations/lease.h"
#include "migrations/migration_file.h"
#include "migrations/state_table.h"
#include "migrations/step_run.h"

namespace dynamorph::migrations {

class VersionRunner {
 public:
  // With `worker` (`up --worker`, this process holds the lock: the coordinator), pipeline steps
  // are run with the other workers through segment leases (worker.h).
  VersionRunner(StepContext context, StateTable& state, Lease& lease,
                struct WorkerContext* worker = nullptr);

  // Resumes `existing` when it is this direction's unfinished run, else starts afresh. Returns
  // Ok or Interrupted (checkpoints saved); throws on failure (the record says failed), or
  // UsageError for a plan-time refusal of the first step (the record is put back as it was).
  ExitCode run(const Migration& m, Direction direction, const UpOptions& o,
               std::optional<VersionRecord> existing);
  // `follow`: replays the stream of the applied version's `follow: stream` step into its target
  // until stopped (Interrupted, positions saved); throws StepFailed when the replay fails.
  ExitCode follow(const Migration& m, const UpOptions& o);

 private:
  // One pipeline step; false when it stopped on a signal.
  bool run_pipeline_step(const Migration& m, Direction direction, int index, const Step& step,
                         const PipelineStep& pipeline, const UpOptions& o, VersionRecord& rec);
  // The coordinator's part of a pipeline step (worker.h): creates the leases, works on them
  // with the others until every segment is done; false when it stopped on a signal.
  bool run_worker_step(const Migration& m, Direction direction, int index, const Step& step,
                       const stages::StepSpec& spec, const pipeline::RunOptions& ro,
                       VersionRecord& rec);
  void mark_failed(VersionRecord& rec, const std::string& error);
  // Records where the step's stream replay starts, unless recorded already (before its
  // backfill's first Scan, so that no change made after the backfill began is missed).
  void record_replay_start(const Migration& m, Direction direction, int index,
                           const stages::StepSpec& spec);
  // Replays the step's stream from its saved positions until caught up (lag_s >= 0) or stopped.
  pipeline::RunResult replay(const Migration& m, Direction direction, int index,
                             const stages::StepSpec& spec, pipeline::RunOptions ro, double lag_s);

  StepContext ctx_;
  StateTable& state_;
  Lease& lease_;
  struct WorkerContext* worker_;
};

}  // namespace dynamorph::migrations
