// Turns per-item decisions into DynamoDB write requests for the step's mode: BatchWriteItem
// groups (≤ 25, no key twice, a key change's put and delete kept together), guarded
// UpdateItem/PutItem/DeleteItem, or TransactWriteItems groups. One WriteBuilder per page
// (a state object, one thread at a time); the ItemProcessor it reads is shared and immutable.
#pragma once

#include <string>
#include <vector>

#include "dynamo/requests.h"
#include "stages/item_processor.h"

namespace dynamorph::stages {

struct WriteOp {
  enum class Kind { Batch, Update, Put, Delete, Transact };
  Kind kind = Kind::Batch;
  std::vector<dynamo::BatchWriteEntry> batch;   // Batch
  dynamo::UpdateItemRequest update;             // Update
  dynamo::PutItemRequest put;                   // Put
  dynamo::DeleteItemRequest del;                // Delete
  std::vector<dynamo::TransactAction> actions;  // Transact
  // The scanned items this op writes, so a failed guard can re-read and redo them; for
  // Transact, action_owner[i] is the index in `scanned` of the item action i belongs to.
  std::vector<dynamo::Item> scanned;
  std::vector<int> action_owner;
  int conflict_round = 0;  // how many times these items were re-read already
  // Counters of what the op does.
  int puts = 0, updates = 0, deletes = 0;
  int item_count = 0;  // scanned items written by this op (a key change is one item, two writes)
  double wcu_estimate = 0;
  int items() const { return item_count; }
};

class WriteBuilder {
 public:
  // Transactions hold at most `transact_actions` actions: DynamoDB allows 100, DynamoDB Local
  // (1.11) 10, and a small group keeps one conflict from cancelling many items' writes.
  explicit WriteBuilder(const ItemProcessor& processor, int transact_actions = 10)
      : p_(processor), transact_actions_(transact_actions) {}

  // Adds the write for one item (decision kinds Put, Update, Delete); completed ops go to out.
  // The decision's new item is moved into the request.
  void add(const dynamo::Item& scanned, Decision&& d, std::vector<WriteOp>& out, int conflict_round = 0);
  // Emits what is still open.
  void flush(std::vector<WriteOp>& out);

 private:
  // `may_clash`: the entries' keys could repeat one already in the open batch (key changes,
  // copies into another table); a scan never returns a key twice, so plain rewrites cannot.
  void add_batch(std::vector<dynamo::BatchWriteEntry> entries, bool may_clash, double wcu, int puts,
                 int deletes, std::vector<WriteOp>& out);
  dynamo::WireExpression guard_condition(const dynamo::Item& scanned, bool whole_item) const;
  dynamo::WireExpression update_expression(const dynamo::Item& before, const dynamo::Item& after) const;

  const ItemProcessor& p_;
  int transact_actions_;
  WriteOp open_batch_;
  std::vector<std::string> open_keys_;  // serialized keys in open_batch_, when may_clash
  WriteOp open_transact_;
};

}  // namespace dynamorph::stages
