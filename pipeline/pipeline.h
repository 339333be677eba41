// A pipeline step run as a oneTBB flow graph: source partitions → where → transforms → sink,
// with bounded pages and writes in flight, capacity throttling, per-partition checkpoints
// committed in page order, resume, progress and clean stop on a signal. The engine knows the
// stage contracts (stages/source.h, transform.h, sink.h), never a concrete stage.
// run_pipeline() blocks the calling thread (not a TBB worker) until the step ends.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/client.h"
#include "stages/sink.h"
#include "stages/step_spec.h"

namespace dynamorph::pipeline {

// Counters of one step; resumed runs continue them from the checkpoint.
struct Counters {
  std::int64_t scanned = 0;    // items the server examined (ScannedCount)
  std::int64_t matched = 0;    // passed filter and where
  std::int64_t written = 0;    // items whose write was acknowledged (puts/updates/deletes)
  std::int64_t skipped = 0;    // version_attribute already at this version, or no change
  std::int64_t conflicts = 0;  // guard failures that were re-read and transformed again
  std::int64_t failed = 0;     // items that could not be written (the run stops)
  std::int64_t dead_letters = 0;  // items skipped to the dead letters (on_item_error: skip)
  std::int64_t retries = 0;    // requests retried (throttling, 5xx, resets, unprocessed)
  double consumed_rcu = 0;
  double consumed_wcu = 0;
  // Writes issued, by kind (dry runs count what they would issue).
  std::int64_t puts = 0, updates = 0, deletes = 0, transactions = 0;
  Counters& operator+=(const Counters& o);
  Counters& operator-=(const Counters& o);
};

// Every counter with its name, in the order they are shown and stored: one list for arithmetic,
// JSON, and the state table. Exactly one of `count` / `amount` is set.
struct CounterField {
  const char* name;
  std::int64_t Counters::*count;
  double Counters::*amount;
};
inline constexpr CounterField kCounterFields[] = {
    {"scanned", &Counters::scanned, nullptr},
    {"matched", &Counters::matched, nullptr},
    {"written", &Counters::written, nullptr},
    {"skipped", &Counters::skipped, nullptr},
    {"conflicts", &Counters::conflicts, nullptr},
    {"failed", &Counters::failed, nullptr},
    {"dead_letters", &Counters::dead_letters, nullptr},
    {"retries", &Counters::retries, nullptr},
    {"puts", &Counters::puts, nullptr},
    {"updates", &Counters::updates, nullptr},
    {"deletes", &Counters::deletes, nullptr},
    {"transactions", &Counters::transactions, nullptr},
    {"consumed_rcu", nullptr, &Counters::consumed_rcu},
    {"consumed_wcu", nullptr, &Counters::consumed_wcu}};

// The resume point of one partition (a scan segment, an export file …): the source's resume
// token after the last page whose every write was acknowledged, all earlier pages included.
// The token is opaque bytes: only the source that made it reads it.
struct SegmentCheckpoint {
  int segment = 0;                          // the partition
  std::int64_t pages = 0;                   // pages committed so far
  std::optional<std::string> resume_token;  // absent: start of the partition (when !done)
  bool done = false;
  Counters counters;  // this segment's share
};

struct RunCheckpoint {
  int total_segments = 0;
  std::vector<SegmentCheckpoint> segments;
};

// Where checkpoints live. save() is called from TBB workers, in page order per segment, and
// must not wait on the network: a remote store queues and coalesces. flush() (called by the
// thread that runs the pipeline, at the end or on stop) makes every saved checkpoint durable.
class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  virtual std::optional<RunCheckpoint> load() = 0;
  virtual void save(const SegmentCheckpoint& checkpoint, int total_segments) = 0;
  virtual void flush() = 0;
};

// Checkpoints in a local JSON file (tests, and runs without a state table).
std::unique_ptr<CheckpointStore> file_checkpoint_store(std::string path);
// Keeps nothing (dry runs, benchmarks).
std::unique_ptr<CheckpointStore> null_checkpoint_store();

