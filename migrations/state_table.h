// The state table (DESIGN.md "migrations/"): one partition holding the lock item, one item per
// version and checkpoint items per version, direction, step and segment. Key: pk (S) = "dynamorph",
// sk (S) = "lock" | "version#<20 digits>" | "checkpoint#<20 digits>#<up|down>#<step>#<segment>"
// | "follow#…" (the same shape: a `follow: stream` step's replay positions, which outlive the
// version's run so that `follow` continues from them; "follow#" sorts before "lock").
// Every write made while a run holds the lock goes in a transaction with a ConditionCheck on the
// lock item, so a run that lost its lease cannot change the record. Checkpoints of many segments
// go in as many transactions as the server's limit on actions needs, each with that check.
// Thread-safe as Client is.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/client.h"
#include "migrations/model_schema.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

// What checkpoints cost in the state table: items put or deleted, the transactions that carried
// them, and the write capacity those use at DynamoDB's price for transactions (2 WCU per KB and
// action, the lock check and the progress record included). Estimated from the item sizes, not
// read from the server: DynamoDB Local reports no meaningful figure for transactions.
struct CheckpointCost {
  std::int64_t writes = 0;
  std::int64_t transactions = 0;
  double wcu = 0;
  CheckpointCost& operator+=(const CheckpointCost& o);
};

// A version's state as recorded; pending is the absence of a record.
enum class VersionState { Running, Applied, Failed };
enum class Direction { Up, Down };
std::string_view to_string(VersionState state);   // running | applied | failed
std::string_view to_string(Direction direction);  // up | down
std::optional<VersionState> parse_version_state(std::string_view word);
std::optional<Direction> parse_direction(std::string_view word);

struct VersionRecord {
  std::int64_t version = 0;
  std::string name;
  VersionState state = VersionState::Running;
  Direction direction = Direction::Up;
  std::string checksum;
  std::string started_at, updated_at, finished_at;  // ISO-8601 UTC
  std::string by;                                   // lock owner id of the last writer
  std::string error;                                // last failure, one line
  // Index of the step in progress; the number of steps once they are all done (then `running`
  // means only the checkpoints are left to clear, and applied when they are).
  int step = 0;
  pipeline::Counters counters;  // every step so far, the one in progress as checkpointed
  // The steps before `step`: what a resumed step adds its own checkpointed counters to. Absent
  // in records written before it existed.
  std::optional<pipeline::Counters> counters_before_step;
  CheckpointCost checkpoint_cost;     // every checkpoint write and clear of this run so far
  // `up --worker`: who finished which share of the pipeline steps so far (from the segment
  // leases at each step's barrier), by worker owner id.
  struct WorkerShare {
    std::int64_t segments = 0, scanned = 0, written = 0;
  };
  std::map<std::string, WorkerShare> workers;
  std::optional<ModelSchema> schema;  // the file's `schema:` block, as it was run
};

// Families of checkpoint items: a step's run, or a stream replay's positions.
inline constexpr std::string_view kStepCheckpoints = "checkpoint";
inline constexpr std::string_view kFollowCheckpoints = "follow";

struct LockRecord {
  std::string owner;  // host:pid:nonce
  std::string host;
  std::int64_t pid = 0;
  std::string acquired_at;
  std::int64_t expires_at_ms = 0;
};

// A segment lease (workers, `up --worker`): a step's checkpoint item with the lease's fields.
// Free when no owner holds it or its lease expired; done segments are never claimed again.
struct SegmentLease {
  pipeline::SegmentCheckpoint checkpoint;
  int total_segments = 0;
  std::string owner;          // empty: free
  std::int64_t counter = 0;   // claims so far: each claim raises it, every lease write names it
  std::int64_t expires_at_ms = 0;
  std::string done_by;        // the worker that marked it done
  std::string error;          // a worker's failure in it, one line (the run fails)
  std::int64_t writes = 0;    // lease writes so far (claims, checkpoints, heartbeats)
  bool claimable(std::int64_t now_ms) const {
    return !checkpoint.done && error.empty() && (owner.empty() || expires_at_ms < now_ms);
  }
};

// A live worker (`worker#<owner id>` items, kept alive by their heartbeat).
struct WorkerRecord {
  std::string owner;
  std::int64_t expires_at_ms = 0;
  std::string joined_at;
};

// Who writes: the owner id whose lock every write is conditioned on.
struct LockProof {
  std::string owner;
};

class StateTable {
 public:
  StateTable(dynamo::Client& client, std::string physical_name);
  dynamo::Client& client() const { return client_; }

  const std::string& name() const { return name_; }
  bool exists() const;
  // Creates the table (on demand) when absent and waits until it is ACTIVE.
  void ensure();

  // Every version record, in one paged Query. Empty when the table does not exist.
  std::map<std::int64_t, VersionRecord> read_versions() const;
  // Every version record and the lock, in one paged Query (for `status`).
  struct History {
    std::map<std::int64_t, VersionRecord> versions;
    std::optional<LockRecord> lock;
  };
  History read_history() const;
  std::optional<LockRecord> read_lock() const;

  // Lock item writes (the lease uses them).
  // Put when absent or expired; false when another owner holds it.
  bool try_put_lock(const LockRecord& lock, std::int64_t now_ms);
  // Extends the expiry; false when the item is no longer ours. Throws Error on other failures.
  bool extend_lock(const std::string& owner, std::int64_t expires_at_ms);
  // Deletes the lock if `owner` holds it (empty owner: whoever holds it).
  bool delete_lock(const std::string& owner);

