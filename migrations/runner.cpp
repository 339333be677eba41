#include "migrations/runner.h"

#include <fmt/format.h>

#include <chrono>

#include "dynamo/client.h"
#include "dynamo/clock.h"
#include "migrations/checkpoint_store.h"
#include "migrations/history.h"
#include "migrations/journal_run.h"
#include "migrations/schema_steps.h"
#include "migrations/worker.h"
#include "pipeline/progress.h"
#include "stages/step_plan.h"
#include "stages/stream_source.h"

namespace dynamorph::migrations {
namespace {

// One line for a run stopped by a lost lease, whatever failed first (a write the fence refused,
// the heartbeat's stop): the user learns that nothing went out after the safety margin, and
// what else stopped the step, when it was not the fence (an endpoint gone longer than the lease
// could wait: the root cause).
StepFailed lost_lock(const StateTable& state, const Lease& lease, const std::string& where,
                     std::string_view cause = {}) {
  std::string line = fmt::format(
      "lost the lock in {} (the lease could not be renewed); stopped during {}: nothing was "
      "written after its safety margin ({}, {} s before the lease could expire)",
      state.name(), where, dynamo::iso_utc(lease.write_deadline_ms()),
      std::chrono::duration<double>(lease.safety_margin()).count());
  if (!cause.empty() && cause.find("LockLost") == std::string_view::npos &&
      cause.find("lock's lease was not renewed") == std::string_view::npos)
    line += fmt::format("; the step had failed: {}", cause);
  return StepFailed(line);
}

}  // namespace

VersionRunner::VersionRunner(StepContext context, StateTable& state, Lease& lease,
                             WorkerContext* worker)
    : ctx_(context), state_(state), lease_(lease), worker_(worker) {}

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
    rec.checkpoint_cost += state_.delete_checkpoints(m.version, lease_.proof(), kFollowCheckpoints);
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
      if (lease_.lost()) throw lost_lock(state_, lease_, step.where);
    } catch (const UsageError& e) {
      // Plan-time refusal before anything of this step was written.
      if (fresh && i == 0 && !lease_.lost())
        state_.delete_version(m.version, lease_.proof());
      else
        mark_failed(rec, e.what());
      throw;
    } catch (const StepFailed& e) {
      if (lease_.lost()) throw lost_lock(state_, lease_, step.where, e.what());
      mark_failed(rec, e.what());
      throw;
    } catch (const Error& e) {
      if (lease_.lost()) throw lost_lock(state_, lease_, step.where, e.what());
      std::string msg = fmt::format("{}: {}: {}", step.where, step.kind, e.what());
      mark_failed(rec, msg);
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
    state_.delete_checkpoints(m.version, lease_.proof(), kFollowCheckpoints);  // nothing to follow
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
  const bool follow = spec.source.follow_stream;
  if (follow) {
    // Refused at plan time (no stream, KEYS_ONLY, key change without old images …) before the
    // replay's start is recorded: nothing of this step is written then.
    (void)stages::plan_step(ctx_.client, spec,
                            stages::PlanOptions{m.version, ctx_.now_iso, ro.default_page_size});
    record_replay_start(m, direction, index, spec);
  }
  if (worker_) {
    if (!run_worker_step(m, direction, index, step, spec, ro, rec)) return false;
    if (!follow) return true;
  } else {
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
    if (r.status == pipeline::RunResult::Status::Stopped || !follow)
      return r.status != pipeline::RunResult::Status::Stopped;
  }

  // Backfilled: replay what changed since it began, until the lag is under catch_up_lag.
  ctx_.render.detail(fmt::format("  backfill done; replaying the stream of {} until the lag is "
                                 "under {:g} s",
                                 spec.source.table, spec.source.catch_up_lag_s));
  pipeline::RunResult rr = replay(m, direction, index, spec, ro, spec.source.catch_up_lag_s);
  rec.counters += rr.counters;
  if (rr.status == pipeline::RunResult::Status::Failed)
    throw StepFailed(fmt::format("{}: stream replay failed: {}", step.where, rr.error));
  ctx_.render.detail(fmt::format("  replay: {}", pipeline::format_counters_text(rr.counters)));
  if (rr.status == pipeline::RunResult::Status::Stopped) return false;
  ctx_.render.info(fmt::format("  caught up with the stream of {} (lag under {:g} s); `dynamorph "
                               "follow {}` keeps replicating until cut-over",
                               spec.source.table, spec.source.catch_up_lag_s, m.version));
  return true;
}