// One item a step skipped (on_item_error: skip): its source key, the item as read, and why it
// could not be written (the error line the run would have stopped with).
struct DeadLetter {
  dynamo::Item key;
  dynamo::Item item;
  std::string reason;
};

// Where skipped items go. append() is called by the serial commit node with a page's dead
// letters right before that page's checkpoint is saved, and returns once they are durable: a
// checkpoint never covers an item that is neither written nor in the dead letters. A page read
// again after a crash appends its items again; the store keeps one record per key. Throws
// dynamorph::Error when it cannot write (the run then fails).
class DeadLetterStore {
 public:
  virtual ~DeadLetterStore() = default;
  virtual void append(const std::vector<DeadLetter>& letters) = 0;
};

struct ProgressEvent {
  Counters counters;  // earlier runs' checkpointed part included (see `resumed`)
  Counters resumed;   // what the checkpoints held when this run began: counters - resumed is
                      // this run's own work
  std::optional<double> lag_s;  // a change source's lag (Source::lag_s), when it has one
  double elapsed_s = 0;
  double items_per_s = 0;
  double rcu_per_s = 0, wcu_per_s = 0;
  std::int64_t table_items =
      0;  // the source's item estimate (DescribeTable's ItemCount), 0 if unknown
  std::int64_t item_bytes = 0;  // DynamoDB size of the items read (RunOptions::measure_bytes)
  int segments_done = 0, segments_total = 0;
  bool final = false;
};

struct RunOptions {
  int segments = 8;    // used when no checkpoint says otherwise
  double max_rcu = 0;  // capacity units per second; 0 = no client-side cap
  double max_wcu = 0;
  double capacity_percent = 0;  // of the table's provisioned capacity; 0 = off
  int max_pages_in_flight = 0;  // 0 = 2 per segment
  // Response bytes of pages read and not yet committed, summed over all partitions: once they
  // reach this, a partition's next page is read only when a commit makes room (a page is always
  // admitted while less is held, so one page larger than the budget still goes through). Memory
  // is then bounded by bytes whatever the table size, the segment count and the item size (1 MB
  // pages of 400 KB items as much as 2,000-item pages of 300 bytes). 4 MiB is four 1 MB pages,
  // or about seven default pages of 300-byte items, ahead of the writer: at the 5,000-8,000
  // items/s one DynamoDB Local takes, more than a second of writes waiting. Measured on
  // 2026-12-06 (docs/benchmarks.md): no slower than 8 MiB (alternating runs, medians 7,015 and
  // 6,974 items/s), and a 20,000-item table (about 6 MB) fills it as a 160,000-item one does,
  // so peak RSS is flat in table size from there up. 0 = no budget (pages in flight bound
  // memory alone).
  std::int64_t max_bytes_in_flight = 4 << 20;
  // Scan/Query Limit when the step sets no page_size. 2,000 items is DynamoDB's own 1 MB page
  // for items of 500 bytes and more, and bounds the items (hence the parsed memory) of a page of
  // small items. Measured with `dynamorph bench scan` (docs/benchmarks.md): 500-item pages cost
  // DynamoDB Local ~45% more server CPU per item than 2,000-item ones and scan ~35% slower;
  // 1 MB pages of ~300-byte items were no faster than 2,000 and held more memory. Memory stays
  // flat in table size (max_bytes_in_flight). 0 = the server's 1 MB pages.
  int default_page_size = 2000;
  int max_writes_in_flight = 16;
  bool dry_run = false;                     // the none writer, whatever the spec says
  std::int64_t version = 0;                 // migration version, for version_attribute
  std::string now_iso;                      // the run's start time (ISO-8601 UTC); empty = now
  const std::atomic<bool>* stop = nullptr;  // set by a signal handler: stop reading, drain
  std::function<void(const ProgressEvent&)> progress;  // called about once per second + final
  int max_conflict_retries = 5;
  // Keep the first few changed items (before, after) for dry-run diffs.
  int sample_changes = 0;
  // Non-empty: run only these partitions (a sampled dry run); the others are left unread and
  // count as done. Never with a checkpoint store that keeps anything.
  std::vector<int> only_partitions;
  // Add up the DynamoDB size of every item read (ProgressEvent/RunResult::item_bytes): the
  // benchmarks' MB/s. Off by default: it walks every item once more.
  bool measure_bytes = false;
  // Set: wraps the step's sink (the journal, verify's collector). Empty: the write mode's sink.
  stages::SinkWrapper wrap_sink;
  // Set (workers): whether this process still holds partition p's lease. Once it answers false
  // the partition is stopped at once: no further page is read for it, no write not yet sent is
  // sent, nothing more of it is checkpointed (its new owner goes on from the last checkpoint).
  // Called from TBB workers and the client's I/O thread: must be cheap and thread-safe.
  std::function<bool(int partition)> partition_held;
  // Set (workers): the share of max_rcu / max_wcu (after capacity_percent) this process may use,
  // in (0, 1]; read about five times a second, so that a cap for a whole run is split again
  // when workers come and go.
  std::function<double()> capacity_share;
  // Set (workers): once it is true no further page is read, but every page already read is
  // written and committed as usual; the run then ends Stopped with exact checkpoints (nothing
  // is read again). A worker drains to take up segments another worker left.
  const std::atomic<bool>* drain = nullptr;
  // Set: where a step with on_item_error: skip puts the items it skips. Unset (dry runs), they
  // are only counted.
  std::shared_ptr<DeadLetterStore> dead_letters;
};

