#include "migrations/run_settings.h"

namespace dynamorph::migrations {

RunSettings resolve_run_settings(const Config& config, const Migration& m,
                                 const stages::StepSpec& step, const SettingFlags& flags) {
  RunSettings r;
  r.segments = flags.segments.value_or(step.source.segments ? step.source.segments
                                                            : m.segments.value_or(config.segments));
  r.max_wcu = flags.max_wcu.value_or(m.max_wcu.value_or(config.max_wcu));
  r.max_rcu = flags.max_rcu.value_or(m.max_rcu.value_or(config.max_rcu));
  return r;
}

}  // namespace dynamorph::migrations
