#include "expr/expression.h"

#include <fmt/format.h>

#include <algorithm>

#include "dynamo/errors.h"
#include "expr/expr_eval.h"
#include "expr/expr_parser.h"
#include "expr/expr_program.h"
#include "expr/expr_reserved.h"

namespace dynamorph::expr {
namespace {

bool plain_identifier(std::string_view s) {
  if (s.empty()) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  if (!alpha(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9') || c == '_'; });
}

// Renders a compiled program back to DynamoDB's syntax. Placeholders the source used keep their
// names; literals and names that need one get generated placeholders that collide with none of
// the source's.
class WireWriter {
 public:
  explicit WireWriter(const detail::Program& p) : p_(p) {
    for (const auto& path : p.paths) {
      for (const auto& e : path.elements) {
        if (!e.placeholder.empty()) taken_.push_back(e.placeholder);
      }
    }
    for (const auto& c : p.constants) {
      if (!c.placeholder.empty()) taken_.push_back(c.placeholder);
    }
  }

  WireExpression take() { return std::move(out_); }
  std::string& text() { return out_.text; }

  void path(const detail::ResolvedPath& path) {
    bool first = true;
    for (const auto& e : path.elements) {
      if (e.index >= 0) {
        out_.text += fmt::format("[{}]", e.index);
        continue;
      }
      if (!first) out_.text += '.';
      first = false;
      if (!e.placeholder.empty()) {
        out_.names[e.placeholder] = e.name;
        out_.text += e.placeholder;
      } else if (plain_identifier(e.name) && !detail::is_reserved_word(e.name)) {
        out_.text += e.name;
      } else {
        out_.text += generated_name(e.name);
      }
    }
  }

  void operand(std::uint32_t index) {
    const detail::OperandNode& n = p_.operands[index];
    switch (n.kind) {
      case detail::OperandKind::Path: path(p_.paths[n.ref]); break;
      case detail::OperandKind::Constant: constant(p_.constants[n.ref]); break;
      case detail::OperandKind::Call:
        out_.text += detail::function_name(n.fn);
        out_.text += '(';
        for (std::uint32_t i = 0; i < n.count; ++i) {
          if (i) out_.text += ", ";
          operand(p_.args[n.ref + i]);
        }
        out_.text += ')';
        break;
      case detail::OperandKind::Plus:
      case detail::OperandKind::Minus:
        operand(p_.args[n.ref]);
        out_.text += n.kind == detail::OperandKind::Plus ? " + " : " - ";
        operand(p_.args[n.ref + 1]);
        break;
    }
  }

  void condition(std::uint32_t index, int min_precedence) {
    const detail::CondNode& n = p_.conds[index];
    int precedence = n.kind == detail::CondKind::Or    ? 1
                     : n.kind == detail::CondKind::And ? 2
                     : n.kind == detail::CondKind::Not ? 3
                                                       : 4;
    bool parens = precedence < min_precedence;
    if (parens) out_.text += '(';
    switch (n.kind) {
      case detail::CondKind::Or:
      case detail::CondKind::And:
        condition(n.a, precedence);
        out_.text += n.kind == detail::CondKind::Or ? " OR " : " AND ";
        condition(n.b, precedence);
        break;
      case detail::CondKind::Not:
        out_.text += "NOT ";
        condition(n.a, 3);
        break;
      case detail::CondKind::Compare: {
        static constexpr const char* kOps[] = {" = ", " <> ", " < ", " <= ", " > ", " >= "};
        operand(n.a);
        out_.text += kOps[static_cast<int>(n.op)];
        operand(n.b);
        break;
      }
      case detail::CondKind::Between:
        operand(n.a);
        out_.text += " BETWEEN ";
        operand(n.b);
        out_.text += " AND ";
        operand(n.c);
        break;
      case detail::CondKind::In:
        operand(n.a);
        out_.text += " IN (";
        for (std::uint32_t i = 0; i < n.count; ++i) {
          if (i) out_.text += ", ";
          operand(p_.args[n.b + i]);
        }
        out_.text += ')';
        break;
      case detail::CondKind::Call:
        out_.text += detail::function_name(n.fn);
        out_.text += '(';
        for (std::uint32_t i = 0; i < n.count; ++i) {
          if (i) out_.text += ", ";
          operand(p_.args[n.a + i]);
        }
        out_.text += ')';
        break;
    }
    if (parens) out_.text += ')';
  }

 private:
  const detail::Program& p_;
  WireExpression out_;
  std::vector<std::string> taken_;
  std::vector<std::pair<std::string, std::string>> generated_names_;  // name → "#placeholder"
  int next_name_ = 0;
  int next_value_ = 0;

  std::string fresh(char sigil, char letter, int& counter) {
    for (;;) {
      std::string candidate = fmt::format("{}{}{}", sigil, letter, counter++);
      if (std::find(taken_.begin(), taken_.end(), candidate) == taken_.end()) {
        taken_.push_back(candidate);
        return candidate;
      }
    }
  }

  std::string generated_name(const std::string& name) {
    for (const auto& [n, ph] : generated_names_) {
      if (n == name) return ph;
    }
    std::string ph = fresh('#', 'n', next_name_);
    generated_names_.emplace_back(name, ph);
    out_.names[ph] = name;
    return ph;
  }

  void constant(const detail::Constant& c) {
    if (!c.placeholder.empty()) {
      out_.values[c.placeholder] = c.value;
      out_.text += c.placeholder;
      return;
    }
    std::string ph = fresh(':', 'v', next_value_);
    out_.values[ph] = c.value;
    out_.text += ph;
  }
};

[[noreturn]] void not_for_server(const std::string& text) {
  throw Error(fmt::format(
      "expression '{}' uses client-side functions; it cannot be sent to DynamoDB", text));
}

std::string quoted_list(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ", ";
    out += fmt::format("'{}'", k);
  }
  return out;
}

}  // namespace

// ---- Path, PlaceholderUsage ---------------------------------------------------------------------

std::string Path::to_string() const {
  std::string out;
  for (const auto& e : elements) {
    if (const auto* name = std::get_if<std::string>(&e)) {
      if (!out.empty()) out += '.';
      out += *name;
    } else {
      out += fmt::format("[{}]", std::get<int>(e));
    }
  }
  return out;
}

void PlaceholderUsage::note_name(std::string_view name) { names_.emplace(name); }
void PlaceholderUsage::note_value(std::string_view name) { values_.emplace(name); }

void PlaceholderUsage::check_all_used(const Placeholders& placeholders,
                                      std::string_view where) const {
  std::string prefix = where.empty() ? std::string() : fmt::format("{}: ", where);
  auto check = [&](const auto& map, const auto& used, const char* what) {
    std::vector<std::string> unused;
    for (const auto& [key, value] : map) {
      if (used.find(key) == used.end()) unused.push_back(key);
    }
    if (!unused.empty()) {
      throw UsageError(fmt::format("{}{}: {} {} not used by any expression of this step", prefix,
                                   what, quoted_list(unused), unused.size() == 1 ? "is" : "are"));
    }
  };
  check(placeholders.names, names_, "names");
  check(placeholders.values, values_, "values");
}

// ---- Condition ---------------------------------------------------------------------------------

Condition Condition::compile(std::string_view text, const Placeholders& placeholders,
                             Dialect dialect, std::string_view label, PlaceholderUsage* usage) {
  auto p = std::make_shared<detail::ConditionProgram>();
  detail::parse_condition(text, placeholders, dialect, label, usage, *p);
  return Condition(std::move(p));
}

bool Condition::evaluate(const Item& item, const EvalContext& ctx) const {
  return detail::evaluate_condition(*p_, item, ctx);
}

const std::vector<Path>& Condition::reads() const { return p_->reads; }
bool Condition::server_evaluable() const { return p_->server_evaluable; }
const std::string& Condition::text() const { return p_->text; }

WireExpression Condition::to_wire() const {
  if (!p_->server_evaluable) not_for_server(p_->text);
  WireWriter w(*p_);
  w.condition(p_->root, 0);
  return w.take();
}

// ---- Update ------------------------------------------------------------------------------------

Update Update::compile(std::string_view text, const Placeholders& placeholders, Dialect dialect,
                       std::string_view label, PlaceholderUsage* usage) {
  auto p = std::make_shared<detail::UpdateProgram>();
  detail::parse_update(text, placeholders, dialect, label, usage, *p);
  return Update(std::move(p));
}

std::optional<std::string> Update::apply(Item& item, const EvalContext& ctx) const {
  return detail::apply_update(*p_, item, ctx);
}

const std::vector<Path>& Update::reads() const { return p_->reads; }
const std::vector<Path>& Update::writes() const { return p_->writes; }
bool Update::server_evaluable() const { return p_->server_evaluable; }
const std::string& Update::text() const { return p_->text; }

bool Update::writes_any_of(const std::vector<std::string>& top_level_names) const {
  for (const Path& w : p_->writes) {
    const auto& top = std::get<std::string>(w.elements.front());
    if (std::find(top_level_names.begin(), top_level_names.end(), top) != top_level_names.end()) {
      return true;
    }
  }
  return false;
}

WireExpression Update::to_wire() const {
  if (!p_->server_evaluable) not_for_server(p_->text);
  WireWriter w(*p_);
  static constexpr detail::ActionKind kOrder[] = {
      detail::ActionKind::Set, detail::ActionKind::Remove, detail::ActionKind::Add,
      detail::ActionKind::Delete};
  static constexpr const char* kClause[] = {"SET ", "REMOVE ", "ADD ", "DELETE "};
  for (int k = 0; k < 4; ++k) {
    bool first = true;
    for (const detail::Action& a : p_->actions) {
      if (a.kind != kOrder[k]) continue;
      if (first) {
        if (!w.text().empty()) w.text() += ' ';
        w.text() += kClause[k];
      } else {
        w.text() += ", ";
      }
      first = false;
      w.path(p_->paths[a.path]);
      if (a.kind == detail::ActionKind::Set) {
        w.text() += " = ";
        w.operand(a.value);
      } else if (a.kind != detail::ActionKind::Remove) {
        w.text() += ' ';
        w.operand(a.value);
      }
    }
  }
  return w.take();
}

}  // namespace dynamorph::expr
