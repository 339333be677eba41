// A pipeline step's progress events recorded into the metrics registry (migrations/metrics.h),
// labelled by version and step: the step's counters as this process's work (what earlier runs
// checkpointed is left out), segments done and total, stream lag, and the client's throttles
// while the step runs. Called on the pipeline's reporter thread, about once a second and once
// at the end of every run of the step (a follow step runs twice: backfill, then the replay).
#pragma once

#include <cstdint>
#include <functional>

#include "pipeline/pipeline.h"

namespace dynamorph::dynamo {
class Client;
}

namespace dynamorph::migrations {

// `step` is 1-based, as `status` shows it. `then` (may be empty) receives every event after.
std::function<void(const pipeline::ProgressEvent&)> record_step_metrics(
    std::function<void(const pipeline::ProgressEvent&)> then, std::int64_t version, int step,
    const dynamo::Client& client);

// The process-wide gauges (requests in flight), read when scraped. Idempotent.
void register_process_metrics();

}  // namespace dynamorph::migrations
