// `init` and `generate`: write a commented dynamorph.yaml and migrations/ folder, and starter
// migration files that load and plan without edits. No network. Main thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dynamorph::migrations {

// Writes <dir>/dynamorph.yaml and <dir>/migrations/; UsageError when dynamorph.yaml exists.
// Returns the paths written.
std::vector<std::string> init_project(const std::string& dir);

struct GenerateOptions {
  std::string name;  // [A-Za-z0-9_]+
  std::optional<std::string> create_table;
  std::optional<std::string> partition_key;  // NAME:TYPE
  std::optional<std::string> sort_key;
  std::vector<std::string> gsi;  // NAME:TYPE[,SORT:TYPE] keys of global indexes
  std::int64_t now_ms = 0;       // 0: now
};

// The source table of generate's starter pipeline: the dry run tells the user to replace it.
inline constexpr std::string_view kPlaceholderTable = "REPLACE_WITH_YOUR_TABLE";

// Writes <migrations_dir>/<yyyymmddHHMMSS>_<name>.yaml and returns its path. UsageError for a
// bad name or key spec, or when the file exists.
std::string generate_migration(const std::string& migrations_dir, const GenerateOptions& options);

}  // namespace dynamorph::migrations
