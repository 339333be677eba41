// The Transform contract: one entry of a pipeline step's `transform` list, applied to each
// matching item in order. Kinds: update expressions (update_transform.h), C++ stages registered
// in code (below), Lua functions. The pipeline never sees a transform: the ItemProcessor runs
// the chain.
//
// Threading: a Transform is immutable after construction and apply() runs on many TBB workers at
// once. What a transform must mutate while it runs (a Lua VM, a scratch buffer) lives in the
// state object make_local_state() returns: each worker owns one at a time, never shared.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/attribute_value.h"
#include "expr/expression.h"

namespace dynamorph::stages {

// A worker's private state for one transform; destroyed with the worker's pool at the run's end.
class TransformState {
 public:
  virtual ~TransformState() = default;
};

// What a transform says about an item.
struct TransformResult {
  enum class Kind {
    Keep,     // left as it was (the chain goes on)
    Changed,  // changed in place (the chain goes on)
    Skip,     // leave the item as it is in the table: no write; the chain stops
    Delete,   // delete the item; the chain stops
    Many,     // the item becomes `items` (fan-out); the chain stops
    Error     // `error` says why; the run stops before this page is checkpointed
  };
  Kind kind = Kind::Keep;
  std::vector<dynamo::Item> items;  // Many
  std::string error;                // Error

  static TransformResult keep() { return {}; }
  static TransformResult changed() { return {Kind::Changed, {}, {}}; }
  static TransformResult skip() { return {Kind::Skip, {}, {}}; }
  static TransformResult remove() { return {Kind::Delete, {}, {}}; }
  static TransformResult many(std::vector<dynamo::Item> items) {
    return {Kind::Many, std::move(items), {}};
  }
  static TransformResult fail(std::string error) { return {Kind::Error, {}, std::move(error)}; }
};

// The run's facts every transform may read: run start (`:now`), migration version, step values.
struct TransformContext {
  expr::EvalContext eval;
  std::int64_t version = 0;
  const std::map<std::string, dynamo::AttributeValue>* values = nullptr;  // the step's `values`
};

class Transform {
 public:
  virtual ~Transform() = default;
  // The worker's state for this transform; nullptr when it needs none.
  virtual std::unique_ptr<TransformState> make_local_state() const { return nullptr; }
  // Applies the transform to `item` (changed in place for Keep/Changed). `state` is what
  // make_local_state() returned, owned by the calling worker.
  [[nodiscard]] virtual TransformResult apply(dynamo::Item& item, TransformState* state,
                                              const TransformContext& ctx) const = 0;
  // Top-level attributes the result depends on (guard conditions use them); reads_everything()
  // when unknown.
  virtual std::vector<std::string> reads() const = 0;
  virtual bool reads_everything() const { return false; }
  // Top-level attributes it may change; nullopt when unknown (key changes are then found at run
  // time only).
  virtual std::optional<std::vector<std::string>> writes() const = 0;
  // For messages: the expression text, "stage rename_attribute", "lua normalize.lua".
  virtual std::string describe() const = 0;
};

// What a C++ stage's factory receives: where it stands (for messages), the step's placeholders,
// the run's `:now`, and its `args:` as typed values (YAML → attribute values as for `values`).
struct StageContext {
  std::string label;  // "migrations/x.yaml:14: transform[0]"
  const expr::Placeholders* placeholders = nullptr;
  std::string now_iso;
  std::map<std::string, dynamo::AttributeValue> args;
};

using StageFactory = std::function<std::unique_ptr<Transform>(const StageContext& context)>;

// Registers a C++ stage under `name`, named from YAML as `- stage: NAME`. Thread-safe. Stages
// built into dynamorph are registered by register_builtin_stages() on the registry's first use
// (explicit, so static linking cannot drop them); an embedding program calls register_stage()
// before it loads migrations.
void register_stage(std::string name, StageFactory factory);
// Builds a registered stage; throws UsageError naming the unknown stage and the known ones, or
// the factory's own UsageError for bad args.
std::unique_ptr<Transform> make_stage(const std::string& name, const StageContext& context);
std::vector<std::string> registered_stages();

}  // namespace dynamorph::stages
