// Progress output for a running step: a one-line bar redrawn on a TTY (stderr), one JSON object
// per event on stdout with --json, and the final summary either way. Called from the pipeline's
// reporter thread; the printer serializes its own output.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "pipeline/pipeline.h"

namespace dynamorph::pipeline {

struct ProgressStyle {
  bool json = false;   // JSON lines on stdout
  bool tty = false;    // redraw a bar on stderr
  bool quiet = false;  // only the final summary
  std::string label;   // "20261122101500 normalize_usernames, step 2"
};

std::function<void(const ProgressEvent&)> make_progress_printer(ProgressStyle style);

std::string format_counters_json(const Counters& c);

}  // namespace dynamorph::pipeline
