// The CPU part of a pipeline step, per item: client-side `where`, version check, ordered
// transforms, and what the write must be (put, update, delete, key change). Built once at plan
// time from a StepSpec and the tables' key schemas; immutable; process() runs on many threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/expression.h"
#include "dynamo/requests.h"
#include "stages/step_spec.h"
#include "stages/transform_stage.h"

namespace dynamorph::stages {

struct Decision {
  enum class Kind {
    NotMatched,  // where said no
    Skipped,     // version_attribute already at this version
    Unchanged,   // transforms changed nothing
    Put,         // write new_item (whole item); with key_changed also delete the old key
    Update,      // same key, some attributes changed (update / transact modes)
    Delete,      // delete mode
    Error        // a transform failed on this item: `error` names the item's key
  };
  Kind kind = Kind::NotMatched;
  dynamo::Item new_item;
  bool key_changed = false;
  std::string error;
};

class ItemProcessor {
 public:
  // Throws UsageError for what cannot run (key change in update mode, guard with batch, a
  // write to another table that would lose its key …), naming the step.
  // `now_iso` is bound to :now unless the step defines :now itself.
  ItemProcessor(const StepSpec& spec, const dynamo::TableDescription& source,
                const dynamo::TableDescription& target, std::int64_t version, const std::string& now_iso);

  Decision process(const dynamo::Item& scanned, const dynamo::expr::EvalContext& ctx) const;

  // Plan facts.
  WriteMode mode() const { return mode_; }
  bool guarded() const { return guarded_; }
  bool same_table() const { return same_table_; }
  const std::string& target_table() const { return target_.name; }
  const dynamo::TableDescription& target() const { return target_; }
  const dynamo::TableDescription& source() const { return source_; }
  const std::string& version_attribute() const { return version_attribute_; }
  std::int64_t version() const { return version_; }
  // Top-level attributes the step's where and transforms read (guard conditions use them).
  const std::vector<std::string>& reads() const { return reads_; }
  bool reads_everything() const { return reads_everything_; }
  bool may_change_key() const { return may_change_key_; }
  // Server-side parts of the source.
  const dynamo::WireExpression& server_filter() const { return server_filter_; }
  const dynamo::WireExpression& key_condition() const { return key_condition_; }
  std::vector<std::string> warnings() const { return warnings_; }

  // The target table's key of an item (nullopt if a key attribute is missing).
  std::optional<dynamo::Item> target_key(const dynamo::Item& item) const;
  dynamo::Item source_key(const dynamo::Item& item) const;

 private:
  dynamo::TableDescription source_, target_;
  WriteMode mode_;
  bool guarded_ = false;
  bool same_table_ = true;
  std::string version_attribute_;
  std::int64_t version_ = 0;
  std::optional<dynamo::expr::Condition> where_;
  std::vector<std::unique_ptr<TransformStage>> transforms_;
  std::vector<std::string> reads_;
  bool reads_everything_ = false;
  bool may_change_key_ = false;
  dynamo::WireExpression server_filter_, key_condition_;
  std::vector<std::string> warnings_;
};

}  // namespace dynamorph::stages
