// A pipeline step made ready to run: its compiled expressions, its source, the target table,
// the item processor and the sink of its write mode, built from the StepSpec and the tables'
// descriptions. Built once on the planning thread; everything in it is then immutable.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/client.h"
#include "stages/item_processor.h"
#include "stages/sink.h"
#include "stages/source.h"
#include "stages/step_expressions.h"

namespace dynamorph::stages {

struct StepPlan {
  StepExpressions expressions;
  std::unique_ptr<Source> source;
  dynamo::TableDescription source_table;  // the table read, or a stand-in with the target's keys
  dynamo::TableDescription target;
  std::unique_ptr<ItemProcessor> processor;
  std::unique_ptr<Sink> sink;
  std::vector<std::string> warnings;
};

struct PlanOptions {
  std::int64_t version = 0;
  std::string now_iso;          // bound to :now unless the step defines it
  int default_page_size = 500;  // Limit per request when the step sets none
};

// Throws UsageError for what cannot run (a missing table, an unknown source kind, a key change in
// update mode …), before anything is written.
StepPlan plan_step(dynamo::Client& client, const StepSpec& spec, const PlanOptions& options);

}  // namespace dynamorph::stages
