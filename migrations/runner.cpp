#include "migrations/runner.h"

#include <fmt/format.h>

#include <chrono>

#include "dynamo/client.h"
#include "dynamo/clock.h"
#include "migrations/checkpoint_store.h"
#include "migrations/history.h"
#include "migrations/journal_run.h"
#include "migrations/schema_steps.h"
#include "pipeline/progress.h"

namespace dynamorph::migrations {

VersionRunner::VersionRunner(StepContext context, StateTable& state, Lease& lease)
    : ctx_(context), state_(state), lease_(lease) {}

ExitCode VersionRunner::run(const Migration& m, Direction direction, const UpOptions& o,
                            std::optional<VersionRecord> existing) {
  const auto& steps = steps_of(m, direction);
  VersionRecord rec;
  const bool resume =
      existing && existing->direction == direction && existing->state != VersionState::Applied;
  if (resume) {
    rec = *existing;
    rec.checksum = m.checksum;  // a failed version may resume with a fixed file
    rec.schema = m.schema;      // the file's, whose checksum the record matches
  } else {
    rec.version = m.version;
    rec.name = m.name;
    rec.checksum = m.checksum;
    rec.direction = direction;
    rec.started_at = dynamo::now_iso();
    rec.step = 0;
    rec.schema = m.schema;
    rec.counters_before_step = pipeline::Counters{};
    rec.checkpoint_cost = state_.delete_checkpoints(m.version, lease_.proof());
  }
  ctx_.render.version_start(m, direction, rec, resume);
  rec.state = VersionState::Running;
  rec.error.clear();
  rec.updated_at = dynamo::now_iso();
  state_.put_version(rec, lease_.proof());
  const bool fresh = !existing;

  for (int i = rec.step; i < static_cast<int>(steps.size()); ++i) {
    const Step& step = steps[i];
    if (rec.step != i) {
      rec.step = i;
      rec.counters_before_step = rec.counters;
      rec.updated_at = dynamo::now_iso();
      state_.put_version(rec, lease_.proof());
    }
    ctx_.render.step_start(static_cast<std::size_t>(i), steps.size(), step);
    bool finished = true;
    try {
      if (const auto* p = std::get_if<PipelineStep>(&step.body)) {
        finished = run_pipeline_step(m, direction, i, step, *p, o, rec);
      } else {
        finished = run_schema_step(
            ctx_.client, step, [this](const std::string& l) { ctx_.render.info(l); }, ctx_.stop);
      }
      if (lease_.lost())
        throw StepFailed(
            fmt::format("lost the lock in {} (the lease could not be renewed); stopped during {}",
                        state_.name(), step.where));
    } catch (const UsageError& e) {
      // Plan-time refusal before anything of this step was written.
      if (fresh && i == 0 && !lease_.lost())
        state_.delete_version(m.version, lease_.proof());
      else
        mark_failed(rec, e.what());
      throw;
    } catch (const StepFailed& e) {
      if (!lease_.lost()) mark_failed(rec, e.what());
      throw;
    } catch (const Error& e) {
      std::string msg = fmt::format("{}: {}: {}", step.where, step.kind, e.what());
      if (!lease_.lost()) mark_failed(rec, msg);
      throw StepFailed(msg);
    }
    if (!finished) {
      rec.updated_at = dynamo::now_iso();
      state_.put_version(rec, lease_.proof());
      ctx_.render.info(
          fmt::format("interrupted: version {} stopped at step {} ({}); checkpoints saved, "
                      "`dynamorph {}` resumes it",
                      m.version, i + 1, step.where, to_string(direction)));
      return ExitCode::Interrupted;
    }
  }
  // Every step is done. Recorded first, so that a crash while the checkpoints are cleared
  // (many transactions) leaves a version the next run finishes without running a step again;
  // a failure here never marks it failed.
  if (rec.step != static_cast<int>(steps.size())) {
    rec.step = static_cast<int>(steps.size());
    rec.counters_before_step = rec.counters;
    rec.updated_at = dynamo::now_iso();
    state_.put_version(rec, lease_.proof());
  }
  try {
    rec.checkpoint_cost += state_.delete_checkpoints(m.version, lease_.proof());
  } catch (const Error& e) {
    throw StepFailed(
        fmt::format("version {} ({}): every step is done, but clearing its checkpoints failed: {}; "
                    "`dynamorph {}` finishes it",
                    m.version, m.file, e.what(), to_string(direction)));
  }
  if (direction == Direction::Up) {
    rec.state = VersionState::Applied;
    rec.finished_at = rec.updated_at = dynamo::now_iso();
    state_.put_version(rec, lease_.proof());
  } else {
    state_.delete_version(m.version, lease_.proof());
  }
  ctx_.render.version_done(m, direction, rec);
  return ExitCode::Ok;
}

bool VersionRunner::run_pipeline_step(const Migration& m, Direction direction, int index,
                                      const Step& step, const PipelineStep& p, const UpOptions& o,
                                      VersionRecord& rec) {
  // A resumed step's result includes its checkpointed part again: it adds to the counters of
  // the steps before it. Records written before counters_before_step existed hold this step's
  // part as of their last write, at best.
  if (!rec.counters_before_step) {
    rec.counters_before_step = rec.counters;
    if (auto cp = state_.load_checkpoints(m.version, direction, index)) {
      for (const auto& seg : cp->segments) *rec.counters_before_step -= seg.counters;
    }
  }
  const pipeline::Counters earlier = *rec.counters_before_step;
  StateCheckpointStore store(state_, lease_, m.version, direction, index, rec);
  auto ro = step_run_options(ctx_, m, o, p.spec);
  if (direction == Direction::Up && ctx_.config.journal)
    ro.wrap_sink = up_journal(stages::JournalStore::open(*ctx_.config.journal, ctx_.client), m,
                              index, rec, store.load(), nullptr);
  const auto spec = with_segments(p.spec, ro);
  const auto read_start = std::chrono::steady_clock::now();
  if (auto cp = store.load()) {
    ctx_.render.detail(fmt::format(
        "  resuming from {} segment checkpoints of {} (read in {:.2f} s)", cp->segments.size(),
        cp->total_segments,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start).count()));
  } else if (auto advice = segment_advice(ctx_.client, spec)) {
    ctx_.render.warning(*advice);
  }
  pipeline::RunResult r;
  try {
    r = pipeline::run_pipeline(ctx_.client, spec, store, ro);
    store.flush();
  } catch (...) {
    rec.checkpoint_cost += store.cost();
    throw;
  }
  rec.checkpoint_cost += store.cost();
  for (const auto& w : r.warnings) ctx_.render.warning(w);
  rec.counters = earlier;
  rec.counters += r.counters;
  if (r.status == pipeline::RunResult::Status::Failed)
    throw StepFailed(fmt::format("{}: pipeline failed: {}", step.where, r.error));
  ctx_.render.detail(fmt::format("  {}", pipeline::format_counters_text(r.counters)));
  return r.status != pipeline::RunResult::Status::Stopped;
}

void VersionRunner::mark_failed(VersionRecord& rec, const std::string& error) {
  rec.state = VersionState::Failed;
  rec.error = error;
  rec.updated_at = dynamo::now_iso();
  try {
    state_.put_version(rec, lease_.proof());
  } catch (const Error& e) {
    ctx_.render.warning(fmt::format("could not record the failure: {}", e.what()));
  }
}

}  // namespace dynamorph::migrations
