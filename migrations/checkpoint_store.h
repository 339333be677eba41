// Pipeline checkpoints kept in the state table, per version, direction, step and segment.
// save() is called from TBB workers: it only records the newest checkpoint per segment under a
// mutex; a background thread writes what has accumulated in rounds about a second apart
// (coalescing: at most one write per segment per round, however many pages complete), each
// transaction conditional on the run's lock. flush() (pipeline thread) writes the rest and waits.
#pragma once

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "migrations/lease.h"
#include "migrations/state_table.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

class StateCheckpointStore final : public pipeline::CheckpointStore {
 public:
  // With `record` (the version's record as the step starts, counters_before_step set), each
  // round also puts the record, with this step's checkpointed counters and the checkpoint cost
  // so far, in the same transactions as the checkpoints: `status` shows a run's progress.
  StateCheckpointStore(StateTable& state, const Lease& lease, std::int64_t version,
                       Direction direction, int step,
                       std::optional<VersionRecord> record = std::nullopt,
                       std::string_view family = kStepCheckpoints);
  ~StateCheckpointStore() override;

  // One paged Query; the answer is kept until the first save (the session and the pipeline both
  // ask before the step starts).
  std::optional<pipeline::RunCheckpoint> load() override;
  void save(const pipeline::SegmentCheckpoint& checkpoint, int total_segments) override;
  // Throws the writer's error (StepFailed when the lock was lost).
  void flush() override;

  // What this store's writes cost so far (thread-safe).
  CheckpointCost cost() const;

 private:
  void writer();
  void write_pending(std::unique_lock<std::mutex>& lk);

  StateTable& state_;
  const Lease& lease_;
  std::int64_t version_;
  Direction direction_;
  int step_;
  std::optional<VersionRecord> record_;
  std::string family_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::pair<pipeline::SegmentCheckpoint, int>> pending_;
  std::map<int, pipeline::Counters> stored_;  // each segment's counters as the table holds them
  std::optional<std::optional<pipeline::RunCheckpoint>> loaded_;
  CheckpointCost cost_;
  bool writing_ = false;
  bool stopping_ = false;
  bool flush_requested_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace dynamorph::migrations
