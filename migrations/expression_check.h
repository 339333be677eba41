// Plan-time validation of a pipeline step's expressions and placeholders: every expression is
// compiled in its dialect (dynamo/expression.h), so its column-precise errors come out prefixed
// with file:line before any request. Runs on the planning thread.
#pragma once

#include <string>

#include "stages/step_spec.h"

namespace dynamorph::migrations {

// Checks every expression of `spec` against its names/values (`:now` is offered but not
// required); throws UsageError. `where` is the step's "file:line" for unused placeholders.
// Drops the automatic `:now` from spec.values when no expression uses it.
void check_step_expressions(stages::StepSpec& spec, const std::string& where,
                            bool now_is_automatic);

}  // namespace dynamorph::migrations
