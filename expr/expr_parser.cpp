#include "expr/expr_parser.h"

#include "dynamo/suggest.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <map>
#include <optional>

#include "dynamo/errors.h"
#include "expr/expr_eval.h"
#include "expr/expr_lexer.h"
#include "expr/expr_reserved.h"

namespace dynamorph::expr::detail {
namespace {

// DynamoDB's limits on expressions.
constexpr std::size_t kMaxTextBytes = 4096;
constexpr int kMaxOperators = 300;
constexpr std::size_t kMaxPathDepth = 32;
constexpr std::size_t kMaxInOperands = 100;
// Ours: keeps the recursive descent far from the end of the stack on hostile input.
constexpr int kMaxNesting = 200;

struct FnInfo {
  const char* name;
  int min_args;
  int max_args;  // -1: no limit
};

// Indexed by Fn.
constexpr std::array<FnInfo, 23> kFunctions = {{
    {"attribute_exists", 1, 1},
    {"attribute_not_exists", 1, 1},
    {"attribute_type", 2, 2},
    {"begins_with", 2, 2},
    {"contains", 2, 2},
    {"size", 1, 1},
    {"if_not_exists", 2, 2},
    {"list_append", 2, 2},
    {"lower", 1, 1},
    {"upper", 1, 1},
    {"trim", 1, 1},
    {"concat", 2, -1},
    {"substr", 2, 3},
    {"replace", 3, 3},
    {"strip_prefix", 2, 2},
    {"split_part", 3, 3},
    {"to_string", 1, 1},
    {"to_number", 1, 1},
    {"now", 0, 0},
    {"epoch_ms", 1, 1},
    {"uuid", 0, 0},
    {"ulid", 0, 0},
    {"coalesce", 2, -1},
}};

std::optional<Fn> find_function(std::string_view name) {
  for (std::size_t i = 0; i < kFunctions.size(); ++i) {
    if (name == kFunctions[i].name) return static_cast<Fn>(i);
  }
  return std::nullopt;
}

std::optional<Fn> find_function_ignoring_case(std::string_view name) {
  for (std::size_t i = 0; i < kFunctions.size(); ++i) {
    std::string_view f = kFunctions[i].name;
    if (f.size() == name.size() && std::equal(f.begin(), f.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return static_cast<Fn>(i);
    }
  }
  return std::nullopt;
}

bool is_condition_function(Fn fn) {
  return fn == Fn::AttributeExists || fn == Fn::AttributeNotExists || fn == Fn::AttributeType ||
         fn == Fn::BeginsWith || fn == Fn::Contains;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == static_cast<unsigned char>(y);
         });
}

constexpr std::array<std::string_view, 9> kKeywords = {"AND", "OR",     "NOT", "BETWEEN", "IN",
                                                       "SET", "REMOVE", "ADD", "DELETE"};

bool is_keyword(std::string_view word) {
  return std::any_of(kKeywords.begin(), kKeywords.end(),
                     [&](std::string_view k) { return iequals(word, k); });
}

bool is_comparator(Tok t) {
  return t == Tok::Eq || t == Tok::Ne || t == Tok::Lt || t == Tok::Le || t == Tok::Gt ||
         t == Tok::Ge;
}

std::string type_name(AttrType t) { return std::string(type_tag(t)); }

bool is_set_type(AttrType t) { return t == AttrType::SS || t == AttrType::NS || t == AttrType::BS; }
bool is_ordered_type(AttrType t) {
  return t == AttrType::N || t == AttrType::S || t == AttrType::B;
}

const char* action_verb(ActionKind k) {
  switch (k) {
    case ActionKind::Set: return "set";
    case ActionKind::Remove: return "removed";
    case ActionKind::Add: return "added to";
    case ActionKind::Delete: return "deleted from";
  }
  return "";
}

const char* clause_name(ActionKind k) {
  switch (k) {
    case ActionKind::Set: return "SET";
    case ActionKind::Remove: return "REMOVE";
    case ActionKind::Add: return "ADD";
    case ActionKind::Delete: return "DELETE";
  }
  return "";
}

bool same_element(const PathElement& a, const PathElement& b) {
  return a.index == b.index && (a.index >= 0 || a.name == b.name);
}

bool same_path(const ResolvedPath& a, const ResolvedPath& b) {
  return a.elements.size() == b.elements.size() &&
         std::equal(a.elements.begin(), a.elements.end(), b.elements.begin(), same_element);
}

struct OperandCtx {
  bool update = false;
  bool allow_list_append = false;  // list_append may stand here (a whole SET value)
};

class Parser {
 public:
  Parser(std::string_view text, const Placeholders& placeholders, Dialect dialect,
         std::string_view label, PlaceholderUsage* usage, Program& out)
      : text_(text), ph_(placeholders), dialect_(dialect), label_(label), usage_(usage), out_(out) {
    out_.text = std::string(text);
    if (text.size() > kMaxTextBytes) {
      fail_at(label_, text_, 0,
              fmt::format("the expression is {} bytes long; DynamoDB allows at most {}",
                          text.size(), kMaxTextBytes));
    }
    toks_ = tokenize(text, label);
  }

