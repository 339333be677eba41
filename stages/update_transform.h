// `update: "SET …"`: a transform through the expression engine (compiled once by
// compile_step_expressions). Stateless; apply() runs on many threads.
#pragma once

#include "expr/expression.h"
#include "stages/transform.h"

namespace dynamorph::stages {

class UpdateTransform final : public Transform {
 public:
  explicit UpdateTransform(expr::Update update) : update_(std::move(update)) {}
  TransformResult apply(dynamo::Item& item, TransformState* state,
                        const TransformContext& ctx) const override;
  std::vector<std::string> reads() const override;
  std::optional<std::vector<std::string>> writes() const override;
  std::string describe() const override { return update_.text(); }

 private:
  expr::Update update_;
};

}  // namespace dynamorph::stages
