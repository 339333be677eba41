// Exceptions of the migrations layer, one per exit code of the command-line contract
// (DESIGN.md "Exit codes"). UsageError (exit 2) lives in dynamo/errors.h. Plain values.
#pragma once

#include "dynamo/errors.h"

namespace dynamorph::migrations {

// A migration step failed, or the run lost its lock: exit 1.
class StepFailed : public Error {
 public:
  using Error::Error;
};

// The lock is held by another owner: exit 3.
class LockHeld : public Error {
 public:
  using Error::Error;
};

// An applied migration's file changed, or the recorded history does not match the files: exit 4.
class HistoryError : public Error {
 public:
  using Error::Error;
};

enum class ExitCode : int {
  Ok = 0,
  StepFailed = 1,
  Usage = 2,
  LockHeld = 3,
  History = 4,
  Interrupted = 130,
};

}  // namespace dynamorph::migrations
