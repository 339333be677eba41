// The settings of one pipeline step, resolved in the contract's order (later wins): dynamorph.yaml
// `defaults`, its environment overlay (already merged into Config), the migration file's own
// values (the step's source.segments, then the file's top-level ones), command-line flags.
// Pure function; thread-safe.
#pragma once

#include <optional>

#include "migrations/config.h"
#include "migrations/migration_file.h"

namespace dynamorph::migrations {

struct SettingFlags {
  std::optional<int> segments;
  std::optional<double> max_wcu, max_rcu;
};

struct RunSettings {
  int segments = 8;
  double max_wcu = 0;
  double max_rcu = 0;
};

RunSettings resolve_run_settings(const Config& config, const Migration& migration,
                                 const stages::StepSpec& step, const SettingFlags& flags);

}  // namespace dynamorph::migrations
