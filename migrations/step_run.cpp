#include "migrations/step_run.h"

#include <fmt/format.h>

#include "dynamo/client.h"
#include "migrations/dead_letters.h"
#include "migrations/run_settings.h"
#include "migrations/step_metrics.h"

namespace dynamorph::migrations {
namespace {

// The 1-based position of the step `spec` belongs to, in whichever direction holds it (its
// label names the file and line, so it is unique); 0 when not found.
int step_number(const Migration& m, const stages::StepSpec& spec) {
  auto find = [&](const std::vector<Step>& steps) {
    for (std::size_t i = 0; i < steps.size(); ++i)
      if (const auto* p = std::get_if<PipelineStep>(&steps[i].body);
          p && p->spec.label == spec.label)
        return static_cast<int>(i) + 1;
    return 0;
  };
  if (int n = find(m.up)) return n;
  return m.down ? find(*m.down) : 0;
}

}  // namespace

pipeline::RunOptions step_run_options(const StepContext& ctx, const Migration& m,
                                      const UpOptions& o, const stages::StepSpec& spec) {
  pipeline::RunOptions r;
  const RunSettings settings =
      resolve_run_settings(ctx.config, m, spec, SettingFlags{o.segments, o.max_wcu, o.max_rcu});
  r.segments = settings.segments;
  r.max_wcu = settings.max_wcu;
  r.max_rcu = settings.max_rcu;
  r.capacity_percent = o.capacity_percent;
  r.version = m.version;
  r.now_iso = ctx.now_iso;
  r.stop = &ctx.stop;
  r.dry_run = o.dry_run;
  if (o.dry_run) r.sample_changes = 3;
  if (!o.dry_run && spec.on_item_error == stages::OnItemError::Skip)
    r.dead_letters = std::make_shared<DeadLetterFile>(dead_letter_file(ctx.config, m.version),
                                                      step_number(m, spec));
  r.progress = ctx.render.progress(m);
  // Real runs feed /metrics (dry runs write nothing, so their counters would mislead).
  if (!o.dry_run)
    r.progress =
        record_step_metrics(std::move(r.progress), m.version, step_number(m, spec), ctx.client);
  return r;
}

stages::StepSpec with_segments(const stages::StepSpec& spec, const pipeline::RunOptions& ro) {
  stages::StepSpec copy = spec;
  if (copy.source.query_key.empty()) copy.source.segments = ro.segments;
  return copy;
}

std::optional<std::string> segment_advice(dynamo::Client& client, const stages::StepSpec& spec) {
  // DynamoDB's ItemCount is an estimate (refreshed about every 6 hours); 0 says nothing.
  const int segments = spec.source.segments;
  if (spec.source.table.empty() || !spec.source.query_key.empty() || segments <= 1)
    return std::nullopt;  // an export, a query: not segmented
  auto d = client.describe_table(spec.source.table);
  if (!d || d.value().item_count <= 0) return std::nullopt;
  const std::int64_t items = d.value().item_count;
  const std::int64_t useful = std::max<std::int64_t>(1, items / 100);
  if (segments <= useful) return std::nullopt;
  return fmt::format(
      "{}: segments {} for about {} items in {} (its ItemCount): more than one segment per 100 "
      "items, so most segments scan almost nothing, yet each costs its own Scan requests and "
      "checkpoint writes; {} {} enough",
      spec.label, segments, items, spec.source.table, useful, useful == 1 ? "is" : "are");
}

}  // namespace dynamorph::migrations
