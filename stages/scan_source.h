// source kind "scan": a parallel Scan over TotalSegments, each segment a partition whose pages
// follow LastEvaluatedKey; server-side FilterExpression, optional index, page Limit.
// Immutable; source.h has the threading rules.
#pragma once

#include "stages/source.h"

namespace dynamorph::stages {

std::unique_ptr<Source> make_scan_source(const SourceContext& context);

}  // namespace dynamorph::stages
