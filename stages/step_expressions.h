// The one place a pipeline step's expressions are compiled: the server-side filter and key
// condition (DynamoDB's dialect), the client-side `where` and update transforms (with the
// extensions), against the step's names and values, with `:now` bound to the run's start unless
// the step defines it. The loader calls it to refuse bad files before anything is written; the
// sources and the ItemProcessor use what it returns. Planning thread only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "expr/expression.h"
#include "stages/step_spec.h"

namespace dynamorph::stages {

struct StepExpressions {
  expr::Placeholders placeholders;                   // the step's, plus the automatic `:now`
  std::optional<expr::Condition> filter;             // source.filter (Server)
  std::optional<expr::Condition> key_condition;      // source.query_key (Server)
  std::optional<expr::Condition> where;              // where (Client)
  std::vector<std::optional<expr::Update>> updates;  // per transform entry: its update, if any
  bool uses_automatic_now = false;  // an expression uses `:now` and the step does not define it
};

// Compiles every expression of `spec`; throws UsageError with the expression's label and column,
// or naming a placeholder of the step that no expression uses (`:now` is offered, never
// required, unless the step defines it).
// `unused_where` prefixes the unused-placeholder error (the loader's "file:line"); empty: the
// step's label.
StepExpressions compile_step_expressions(const StepSpec& spec, std::string_view now_iso,
                                         std::string_view unused_where = {});

}  // namespace dynamorph::stages