  std::uint32_t parse_condition_root() {
    if (peek().kind == Tok::End) fail(peek(), "the expression is empty");
    std::uint32_t c = or_expr();
    expect_end();
    return c;
  }

  void parse_update_root(UpdateProgram& up) {
    if (peek().kind == Tok::End) fail(peek(), "the expression is empty");
    std::array<bool, 4> seen{};
    while (peek().kind != Tok::End) {
      const Token& kw = peek();
      std::optional<ActionKind> kind;
      if (kw.kind == Tok::Name) {
        std::string_view w = token_text(kw);
        if (iequals(w, "SET"))
          kind = ActionKind::Set;
        else if (iequals(w, "REMOVE"))
          kind = ActionKind::Remove;
        else if (iequals(w, "ADD"))
          kind = ActionKind::Add;
        else if (iequals(w, "DELETE"))
          kind = ActionKind::Delete;
      }
      if (!kind) {
        if (pos_ == 0)
          fail(kw,
               fmt::format("expected SET, REMOVE, ADD or DELETE, found {}", describe(text_, kw)));
        fail_expected("',' or a new clause (SET, REMOVE, ADD, DELETE)");
      }
      auto k = static_cast<std::size_t>(*kind);
      if (seen[k]) {
        fail(kw, fmt::format("the {} clause can only be used once in an update expression",
                             clause_name(*kind)));
      }
      seen[k] = true;
      next();
      for (;;) {
        update_action(up, *kind);
        if (peek().kind != Tok::Comma) break;
        next();
      }
    }
    check_overlaps(up);
    for (const Action& a : up.actions) up.writes.push_back(to_public_path(out_.paths[a.path]));
  }

 private:
  std::string_view text_;
  const Placeholders& ph_;
  Dialect dialect_;
  std::string_view label_;
  PlaceholderUsage* usage_;
  Program& out_;
  std::vector<Token> toks_;
  std::size_t pos_ = 0;
  std::vector<std::optional<AttrType>> static_type_;  // per operand: type known at compile time
  std::map<std::string, std::uint32_t, std::less<>> value_constants_;
  std::vector<std::uint32_t> action_columns_;
  int operators_ = 0;
  int nesting_ = 0;

  struct NestingGuard {
    Parser& p;
    explicit NestingGuard(Parser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting) p.fail(p.peek(), "the expression nests too deeply");
    }
    ~NestingGuard() { --p.nesting_; }
  };

  // ---- tokens --------------------------------------------------------------------------------
  const Token& peek(std::size_t k = 0) const {
    std::size_t i = std::min(pos_ + k, toks_.size() - 1);
    return toks_[i];
  }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  std::string_view token_text(const Token& t) const { return text_.substr(t.offset, t.length); }
  bool at_keyword(std::string_view kw, std::size_t k = 0) const {
    const Token& t = peek(k);
    return t.kind == Tok::Name && iequals(token_text(t), kw);
  }
  bool token_is_keyword(const Token& t) const {
    return t.kind == Tok::Name && is_keyword(token_text(t));
  }
  std::uint32_t column(const Token& t) const { return column_of(text_, t.offset); }

  [[noreturn]] void fail(const Token& t, const std::string& message) const {
    fail_at(label_, text_, t.offset, message);
  }
  [[noreturn]] void fail_column(std::uint32_t col, const std::string& message) const {
    throw UsageError(fmt::format("{}: column {}: {}", label_, col, message));
  }
  // "expected <what> after '<previous token>'", at the current token.
  [[noreturn]] void fail_expected(std::string_view what) const {
    const Token& t = peek();
    if (pos_ == 0) fail(t, fmt::format("expected {}", what));
    std::string found = t.kind == Tok::End ? std::string() : ", found " + describe(text_, t);
    fail(t, fmt::format("expected {} after {}{}", what, describe(text_, toks_[pos_ - 1]), found));
  }
  void expect_close(const Token& open) {
    if (peek().kind != Tok::RParen) {
      if (open.match == 0) fail(open, "'(' is never closed");
      fail_expected("')'");
    }
    next();
  }
  void expect_end() {
    const Token& t = peek();
    if (t.kind == Tok::End) return;
    if (t.kind == Tok::RParen) fail(t, "')' closes no '('");
    fail(t, fmt::format("unexpected {} after {}", describe(text_, t),
                        describe(text_, toks_[pos_ - 1])));
  }
  void count_operator(const Token& t) {
    if (++operators_ > kMaxOperators) {
      fail(t,
           fmt::format("the expression has more than {} operators and functions, DynamoDB's limit",
                       kMaxOperators));
    }
  }
  // DynamoDB rejects "((x))": a parenthesis whose only content is another parenthesis.
  void check_redundant(std::size_t open_index) const {
    const Token& open = toks_[open_index];
    const Token& inner = toks_[open_index + 1];
    if (inner.kind == Tok::LParen && inner.match != 0 && open.match == inner.match + 1) {
      fail(open, "redundant parentheses");
    }
  }

