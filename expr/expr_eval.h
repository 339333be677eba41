// Evaluation of compiled expressions on items: DynamoDB's comparison rules, its functions, the
// client-side extensions and update semantics. Every function is re-entrant; programs are
// only read.
#pragma once

#include <optional>
#include <string>

#include "dynamo/attribute_value.h"
#include "expr/expression.h"
#include "expr/expr_program.h"

namespace dynamorph::expr::detail {

// Exact numeric order of two numbers: <0, 0, >0. Allocation-free for plain decimal text.
int compare_numbers(const Number& a, const Number& b);
// DynamoDB's `=`: same type and value; sets and maps regardless of order; numbers by value.
bool values_equal(const AttributeValue& a, const AttributeValue& b);
// Order of two values of one type among N, S, B (bytes unsigned); nullopt for anything else.
std::optional<int> order_values(const AttributeValue& a, const AttributeValue& b);

bool evaluate_condition(const ConditionProgram& program, const Item& item, const EvalContext& ctx);
std::optional<std::string> apply_update(const UpdateProgram& program, Item& item,
                                        const EvalContext& ctx);

// The value at a path, or nullptr when any step is missing or of the wrong kind.
const AttributeValue* resolve(const Item& item, const ResolvedPath& path);

}  // namespace dynamorph::expr::detail
