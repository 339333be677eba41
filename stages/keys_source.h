// source kind "keys": exactly the items of SourceSpec::keys, each read with a consistent GetItem
// from the source table as it is now (`up --retry-dead-letters` reads its dead letters again
// this way). Partition p of n holds the keys at positions p, p + n, …; its resume token is how
// many of them it has read. Immutable; source.h has the threading rules.
#pragma once

#include "stages/source.h"

namespace dynamorph::stages {

std::unique_ptr<Source> make_keys_source(const SourceContext& context);

}  // namespace dynamorph::stages