  // ---- node building -------------------------------------------------------------------------
  std::uint32_t add_cond(CondNode n) {
    out_.conds.push_back(n);
    return static_cast<std::uint32_t>(out_.conds.size() - 1);
  }
  std::uint32_t add_operand(OperandNode n, std::optional<AttrType> type) {
    out_.operands.push_back(n);
    static_type_.push_back(type);
    return static_cast<std::uint32_t>(out_.operands.size() - 1);
  }
  std::uint32_t add_args(const std::vector<std::uint32_t>& args) {
    auto first = static_cast<std::uint32_t>(out_.args.size());
    out_.args.insert(out_.args.end(), args.begin(), args.end());
    return first;
  }
  void note_read(std::uint32_t path_index) {
    Path p = to_public_path(out_.paths[path_index]);
    if (std::find(out_.reads.begin(), out_.reads.end(), p) == out_.reads.end()) {
      out_.reads.push_back(std::move(p));
    }
  }
  bool is_constant(std::uint32_t op) const {
    return out_.operands[op].kind == OperandKind::Constant;
  }
  bool is_path(std::uint32_t op) const { return out_.operands[op].kind == OperandKind::Path; }
  const AttributeValue& constant_value(std::uint32_t op) const {
    return out_.constants[out_.operands[op].ref].value;
  }
  bool is_call_to(std::uint32_t op, Fn fn) const {
    return out_.operands[op].kind == OperandKind::Call && out_.operands[op].fn == fn;
  }
  bool same_path_operands(std::uint32_t a, std::uint32_t b) const {
    return is_path(a) && is_path(b) &&
           same_path(out_.paths[out_.operands[a].ref], out_.paths[out_.operands[b].ref]);
  }
  // DynamoDB: "The first operand must be distinct from the remaining operands".
  void check_distinct(std::uint32_t first, std::initializer_list<std::uint32_t> others,
                      std::string_view who) const {
    for (std::uint32_t o : others) {
      if (same_path_operands(first, o)) {
        fail_column(out_.operands[o].column,
                    fmt::format("{}: '{}' is compared with itself; the first operand must differ "
                                "from the others",
                                who, operand_text(o)));
      }
    }
  }

  std::string operand_text(std::uint32_t op) const {
    const OperandNode& n = out_.operands[op];
    if (n.kind == OperandKind::Path) return to_public_path(out_.paths[n.ref]).to_string();
    if (n.kind == OperandKind::Constant) {
      const Constant& c = out_.constants[n.ref];
      if (!c.placeholder.empty()) return c.placeholder;
      if (const auto* num = c.value.get_if<Number>()) return num->text();
      if (const auto* str = c.value.get_if<std::string>()) return fmt::format("'{}'", *str);
      return to_debug_string(c.value);
    }
    if (n.kind == OperandKind::Call) return fmt::format("{}(…)", function_name(n.fn));
    return "the arithmetic";
  }

  // Requires the operand's compile-time type, when known, to be one of `allowed`.
  template <class Pred>
  void check_type(std::uint32_t op, Pred allowed, std::string_view who, std::string_view wants) {
    const auto& t = static_type_[op];
    if (t && !allowed(*t)) {
      fail_column(out_.operands[op].column, fmt::format("{} needs {}; {} is {}", who, wants,
                                                        operand_text(op), type_name(*t)));
    }
  }

  // ---- conditions ----------------------------------------------------------------------------
  std::uint32_t or_expr() {
    std::uint32_t left = and_expr();
    while (at_keyword("OR")) {
      count_operator(next());
      std::uint32_t right = and_expr();
      left = add_cond({CondKind::Or, CmpOp::Eq, Fn::AttributeExists, left, right, 0, 0});
    }
    return left;
  }

  std::uint32_t and_expr() {
    std::uint32_t left = not_expr();
    while (at_keyword("AND")) {
      count_operator(next());
      std::uint32_t right = not_expr();
      left = add_cond({CondKind::And, CmpOp::Eq, Fn::AttributeExists, left, right, 0, 0});
    }
    return left;
  }

  std::uint32_t not_expr() {
    NestingGuard guard(*this);
    if (at_keyword("NOT")) {
      count_operator(next());
      std::uint32_t inner = not_expr();
      return add_cond({CondKind::Not, CmpOp::Eq, Fn::AttributeExists, inner, 0, 0, 0});
    }
    return predicate();
  }