struct ChangeSample {
  dynamo::Item before;
  std::optional<dynamo::Item> after;  // absent: deleted
};

struct RunResult {
  enum class Status { Done, Stopped, Failed };
  Status status = Status::Done;
  Counters counters;  // committed work, earlier runs of this step included (as checkpointed)
  std::string error;  // one line when Failed
  std::vector<ChangeSample> samples;
  double wall_s = 0;
  std::int64_t item_bytes = 0;  // with RunOptions::measure_bytes
  // Each partition's share of `counters`, by partition number (sampled dry runs estimate
  // their spread from these).
  std::vector<Counters> partition_counters;
  // Write capacity the planned writes need, from item sizes (1 WCU per KB per write, doubled
  // in transactions, and the global indexes' writes): what a dry run would consume.
  double estimated_wcu = 0;
  // The global secondary indexes' share of estimated_wcu, by index name (stages/write_support.h
  // index_units: DynamoDB's rules for index writes).
  std::vector<std::pair<std::string, double>> estimated_index_wcu;
  // Write requests sent, and how many successful answers carried the ConsumedCapacity they asked
  // for; the other writes' consumed_wcu is their estimate, calibrated by those answers
  // (pipeline/write_meter.h).
  std::int64_t write_requests = 0;
  std::int64_t metered_write_requests = 0;
  // The most response bytes held at once by pages read and not yet committed
  // (RunOptions::max_bytes_in_flight), and how many times a page read waited for room.
  std::int64_t peak_bytes_in_flight = 0;
  std::int64_t reads_held_back = 0;
  // Things the user should know that did not stop the run: the plan's (a key change without
  // version_attribute …) and the run's (answers whose ConsumedCapacity could not be read).
  std::vector<std::string> warnings;
};

// Runs (or resumes) one pipeline step. Throws UsageError for a spec that cannot run (unknown
// table or source kind, key change in update mode, guard with batch …) before anything is
// written.
RunResult run_pipeline(dynamo::Client& client, const stages::StepSpec& spec,
                       CheckpointStore& checkpoints, const RunOptions& options);

}  // namespace dynamorph::pipeline
