// Many processes, one migration (`up --worker`, DESIGN.md "Workers"). Nothing coordinates them
// but the state table:
// - every worker registers a `worker#<owner>` item and keeps it alive (WorkerRegistration): the
//   live count splits the run's rate cap and sets each worker's share of segments;
// - the lock holder coordinates (schema steps, version records) and creates one lease per
//   segment of each pipeline step: the step's checkpoint items, with owner, counter and expiry;
// - every worker, the coordinator included, claims free or expired leases with conditional
//   writes, at most its share (total ÷ live workers, rounded up) at a time, runs the pipeline on
//   those segments only, checkpoints inside the leases (LeaseCheckpointStore: each write
//   conditional on owner and counter, and renewing the lease), marks them done, and claims
//   again (stealing expired leases) until every segment of the step is done: the barrier.
// A worker that loses a lease stops that segment at once (pipeline::RunOptions::partition_held).
// On a signal a worker releases its leases at once, so the others take them without waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "migrations/state_table.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

class Renderer;

// This process in the state table's worker registry, renewed every third of the TTL by a
// background thread, which also counts the live workers. Removed on destruction.
class WorkerRegistration {
 public:
  WorkerRegistration(StateTable& state, std::string owner, std::chrono::milliseconds ttl);
  ~WorkerRegistration();
  WorkerRegistration(const WorkerRegistration&) = delete;
  WorkerRegistration& operator=(const WorkerRegistration&) = delete;

  const std::string& owner() const { return owner_; }
  const std::string& joined_at() const { return joined_at_; }
  std::chrono::milliseconds ttl() const { return ttl_; }
  // Unexpired registrations as last counted (this one included): at least 1.
  int live() const { return live_.load(std::memory_order_relaxed); }
  // Counts again now (before a claim, so that a share is never computed from a stale count).
  int refresh();
  // Before this process's first claim: waits until the count has held for a second (at most
  // 3 s), so that workers started together (the pods of one Job) see each other before the
  // first of them takes every segment as its share.
  void settle(const std::atomic<bool>& stop);

 private:
  void heartbeat();

  StateTable& state_;
  std::string owner_;
  std::chrono::milliseconds ttl_;
  std::string joined_at_;
  std::atomic<int> live_{1};
  bool settled_ = false;  // the caller's thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// Checkpoints of the segments this worker claimed, kept inside their lease items. save() only
// queues (TBB workers); a background thread writes each segment's newest checkpoint about once a
// second and renews every held lease every third of the TTL. A write whose condition fails (the
// lease was taken over) or a lease that could not be renewed before it expired marks the segment
// lost: held() turns false and the pipeline stops it.
class LeaseCheckpointStore final : public pipeline::CheckpointStore {
 public:
  LeaseCheckpointStore(StateTable& state, std::int64_t version, Direction direction, int step,
                       std::string owner, std::chrono::milliseconds ttl,
                       const std::vector<SegmentLease>& claimed);
  ~LeaseCheckpointStore() override;

  std::optional<pipeline::RunCheckpoint> load() override;
  void save(const pipeline::SegmentCheckpoint& checkpoint, int total_segments) override;
  void flush() override;

  bool held(int segment) const;
  // Gives up every lease still held and not done (with `error`: records the failure in them).
  void release_all(const std::string& error = {});
  int lost() const;  // segments lost so far

 private:
  // Ours while `held` is set and the lease, as last written, has not expired by our clock: a
  // process paused past its expiry (a stopped container, a long GC-like stall) stops writing the
  // moment it runs again, before any answer tells it that another worker took over.
  struct Flag {
    std::atomic<bool> held{true};
    std::atomic<std::int64_t> expires_at_ms{0};
  };
  struct Held {
    SegmentLease lease;
    std::int64_t expires_at_ms = 0;  // as last written
    std::shared_ptr<Flag> held;
    std::optional<pipeline::SegmentCheckpoint> pending;
    bool done = false;
  };
  void writer();
  void write_round(std::unique_lock<std::mutex>& lk, bool renew_all);

  StateTable& state_;
  std::int64_t version_;
  Direction direction_;
  int step_;
  std::string owner_;
  std::chrono::milliseconds ttl_;
  int total_ = 0;
  std::map<int, Held> segments_;  // keys fixed at construction; values under mu_
  std::vector<std::shared_ptr<Flag>> held_;  // by segment; null: not ours
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, flush_requested_ = false, writing_ = false;
  std::uint64_t rounds_ = 0;
  std::thread thread_;
};

// What one worker did on one step.
struct WorkerStepResult {
  enum class Outcome {
    Done,      // every segment of the step is done
    NotReady,  // the step has no leases (yet, or any more)
    Stopped,   // a signal
    Failed,    // a segment failed: `error`; `own` when it was this worker's
  };
  Outcome outcome = Outcome::NotReady;
  std::string error;
  bool own = false;
  int segments_run = 0;  // segments this worker ran to their end
};

struct WorkerContext {
  dynamo::Client& client;
  StateTable& state;
  WorkerRegistration& registration;
  std::atomic<bool>& stop;
  Renderer& render;
};

// Works on one pipeline step's leases until every segment is done, the run stops, or a segment
// failed. `ro` is the step's options as a single process would run it: the rate cap is split by
// the live workers here.
WorkerStepResult work_on_step(WorkerContext& w, const stages::StepSpec& spec,
                              const pipeline::RunOptions& ro, std::int64_t version,
                              Direction direction, int step);

// Creates the step's leases (the lock holder, before the step's first claim): one per segment,
// fresh, unless the step has leases already (a coordinator taking over); then clears failures
// recorded by an earlier run. Returns the segment count.
int prepare_step_leases(dynamo::Client& client, StateTable& state, const LockProof& proof,
                        const stages::StepSpec& spec, const pipeline::RunOptions& ro,
                        std::int64_t version, Direction direction, int step);

// Workers of one run bind an automatic `:now` to the version's start (its record's started_at),
// not each to its own start: every item gets the same instant whichever worker wrote it.
void bind_run_now(stages::StepSpec& spec, pipeline::RunOptions& ro, const std::string& loaded_now,
                  const std::string& run_now);

// Sleeps up to `d`, waking early when `stop` is set.
void sleep_unless_stopped(const std::atomic<bool>& stop, std::chrono::milliseconds d);

}  // namespace dynamorph::migrations
