// The journal from the migrations' side: the sink wrapper an `up` pipeline step gets when
// dynamorph.yaml sets `journal:`, and `down` of a version without down steps, which restores
// what the journal kept (stages/journal.h), newest step first. Main thread (the restore runs
// its partitions on threads of its own, with blocking client calls).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "migrations/errors.h"
#include "migrations/lease.h"
#include "migrations/migration_file.h"
#include "migrations/state_table.h"
#include "migrations/step_run.h"
#include "stages/journal_sink.h"

namespace dynamorph::migrations {

// The wrapper for step `index` (0-based) of `m` going up in the run `record` describes (its
// start time names the run's folder), resuming after `checkpoint`. `store` null: count only.
stages::SinkWrapper up_journal(std::shared_ptr<stages::JournalStore> store, const Migration& m,
                               int index, const VersionRecord& record,
                               const std::optional<pipeline::RunCheckpoint>& checkpoint,
                               std::shared_ptr<stages::JournalStats> stats);

// Whether the run of `m` that `record` describes left a journal in `store`: the manifest of at
// least one of its pipeline steps.
bool has_journal(stages::JournalStore& store, const Migration& m, const VersionRecord& record);

struct RestoreCounts {
  std::int64_t records = 0;   // records read (the newest of each key per partition)
  std::int64_t restored = 0;  // items put back (or new keys deleted)
  std::int64_t already = 0;   // items that were as before already (a resumed restore)
  std::int64_t changed = 0;   // items changed since the migration wrote them: left alone
};

class JournalRestorer {
 public:
  JournalRestorer(StepContext context, StateTable& state, Lease& lease,
                  std::shared_ptr<stages::JournalStore> store);
  // Rolls `m` back from its journal. `existing` is the version's record (applied, or a down of it
  // that stopped or failed). Ok: restored and the record removed. Interrupted: checkpoints saved.
  // Throws StepFailed when items changed since were left alone (without `force`), after
  // listing the first 10; the record then says failed, and `down --force` restores them too.
  ExitCode run(const Migration& m, VersionRecord existing, bool force);

 private:
  StepContext ctx_;
  StateTable& state_;
  Lease& lease_;
  std::shared_ptr<stages::JournalStore> store_;
};

}  // namespace dynamorph::migrations
