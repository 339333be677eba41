// dynamorph.yaml: project settings with `environments` overlays (DESIGN.md "dynamorph.yaml").
// Loaded once at startup on the main thread; a Config is a plain value afterwards.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "migrations/estimate.h"

namespace dynamorph::migrations {

struct Config {
  std::string file;         // display path of the file read; empty: none (built-in defaults)
  // The folder of that file, else the current directory: the relative paths of migration files
  // stay inside it (or the migrations folder); see LoadOptions::roots.
  std::string project_dir = ".";
  std::string environment;  // overlay applied; empty: none
  std::optional<std::string> region;
  std::optional<std::string> endpoint;
  std::string table_namespace;                  // prefix of every logical table name
  std::string state_table = "dynamorph_state";  // logical name
  std::string migrations_dir = "migrations";    // relative to the config file's folder
  std::chrono::milliseconds lock_ttl = std::chrono::minutes(5);
  // How long a request keeps trying to reach an endpoint that answered before and now refuses
  // connections (a restart): dynamo::RetryPolicy::reconnect_for. 0: off.
  std::chrono::milliseconds reconnect_for = std::chrono::seconds(30);
  int segments = 8;
  double max_wcu = 0;  // capacity units per second; 0 = no client-side cap
  double max_rcu = 0;
  Prices prices;  // `pricing:`: on-demand prices for the estimates
  // Where pipeline steps keep the before-images of what they change (stages/journal.h): a local
  // folder (relative to the config file's folder) or s3://bucket/prefix. Absent: no journal.
  std::optional<std::string> journal;
  // Signed requests in plain http to a host that is not loopback (dynamo::check_plain_http):
  // refused unless the user says so here.
  bool allow_insecure_http = false;

  std::string physical(std::string_view logical) const {
    return table_namespace + std::string(logical);
  }
  // What migration files may name by a relative path: the project and migrations folders.
  std::vector<std::string> path_roots() const { return {project_dir, migrations_dir}; }
};

// Reads `path` (or ./dynamorph.yaml when path is empty and that file exists; else returns the
// defaults) and applies environments[environment] when environment is not empty. Throws
// UsageError "file:line: …" for unknown keys, bad types, an unknown environment.
Config load_config(const std::optional<std::string>& path,
                   const std::optional<std::string>& environment);

// "90s", "5m", "1h", "1m30s", "500ms" → milliseconds; nullopt when malformed or ≤ 0.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::milliseconds d);

}  // namespace dynamorph::migrations
