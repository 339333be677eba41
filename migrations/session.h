// What the command line drives: one Session per process resolves settings (dynamorph.yaml, the
// environment overlay, flags), loads the migration files, connects, and runs one command:
// status, up, down, unlock, mark (and init/generate, which never connect: scaffold.h).
// Runs on the main thread; `stop()` is the flag signal handlers set.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "migrations/config.h"
#include "migrations/errors.h"
#include "migrations/migration_file.h"

namespace dynamorph::dynamo {
class Client;
}

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
};

struct UpOptions {
  std::optional<std::int64_t> to;
  bool dry_run = false;
  std::optional<int> segments;
  std::optional<double> max_wcu, max_rcu;
  double capacity_percent = 0;  // of provisioned capacity; 0 = off
  std::optional<std::chrono::milliseconds> lock_ttl;
};

struct DownOptions {
  std::optional<std::int64_t> to;
  std::optional<int> steps;  // default 1 when neither is given
  bool dry_run = false;
};

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
  ExitCode unlock(bool force);
  ExitCode mark(std::int64_t version, const std::string& state);

 private:
  struct Impl;
  std::vector<Migration> load();
  dynamo::Client& client();
  void info(const std::string& line);
  void detail(const std::string& line);

  GlobalOptions options_;
  Config config_;
  std::string now_iso_;
  std::ostream& out_;
  std::ostream& err_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<dynamo::Client> client_;
};

}  // namespace dynamorph::migrations
