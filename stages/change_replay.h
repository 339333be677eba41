// What a `follow: stream` step requires of its plan (a copy in batch mode, a stream with new
// images, and old images when the target key may not be the source key), checked at plan time
// for the backfill and the replay alike. ItemProcessor::process_change() lives beside it, in
// change_replay.cpp. Planning thread only.
#pragma once

#include <string>

#include "stages/item_processor.h"

namespace dynamorph::stages {

// Throws UsageError naming the step, the table and what to change.
void check_replay_plan(const StepSpec& spec, const ItemProcessor& processor,
                       const dynamo::TableDescription& source);

}  // namespace dynamorph::stages
