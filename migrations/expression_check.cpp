#include "migrations/expression_check.h"

#include "dynamo/errors.h"
#include "dynamo/expression.h"

namespace dynamorph::migrations {

void check_step_expressions(stages::StepSpec& spec, const std::string& where,
                            bool now_is_automatic) {
  bool now_used = false;
  namespace expr = dynamo::expr;
  expr::Placeholders ph{spec.names, spec.values};
  expr::PlaceholderUsage usage;
  if (!spec.source.filter.empty())
    expr::Condition::compile(spec.source.filter.text, ph, expr::Dialect::Server,
                             spec.source.filter.label, &usage);
  if (!spec.source.query_key.empty())
    expr::Condition::compile(spec.source.query_key.text, ph, expr::Dialect::Server,
                             spec.source.query_key.label, &usage);
  if (!spec.where.empty())
    expr::Condition::compile(spec.where.text, ph, expr::Dialect::Client, spec.where.label, &usage);
  for (const auto& t : spec.transform)
    if (!t.update.empty())
      expr::Update::compile(t.update.text, ph, expr::Dialect::Client, t.update.label, &usage);
  expr::Placeholders declared = ph;
  if (now_is_automatic) {
    declared.values.erase(":now");
    expr::Placeholders only_now;
    only_now.values.emplace(":now", spec.values.at(":now"));
    try {
      usage.check_all_used(only_now, where);
      now_used = true;
    } catch (const UsageError&) {
      now_used = false;  // the probe's way of saying ":now" was never used
    }
  }
  usage.check_all_used(declared, where);
  if (now_is_automatic && !now_used) spec.values.erase(":now");
}

}  // namespace dynamorph::migrations