  std::uint32_t predicate() {
    const Token& t = peek();
    if (t.kind == Tok::LParen) {
      if (t.match == 0) fail(t, "'(' is never closed");
      const Token& after = toks_[t.match + 1];
      bool operand_first = is_comparator(after.kind) ||
                           (after.kind == Tok::Name && (iequals(token_text(after), "BETWEEN") ||
                                                        iequals(token_text(after), "IN")));
      if (!operand_first) {
        check_redundant(pos_);
        const Token& open = next();
        NestingGuard guard(*this);
        std::uint32_t c = or_expr();
        expect_close(open);
        return c;
      }
    } else if (t.kind == Tok::Name && peek(1).kind == Tok::LParen && !token_is_keyword(t)) {
      std::optional<Fn> fn = find_function(token_text(t));
      if (fn && is_condition_function(*fn)) return condition_call(*fn);
    }
    if (t.kind == Tok::End || t.kind == Tok::RParen || t.kind == Tok::Comma ||
        is_comparator(t.kind) || (token_is_keyword(t) && !at_keyword("NOT"))) {
      fail_expected("a condition");
    }
    std::uint32_t lhs = operand(OperandCtx{});
    const Token& op = peek();
    if (is_comparator(op.kind)) {
      count_operator(next());
      std::uint32_t rhs = operand(OperandCtx{});
      CmpOp cmp = CmpOp::Eq;
      switch (op.kind) {
        case Tok::Eq: cmp = CmpOp::Eq; break;
        case Tok::Ne: cmp = CmpOp::Ne; break;
        case Tok::Lt: cmp = CmpOp::Lt; break;
        case Tok::Le: cmp = CmpOp::Le; break;
        case Tok::Gt: cmp = CmpOp::Gt; break;
        default: cmp = CmpOp::Ge; break;
      }
      check_distinct(lhs, {rhs}, fmt::format("'{}'", token_text(op)));
      if (cmp != CmpOp::Eq && cmp != CmpOp::Ne) {
        std::string who = fmt::format("'{}'", token_text(op));
        check_type(lhs, is_ordered_type, who, "numbers, strings or binaries");
        check_type(rhs, is_ordered_type, who, "numbers, strings or binaries");
      }
      if (is_comparator(peek().kind)) {
        fail(peek(), "comparisons cannot be chained; join them with AND");
      }
      return add_cond({CondKind::Compare, cmp, Fn::AttributeExists, lhs, rhs, 0, 0});
    }
    if (at_keyword("BETWEEN")) {
      const Token& between = next();
      count_operator(between);
      std::uint32_t low = operand(OperandCtx{});
      if (!at_keyword("AND")) fail_expected("AND");
      next();
      std::uint32_t high = operand(OperandCtx{});
      check_distinct(lhs, {low, high}, "BETWEEN");
      for (std::uint32_t o : {lhs, low, high}) {
        check_type(o, is_ordered_type, "BETWEEN", "numbers, strings or binaries");
      }
      if (is_constant(low) && is_constant(high)) {
        const AttributeValue& lv = constant_value(low);
        const AttributeValue& hv = constant_value(high);
        if (lv.type() != hv.type()) {
          fail_column(
              out_.operands[high].column,
              fmt::format("the bounds of BETWEEN must have the same type; {} is {} and {} is {}",
                          operand_text(low), type_name(lv.type()), operand_text(high),
                          type_name(hv.type())));
        }
        std::optional<int> c = order_values(lv, hv);
        if (c && *c > 0) {
          fail_column(
              out_.operands[high].column,
              fmt::format("the lower bound of BETWEEN ({}) is greater than the upper bound ({})",
                          operand_text(low), operand_text(high)));
        }
      }
      return add_cond({CondKind::Between, CmpOp::Eq, Fn::AttributeExists, lhs, low, high, 0});
    }
    if (at_keyword("IN")) {
      const Token& in = next();
      count_operator(in);
      if (peek().kind != Tok::LParen) fail_expected("'(' and a list of operands");
      const Token& open = next();
      std::vector<std::uint32_t> list;
      for (;;) {
        std::uint32_t o = operand(OperandCtx{});
        check_distinct(lhs, {o}, "IN");
        list.push_back(o);
        if (peek().kind != Tok::Comma) break;
        next();
      }
      expect_close(open);
      // DynamoDB counts the left operand too.
      if (list.size() + 1 > kMaxInOperands) {
        fail(in, fmt::format("IN takes at most {} operands including the one on its left, got {}",
                             kMaxInOperands, list.size() + 1));
      }
      std::uint32_t first = add_args(list);
      return add_cond({CondKind::In, CmpOp::Eq, Fn::AttributeExists, lhs, first, 0,
                       static_cast<std::uint32_t>(list.size())});
    }
    const OperandNode& l = out_.operands[lhs];
    if (l.kind == OperandKind::Call && (peek().kind == Tok::End || peek().kind == Tok::RParen ||
                                        at_keyword("AND") || at_keyword("OR"))) {
      fail_column(l.column,
                  fmt::format("{}() is not a condition; compare its result, e.g. {}(…) = :v",
                              function_name(l.fn), function_name(l.fn)));
    }
    fail_expected("a comparison operator (= <> < <= > >=), BETWEEN or IN");
  }

