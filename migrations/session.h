// What the command line drives: one Session per process resolves settings (dynamorph.yaml, the
// environment overlay, flags), loads the migration files, connects, and runs one command:
// status, up, down, unlock, mark (and init/generate, which never connect: scaffold.h). The
// commands are put together here from their units: history.h (files against records),
// runner.h (running a version), dry_run.h (planning one), render.h (all output).
// Runs on the main thread; `stop()` is the flag signal handlers set.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "migrations/command_options.h"
#include "migrations/config.h"
#include "migrations/errors.h"
#include "migrations/migration_file.h"

namespace dynamorph::dynamo {
class Client;
struct AttemptRecord;
}

namespace dynamorph::migrations {

class Renderer;
struct StepContext;
class History;
class StateTable;
class VersionRunner;
class Lease;
struct PlannedVersion;

// Settings resolved in the contract's order: dynamorph.yaml with its overlay, then the flags.
// Throws UsageError like Session's constructor. (Session and `dynamorph bench` both use it.)
Config resolve_config(const GlobalOptions& options);

// A client for the configured endpoint, region and credentials chain. `on_attempt` times
// every request (benchmarks); empty: nothing is timed.
std::unique_ptr<dynamo::Client> connect(
    const Config& config, const GlobalOptions& options,
    std::function<void(const dynamo::AttemptRecord&)> on_attempt = {});

class Session {
 public:
  // Reads dynamorph.yaml (UsageError on problems). Nothing is loaded from migrations/ yet.
  Session(GlobalOptions options, std::ostream& out, std::ostream& err);
  ~Session();

  std::atomic<bool>& stop() { return stop_; }
  const Config& config() const { return config_; }

  ExitCode status();
  ExitCode up(const UpOptions& options);
  ExitCode down(const DownOptions& options);
  ExitCode verify(const VerifyOptions& options);
  ExitCode unlock(bool force);
  ExitCode mark(std::int64_t version, const std::string& state);
  // Keeps replaying the stream of VERSION's (default: the newest applied version with one)
  // `follow: stream` step until stopped: Interrupted, positions saved.
  ExitCode follow(std::optional<std::int64_t> version, const UpOptions& options);

 private:
  // `up --worker`: coordinates while this process holds the lock, else works on the leases of
  // the step the lock holder is running, until the target is applied.
  ExitCode up_worker(const UpOptions& options, History& history, StateTable& state);
  // `up --retry-dead-letters` (dead_letter_retry.h): applied versions' dead letters only.
  ExitCode retry_dead_letters(const UpOptions& options);
  // Runs every version of `plan` up, in order, from its record in `history`; releases the lock
  // when all are applied.
  ExitCode apply_plan(const std::vector<PlannedVersion>& plan, const History& history,
                      VersionRunner& runner, Lease& lease, const UpOptions& o);
  std::vector<Migration> load();
  dynamo::Client& client();
  StepContext step_context();

  GlobalOptions options_;
  Config config_;
  std::string now_iso_;
  std::ostream& out_;
  std::ostream& err_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<dynamo::Client> client_;
  std::unique_ptr<Renderer> render_;
};

}  // namespace dynamorph::migrations
