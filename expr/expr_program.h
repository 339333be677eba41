// The compiled form of an expression: flat node vectors linked by index, paths pre-split,
// placeholders replaced by their values. Internal to the expression engine (expr_*.cpp).
// Immutable once built; read concurrently by evaluators.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"
#include "expr/expression.h"

namespace dynamorph::expr::detail {

struct PathElement {
  std::string name;         // map key; empty for an index
  std::int32_t index = -1;  // list index; -1 for a name
  std::string placeholder;  // "#n" when the source used one (kept for to_wire)
};

struct ResolvedPath {
  std::vector<PathElement> elements;
  std::uint32_t column = 0;  // 1-based, for compile-time messages
};

enum class Fn : std::uint8_t {
  // DynamoDB's own
  AttributeExists,
  AttributeNotExists,
  AttributeType,
  BeginsWith,
  Contains,
  Size,
  IfNotExists,
  ListAppend,
  // client-side extensions
  Lower,
  Upper,
  Trim,
  Concat,
  Substr,
  Replace,
  StripPrefix,
  SplitPart,
  ToString,
  ToNumber,
  Now,
  EpochMs,
  Uuid,
  Ulid,
  Coalesce,
};

const char* function_name(Fn fn);
bool is_extension(Fn fn);

enum class OperandKind : std::uint8_t { Path, Constant, Call, Plus, Minus };

struct OperandNode {
  OperandKind kind;
  Fn fn = Fn::Size;         // for Call
  std::uint32_t ref = 0;    // Path: paths index; Constant: constants index; Call/Plus/Minus:
                            // first index into args
  std::uint32_t count = 0;  // Call/Plus/Minus: number of args
  std::uint32_t column = 0;
};

enum class CondKind : std::uint8_t { Or, And, Not, Compare, Between, In, Call };
enum class CmpOp : std::uint8_t { Eq, Ne, Lt, Le, Gt, Ge };

struct CondNode {
  CondKind kind;
  CmpOp op = CmpOp::Eq;
  Fn fn = Fn::AttributeExists;
  std::uint32_t a = 0;  // Or/And/Not: child conditions a, b; Compare: operands a, b;
  std::uint32_t b = 0;  // Between: a BETWEEN b AND c; In: a IN args[b .. b+count);
  std::uint32_t c = 0;  // Call: args[a .. a+count)
  std::uint32_t count = 0;
};

struct Constant {
  AttributeValue value;
  std::string placeholder;  // ":v" when it came from values; empty for a literal
};

struct Program {
  std::string text;
  std::vector<ResolvedPath> paths;
  std::vector<Constant> constants;
  std::vector<OperandNode> operands;
  std::vector<std::uint32_t> args;  // operand indexes of calls, arithmetic and IN lists
  std::vector<CondNode> conds;
  std::vector<Path> reads;
  bool server_evaluable = true;
};

struct ConditionProgram : Program {
  std::uint32_t root = 0;
};

enum class ActionKind : std::uint8_t { Set, Remove, Add, Delete };

struct Action {
  ActionKind kind;
  std::uint32_t path;       // target, index into paths
  std::uint32_t value = 0;  // operand (SET value, ADD/DELETE operand)
};

struct UpdateProgram : Program {
  std::vector<Action> actions;  // in text order, clause by clause
  std::vector<Path> writes;
};

Path to_public_path(const ResolvedPath& p);

}  // namespace dynamorph::expr::detail