  std::uint32_t condition_call(Fn fn) {
    const Token& name = next();
    count_operator(name);
    std::vector<std::uint32_t> args = call_args(fn, name, OperandCtx{});
    auto first_must_be_path = [&](const char* fname) {
      if (!is_path(args[0])) {
        fail_column(out_.operands[args[0]].column,
                    fmt::format("{} needs a document path as its first argument", fname));
      }
    };
    switch (fn) {
      case Fn::AttributeExists:
      case Fn::AttributeNotExists: first_must_be_path(function_name(fn)); break;
      case Fn::AttributeType: {  // DynamoDB accepts any operand first: attribute_type(:v, :t)
        check_distinct(args[0], {args[1]}, "attribute_type()");
        check_type(
            args[1], [](AttrType t) { return t == AttrType::S; }, "attribute_type",
            "a type name string (S, N, B, BOOL, NULL, M, L, SS, NS, BS)");
        if (is_constant(args[1])) {
          const std::string& want = constant_value(args[1]).as<std::string>();
          static constexpr std::array<std::string_view, 10> kTags = {"S", "N", "B",  "BOOL", "NULL",
                                                                     "M", "L", "SS", "NS",   "BS"};
          if (std::find(kTags.begin(), kTags.end(), want) == kTags.end()) {
            fail_column(out_.operands[args[1]].column,
                        fmt::format("'{}' is not a DynamoDB type; expected one of S, N, B, BOOL, "
                                    "NULL, M, L, SS, NS, BS",
                                    want));
          }
        }
        break;
      }
      case Fn::Contains: check_distinct(args[0], {args[1]}, "contains()"); break;
      case Fn::BeginsWith:
        check_distinct(args[0], {args[1]}, "begins_with()");
        for (std::uint32_t a : args) {
          check_type(
              a, [](AttrType t) { return t == AttrType::S || t == AttrType::B; }, "begins_with",
              "strings or binaries");
        }
        break;
      default: break;
    }
    if (is_comparator(peek().kind)) {
      fail(peek(),
           fmt::format("{}() is a condition; its result cannot be compared", function_name(fn)));
    }
    std::uint32_t first = add_args(args);
    return add_cond(
        {CondKind::Call, CmpOp::Eq, fn, first, 0, 0, static_cast<std::uint32_t>(args.size())});
  }

  // ---- operands ------------------------------------------------------------------------------
  std::uint32_t operand(OperandCtx ctx) {
    NestingGuard guard(*this);
    const Token& t = peek();
    switch (t.kind) {
      case Tok::Name:
        if (token_is_keyword(t)) fail_expected("an operand");
        if (peek(1).kind == Tok::LParen) return call(ctx);
        return path_operand();
      case Tok::NamePh: return path_operand();
      case Tok::ValuePh: return value_operand();
      case Tok::LParen: {
        if (t.match == 0) fail(t, "'(' is never closed");
        check_redundant(pos_);
        const Token& open = next();
        std::uint32_t o = operand(ctx);
        expect_close(open);
        return o;
      }
      case Tok::Number: return number_literal(false);
      case Tok::Minus:
        if (peek(1).kind == Tok::Number && dialect_ == Dialect::Client) {
          next();
          return number_literal(true);
        }
        fail_expected("an operand");
      case Tok::String: {
        if (dialect_ == Dialect::Server) {
          fail(t,
               "string literals are a dynamorph extension of client-side expressions; use a "
               ":value placeholder here");
        }
        next();
        out_.constants.push_back(Constant{AttributeValue(t.value), {}});
        return add_operand({OperandKind::Constant, Fn::Size,
                            static_cast<std::uint32_t>(out_.constants.size() - 1), 0, column(t)},
                           AttrType::S);
      }
      default: fail_expected("an operand");
    }
  }

  std::uint32_t number_literal(bool negative) {
    const Token& t = next();
    if (dialect_ == Dialect::Server) {
      fail(t,
           "number literals are a dynamorph extension of client-side expressions; use a "
           ":value placeholder here");
    }
    std::string text = std::string(negative ? "-" : "") + std::string(token_text(t));
    std::string why;
    std::optional<Number> n = Number::parse(text, &why);
    if (!n) fail(t, fmt::format("invalid number {}: {}", text, why));
    out_.constants.push_back(Constant{AttributeValue(std::move(*n)), {}});
    std::uint32_t col = negative ? column(toks_[pos_ - 2]) : column(t);
    return add_operand({OperandKind::Constant, Fn::Size,
                        static_cast<std::uint32_t>(out_.constants.size() - 1), 0, col},
                       AttrType::N);
  }

  std::uint32_t value_operand() {
    const Token& t = next();
    std::string_view name = token_text(t);
    auto found = ph_.values.find(std::string(name));
    if (found == ph_.values.end()) fail(t, fmt::format("'{}' is not defined in values", name));
    if (usage_) usage_->note_value(name);
    std::uint32_t index;
    auto known = value_constants_.find(name);
    if (known != value_constants_.end()) {
      index = known->second;
    } else {
      out_.constants.push_back(Constant{found->second, std::string(name)});
      index = static_cast<std::uint32_t>(out_.constants.size() - 1);
      value_constants_.emplace(std::string(name), index);
    }
    return add_operand({OperandKind::Constant, Fn::Size, index, 0, column(t)},
                       found->second.type());
  }

