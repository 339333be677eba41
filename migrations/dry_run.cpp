#include "migrations/dry_run.h"

#include <fmt/format.h>

#include <cmath>
#include <random>
#include <set>

#include "dynamo/client.h"
#include "migrations/dead_letters.h"
#include "migrations/errors.h"
#include "migrations/estimate.h"
#include "migrations/journal_run.h"
#include "migrations/scaffold.h"

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

namespace {

// A sampled dry run reads a share of this many segments (or of --segments, when more): enough
// segments that the spread between them says how far off the extrapolation may be.
constexpr int kSampleSegments = 100;

}  // namespace

bool sample_run(stages::StepSpec& spec, pipeline::RunOptions& ro, double percent,
                unsigned seed) {
  const bool scans_table = !spec.source.table.empty() && spec.source.query_key.empty() &&
                           (spec.source.kind.empty() || spec.source.kind == "scan") &&
                           !spec.source.follow_stream;
  if (!scans_table) return false;
  spec.source.segments = std::max(ro.segments, kSampleSegments);
  ro.only_partitions = sample_segments(spec.source.segments, percent, seed);
  ro.max_pages_in_flight =
      2 * std::min<int>(static_cast<int>(ro.only_partitions.size()), ro.segments);
  return true;
}

DryRunSample sampled_counts(const pipeline::RunResult& r, const std::vector<int>& read, int total,
                            double percent, DryRunStep& step) {
  DryRunSample s;
  s.segments_read = static_cast<int>(read.size());
  s.segments_total = total;
  s.percent = percent;
  s.items_read = r.counters.scanned;
  std::vector<double> scanned, matched;
  for (int p : read) {
    const auto& c = r.partition_counters.at(static_cast<std::size_t>(p));
    scanned.push_back(static_cast<double>(c.scanned));
    matched.push_back(static_cast<double>(c.matched));
  }
  s.scanned = extrapolate(scanned, total);
  s.matched = extrapolate(matched, total);
  const double scale = static_cast<double>(total) / static_cast<double>(read.size());
  for (const auto& f : pipeline::kCounterFields) {
    if (f.count)
      step.counters.*f.count = std::llround(static_cast<double>(step.counters.*f.count) * scale);
    else
      step.counters.*f.amount *= scale;
  }
  step.estimated_wcu *= scale;
  for (auto& [name, wcu] : step.index_wcu) wcu *= scale;
  return s;
}

DryRunPlanner::DryRunPlanner(StepContext context, int transaction_limit)
    : ctx_(context), transaction_limit_(transaction_limit) {}

