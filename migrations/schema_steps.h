// Schema steps: create_table, add_gsi, delete_gsi, update_ttl, delete_table. Each waits until the
// table or index is ACTIVE (or gone), printing a progress line now and then, and is idempotent
// after a crash: an identical existing table or index is accepted, a different one is an error.
// Runs on the runner's thread; polls, so it checks `stop` between polls.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "dynamo/client.h"
#include "migrations/migration_file.h"

namespace dynamorph::migrations {

using ProgressLine = std::function<void(const std::string&)>;

// Throws StepFailed "<step where>: <kind>: <what went wrong>". Returns false when stopped by
// `stop` before the step finished (it is safe to run again).
bool run_schema_step(dynamo::Client& client, const Step& step, const ProgressLine& progress,
                     const std::atomic<bool>& stop);

}  // namespace dynamorph::migrations
