// What the command line asks of a Session: global options and the flags of up and down.
// Plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace dynamorph::migrations {

struct GlobalOptions {
  std::optional<std::string> config;
  std::optional<std::string> env;  // --env, else DYNAMORPH_ENV
  std::optional<std::string> endpoint;
  std::optional<std::string> region;
  std::optional<std::string> profile;
  std::optional<std::string> migrations_dir;
  std::optional<std::string> table_namespace;
  bool json = false;
  int verbosity = 0;  // -1 quiet, 0 normal, 1 verbose
  std::optional<std::string> metrics;  // --metrics HOST:PORT: serve /metrics while running
};

struct UpOptions {
  std::optional<std::int64_t> to;
  bool dry_run = false;
  // --dry-run --sample P: plan from a random P% of the scan segments, extrapolated.
  std::optional<double> sample_percent;
  std::optional<unsigned> sample_seed;  // --sample-seed: the same segments every time
  std::optional<int> segments;
  std::optional<double> max_wcu, max_rcu;
  double capacity_percent = 0;  // of provisioned capacity; 0 = off
  std::optional<std::chrono::milliseconds> lock_ttl;
  // --worker: join the run with the other workers (migrations/worker.h); the lock TTL is also
  // the segment leases' and the registrations'.
  bool worker = false;
  // --retry-dead-letters: only the dead letters of applied versions (dead_letter_retry.h).
  bool retry_dead_letters = false;
};

struct DownOptions {
  std::optional<std::int64_t> to;
  std::optional<int> steps;  // default 1 when neither is given
  bool dry_run = false;
  bool force = false;  // a journal restore puts back items changed since, too
};

struct VerifyOptions {
  std::optional<std::int64_t> version;  // absent: every applied version
};

}  // namespace dynamorph::migrations
