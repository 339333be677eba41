#include "migrations/dead_letter_retry.h"

#include <fmt/format.h>

#include <filesystem>

#include "migrations/dead_letters.h"
#include "migrations/errors.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {
namespace {

namespace fs = std::filesystem;

bool every_partition_done(const pipeline::RunCheckpoint& cp) {
  if (cp.total_segments <= 0 || static_cast<int>(cp.segments.size()) < cp.total_segments)
    return false;
  for (const auto& s : cp.segments)
    if (!s.done) return false;
  return true;
}

// The step's retry is done: its records in the dead-letter file become those that failed
// again, then the checkpoint goes, then the retry file (see the header for why this order).
void finish_step(const fs::path& file, int step, const fs::path& checkpoint,
                 const fs::path& again) {
  std::vector<DeadLetterRecord> records;
  for (auto& r : read_dead_letters(file))
    if (r.step != step) records.push_back(std::move(r));
  for (auto& r : read_dead_letters(again)) records.push_back(std::move(r));
  write_dead_letters(file, records);
  std::error_code ec;
  fs::remove(checkpoint, ec);
  fs::remove(fs::path(checkpoint.string() + ".tmp"), ec);
  fs::remove(again, ec);
}

}  // namespace

RetryOutcome retry_dead_letters(const StepContext& ctx, const Migration& m, const UpOptions& o) {
  RetryOutcome out;
  const fs::path file = dead_letter_file(ctx.config, m.version);
  for (int s = 1; s <= static_cast<int>(m.up.size()); ++s) {
    const fs::path checkpoint = fmt::format("{}.step{}.checkpoint", file.string(), s);
    const fs::path again = fmt::format("{}.step{}.retry", file.string(), s);
    auto store = pipeline::file_checkpoint_store(checkpoint.string());
    const auto cp = store->load();
    if (cp && every_partition_done(*cp)) {  // killed while finishing: finish now
      finish_step(file, s, checkpoint, again);
      continue;
    }
    std::error_code ec;
    if (!cp) fs::remove(again, ec);  // left by a finished retry: merged already
    std::vector<dynamo::Item> keys;
    for (auto& r : read_dead_letters(file))
      if (r.step == s) keys.push_back(std::move(r.key));
    if (keys.empty()) continue;
    const Step& step = m.up[static_cast<std::size_t>(s - 1)];
    const auto* p = std::get_if<PipelineStep>(&step.body);
    if (!p)
      throw UsageError(fmt::format("{}: dead letters name step {}, which is not a pipeline step "
                                   "in {}",
                                   file.string(), s, m.file));
    if (p->spec.source.table.empty())
      throw UsageError(fmt::format("{}: step {} reads an export, whose items cannot be read "
                                   "again by key; its dead letters are not retried",
                                   step.where, s));
    stages::StepSpec spec = p->spec;
    spec.source.kind = "keys";
    spec.source.keys = std::move(keys);
    spec.source.index.reset();  // read by the table's key
    spec.source.filter = {};
    spec.source.query_key = {};
    spec.source.follow_stream = false;
    spec.on_item_error = stages::OnItemError::Skip;  // what fails again stays a dead letter
    spec.max_item_errors = 0;
    pipeline::RunOptions ro = step_run_options(ctx, m, o, p->spec);
    ro.dead_letters = std::make_shared<DeadLetterFile>(again, s);
    spec = with_segments(spec, ro);
    ctx.render.info(fmt::format("  step {}: retrying {} dead letter{}", s, spec.source.keys.size(),
                                spec.source.keys.size() == 1 ? "" : "s"));
    pipeline::RunResult r = pipeline::run_pipeline(ctx.client, spec, *store, ro);
    store->flush();
    for (const auto& w : r.warnings) ctx.render.warning(w);
    if (r.status == pipeline::RunResult::Status::Failed)
      throw StepFailed(fmt::format("{}: retrying dead letters: {}", step.where, r.error));
    if (r.status == pipeline::RunResult::Status::Stopped) {
      out.interrupted = true;
      return out;
    }
    out.retried += static_cast<std::int64_t>(spec.source.keys.size());
    out.written += r.counters.written;
    finish_step(file, s, checkpoint, again);
  }
  const auto left = read_dead_letters(file);
  out.remaining = static_cast<std::int64_t>(left.size());
  if (!left.empty()) out.first_reason = left.front().reason;
  return out;
}

}  // namespace dynamorph::migrations
