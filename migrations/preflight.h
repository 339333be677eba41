// Everything of a plan that can be refused before the first write of any kind, the state table
// and the lock included (DESIGN.md: a refusal writes nothing). Main thread, read-only requests.
#pragma once

#include "migrations/history.h"
#include "migrations/step_run.h"

namespace dynamorph::migrations {

// Plans each pipeline step of `plan` whose tables no earlier step of the plan changes, as the run
// will (DescribeTable of its tables, its expressions and Lua scripts, the write mode's checks),
// and throws the UsageError the run would throw there. A step reading or writing a table that an
// earlier schema step creates, deletes or alters is planned when it runs. Steps a resumed
// version has finished (`history.records`) are skipped; a version going down through its journal
// has no steps to plan.
void preflight(const StepContext& ctx, const Plan& plan, const History& history,
               const UpOptions& options);

}  // namespace dynamorph::migrations
