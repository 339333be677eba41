// The migration files of a folder next to the versions the state table records: the checks
// every command makes before it plans (drift, a record without its file, a version stopped on
// its way down) and the plans of up and down. Plain data, main thread; not copyable (the index
// points into `files`).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "migrations/migration_file.h"
#include "migrations/state_table.h"

namespace dynamorph::migrations {

struct PlannedVersion {
  const Migration* migration = nullptr;
  Direction direction = Direction::Up;
};
using Plan = std::vector<PlannedVersion>;

const std::vector<Step>& steps_of(const Migration& m, Direction direction);
std::string short_sum(const std::string& checksum);  // the first 12 hex digits

class History {
 public:
  explicit History(std::vector<Migration> files);
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  const std::vector<Migration>& files() const { return files_; }
  const Migration* file(std::int64_t version) const;  // nullptr: no file has it
  std::map<std::int64_t, VersionRecord> records;

  // Throws HistoryError (exit 4): a recorded version without its file, a file changed since it
  // was applied or started, or (unless allowed) a version stopped while going down.
  // `may_edit`: applied versions whose file may have changed (`up --retry-dead-letters`: the
  // edit is the fix of their dead letters, recorded once they are retried).
  void check(bool allow_down_in_progress, std::string_view state_table,
             std::string_view migrations_dir,
             const std::set<std::int64_t>& may_edit = {}) const;
  // Every version not applied, in order, up to and including `to`.
  Plan up_plan(std::optional<std::int64_t> to) const;
  // Recorded versions newest first: every one above `to`, or the newest `steps` (default 1).
  // UsageError when one of them has no down steps, unless `journal` names where its journal
  // may be (the session then checks that it is there).
  Plan down_plan(std::optional<std::int64_t> to, std::optional<int> steps,
                 const std::optional<std::string>& journal = std::nullopt) const;
  // Why each of a down plan's versions that has no down steps cannot go down (its file and a
  // phrase, "version 5 has no down steps and no journal …"): one refusal naming them all and
  // what would make such a version reversible. Throws UsageError; does nothing when empty.
  static void refuse_down(const std::vector<std::pair<const Migration*, std::string>>& blockers);
  // The newest applied version, -1 when none is.
  std::int64_t newest_applied() const;

 private:
  std::vector<Migration> files_;
  std::map<std::int64_t, const Migration*> by_version_;
};

}  // namespace dynamorph::migrations
