// `--report FILE.html`: one self-contained page per benchmark — inline CSS and SVG, no script,
// no font, no image, nothing fetched — with throughput and consumed capacity over time,
// latency percentiles per operation, throttles per second, and the sweep, each chart with
// labelled axes and units, followed by the figures as tables. Pure function of the result.
#pragma once

#include <string>

#include "benchmark/bench_result.h"

namespace dynamorph::benchmark {

std::string report_html(const BenchResult& result);

}  // namespace dynamorph::benchmark
