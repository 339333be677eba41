// Transform stages: one step of a pipeline's `transform` list. An update expression is one kind;
// C++ stages compiled into the binary are the other, registered by name and named from YAML as
// `- stage: NAME`. Stages are immutable after construction and apply() runs on many threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/expression.h"

namespace dynamorph::stages {

class TransformStage {
 public:
  virtual ~TransformStage() = default;
  // Changes the item in place; returns an error text (the item is then left as it was).
  [[nodiscard]] virtual std::optional<std::string> apply(dynamo::Item& item,
                                                         const dynamo::expr::EvalContext& ctx) const = 0;
  // Top-level attributes the result depends on (for guard conditions); empty with
  // reads_everything() true when unknown.
  virtual std::vector<std::string> reads() const = 0;
  virtual bool reads_everything() const { return false; }
  // Top-level attributes it may change; nullopt when unknown (then key changes are found at
  // run time only).
  virtual std::optional<std::vector<std::string>> writes() const = 0;
  virtual std::string describe() const = 0;
};

// `update: "SET …"` through the expression engine.
class UpdateTransform : public TransformStage {
 public:
  explicit UpdateTransform(dynamo::expr::Update update) : update_(std::move(update)) {}
  std::optional<std::string> apply(dynamo::Item& item, const dynamo::expr::EvalContext& ctx) const override {
    return update_.apply(item, ctx);
  }
  std::vector<std::string> reads() const override;
  std::optional<std::vector<std::string>> writes() const override;
  std::string describe() const override { return update_.text(); }
  const dynamo::expr::Update& update() const { return update_; }

 private:
  dynamo::expr::Update update_;
};

using StageFactory =
    std::function<std::unique_ptr<TransformStage>(const std::map<std::string, std::string>& args)>;

// Registers a C++ stage under `name` (call from a static initializer or main()). Thread-safe.
void register_stage(std::string name, StageFactory factory);
// Builds a registered stage; throws UsageError naming the unknown stage and the known ones.
std::unique_ptr<TransformStage> make_stage(const std::string& name,
                                           const std::map<std::string, std::string>& args,
                                           std::string_view label);
std::vector<std::string> registered_stages();

}  // namespace dynamorph::stages
