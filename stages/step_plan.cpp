#include "stages/step_plan.h"

#include <fmt/format.h>

#include "dynamo/errors.h"
#include "stages/change_replay.h"
#include "stages/table_source.h"

namespace dynamorph::stages {

StepPlan plan_step(dynamo::Client& client, const StepSpec& spec, const PlanOptions& options) {
  StepPlan plan;
  plan.expressions = compile_step_expressions(spec, options.now_iso);
  plan.source =
      make_source(SourceContext{client, spec, plan.expressions, options.default_page_size});
  const auto& read = plan.source->table();
  std::string target = !spec.write.table.empty() ? spec.write.table
                       : read                    ? read->name
                                                 : std::string();
  if (target.empty())
    throw UsageError(
        fmt::format("{}: the source is {}, not a table: write.table must name the table to write",
                    spec.label, plan.source->describe()));
  plan.target = read && target == read->name
                    ? *read
                    : describe_or_refuse(client, target, "target", spec.label);
  if (read) {
    plan.source_table = *read;
  } else {  // outside DynamoDB: items carry the target's keys
    plan.source_table = plan.target;
    plan.source_table.name = plan.source->describe();
  }
  plan.processor = std::make_unique<ItemProcessor>(spec, plan.expressions, plan.source_table,
                                                   plan.target, options.version, options.now_iso);
  if (spec.source.follow_stream || spec.source.kind == "stream")
    check_replay_plan(spec, *plan.processor, plan.source_table);
  plan.sink = make_sink(spec.write.mode, *plan.processor);
  plan.warnings = plan.processor->warnings();
  return plan;
}

}  // namespace dynamorph::stages
