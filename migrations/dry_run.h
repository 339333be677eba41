// Dry runs: plans every step of the versions `up` or `down` would run, runs each pipeline with
// the none writer (reads real, writes nothing), estimates writes and checkpoint cost, and hands
// each finding to the Renderer as it comes. Never takes the lock, never creates the state table.
// Main thread.
#pragma once

#include <cstdint>

#include "migrations/history.h"
#include "migrations/render.h"
#include "migrations/step_run.h"

namespace dynamorph::migrations {

// The most a step's checkpoints can cost: one write per page (the writer coalesces to one per
// segment per second, so a fast run writes far fewer), one delete per segment at the end, each
// 2 WCU (a checkpoint is under 1 KB; transactional writes cost double) plus a 2 WCU lock check
// per transaction of `transaction_limit` actions.
CheckpointEstimate checkpoint_estimate(const stages::StepSpec& spec, std::int64_t scanned,
                                       int transaction_limit);

// Makes a run sampled: the step's scan is split into max(its segments, 100) segments and only
// a random `percent` of them (at least one) are read. False, and nothing changed, when the step
// is not a plain table scan (a query, an export, a stream follow).
// `seed` picks the segments: the same seed, the same sample.
bool sample_run(stages::StepSpec& spec, pipeline::RunOptions& ro, double percent, unsigned seed);
// The sampled run's counters (in `step`, as the run left them) scaled to the whole table, and
// the uncertainty of scanned and matched.
DryRunSample sampled_counts(const pipeline::RunResult& r, const std::vector<int>& read, int total,
                            double percent, DryRunStep& step);

class DryRunPlanner {
 public:
  // `transaction_limit`: actions per transaction the checkpoint estimate assumes.
  DryRunPlanner(StepContext context, int transaction_limit);

  // Throws StepFailed when a pipeline cannot run, UsageError for a plan-time refusal. False
  // when the plan shows that the real run would fail (a source table that will not exist).
  bool plan(const Plan& plan, const UpOptions& o);

 private:
  StepContext ctx_;
  int transaction_limit_;
};

}  // namespace dynamorph::migrations
