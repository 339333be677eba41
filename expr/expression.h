// DynamoDB condition and update expressions, compiled once and evaluated client-side on items.
// Compiled expressions are immutable: evaluate/apply may run on many threads at once.
//
// Grammar and semantics follow DynamoDB (checked against DynamoDB Local by
// tests/expr/expression_differential_test.cpp): comparisons only between values of one type
// (else false), strings and binaries by unsigned bytes, numbers as exact decimals, a missing
// attribute makes every comparison false except `<>`, which is true; keywords are
// case-insensitive, function names are not; `((x))` is an error ("redundant parentheses"); a
// path may not be compared with itself (`a = a`, `a IN (:v, a)`); IN takes at most 100 operands
// counting the one on its left. Where DynamoDB Local and DynamoDB differ, this follows DynamoDB:
// size() of a string counts UTF-8 bytes (Local: UTF-16 units), strings order by UTF-8 bytes
// (Local: UTF-16 units, which differs above U+FFFF), empty strings are values (Local rejects
// them). When several actions of one update fail on an item, apply() reports a bad target path
// first, then the first failing operand in text order (Local's choice follows a hash order).
//
// Dialect::Client adds, wherever an operand may stand (also as function arguments, nested):
//   - string literals in single quotes, a quote doubled inside: 'it''s';
//   - number literals: 42, -1.5, 2e3;
//   - the functions below. Wherever a type is wrong or an argument is missing, a condition sees
//     the result as missing (like DynamoDB's size() on a number); an update fails with a message.
//       lower(s) upper(s)        case mapping of Latin, Greek and Cyrillic letters; others kept
//       trim(s)                  strips ASCII white space at both ends
//       concat(s1, s2, …)        ≥ 2 strings
//       substr(s, start[, len])  1-based start ≥ 1, in characters (code points); len ≥ 0
//       replace(s, from, to)     every occurrence; an empty `from` leaves s as is
//       strip_prefix(s, p)       s without the prefix p when s starts with it, else s
//       split_part(s, sep, n)    the n-th field, 1-based; n < 0 counts from the end; a field
//                                past the end is ''; sep must not be empty
//       to_string(x)             S as is, N as its canonical text, BOOL as true/false
//       to_number(x)             N as is, S parsed as a DynamoDB number
//       now()                    EvalContext::now_iso
//       epoch_ms(iso)            milliseconds since 1970 of an ISO-8601 date or date-time
//                                (YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.fff]] with Z, ±hh:mm, ±hhmm or
//                                no offset, which means UTC)
//       uuid()                   random UUID v4, lower case
//       ulid()                   ULID; monotonic within a thread
//       coalesce(a, b, …)        the first argument that is present and not NULL
//     Client dialect also accepts size() in updates (SET n = size(tags)).
//   - Reserved words (DynamoDB's list of 573) may be used as bare attribute names: a client-side
//     expression is never sent as written; to_wire() puts every such name behind a #name.
// Dialect::Server accepts exactly DynamoDB's syntax and rejects reserved words without #name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/wire_expression.h"

namespace dynamorph::expr {

// The engine works on the client's item model.
using dynamo::AttributeValue;
using dynamo::AttrType;
using dynamo::Binary;
using dynamo::BinarySet;
using dynamo::Decimal;
using dynamo::Item;
using dynamo::List;
using dynamo::Map;
using dynamo::Null;
using dynamo::Number;
using dynamo::NumberSet;
using dynamo::StringSet;

// Shared by every expression of one pipeline step.
struct Placeholders {
  std::map<std::string, std::string> names;      // "#n" -> "name"
  std::map<std::string, AttributeValue> values;  // ":v" -> value
};

// Records which placeholders were used across several compiles, so the step can reject unused
// ones. Not thread-safe (compiles happen at plan time, on one thread).
class PlaceholderUsage {
 public:
  void note_name(std::string_view name);
  void note_value(std::string_view name);
  // Throws UsageError "<where>: values: ':x' is not used by any expression of this step"
  // (names first, then values; all unused ones of the first kind are listed).
  void check_all_used(const Placeholders& placeholders, std::string_view where) const;
  bool used_value(std::string_view name) const { return values_.contains(name); }

 private:
  std::set<std::string, std::less<>> names_;
  std::set<std::string, std::less<>> values_;
};

enum class Dialect { Server, Client };  // Server = DynamoDB's own syntax; Client = + extensions

struct EvalContext {
  std::string now_iso;  // run start, ISO-8601 UTC with millis
};

// A document path: top-level name, then names (maps) and indexes (lists).
struct Path {
  std::vector<std::variant<std::string, int>> elements;
  std::string to_string() const;  // a.b[2].c
  bool operator==(const Path&) const = default;
};

// An expression as sent to DynamoDB, with only the placeholders it uses (the client's type).
using WireExpression = dynamo::WireExpression;

namespace detail {
struct ConditionProgram;
struct UpdateProgram;
}  // namespace detail

// FilterExpression / ConditionExpression syntax.
class Condition {
 public:
  // Throws UsageError "<label>: column <n>: <what is wrong>".
  static Condition compile(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                           std::string_view label, PlaceholderUsage* usage = nullptr);

  bool evaluate(const Item& item, const EvalContext& ctx) const;
  const std::vector<Path>& reads() const;  // every attribute path it reads, first use first
  bool server_evaluable() const;           // no client-only function used
  // DynamoDB wire form; literals become generated :values, reserved or odd names #names.
  // Throws dynamorph::Error when !server_evaluable().
  WireExpression to_wire() const;
  const std::string& text() const;

 private:
  explicit Condition(std::shared_ptr<const detail::ConditionProgram> p) : p_(std::move(p)) {}
  std::shared_ptr<const detail::ConditionProgram> p_;
};

// UpdateExpression syntax: SET, REMOVE, ADD, DELETE.
class Update {
 public:
  static Update compile(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                        std::string_view label, PlaceholderUsage* usage = nullptr);

  // Applies in place, with DynamoDB's semantics: every right-hand side and list index refers to
  // the item as it was before the update. A runtime error (list_append on a number, + on a
  // string, a 39-digit result, a missing operand, a path whose parent is missing…) returns
  // DynamoDB's ValidationException text and leaves the item unchanged.
  [[nodiscard]] std::optional<std::string> apply(Item& item, const EvalContext& ctx) const;

  const std::vector<Path>& reads() const;   // paths whose values the result depends on
                                            // (operands, and ADD/DELETE targets)
  const std::vector<Path>& writes() const;  // SET/REMOVE/ADD/DELETE targets, in text order
  bool writes_any_of(const std::vector<std::string>& top_level_names) const;  // key check
  bool server_evaluable() const;
  WireExpression to_wire() const;
  const std::string& text() const;

 private:
  explicit Update(std::shared_ptr<const detail::UpdateProgram> p) : p_(std::move(p)) {}
  std::shared_ptr<const detail::UpdateProgram> p_;
};

}  // namespace dynamorph::expr
