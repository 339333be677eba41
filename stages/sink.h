// The Sink contract: how a pipeline step's decisions become writes. One sink per write mode
// (batch_sink, update_sink, transact_sink, delete_sink, none_sink), each a file pair registered
// by mode. Per page, a SinkState groups the page's decisions into write operations; the pipeline
// sends each through send() and asks classify() what its answer means: done, re-read some items
// and transform them again, send a part again, or fail. The pipeline knows only this contract.
//
// Threading: a Sink is immutable after construction and shared by every thread. A SinkState
// belongs to one page and is used by one thread at a time. send() runs on a TBB worker and only
// hands the request to the client (its callback runs on the client's I/O thread and must be
// short); classify() runs on the pipeline's serial acknowledgement node, CPU only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dynamo/client.h"
#include "dynamo/requests.h"
#include "dynamo/service_error.h"
#include "stages/item_processor.h"
#include "stages/source.h"

namespace dynamorph::stages {

// Write capacity units of writing one item: 1 per started KB.
double write_units(const dynamo::Item& item);

// What writes cost, as DynamoDB meters them: the table's units (1 per started KB per write,
// doubled in transactions) and each global secondary index's, which are part of the total.
struct WriteCost {
  double wcu = 0;             // the total: table and indexes
  std::vector<double> index;  // by position in the target's global indexes; empty: none
  void add_index(const std::vector<double>& units);
  WriteCost& operator+=(const WriteCost& o);
};

// The request kinds a write operation can be.
struct BatchWrite {  // BatchWriteItem, ≤ 25 entries, no key twice
  // The request, written when the batch closed (dynamo::write_batch_write, without
  // ReturnConsumedCapacity): a page's writes waiting for their turn hold its bytes, a
  // fraction of what its parsed items take.
  std::string body;
};
struct UpdateWrite {  // UpdateItem
  dynamo::UpdateItemRequest request;
};
struct PutWrite {  // PutItem
  dynamo::PutItemRequest request;
};
struct DeleteWrite {  // DeleteItem
  dynamo::DeleteItemRequest request;
};
struct TransactWrite {  // TransactWriteItems; action_owner[i]: index in WriteOp::scanned
  std::vector<dynamo::TransactAction> actions;
  std::vector<int> action_owner;
};
using WriteRequest = std::variant<BatchWrite, UpdateWrite, PutWrite, DeleteWrite, TransactWrite>;

// One write request and what it stands for.
struct WriteOp {
  WriteRequest request;
  // The scanned items it writes, so that a failed guard can re-read and redo them.
  std::vector<dynamo::Item> scanned;
  int conflict_round = 0;  // how many times these items were re-read already
  // What it does, for counters: writes by kind, and scanned items it completes (a key change is
  // one item and two writes).
  int puts = 0, updates = 0, deletes = 0;
  int item_count = 0;
  double wcu_estimate = 0;  // WriteCost::wcu of its writes (indexes included)
  std::vector<double> index_wcu;  // WriteCost::index: the indexes' share, by index
  void add_cost(const WriteCost& c);
  // Ask the server what it consumed (ReturnConsumedCapacity). The pipeline asks on a sample of
  // requests and prices the others from wcu_estimate (pipeline/write_meter.h); transactions
  // always ask.
  bool meter = true;
  // Opaque to the pipeline and to the write-mode sinks: what a sink wrapper attaches to an op it
  // passes on, and reads back in its own send() and classify() (the journal: the page's
  // before-image record that must be durable before the op is sent). A resend that classify()
  // builds may drop it: by then the op was sent once.
  std::shared_ptr<void> wrapper_state = nullptr;
  bool transaction() const { return std::holds_alternative<TransactWrite>(request); }
};

// The answer to one sent WriteOp.
struct WriteAnswer {
  std::shared_ptr<dynamo::ServiceError> error;  // null: success
  double consumed_wcu = 0;  // the server's figure when `metered`; 0 otherwise
  bool metered = false;
  int throttled = 0;  // attempts (or unprocessed rounds) that were throttled
  int attempts = 1;
  // A ConsumedCapacity that could not be read (the write itself succeeded).
  bool capacity_unreadable = false;
};

// What an answer means.
struct Verdict {
  int written = 0;                // scanned items now written
  std::vector<int> reread;        // indexes into op.scanned: re-read, transform again, write again
  std::optional<WriteOp> resend;  // a part (or all) of the op to send again
  int conflicts = 0;              // items whose guard failed
  int failed = 0;                 // items that cannot be written
  int retries = 0;                // sends of the same op again (a transaction cancelled in passing)
  std::string error;              // set: the run fails with this line
  // With `error`: the server rejected the op for something in its items (a ValidationException,
  // an item collection over its size limit), not for the run's sake, and applied none of it. A
  // step that skips bad items (on_item_error: skip) then writes each of the op's scanned items
  // on its own, and an op of one scanned item goes to the dead letters with `error` as reason.
  bool item_rejected = false;
};

// Per page: turns decisions into write ops. Not thread-safe (one page, one thread).
class SinkState {
 public:
  virtual ~SinkState() = default;
  // Adds the write(s) for one decision (Put, Update, Delete, Many); finished ops go to `out`.
  virtual void add(const dynamo::Item& scanned, Decision&& decision, std::vector<WriteOp>& out,
                   int conflict_round) = 0;
  // Emits what is still open.
  virtual void flush(std::vector<WriteOp>& out) = 0;
};

// Which page a SinkState serves: the partition and the page's sequence number in it (the same
// numbers a checkpoint counts), so that a wrapper can name what it keeps per page.
struct PageId {
  int partition = 0;
  std::int64_t seq = 0;
};

class Sink {
 public:
  virtual ~Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  virtual std::unique_ptr<SinkState> make_page_state() const = 0;
  // The state of page `page` (a page's re-read items get a state of their own, with the same
  // id). The pipeline calls this one; sinks that do not care keep the default.
  virtual std::unique_ptr<SinkState> make_page_state_at(const PageId& page) const {
    (void)page;
    return make_page_state();
  }
  // False for the none sink: ops are built and counted, never sent.
  virtual bool sends() const { return true; }
  // Sends `op` through the client; `done` is called once, on the client's I/O thread. The op's
  // request may be moved from: a resend is rebuilt by classify() from the op as it was.
  virtual void send(dynamo::Client& client, WriteOp& op,
                    std::function<void(WriteAnswer)> done) const = 0;
  // What the answer to `op` means; `max_rounds` bounds how often an item is re-read.
  virtual Verdict classify(const WriteOp& op, const WriteAnswer& answer, int max_rounds) const = 0;
  // The consistent read of an item's current version after its guard failed (GetItem on the
  // written table), and its answer (nullopt: deleted meanwhile).
  virtual ReadRequest reread(const dynamo::Item& scanned) const;
  virtual std::optional<dynamo::Item> parse_reread(const std::string& body) const;
  const ItemProcessor& processor() const { return processor_; }

  explicit Sink(const ItemProcessor& processor) : processor_(processor) {}

 protected:
  const ItemProcessor& processor_;
};

using SinkFactory = std::function<std::unique_ptr<Sink>(const ItemProcessor& processor)>;
// Wraps the sink a plan made (the journal wraps any write mode; verify collects what a dry run
// would write). Called once, on the planning thread, after the plan is complete.
using SinkWrapper = std::function<std::unique_ptr<Sink>(std::unique_ptr<Sink> inner)>;

// Registers the sink of a write mode. Built-in modes are registered by register_builtin_sinks()
// on the registry's first use. Thread-safe.
void register_sink(WriteMode mode, SinkFactory factory);
std::unique_ptr<Sink> make_sink(WriteMode mode, const ItemProcessor& processor);

}  // namespace dynamorph::stages
