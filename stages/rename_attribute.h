// `stage: rename_attribute` with `args: { from: NAME, to: NAME, overwrite: false }`: moves a
// top-level attribute to a new name; items without `from` are kept as they are. An item that
// has `to` already is an error unless overwrite is true. The example of a C++ stage registered
// in code (transform.h); stateless.
#pragma once

#include "stages/transform.h"

namespace dynamorph::stages {

// The factory registered as "rename_attribute"; throws UsageError for bad args.
std::unique_ptr<Transform> make_rename_attribute(const StageContext& context);

}  // namespace dynamorph::stages
