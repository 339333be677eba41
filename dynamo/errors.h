// Errors of the dynamo/ layer: exceptions for what ends a run (bad config, bad credentials,
// broken invariants) and the typed service error carried as a value by every call.
// Thread-safe: plain values.
#pragma once

#include <stdexcept>
#include <string>

namespace dynamorph {

// Base of every exception dynamorph throws; the CLI prints what() as one line.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad settings, files, flags or expressions: exit code 2, nothing written.
class UsageError : public Error {
 public:
  using Error::Error;
};

// Credentials missing or unusable, endpoint unreachable at start.
class ConfigError : public UsageError {
 public:
  using UsageError::UsageError;
};

}  // namespace dynamorph
