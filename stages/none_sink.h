// mode: none — builds and counts the writes batch mode would send (puts, deletes, WCU by item
// size) and sends nothing: dry runs and benchmarks.
// Immutable; one page state per page (sink.h has the threading rules).
#pragma once

#include "stages/sink.h"

namespace dynamorph::stages {

std::unique_ptr<Sink> make_none_sink(const ItemProcessor& processor);

}  // namespace dynamorph::stages
