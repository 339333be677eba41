// What running a pipeline step and planning it have in common: the session's context (settings,
// client, output, stop flag), the step's RunOptions in the contract's order of settings, and
// the plan-time advice on its segment count. Main thread.
#pragma once

#include <atomic>
#include <optional>
#include <string>

#include "migrations/command_options.h"
#include "migrations/config.h"
#include "migrations/migration_file.h"
#include "migrations/render.h"
#include "pipeline/pipeline.h"

namespace dynamorph::dynamo {
class Client;
}

namespace dynamorph::migrations {

struct StepContext {
  const Config& config;
  const std::string& now_iso;  // the run's start, bound to :now
  std::atomic<bool>& stop;     // set by the signal handlers
  dynamo::Client& client;
  Renderer& render;
};

pipeline::RunOptions step_run_options(const StepContext& ctx, const Migration& m,
                                      const UpOptions& o, const stages::StepSpec& spec);
// The flag beats the file: the spec carries the segment count the settings resolved to.
stages::StepSpec with_segments(const stages::StepSpec& spec, const pipeline::RunOptions& ro);
// A scan split finer than the table can use (more segments than its ItemCount / 100), as one
// line naming the count that is enough; nullopt when the count is fine or unknown.
std::optional<std::string> segment_advice(dynamo::Client& client, const stages::StepSpec& spec);

}  // namespace dynamorph::migrations