bool VersionRunner::run_worker_step(const Migration& m, Direction direction, int index,
                                    const Step& step, const stages::StepSpec& step_spec,
                                    const pipeline::RunOptions& step_options, VersionRecord& rec) {
  const pipeline::Counters earlier = *rec.counters_before_step;
  stages::StepSpec spec = step_spec;
  pipeline::RunOptions ro = step_options;
  bind_run_now(spec, ro, ctx_.now_iso, rec.started_at);
  const int total =
      prepare_step_leases(ctx_.client, state_, lease_.proof(), spec, ro, m.version, direction,
                          index);
  ctx_.render.detail(fmt::format("  {} segment leases; working on them with the other workers",
                                 total));
  WorkerStepResult w;
  do {
    w = work_on_step(*worker_, spec, ro, m.version, direction, index);
    if (w.outcome == WorkerStepResult::Outcome::NotReady)  // leases cleared by hand meanwhile
      prepare_step_leases(ctx_.client, state_, lease_.proof(), spec, ro, m.version, direction,
                          index);
  } while (w.outcome == WorkerStepResult::Outcome::NotReady && !ctx_.stop.load());
  if (w.outcome == WorkerStepResult::Outcome::Failed)
    throw StepFailed(fmt::format("{}: pipeline failed: {}", step.where, w.error));
  if (w.outcome != WorkerStepResult::Outcome::Done) return false;
  // Every segment is done: the step's counters are the sum of its leases'.
  pipeline::Counters sum;
  for (const auto& l : state_.read_segment_leases(m.version, direction, index)) {
    sum += l.checkpoint.counters;
    auto& share = rec.workers[l.done_by];
    ++share.segments;
    share.scanned += l.checkpoint.counters.scanned;
    share.written += l.checkpoint.counters.written;
    rec.checkpoint_cost.writes += l.writes;
    rec.checkpoint_cost.wcu += static_cast<double>(l.writes);  // each well under 1 KB
  }
  rec.counters = earlier;
  rec.counters += sum;
  ctx_.render.detail(fmt::format("  all workers: {}", pipeline::format_counters_text(sum)));
  return true;
}

void VersionRunner::record_replay_start(const Migration& m, Direction direction, int index,
                                        const stages::StepSpec& spec) {
  if (state_.load_checkpoints(m.version, direction, index, kFollowCheckpoints)) return;
  auto tokens = stages::stream_start_tokens(ctx_.client, spec.source.table, spec.label);
  std::vector<std::pair<pipeline::SegmentCheckpoint, int>> cps;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    pipeline::SegmentCheckpoint cp;
    cp.segment = static_cast<int>(i);
    cp.resume_token = std::move(tokens[i]);
    cps.emplace_back(std::move(cp), static_cast<int>(tokens.size()));
  }
  state_.put_checkpoints(m.version, direction, index, cps, lease_.proof(), nullptr,
                         kFollowCheckpoints);
  ctx_.render.detail(fmt::format("  replay start recorded: the stream of {} ({} lane{})",
                                 spec.source.table, cps.size(), cps.size() == 1 ? "" : "s"));
}

pipeline::RunResult VersionRunner::replay(const Migration& m, Direction direction, int index,
                                          const stages::StepSpec& spec, pipeline::RunOptions ro,
                                          double lag_s) {
  stages::StepSpec r = spec;
  r.source.kind = "stream";
  r.source.catch_up_lag_s = lag_s;
  StateCheckpointStore store(state_, lease_, m.version, direction, index, std::nullopt,
                             kFollowCheckpoints);
  if (auto cp = store.load()) {
    std::int64_t pages = 0, written = 0;
    for (const auto& seg : cp->segments) {
      pages += seg.pages;
      written += seg.counters.written;
    }
    if (pages > 0)
      ctx_.render.detail(fmt::format("  replay resumes from {} lane position{} ({} changes "
                                     "applied so far)",
                                     cp->segments.size(), cp->segments.size() == 1 ? "" : "s",
                                     written));
  }
  pipeline::RunResult result = pipeline::run_pipeline(ctx_.client, r, store, ro);
  store.flush();
  for (const auto& w : result.warnings) ctx_.render.warning(w);
  return result;
}

ExitCode VersionRunner::follow(const Migration& m, const UpOptions& o) {
  for (int i = 0; i < static_cast<int>(m.up.size()); ++i) {
    const Step& step = m.up[static_cast<std::size_t>(i)];
    if (!is_follow_step(step)) continue;
    const auto& p = std::get<PipelineStep>(step.body);
    auto ro = step_run_options(ctx_, m, o, p.spec);
    const auto spec = with_segments(p.spec, ro);
    ctx_.render.info(fmt::format("following the stream of {} into {} ({}), until SIGINT/SIGTERM",
                                 spec.source.table, spec.write.table, step.where));
    pipeline::RunResult r;
    try {
      r = replay(m, Direction::Up, i, spec, ro, -1);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      throw StepFailed(fmt::format("{}: follow: {}", step.where, e.what()));
    }
    if (r.status == pipeline::RunResult::Status::Failed)
      throw StepFailed(fmt::format("{}: stream replay failed: {}", step.where, r.error));
    ctx_.render.detail(fmt::format("  replay: {}", pipeline::format_counters_text(r.counters)));
    if (lease_.lost()) throw lost_lock(state_, lease_, step.where);
    ctx_.render.info(fmt::format("stopped following version {}; positions saved, `dynamorph "
                                 "follow {}` continues",
                                 m.version, m.version));
    return ExitCode::Interrupted;
  }
  throw UsageError(fmt::format("version {} has no `follow: stream` step", m.version));
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
