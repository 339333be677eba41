#include "migrations/dry_run.h"

#include <fmt/format.h>

#include <set>

#include "dynamo/client.h"
#include "migrations/errors.h"

namespace dynamorph::migrations {

CheckpointEstimate checkpoint_estimate(const stages::StepSpec& spec, std::int64_t scanned,
                                       int transaction_limit) {
  CheckpointEstimate e;
  const std::int64_t segments =
      spec.source.query_key.empty() ? std::max(1, spec.source.segments) : 1;
  const std::int64_t page =
      spec.source.page_size > 0 ? spec.source.page_size : pipeline::RunOptions{}.default_page_size;
  e.writes = (scanned + page - 1) / page + segments;  // every segment ends with a page
  e.deletes = segments;
  const auto per = static_cast<double>(std::max(1, transaction_limit - 1));
  e.wcu = static_cast<double>(e.writes + e.deletes) * 2.0 * (1.0 + 1.0 / per);
  return e;
}

DryRunPlanner::DryRunPlanner(StepContext context, int transaction_limit)
    : ctx_(context), transaction_limit_(transaction_limit) {}

void DryRunPlanner::plan(const Plan& plan, const UpOptions& o) {
  Renderer& out = ctx_.render;
  std::set<std::string> created, deleted;
  std::set<std::string> streamed;  // tables whose stream an earlier step enables
  auto table_exists = [&](const std::string& t) {
    if (deleted.contains(t)) return false;
    auto d = ctx_.client.describe_table(t);
    if (d) return true;
    if (d.error().type == "ResourceNotFoundException") return false;
    throw Error(fmt::format("DescribeTable {}: {}", t, d.error().to_string()));
  };
  if (plan.empty()) out.dry_run_empty();
  for (const auto& [m, direction] : plan) {
    const auto& steps = steps_of(*m, direction);
    out.dry_run_version(*m, direction);
    if (m->schema && direction == Direction::Up) out.dry_run_schema(*m->schema);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const Step& step = steps[i];
      out.dry_run_step_start(i, steps.size(), step);
      if (const auto* p = std::get_if<PipelineStep>(&step.body)) {
        const std::string& src = p->spec.source.table;  // empty: not a table (an export)
        if (!src.empty() && created.contains(src)) {
          out.dry_run_note(fmt::format(
              "source table {} is created by an earlier step: nothing to scan yet", src));
          continue;
        }
        if (!src.empty() && !table_exists(src)) {
          out.dry_run_warning(fmt::format("source table {} does not exist: `{}` would fail here",
                                          src, to_string(direction)));
          continue;
        }
        auto store = pipeline::null_checkpoint_store();
        UpOptions dry = o;
        dry.dry_run = true;
        pipeline::RunResult r;
        stages::StepSpec spec;
        try {
          auto ro = step_run_options(ctx_, *m, dry, p->spec);
          spec = with_segments(p->spec, ro);
          if (spec.source.follow_stream && streamed.contains(src)) {
            // Planned as the backfill alone: the stream it needs is not on yet.
            out.dry_run_note(fmt::format(
                "the stream of {} is enabled by an earlier step: the replay is not planned", src));
            spec.source.follow_stream = false;
          }
          if (auto advice = segment_advice(ctx_.client, spec)) out.dry_run_warning(*advice);
          r = pipeline::run_pipeline(ctx_.client, spec, *store, ro);
        } catch (const UsageError&) {
          throw;
        } catch (const Error& e) {
          throw StepFailed(fmt::format("{}: pipeline (dry run): {}", step.where, e.what()));
        }
        if (r.status == pipeline::RunResult::Status::Failed)
          throw StepFailed(fmt::format("{}: pipeline (dry run): {}", step.where, r.error));
        for (const auto& w : r.warnings) out.dry_run_warning(w);
        DryRunStep found;
        found.version = m->version;
        found.index = static_cast<int>(i) + 1;
        found.counters = r.counters;
        found.estimated_wcu = r.estimated_wcu;
        found.checkpoints = checkpoint_estimate(spec, r.counters.scanned, transaction_limit_);
        found.samples = std::move(r.samples);
        out.dry_run_step(found);
      } else if (const auto* ct = std::get_if<CreateTableStep>(&step.body)) {
        const std::string& t = ct->request.table;
        deleted.erase(t);
        if (!created.contains(t) && table_exists(t))
          out.dry_run_note(fmt::format("table {} exists already (accepted if identical)", t));
        else
          created.insert(t);  // does not exist now; a real run would create it
      } else if (const auto* es = std::get_if<EnableStreamStep>(&step.body)) {
        streamed.insert(es->table);
      } else if (const auto* dt = std::get_if<DeleteTableStep>(&step.body)) {
        if (!created.contains(dt->table) && !table_exists(dt->table))
          out.dry_run_note(fmt::format("table {} does not exist (nothing to do)", dt->table));
        created.erase(dt->table);
        deleted.insert(dt->table);
      }
    }
  }
  out.dry_run_end();
}

}  // namespace dynamorph::migrations