  std::uint32_t path_operand() {
    std::uint32_t col = column(peek());
    std::uint32_t p = parse_path();
    note_read(p);
    return add_operand({OperandKind::Path, Fn::Size, p, 0, col}, std::nullopt);
  }

  PathElement name_element() {
    const Token& t = peek();
    if (t.kind == Tok::NamePh) {
      next();
      std::string_view ph = token_text(t);
      auto found = ph_.names.find(std::string(ph));
      if (found == ph_.names.end()) fail(t, fmt::format("'{}' is not defined in names", ph));
      if (usage_) usage_->note_name(ph);
      return PathElement{found->second, -1, std::string(ph)};
    }
    if (t.kind == Tok::Name) {
      std::string_view name = token_text(t);
      if (dialect_ == Dialect::Server && is_reserved_word(name)) {
        fail(t, fmt::format("'{}' is a reserved word in DynamoDB; write it as a name placeholder, "
                            "e.g. '#{}' with names: {{\"#{}\": \"{}\"}}",
                            name, name, name, name));
      }
      next();
      return PathElement{std::string(name), -1, {}};
    }
    fail_expected("an attribute name");
  }

  std::uint32_t parse_path() {
    ResolvedPath path;
    path.column = column(peek());
    if (token_is_keyword(peek())) fail_expected("a document path");
    path.elements.push_back(name_element());
    for (;;) {
      if (peek().kind == Tok::Dot) {
        next();
        path.elements.push_back(name_element());
      } else if (peek().kind == Tok::LBracket) {
        next();
        const Token& t = peek();
        std::string_view digits = token_text(t);
        if (t.kind != Tok::Number ||
            !std::all_of(digits.begin(), digits.end(),
                         [](char c) { return c >= '0' && c <= '9'; }) ||
            (digits.size() > 1 && digits[0] == '0')) {
          fail_expected("a list index (0, 1, 2, …)");
        }
        long long index = 0;
        for (char c : digits) {
          index = index * 10 + (c - '0');
          if (index > std::numeric_limits<std::int32_t>::max()) {
            fail(t, fmt::format("list index {} is out of range", digits));
          }
        }
        next();
        if (peek().kind != Tok::RBracket) fail_expected("']'");
        next();
        path.elements.push_back(PathElement{{}, static_cast<std::int32_t>(index), {}});
      } else {
        break;
      }
    }
    if (path.elements.size() > kMaxPathDepth) {
      fail_column(path.column,
                  fmt::format("the document path has {} levels; DynamoDB allows at most {}",
                              path.elements.size(), kMaxPathDepth));
    }
    out_.paths.push_back(std::move(path));
    return static_cast<std::uint32_t>(out_.paths.size() - 1);
  }

  std::vector<std::uint32_t> call_args(Fn fn, const Token& name, OperandCtx arg_ctx) {
    next();  // '('
    const Token& open = toks_[pos_ - 1];
    std::vector<std::uint32_t> args;
    if (peek().kind != Tok::RParen) {
      for (;;) {
        args.push_back(operand(arg_ctx));
        if (peek().kind != Tok::Comma) break;
        next();
      }
    }
    expect_close(open);
    const FnInfo& info = kFunctions[static_cast<std::size_t>(fn)];
    auto n = static_cast<int>(args.size());
    if (n < info.min_args || (info.max_args >= 0 && n > info.max_args)) {
      std::string wants;
      if (info.max_args < 0)
        wants = fmt::format("at least {} arguments", info.min_args);
      else if (info.min_args == info.max_args)
        wants = fmt::format("{} argument{}", info.min_args, info.min_args == 1 ? "" : "s");
      else
        wants = fmt::format("{} to {} arguments", info.min_args, info.max_args);
      fail(name, fmt::format("{}() takes {}, got {}", info.name, wants, n));
    }
    return args;
  }

