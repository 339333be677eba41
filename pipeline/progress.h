// Progress output of a running step, shared by the CLI and the benchmarks: a bar redrawn in
// place on a TTY (stderr), a plain line every few seconds when stderr is not a TTY, one JSON
// object per event on stdout with --json, and the final summary either way. The printer is
// called from the pipeline's reporter thread and serializes its own output.
#pragma once

#include <chrono>
#include <functional>
#include <ostream>
#include <string>

#include "pipeline/pipeline.h"

namespace dynamorph::pipeline {

struct ProgressStyle {
  bool json = false;   // JSON lines on `out`
  bool tty = false;    // redraw a bar on `err`
  bool quiet = false;  // nothing but JSON (when asked for)
  std::string label;   // "20261122101500 normalize_usernames, step 2"
  std::chrono::seconds plain_every{10};  // non-TTY: one line this often
};

std::function<void(const ProgressEvent&)> make_progress_printer(ProgressStyle style, std::ostream& out,
                                                                std::ostream& err);

// {"scanned":…,"matched":…,…} and "scanned 10, matched 4, written 4[, skipped …]" ("-" when empty).
std::string format_counters_json(const Counters& c);
std::string format_counters_text(const Counters& c);

}  // namespace dynamorph::pipeline
