// mode: delete — deletes every matching item: guarded DeleteItems with guard: unchanged, else
// BatchWriteItem deletes.
// Immutable; one page state per page (sink.h has the threading rules).
#pragma once

#include "stages/sink.h"

namespace dynamorph::stages {

std::unique_ptr<Sink> make_delete_sink(const ItemProcessor& processor);

}  // namespace dynamorph::stages
