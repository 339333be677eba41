// mode: transact — TransactWriteItems of whole items' actions (a key change is an atomic
// delete + put conditioned on the scanned item; a fan-out's puts go together). A cancelled
// transaction re-reads the items whose condition failed and sends the others again.
// Immutable; one page state per page (sink.h has the threading rules).
#pragma once

#include "stages/sink.h"

namespace dynamorph::stages {

std::unique_ptr<Sink> make_transact_sink(const ItemProcessor& processor);

}  // namespace dynamorph::stages
