// Migration files (DESIGN.md "Migration files"): YAML → {version, name, checksum, up, down}.
// Every problem is a UsageError naming file:line before any request is made. Loaded on the main
// thread at plan time; a Migration is an immutable value afterwards.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dynamo/requests.h"
#include "migrations/model_schema.h"
#include "stages/step_spec.h"

namespace dynamorph::migrations {

struct CreateTableStep {
  dynamo::CreateTableRequest request;  // table name is physical (namespace applied)
  std::optional<std::string> ttl_attribute;
};
struct AddGsiStep {
  std::string table;
  dynamo::IndexDefinition index;
};
struct DeleteGsiStep {
  std::string table;
  std::string index;
};
struct UpdateTtlStep {
  std::string table;
  std::string attribute;
  bool enabled = true;
};
struct DeleteTableStep {
  std::string table;
};
struct EnableStreamStep {
  std::string table;
  std::string view;  // NEW_IMAGE or NEW_AND_OLD_IMAGES
};
struct PipelineStep {
  stages::StepSpec spec;
  // `write.cleanup_version_attribute: true`: the loader puts a cleanup step after this one.
  bool cleanup_after = false;
  // That cleanup step itself: a scan of the target for items whose version attribute is this
  // version, each updated with REMOVE of it, conditioned on it still holding this version.
  bool cleanup = false;
};

struct Step {
  // create_table, add_gsi, delete_gsi, update_ttl, delete_table, enable_stream, pipeline
  std::string kind;
  std::string where;  // "migrations/1_x.yaml:7"
  std::variant<CreateTableStep, AddGsiStep, DeleteGsiStep, UpdateTtlStep, DeleteTableStep,
               PipelineStep, EnableStreamStep>
      body;
  // One line for plans and progress: "create_table demo-posts (id S, created_at N), on demand".
  std::string describe() const;
};

// The pipeline step with `follow: stream` that `follow` replays, if any.
bool is_follow_step(const Step& step);

struct Migration {
  std::int64_t version = 0;
  std::string name;
  std::string file;      // display path
  std::string checksum;  // SHA-256 of the LF-normalized text
  std::vector<Step> up;  // may be empty only when `schema` says what the version changes
  std::optional<std::vector<Step>> down;  // absent: this version cannot be rolled back
  bool irreversible = false;              // `down: irreversible`: declared so, even with a journal
  std::optional<ModelSchema> schema;      // the model change it documents (`schema:`)
  // The file's own run settings (they beat dynamorph.yaml, flags beat them).
  std::optional<int> segments;
  std::optional<double> max_wcu, max_rcu;
};

struct LoadOptions {
  std::string table_namespace;  // prefix for every table name in the file
  std::string now_iso;          // bound to :now unless a step defines it
  // Folders that the relative paths a file names (lua.file, a local source.export) must stay in
  // once `..` and symbolic links are resolved: the project folder and the migrations folder.
  // An absolute path is taken as written. Empty: no confinement (the parser alone, in tests).
  std::vector<std::string> roots;
};

// Parses one file's text. `file_name` is the base name ("20261122101500_users.yaml"), whose
// version prefix must match `version:`.
Migration parse_migration(const std::string& text, const std::string& display,
                          const std::string& file_name, const LoadOptions& options);
Migration load_migration_file(const std::string& path, const LoadOptions& options);
// Every *.yaml / *.yml file of `dir`, sorted by version; duplicate versions and names that do not
// follow <version>_<name>.yaml are errors. A missing folder is an error naming it.
std::vector<Migration> load_migrations(const std::string& dir, const LoadOptions& options);

// "id:string" → {id, S}; only S, N and B are key types. nullopt with `why` set when malformed.
std::optional<dynamo::KeyAttribute> parse_key_spec(std::string_view text, std::string* why);

}  // namespace dynamorph::migrations
