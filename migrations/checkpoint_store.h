// Pipeline checkpoints kept in the state table, per version, direction, step and segment.
// save() is called from TBB workers: it only records the newest checkpoint per segment under a
// mutex; a background thread writes what has accumulated about once a second (coalescing), each
// write conditional on the run's lock. flush() (pipeline thread) writes the rest and waits.
#pragma once

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "migrations/lease.h"
#include "migrations/state_table.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

class StateCheckpointStore final : public pipeline::CheckpointStore {
 public:
  StateCheckpointStore(StateTable& state, const Lease& lease, std::int64_t version,
                       std::string direction, int step);
  ~StateCheckpointStore() override;

  std::optional<pipeline::RunCheckpoint> load() override;
  void save(const pipeline::SegmentCheckpoint& checkpoint, int total_segments) override;
  // Throws the writer's error (StepFailed when the lock was lost).
  void flush() override;

 private:
  void writer();
  void write_pending(std::unique_lock<std::mutex>& lk);

  StateTable& state_;
  const Lease& lease_;
  std::int64_t version_;
  std::string direction_;
  int step_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::pair<pipeline::SegmentCheckpoint, int>> pending_;
  bool writing_ = false;
  bool stopping_ = false;
  bool flush_requested_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace dynamorph::migrations
