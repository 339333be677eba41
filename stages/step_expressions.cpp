#include "stages/step_expressions.h"

#include <algorithm>

namespace dynamorph::stages {

StepExpressions compile_step_expressions(const StepSpec& spec, std::string_view now_iso,
                                         std::string_view unused_where) {
  StepExpressions out;
  out.placeholders = {spec.names, spec.values};
  const bool now_automatic = !spec.values.contains(":now");
  if (now_automatic)
    out.placeholders.values.emplace(":now", dynamo::AttributeValue(std::string(now_iso)));
  auto label_of = [&](const Expression& e) { return e.label.empty() ? spec.label : e.label; };

  expr::PlaceholderUsage usage;
  auto condition = [&](const Expression& e, expr::Dialect d) -> std::optional<expr::Condition> {
    if (e.empty()) return std::nullopt;
    return expr::Condition::compile(e.text, out.placeholders, d, label_of(e), &usage);
  };
  out.filter = condition(spec.source.filter, expr::Dialect::Server);
  out.key_condition = condition(spec.source.query_key, expr::Dialect::Server);
  out.where = condition(spec.where, expr::Dialect::Client);
  for (const auto& t : spec.transform) {
    if (t.update.empty()) {
      out.updates.emplace_back();
    } else {
      out.updates.push_back(expr::Update::compile(
          t.update.text, out.placeholders, expr::Dialect::Client, label_of(t.update), &usage));
    }
  }
  // Every placeholder the step declares must be used; the automatic :now need not be. A Lua
  // transform reads the values through ctx.values, which no one can check.
  const bool lua = std::any_of(spec.transform.begin(), spec.transform.end(),
                               [](const TransformSpec& t) { return !t.lua.empty(); });
  usage.check_all_used(expr::Placeholders{spec.names, lua ? decltype(spec.values){} : spec.values},
                       unused_where.empty() ? std::string_view(spec.label) : unused_where);
  out.uses_automatic_now = now_automatic && usage.used_value(":now");
  return out;
}

}  // namespace dynamorph::stages
