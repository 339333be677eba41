// What the write-mode sinks share: capacity estimates, guard conditions, update diffs, the
// BatchWriteItem grouper, sending any WriteRequest through the client, and the verdicts of
// single-item and batch writes. Plain functions and one per-page state class.
#pragma once

#include <string>
#include <vector>

#include "stages/sink.h"

namespace dynamorph::stages {

// The condition of a write based on `scanned`: the item still exists, and with a guard, every
// attribute the step read (or, `whole_item`, every attribute) still holds its scanned value;
// with version_attribute, the item is not at this version yet.
dynamo::WireExpression guard_condition(const ItemProcessor& p, const dynamo::Item& scanned,
                                       bool whole_item);
// SET of what changed, REMOVE of what went.
dynamo::WireExpression update_expression(const dynamo::Item& before, const dynamo::Item& after);

// A DeleteItem of the scanned item, conditioned on all of it (guard_condition whole_item).
WriteOp guarded_delete(const ItemProcessor& p, const dynamo::Item& scanned, int conflict_round);

// Groups BatchWriteItem entries: ≤ 25 per request, no key twice in one (a key change's put and
// delete stay together). One per page.
// The units a write costs in each global secondary index of the target, by DynamoDB's metering
// rules: an item that has an index's key attributes is in that index; entering it costs one put
// of the index entry (1 WCU per started KB of the table's keys, the index's keys and the
// projected attributes), leaving it one delete (of the old entry's size), changing its index key
// both, changing only projected attributes one put, and anything else nothing. `before`: the
// item the write replaces (null: none, or not known, as for a copy's target); `after`: the item
// it writes (null: a delete). By position in the target's global indexes; empty when it has none.
std::vector<double> index_units(const ItemProcessor& p, const dynamo::Item* before,
                                const dynamo::Item* after);
// The table's units of the write (`factor` 2 in transactions) plus index_units().
WriteCost write_cost(const ItemProcessor& p, const dynamo::Item* before, const dynamo::Item* after,
                     double factor = 1);
// The item a put of `item` replaces in the target: the scanned one when the put rewrites it in
// place (same table, same key), else nothing known.
const dynamo::Item* replaced(const ItemProcessor& p, const dynamo::Item& scanned,
                             const dynamo::Item& item);

class BatchGrouper {
 public:
  explicit BatchGrouper(const ItemProcessor& p) : p_(p) {}
  // `may_clash`: the entries' keys could repeat one already in the open batch (key changes,
  // copies, fan-out); a scan never returns a key twice, so plain rewrites cannot.
  // `scanned`: the item the entries stand for, kept in the op's `scanned` (null: not kept).
  void add(std::vector<dynamo::BatchWriteEntry> entries, bool may_clash, const WriteCost& cost,
           int puts, int deletes, std::vector<WriteOp>& out, const dynamo::Item* scanned = nullptr);
  void flush(std::vector<WriteOp>& out);

 private:
  const ItemProcessor& p_;
  WriteOp open_;
  std::vector<dynamo::BatchWriteEntry> open_entries_;  // open_'s, written into it by flush
  std::vector<std::string> open_keys_;  // serialized keys in open_, once any may clash
};

// Adds the batch entries of a Put / Delete / Many decision (puts first, then the old key's
// delete) to `g`.
void add_batch_decision(const ItemProcessor& p, BatchGrouper& g, const dynamo::Item& scanned,
                        Decision&& d, std::vector<WriteOp>& out);

// The page state of batch mode (and of the none sink, which counts what batch mode would send).
std::unique_ptr<SinkState> make_batch_page_state(const ItemProcessor& p);

// Sends any request kind through the client; `done` runs on the I/O thread.
void send_write_request(dynamo::Client& client, WriteOp& op, std::function<void(WriteAnswer)> done);

// A BatchWriteItem has no conditions: done, or (its retries spent) failed as a whole.
Verdict batch_verdict(const ItemProcessor& p, const WriteOp& op, const WriteAnswer& a);
// A single conditional write: done, re-read after a failed guard (bounded by max_rounds), or
// failed.
Verdict single_verdict(const ItemProcessor& p, const WriteOp& op, const WriteAnswer& a,
                       int max_rounds);
// The message for an item whose guard keeps failing.
std::string still_conflicting(const ItemProcessor& p, const dynamo::Item& scanned, int rounds);

}  // namespace dynamorph::stages
