// The Source contract: where a pipeline step's items come from. A source splits its input into
// partitions (scan segments, a query, export files, stream shards) and yields each partition's
// pages in order. The pipeline knows only this contract (and the registry below), never a
// concrete source.
//
// Threading: a Source is immutable after construction and shared by every thread. Each
// partition has one PartitionReader (its run state), used by one thread at a time: the pipeline
// calls next() and then parse() of one page before asking for the next page, with a
// happens-before edge between calls. next() and parse() run on TBB workers and do CPU work only;
// a ReadRequest's network part goes through the client's I/O thread, its local part (files, S3
// objects) runs on the pipeline's reader thread, never on a TBB worker.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/client.h"
#include "dynamo/requests.h"
#include "stages/step_spec.h"

namespace dynamorph::stages {

struct StepExpressions;

// Where a partition goes on: opaque bytes that only the source that made them reads (a
// LastEvaluatedKey, a file and line, a sequence number). Checkpoints store them as blobs.
using ResumeToken = std::string;

// A page's raw bytes, as the server or the local read returned them (padded for parsing).
struct RawRead {
  std::string body;
  int attempts = 1;
  int throttled = 0;  // attempts that ended in throttling
};

// How to get a partition's next page: exactly one of the two is set.
struct ReadRequest {
  // A DynamoDB operation ("Scan", "Query") with its JSON body, sent through the client.
  std::string operation;
  std::string body;
  // A blocking local read (a file, an S3 object), run on the pipeline's reader thread. Throws a
  // std::exception whose what() names the file and line on bad data.
  std::function<RawRead()> local;
};

// One item's changes within a page of a change source (a stream), oldest first, collapsed: its
// key, the image before each change (when the source has them: `with_old_images`) and the image
// after the last one (nullopt: deleted). ItemProcessor::process_change() turns it into writes.
struct Change {
  dynamo::Item keys;
  std::vector<dynamo::Item> old_images;
  std::optional<dynamo::Item> new_image;
  bool with_old_images = false;
};

// One page, parsed.
struct SourcePage {
  std::vector<dynamo::Item> items;
  std::vector<Change> changes;  // a change source's page: applied after `items`, in order
  std::optional<ResumeToken> next;  // where the partition continues; nullopt: it is finished
  std::int64_t examined = 0;        // items the source looked at (Scan's ScannedCount)
  double consumed_rcu = 0;
  // The partition stops here for this run, at `next` (which must be set), and is not done: the
  // next run resumes it from there. A stream's partitions never end; they stop once caught up.
  bool ends_run = false;
};

class PartitionReader {
 public:
  virtual ~PartitionReader() = default;
  // The request for the next page.
  virtual ReadRequest next() = 0;
  // The answer to the last next(): items and where to go on. Throws a std::exception naming
  // what is wrong (file:line for files) when the page cannot be read; the run then fails.
  virtual SourcePage parse(RawRead&& read) = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  // How many partitions the run has; `requested` is the step's or run's segment count, which a
  // source with partitions of its own (a query: 1, an export: its data files) ignores.
  virtual int partitions(int requested) const = 0;
  // The reader of one partition, from its start (nullopt) or from a token it made earlier.
  virtual std::unique_ptr<PartitionReader> open(int partition, int total,
                                                const std::optional<ResumeToken>& from) const = 0;
  // The table read, when the source is a table: key schema, item count, provisioned capacity.
  // nullopt for sources outside DynamoDB (an export): keys are then the target table's.
  virtual const std::optional<dynamo::TableDescription>& table() const = 0;
  // Whether reading consumes the table's read capacity (a scan does, an export does not).
  virtual bool consumes_read_capacity() const { return true; }
  // For messages: "table 'app'", "export /data/exp (10 files)".
  virtual std::string describe() const = 0;
  // Estimated number of items, for the progress ETA (0: unknown).
  virtual std::int64_t estimated_items() const { return 0; }
  // True: a partition's next page is asked for (next()) only once every write of its previous
  // page is acknowledged and its checkpoint taken, so a key's changes land in the order read
  // (a stream). False: the next page is read while this one is written (a scan).
  virtual bool serial_pages() const { return false; }
  // A source of changes (a stream): how far behind its input the run is, in seconds (now minus
  // the oldest time up to which its partitions are applied), once every partition has said.
  // nullopt for other sources, or before then. Any thread (the progress reporter asks).
  virtual std::optional<double> lag_s() const { return std::nullopt; }
};

// What a source factory may use while planning (on the planning thread).
struct SourceContext {
  dynamo::Client& client;
  const StepSpec& spec;
  const StepExpressions& expressions;  // the step's compiled server-side filter and key condition
  int default_page_size = 500;         // Limit per request when the step sets no page_size
};

using SourceFactory = std::function<std::unique_ptr<Source>(const SourceContext&)>;

// Registers a source kind (the value of SourceSpec::kind). Built-in kinds are registered by
// register_builtin_sources(), called on first use of the registry, so they survive static
// linking. Thread-safe.
void register_source(std::string kind, SourceFactory factory);
// Builds the step's source; throws UsageError for an unknown kind or a spec it refuses.
std::unique_ptr<Source> make_source(const SourceContext& context);

}  // namespace dynamorph::stages