bool DryRunPlanner::plan(const Plan& plan, const UpOptions& o) {
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
  Estimate total;
  int pipeline_steps = 0;
  bool would_fail = false;
  // The raw figures of the last pipeline step planned: a cleanup step's writes are its items.
  pipeline::Counters previous_counters;
  double previous_wcu = 0;
  decltype(pipeline::RunResult::estimated_index_wcu) previous_index_wcu;
  for (const auto& [m, direction] : plan) {
    out.dry_run_version(*m, direction);
    if (direction == Direction::Up && m->irreversible)
      out.dry_run_note("declared irreversible (`down: irreversible`): `down` will refuse to roll "
                       "it back");
    if (direction == Direction::Down && !m->down) {
      out.dry_run_note(
          fmt::format("no down steps: `down` restores the journal in {}, newest step "
                      "first",
                      ctx_.config.journal.value_or("(none)")));
      continue;
    }
    const auto& steps = steps_of(*m, direction);
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
          would_fail = true;
          out.dry_run_warning(fmt::format("source table {} does not exist: `{}` would fail here{}",
                                          src, to_string(direction),
                                          src.ends_with(kPlaceholderTable)
                                              ? fmt::format(" (the placeholder `dynamorph "
                                                            "generate` wrote: replace it with your "
                                                            "table's name in {})",
                                                            step.where)
                                              : ""));
          continue;
        }
        auto store = pipeline::null_checkpoint_store();
        UpOptions dry = o;
        dry.dry_run = true;
        pipeline::RunResult r;
        stages::StepSpec spec, real;
        pipeline::RunOptions ro;
        std::shared_ptr<stages::JournalStats> journal;
        try {
          ro = step_run_options(ctx_, *m, dry, p->spec);
          if (direction == Direction::Up && ctx_.config.journal) {
            journal = std::make_shared<stages::JournalStats>();
            ro.wrap_sink = up_journal(nullptr, *m, static_cast<int>(i), VersionRecord{},
                                      std::nullopt, journal);
          }
          spec = with_segments(p->spec, ro);
          real = spec;  // what the real run would be: a sample splits the scan finer
          if (spec.source.follow_stream && streamed.contains(src)) {
            // Planned as the backfill alone: the stream it needs is not on yet.
            out.dry_run_note(fmt::format(
                "the stream of {} is enabled by an earlier step: the replay is not planned", src));
            spec.source.follow_stream = false;
            real.source.follow_stream = false;
          }
          if (o.sample_percent) {
            if (!sample_run(spec, ro, *o.sample_percent,
                            o.sample_seed.value_or(std::random_device{}())))
              out.dry_run_note("--sample: this step is not a plain table scan (a query, an "
                               "export or a stream follow), so it is planned whole");
          } else if (auto advice = segment_advice(ctx_.client, spec)) {
            out.dry_run_warning(*advice);
          }
          r = pipeline::run_pipeline(ctx_.client, spec, *store, ro);
        } catch (const UsageError&) {
          throw;
        } catch (const Error& e) {
          throw StepFailed(fmt::format("{}: pipeline (dry run): {}", step.where, e.what()));
        }
        if (r.status == pipeline::RunResult::Status::Failed)
          throw StepFailed(fmt::format("{}: pipeline (dry run): {}", step.where, r.error));
        if (p->cleanup) {
          // Nothing carries this version before the step ran, so the scan matches nothing now:
          // the cleanup updates every item the step writes, each metered at its size (as the
          // step's own write was; a transact step's doubling makes this an upper bound).
          const std::int64_t items = previous_counters.puts + previous_counters.updates;
          r.counters.matched = items;
          r.counters.updates = items;
          r.estimated_wcu = previous_wcu;
          r.estimated_index_wcu = previous_index_wcu;
        }
        previous_counters = r.counters;
        previous_wcu = r.estimated_wcu;
        previous_index_wcu = r.estimated_index_wcu;
        for (const auto& w : r.warnings) out.dry_run_warning(w);
        DryRunStep found;
        found.version = m->version;
        found.index = static_cast<int>(i) + 1;
        found.counters = r.counters;
        found.estimated_wcu = r.estimated_wcu;
        found.index_wcu = r.estimated_index_wcu;
        found.read_s = r.wall_s;
        Measured measured{r.counters.scanned, r.wall_s, r.counters.consumed_rcu,
                          r.estimated_wcu};
        std::int64_t table_items = r.counters.scanned;
        if (!ro.only_partitions.empty()) {
          found.sampled = sampled_counts(r, ro.only_partitions, spec.source.segments,
                                         *o.sample_percent, found);
          table_items = std::llround(found.sampled->scanned.value);
        }
        found.checkpoints = checkpoint_estimate(real, found.counters.scanned, transaction_limit_);
        measured.wcu += found.checkpoints.wcu * static_cast<double>(measured.items) /
                        static_cast<double>(std::max<std::int64_t>(1, table_items));
        found.estimate =
            estimate_full_run(table_items, measured, ro.max_rcu, ro.max_wcu, ctx_.config.prices);
        total.table_items += found.estimate.table_items;
        total.full_run_s += found.estimate.full_run_s;
        total.rcu += found.estimate.rcu;
        total.wcu += found.estimate.wcu;
        total.cost_usd_on_demand += found.estimate.cost_usd_on_demand;
        if (found.estimate.limited_by != "measured rate") total.limited_by = found.estimate.limited_by;
        ++pipeline_steps;
        found.samples = std::move(r.samples);
        if (journal) {
          found.journal_bytes = journal->bytes.load();
          found.journal_records = journal->records.load();
          if (found.sampled) {  // scaled like the counters
            const double scale = static_cast<double>(found.sampled->segments_total) /
                                 static_cast<double>(found.sampled->segments_read);
            found.journal_bytes = std::llround(static_cast<double>(*found.journal_bytes) * scale);
            found.journal_records =
                std::llround(static_cast<double>(*found.journal_records) * scale);
          }
        }
        out.dry_run_step(found);
        if (spec.on_item_error == stages::OnItemError::Skip)
          out.dry_run_note(fmt::format(
              "on_item_error: skip ({}): {} item{} the transform rejects would go to the dead "
              "letters ({}); items the server rejects are known only when written",
              spec.max_item_errors > 0 ? fmt::format("max_item_errors {}", spec.max_item_errors)
                                       : std::string("no max_item_errors: every item may be "
                                                     "skipped"),
              r.counters.dead_letters, r.counters.dead_letters == 1 ? "" : "s",
              dead_letter_file(ctx_.config, m->version).string()));
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
  if (pipeline_steps > 1) out.dry_run_total(total, ctx_.config.prices);
  out.dry_run_end(would_fail);
  return !would_fail;
}

}  // namespace dynamorph::migrations
