// `up --retry-dead-letters`: after a fix (of the data, or of the version's file), each step of an
// applied version runs again on its dead letters only. Every item is read again as it is now
// (a consistent GetItem: the fix may have changed it; one deleted since is done), goes through
// the step as the file says now, and is written as the step writes; the items that still
// cannot be written stay in the dead letters with their new reason.
//
// Resumable like a step: per step, a checkpoint (<dead-letter file>.step<S>.checkpoint) says how
// many of its keys each partition has done, and the items that fail again go to
// <dead-letter file>.step<S>.retry. Only when the step is done does the dead-letter file get
// its new records at once (rename), then the checkpoint and the retry file go, in that order,
// so a run killed at any moment is resumed, or finished, by the next `up --retry-dead-letters`.
// Main thread; the caller holds the lock.
#pragma once

#include <cstdint>
#include <string>

#include "migrations/command_options.h"
#include "migrations/migration_file.h"
#include "migrations/step_run.h"

namespace dynamorph::migrations {

struct RetryOutcome {
  std::int64_t retried = 0;    // dead letters taken up
  std::int64_t written = 0;    // items written now
  std::int64_t remaining = 0;  // dead letters left (failing again)
  std::string first_reason;    // of one that fails again
  bool interrupted = false;    // stopped on a signal: the next retry resumes
};

// Retries the dead letters of applied version `m`; none: an empty outcome. Throws UsageError for
// a step that cannot be retried (an export source), StepFailed when a step fails as a whole.
RetryOutcome retry_dead_letters(const StepContext& ctx, const Migration& m, const UpOptions& o);

}  // namespace dynamorph::migrations
