// source kind "query": one Query (KeyConditionExpression, optional index, direction) as a single
// partition whose pages follow LastEvaluatedKey. Immutable; source.h has the threading rules.
#pragma once

#include "stages/source.h"

namespace dynamorph::stages {

std::unique_ptr<Source> make_query_source(const SourceContext& context);

}  // namespace dynamorph::stages
