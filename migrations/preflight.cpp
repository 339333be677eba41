#include "migrations/preflight.h"

#include <set>
#include <string>

#include "migrations/run_settings.h"
#include "stages/step_plan.h"

namespace dynamorph::migrations {
namespace {

// The table a schema step creates, deletes or alters.
const std::string& changed_table(const Step& step) {
  return std::visit(
      [](const auto& body) -> const std::string& {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, CreateTableStep>)
          return body.request.table;
        else if constexpr (std::is_same_v<T, PipelineStep>)
          return body.spec.write.table;  // not a schema change; never called for it
        else
          return body.table;
      },
      step.body);
}

// The step a run of `m` in `direction` starts from: a resumed version's recorded step.
std::size_t first_step(const Migration& m, Direction direction, const History& history) {
  auto r = history.records.find(m.version);
  if (r == history.records.end()) return 0;
  const VersionRecord& rec = r->second;
  if (rec.direction != direction || rec.state == VersionState::Applied) return 0;
  return static_cast<std::size_t>(std::max(rec.step, 0));
}

}  // namespace

void preflight(const StepContext& ctx, const Plan& plan, const History& history,
               const UpOptions& options) {
  std::set<std::string> changed;  // tables an earlier step of the plan changes
  const SettingFlags flags{options.segments, options.max_wcu, options.max_rcu};
  for (const auto& [m, direction] : plan) {
    if (direction == Direction::Down && !m->down) continue;  // a journal restore
    const auto& steps = steps_of(*m, direction);
    for (std::size_t i = first_step(*m, direction, history); i < steps.size(); ++i) {
      const auto* p = std::get_if<PipelineStep>(&steps[i].body);
      if (!p) {
        changed.insert(changed_table(steps[i]));
        continue;
      }
      const stages::StepSpec& spec = p->spec;
      const std::string& target = spec.write.table.empty() ? spec.source.table : spec.write.table;
      if (changed.contains(spec.source.table) || changed.contains(target)) continue;
      stages::StepSpec planned = spec;
      if (planned.source.query_key.empty())
        planned.source.segments = resolve_run_settings(ctx.config, *m, spec, flags).segments;
      (void)stages::plan_step(
          ctx.client, planned,
          stages::PlanOptions{m->version, ctx.now_iso, pipeline::RunOptions{}.default_page_size});
    }
  }
}

}  // namespace dynamorph::migrations
