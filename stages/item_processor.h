// The CPU part of a pipeline step, per item: client-side `where`, version check, the ordered
// transform chain, and what the write must be (put, update, delete, key change, fan-out). Built
// once at plan time from a StepSpec, its compiled expressions and the tables' key schemas;
// immutable; process() runs on many TBB workers at once, each with its own LocalState.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/requests.h"
#include "expr/expression.h"
#include "stages/step_expressions.h"
#include "stages/source.h"
#include "stages/step_spec.h"
#include "stages/transform.h"

namespace dynamorph::stages {

struct Decision {
  enum class Kind {
    NotMatched,  // where said no
    Skipped,     // version_attribute already at this version, or a transform said skip
    Unchanged,   // transforms changed nothing
    Put,         // write new_item (whole item); with key_changed also delete the old key
    Update,      // same key, some attributes changed (update / transact modes)
    Delete,      // delete the scanned item (delete mode, or a transform said delete)
    Many,        // write every item of `items`; with key_changed also delete the old key
    DeleteKeys,  // only delete `delete_keys` from the target (a stream replay)
    Error        // a transform failed on this item: `error` names the item's key
  };
  Kind kind = Kind::NotMatched;
  dynamo::Item new_item;
  std::vector<dynamo::Item> items;  // Many
  bool key_changed = false;
  // Target keys to delete besides the writes (a stream replay: targets of older images of the
  // item that its new image no longer makes).
  std::vector<dynamo::Item> delete_keys;
  std::string error;
};

class ItemProcessor {
 public:
  // A worker's private state: one per transform that needs one.
  struct LocalState {
    std::vector<std::unique_ptr<TransformState>> transforms;
  };

  // Throws UsageError for what cannot run (key change in update mode, guard with batch, a
  // write to another table that would lose its key …), naming the step. `source` is the table
  // read (for a source outside DynamoDB: a description carrying the target's key schema).
  ItemProcessor(const StepSpec& spec, const StepExpressions& expressions,
                const dynamo::TableDescription& source, const dynamo::TableDescription& target,
                std::int64_t version, const std::string& now_iso);

  std::unique_ptr<LocalState> make_local_state() const;
  Decision process(const dynamo::Item& scanned, LocalState& state) const;
  // A stream replay (change_replay.cpp): puts the transformed new image, deletes the targets of
  // the older images that it no longer makes, or of the key when the source has no old images.
  Decision process_change(const Change& change, LocalState& state) const;
  const TransformContext& context() const { return ctx_; }

  // Plan facts.
  WriteMode mode() const { return mode_; }
  bool guarded() const { return guarded_; }
  bool same_table() const { return same_table_; }
  const std::string& target_table() const { return target_.name; }
  const dynamo::TableDescription& target() const { return target_; }
  const dynamo::TableDescription& source() const { return source_; }
  const std::string& version_attribute() const { return version_attribute_; }
  // on_item_error: skip: an item that cannot be written goes to the dead letters.
  bool skips_bad_items() const { return skips_bad_items_; }
  std::int64_t version() const { return version_; }
  // Top-level attributes the step's where and transforms read (guard conditions use them).
  const std::vector<std::string>& reads() const { return reads_; }
  bool reads_everything() const { return reads_everything_; }
  bool may_change_key() const { return may_change_key_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // The target table's key of an item (nullopt if a key attribute is missing).
  std::optional<dynamo::Item> target_key(const dynamo::Item& item) const;
  // Whether the item holds every key attribute of the target table; whether two items hold the
  // same target key (both whole, equal as DynamoDB compares). Neither copies a value.
  bool has_target_key(const dynamo::Item& item) const;
  bool same_target_key(const dynamo::Item& a, const dynamo::Item& b) const;
  dynamo::Item source_key(const dynamo::Item& item) const;

 private:
  // Stamps the version and checks the target key of one written item; false with d.error set.
  bool finish_item(dynamo::Item& item, const dynamo::Item& scanned, Decision& d) const;

  dynamo::TableDescription source_, target_;
  WriteMode mode_;
  bool guarded_ = false;
  bool same_table_ = true;
  std::string version_attribute_;
  bool skips_bad_items_ = false;
  std::int64_t version_ = 0;
  const expr::Condition* where_ = nullptr;  // into expressions_
  StepExpressions expressions_;
  std::vector<std::unique_ptr<Transform>> transforms_;
  TransformContext ctx_;
  std::vector<std::string> reads_;
  bool reads_everything_ = false;
  bool may_change_key_ = false;  // a transform writes a key attribute, or may (unknown writes)
  bool writes_key_ = false;      // a transform is known to write a key attribute
  std::size_t spare_slots_ = 1;  // attributes the chain may add (the version, its writes)
  std::vector<std::string> warnings_;
};

}  // namespace dynamorph::stages
