// mode: batch — BatchWriteItem groups of ≤ 25 (no key twice; a key change's put and delete,
// and a fan-out's puts, kept together). No conditions: guard is refused at plan time.
// Immutable; one page state per page (sink.h has the threading rules).
#pragma once

#include "stages/sink.h"

namespace dynamorph::stages {

std::unique_ptr<Sink> make_batch_sink(const ItemProcessor& processor);

}  // namespace dynamorph::stages
