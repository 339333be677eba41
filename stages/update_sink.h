// mode: update — one guarded UpdateItem per changed item (SET/REMOVE of what changed,
// conditioned on what the step read); a copy into another table is a PutItem; a transform's
// delete is a guarded DeleteItem. A failed guard re-reads the item and transforms it again.
// Immutable; one page state per page (sink.h has the threading rules).
#pragma once

#include "stages/sink.h"

namespace dynamorph::stages {

std::unique_ptr<Sink> make_update_sink(const ItemProcessor& processor);

}  // namespace dynamorph::stages
