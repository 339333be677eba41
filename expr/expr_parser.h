// Parser and resolver: expression text → compiled Program (expr_program.h), with every static
// rule of DynamoDB checked (placement of functions, operand types known at compile time,
// overlapping update paths, reserved words, limits). Throws UsageError
// "<label>: column <n>: …". Thread-safe (no shared state).
#pragma once

#include <string_view>

#include "expr/expr_program.h"
#include "expr/expression.h"

namespace dynamorph::expr::detail {

void parse_condition(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                     std::string_view label, PlaceholderUsage* usage, ConditionProgram& out);

void parse_update(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                  std::string_view label, PlaceholderUsage* usage, UpdateProgram& out);

}  // namespace dynamorph::expr::detail