  // Version and checkpoint writes, each conditional on `proof` still holding an unexpired lock.
  // Throw StepFailed naming the lost lock when the condition fails.
  void put_version(const VersionRecord& record, const LockProof& proof);
  void delete_version(std::int64_t version, const LockProof& proof);
  // Puts the checkpoints in transactions of lock check + (transaction_limit() - 1) items; with
  // `record`, the version record goes in the last of them, its checkpoint_cost raised by what
  // this call spends. Not atomic across transactions: a crash in between leaves some segments
  // at their newer checkpoint, which is as good.
  CheckpointCost put_checkpoints(
      std::int64_t version, Direction direction, int step,
      const std::vector<std::pair<pipeline::SegmentCheckpoint, int>>& checkpoints,
      const LockProof& proof, const VersionRecord* record = nullptr,
      std::string_view family = kStepCheckpoints);
  // Every checkpoint of one step, read with a paged Query.
  std::optional<pipeline::RunCheckpoint> load_checkpoints(
      std::int64_t version, Direction direction, int step,
      std::string_view family = kStepCheckpoints) const;
  // Removes every checkpoint of a version (after it completes, or when it starts afresh), in
  // transactions as above. Resumable: a crash in between leaves fewer checkpoints, and calling
  // it again removes the rest.
  CheckpointCost delete_checkpoints(std::int64_t version, const LockProof& proof,
                                    std::string_view family = kStepCheckpoints);

  // Segment leases (workers). Their writes are conditioned on the lease, not on the lock: every
  // worker writes its own segments, only the lock holder creates them (put_checkpoints).
  std::vector<SegmentLease> read_segment_leases(std::int64_t version, Direction direction,
                                                int step) const;
  // Takes a claimable segment (or one `owner` holds already: a worker taking its own segments
  // up again after a drain): owner, counter + 1, expiry. Absent when it was not claimable any
  // more (another worker was first, or it is done).
  std::optional<SegmentLease> claim_segment(std::int64_t version, Direction direction, int step,
                                            int segment, const std::string& owner,
                                            std::int64_t now_ms, std::int64_t expires_at_ms);
  // Writes the segment's checkpoint and extends its lease, if `owner` still holds it under
  // `counter` (false: the lease is lost, nothing written). With done, records done_by = owner.
  bool save_segment(std::int64_t version, Direction direction, int step,
                    const pipeline::SegmentCheckpoint& checkpoint, const std::string& owner,
                    std::int64_t counter, std::int64_t expires_at_ms);
  // Extends the lease (false: lost).
  bool extend_segment(std::int64_t version, Direction direction, int step, int segment,
                      const std::string& owner, std::int64_t counter,
                      std::int64_t expires_at_ms);
  // Gives the lease up at once (another worker may claim it without waiting for its expiry);
  // with `error`, records the failure that ended it. False when it was no longer ours.
  bool release_segment(std::int64_t version, Direction direction, int step, int segment,
                       const std::string& owner, std::int64_t counter,
                       const std::string& error = {});
  // Clears the failures recorded in a step's leases (a failed version run again).
  void clear_segment_errors(std::int64_t version, Direction direction, int step);

  // Workers' registrations.
  void put_worker(const WorkerRecord& worker);
  bool extend_worker(const std::string& owner, std::int64_t expires_at_ms);
  // Deletes a registration; with `expired_before`, only if it expired before then (a dead
  // worker's, pruned by the live ones): false when it had not.
  bool delete_worker(const std::string& owner, std::optional<std::int64_t> expired_before = {});
  std::vector<WorkerRecord> read_workers() const;

  // The most actions one TransactWriteItems may hold: DynamoDB's 100 until the server refuses a
  // longer transaction with "Member must have length less than or equal to N" (DynamoDB Local:
  // 10); from then on N, for every later transaction of this object.
  int transaction_limit() const { return transaction_limit_.load(std::memory_order_relaxed); }

 private:
  [[noreturn]] void read_failed(const dynamo::ServiceError& e, std::string_view what) const;
  dynamo::TransactAction lock_check(const LockProof& proof) const;
  dynamo::TransactAction version_put(const VersionRecord& record, const LockProof& proof) const;
  // TransactWriteItems, sent again (bounded, with back-off) when only a concurrent write or
  // throttling cancelled it.
  dynamo::Outcome<double> send(std::vector<dynamo::TransactAction> actions) const;
  [[noreturn]] void write_failed(const dynamo::ServiceError& e, std::string_view what) const;
  void transact(std::vector<dynamo::TransactAction> actions, std::string_view what);
  // One checkpoint write of a chunked write, with its cost.
  struct Planned {
    dynamo::TransactAction action;
    double wcu = 0;
  };
  // Lock check + (limit - 1) actions per transaction; `record` (its checkpoint cost raised by
  // what this call spends) goes last.
  CheckpointCost transact_chunked(std::vector<Planned> actions, const LockProof& proof,
                                  std::string_view what, const VersionRecord* record = nullptr);
  std::vector<dynamo::Item> query(const std::string& condition, const std::string& a,
                                  const std::string& b) const;
  std::vector<dynamo::Item> query_prefix(const std::string& prefix) const;

  dynamo::Client& client_;
  std::string name_;
  std::atomic<int> transaction_limit_{100};
};

std::string version_sort_key(std::int64_t version);

}  // namespace dynamorph::migrations