  std::uint32_t call(OperandCtx ctx) {
    const Token& name = peek();
    std::string_view fname = token_text(name);
    std::optional<Fn> found = find_function(fname);
    if (!found) {
      if (auto other = find_function_ignoring_case(fname)) {
        fail(name, fmt::format("unknown function '{}' (function names are case-sensitive: '{}')",
                               fname, function_name(*other)));
      }
      std::vector<std::string> names;
      for (const auto& f : kFunctions) names.emplace_back(f.name);
      fail(name, fmt::format("unknown function '{}'{}", fname, dynamo::did_you_mean(fname, names)));
    }
    Fn fn = *found;
    if (is_extension(fn) && dialect_ == Dialect::Server) {
      fail(name, fmt::format("{}() is a dynamorph extension; it is not available in expressions "
                             "the server evaluates",
                             fname));
    }
    if (is_condition_function(fn)) {
      if (ctx.update) fail(name, fmt::format("{}() is not allowed in an update expression", fname));
      fail(name, fmt::format("{}() is a condition and cannot be used as an operand", fname));
    }
    if (!ctx.update && (fn == Fn::IfNotExists || fn == Fn::ListAppend)) {
      fail(name, fmt::format("{}() is not allowed in a condition expression", fname));
    }
    if (ctx.update && fn == Fn::Size && dialect_ == Dialect::Server) {
      fail(name, "size() is not allowed in an update expression");
    }
    if (fn == Fn::ListAppend && !ctx.allow_list_append) {
      fail(name,
           "list_append() must be the whole value of a SET action; it cannot be an "
           "argument or an operand of '+'/'-'");
    }
    if (is_extension(fn) || (ctx.update && fn == Fn::Size)) out_.server_evaluable = false;
    next();
    count_operator(name);
    OperandCtx arg_ctx{ctx.update, is_extension(fn)};
    std::vector<std::uint32_t> args = call_args(fn, name, arg_ctx);
    std::optional<AttrType> result;
    auto strings = [](AttrType t) { return t == AttrType::S; };
    auto numbers = [](AttrType t) { return t == AttrType::N; };
    auto check_arg = [&](std::size_t i, auto pred, std::string_view wants) {
      if (i < args.size()) {
        check_type(args[i], pred, fmt::format("{}() argument {}", fname, i + 1), wants);
      }
    };
    switch (fn) {
      case Fn::Size:
        check_type(
            args[0],
            [](AttrType t) {
              return t == AttrType::S || t == AttrType::B || t == AttrType::L || t == AttrType::M ||
                     is_set_type(t);
            },
            "size()", "a string, binary, set, list or map");
        result = AttrType::N;
        break;
      case Fn::IfNotExists:
        if (!is_path(args[0])) {
          fail_column(out_.operands[args[0]].column,
                      "if_not_exists() needs a document path as its first argument");
        }
        check_distinct(args[0], {args[1]}, "if_not_exists()");
        break;
      case Fn::ListAppend:
        for (std::size_t i = 0; i < 2; ++i) {
          check_arg(
              i, [](AttrType t) { return t == AttrType::L; }, "a list");
        }
        result = AttrType::L;
        break;
      case Fn::Lower:
      case Fn::Upper:
      case Fn::Trim:
      case Fn::EpochMs:
        check_arg(0, strings, "a string");
        result = fn == Fn::EpochMs ? AttrType::N : AttrType::S;
        break;
      case Fn::Concat:
      case Fn::Replace:
      case Fn::StripPrefix:
        for (std::size_t i = 0; i < args.size(); ++i) check_arg(i, strings, "a string");
        result = AttrType::S;
        break;
      case Fn::Substr:
        check_arg(0, strings, "a string");
        check_arg(1, numbers, "a number");
        check_arg(2, numbers, "a number");
        result = AttrType::S;
        break;
      case Fn::SplitPart:
        check_arg(0, strings, "a string");
        check_arg(1, strings, "a string");
        check_arg(2, numbers, "a number");
        if (is_constant(args[1]) && constant_value(args[1]).as<std::string>().empty()) {
          fail_column(out_.operands[args[1]].column, "split_part(): the separator is empty");
        }
        result = AttrType::S;
        break;
      case Fn::ToString:
        check_arg(
            0,
            [](AttrType t) { return t == AttrType::S || t == AttrType::N || t == AttrType::BOOL; },
            "a string, number or boolean");
        result = AttrType::S;
        break;
      case Fn::ToNumber:
        check_arg(
            0, [](AttrType t) { return t == AttrType::S || t == AttrType::N; },
            "a string or number");
        if (is_constant(args[0]) && constant_value(args[0]).is<std::string>()) {
          std::string why;
          if (!Number::parse(constant_value(args[0]).as<std::string>(), &why)) {
            fail_column(out_.operands[args[0]].column, fmt::format("to_number(): {}", why));
          }
        }
        result = AttrType::N;
        break;
      case Fn::Now:
      case Fn::Uuid:
      case Fn::Ulid: result = AttrType::S; break;
      default: break;
    }
    std::uint32_t first = add_args(args);
    return add_operand(
        {OperandKind::Call, fn, first, static_cast<std::uint32_t>(args.size()), column(name)},
        result);
  }

  // ---- updates -------------------------------------------------------------------------------
  std::uint32_t target_path() {
    const Token& t = peek();
    if (t.kind != Tok::Name && t.kind != Tok::NamePh) fail_expected("a document path");
    return parse_path();
  }

