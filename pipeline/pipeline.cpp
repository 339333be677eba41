// Temporary until the flow-graph engine lands (in progress): keeps the library linkable.
#include "pipeline/pipeline.h"

#include "dynamo/errors.h"

namespace dynamorph::pipeline {

Counters& Counters::operator+=(const Counters& o) {
  scanned += o.scanned;
  matched += o.matched;
  written += o.written;
  skipped += o.skipped;
  conflicts += o.conflicts;
  failed += o.failed;
  retries += o.retries;
  consumed_rcu += o.consumed_rcu;
  consumed_wcu += o.consumed_wcu;
  puts += o.puts;
  updates += o.updates;
  deletes += o.deletes;
  transactions += o.transactions;
  return *this;
}

RunResult run_pipeline(dynamo::Client&, const stages::StepSpec&, CheckpointStore&, const RunOptions&) {
  throw Error("the pipeline engine is not in this build yet");
}

}  // namespace dynamorph::pipeline