  void update_action(UpdateProgram& up, ActionKind kind) {
    action_columns_.push_back(column(peek()));
    std::uint32_t path = target_path();
    Action action{kind, path, 0};
    switch (kind) {
      case ActionKind::Set:
        if (peek().kind != Tok::Eq) fail_expected("'='");
        count_operator(next());
        action.value = set_value();
        break;
      case ActionKind::Remove: break;
      case ActionKind::Add:
      case ActionKind::Delete: {
        note_read(path);
        if (dialect_ == Dialect::Server && peek().kind != Tok::ValuePh) {
          fail_expected("a :value placeholder");
        }
        count_operator(toks_[pos_ - 1]);
        action.value = operand(OperandCtx{true, false});
        if (!is_constant(action.value)) out_.server_evaluable = false;  // DynamoDB: :value only
        if (kind == ActionKind::Add) {
          check_type(
              action.value, [](AttrType t) { return t == AttrType::N || is_set_type(t); }, "ADD",
              "a number or a set");
        } else {
          check_type(action.value, is_set_type, "DELETE", "a set");
        }
        break;
      }
    }
    up.actions.push_back(action);
  }

  std::uint32_t set_value() {
    const Token& t = peek();
    if (t.kind == Tok::LParen && t.match != 0) {
      Tok after = toks_[t.match + 1].kind;
      if (after != Tok::Plus && after != Tok::Minus) {
        NestingGuard guard(*this);
        check_redundant(pos_);
        const Token& open = next();
        std::uint32_t v = set_value();
        expect_close(open);
        return v;
      }
    }
    std::uint32_t left = operand(OperandCtx{true, true});
    if (peek().kind != Tok::Plus && peek().kind != Tok::Minus) return left;
    const Token& op = next();
    count_operator(op);
    if (is_call_to(left, Fn::ListAppend)) {
      fail_column(out_.operands[left].column,
                  "list_append() must be the whole value of a SET action; it cannot be an "
                  "operand of '+'/'-'");
    }
    std::uint32_t right = operand(OperandCtx{true, false});
    std::string who = fmt::format("'{}'", token_text(op));
    auto numbers = [](AttrType x) { return x == AttrType::N; };
    check_type(left, numbers, who, "numbers");
    check_type(right, numbers, who, "numbers");
    if (peek().kind == Tok::Plus || peek().kind == Tok::Minus) {
      fail(peek(), "a SET value has at most one '+' or '-'");
    }
    std::uint32_t first = add_args({left, right});
    return add_operand({op.kind == Tok::Plus ? OperandKind::Plus : OperandKind::Minus, Fn::Size,
                        first, 2, column(op)},
                       AttrType::N);
  }

  void check_overlaps(const UpdateProgram& up) {
    const auto& acts = up.actions;
    for (std::size_t j = 1; j < acts.size(); ++j) {
      const ResolvedPath& q = out_.paths[acts[j].path];
      for (std::size_t i = 0; i < j; ++i) {
        const ResolvedPath& p = out_.paths[acts[i].path];
        std::size_t n = std::min(p.elements.size(), q.elements.size());
        std::size_t k = 0;
        while (k < n && same_element(p.elements[k], q.elements[k])) ++k;
        std::string ps = to_public_path(p).to_string(), qs = to_public_path(q).to_string();
        if (k == n) {
          std::string what;
          if (p.elements.size() == q.elements.size()) {
            what = acts[i].kind == acts[j].kind
                       ? fmt::format("'{}' is {} twice", ps, action_verb(acts[i].kind))
                       : fmt::format("'{}' is both {} and {}", ps, action_verb(acts[i].kind),
                                     action_verb(acts[j].kind));
          } else {
            what = fmt::format("'{}' is {} and '{}' is {}", ps, action_verb(acts[i].kind), qs,
                               action_verb(acts[j].kind));
          }
          fail_column(action_columns_[j], "two document paths overlap: " + what);
        }
        if ((p.elements[k].index >= 0) != (q.elements[k].index >= 0)) {
          Path parent;
          for (std::size_t e = 0; e < k; ++e) {
            parent.elements.push_back(to_public_path(p).elements[e]);
          }
          fail_column(action_columns_[j],
                      fmt::format("two document paths conflict: '{}' and '{}' use '{}' both as a "
                                  "list and as a map",
                                  ps, qs, parent.to_string()));
        }
      }
    }
  }
};

}  // namespace

const char* function_name(Fn fn) { return kFunctions[static_cast<std::size_t>(fn)].name; }

bool is_extension(Fn fn) { return static_cast<int>(fn) >= static_cast<int>(Fn::Lower); }

Path to_public_path(const ResolvedPath& p) {
  Path out;
  out.elements.reserve(p.elements.size());
  for (const PathElement& e : p.elements) {
    if (e.index >= 0)
      out.elements.emplace_back(static_cast<int>(e.index));
    else
      out.elements.emplace_back(e.name);
  }
  return out;
}

void parse_condition(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                     std::string_view label, PlaceholderUsage* usage, ConditionProgram& out) {
  Parser parser(text, placeholders, dialect, label, usage, out);
  out.root = parser.parse_condition_root();
}

void parse_update(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                  std::string_view label, PlaceholderUsage* usage, UpdateProgram& out) {
  Parser parser(text, placeholders, dialect, label, usage, out);
  parser.parse_update_root(out);
}

}  // namespace dynamorph::expr::detail
