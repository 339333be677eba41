#include "migrations/scaffold.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "dynamo/errors.h"
#include "dynamo/clock.h"
#include "migrations/migration_file.h"

namespace dynamorph::migrations {
namespace fs = std::filesystem;

namespace {

// What follows the header lines of dynamorph.yaml (config_text()).
constexpr const char* kConfig =
    R"(
# AWS region; without it: --region, AWS_REGION, AWS_DEFAULT_REGION, then your profile.
# region: us-east-1

# Talk to DynamoDB Local (or another compatible endpoint) instead of AWS:
# endpoint: http://127.0.0.1:8000

# Prefix added to every table name in the migration files (and to the state table).
namespace: ""

# Where dynamorph records versions, the lock and checkpoints (created on first use).
state_table: dynamorph_state

# Migration files, relative to this file.
migrations_dir: migrations

# Lease of the run lock; renewed every third of it while a run is alive.
lock_ttl: 5m

# Run settings; a migration file's own values beat these, flags beat both.
defaults:
  segments: 8      # parallel scan segments
  max_wcu: 0       # write capacity units per second for the whole run; 0 = no cap
  max_rcu: 0       # read capacity units per second; 0 = no cap

# Overlays chosen with --env NAME or DYNAMORPH_ENV=NAME.
# environments:
#   prod:
#     region: eu-west-1
#     namespace: myapp-prod-
#     defaults: { max_wcu: 2000 }
)";

// The installed user guide: <prefix>/share/doc/dynamorph/guide.md beside the running binary
// (<prefix>/bin/dynamorph), so that a .deb, `cmake --install --prefix P` or a DESTDIR copy
// names its own; from a build folder, where the configured install prefix puts it.
std::string installed_guide() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path prefix = exe.parent_path();
    for ([[maybe_unused]] const auto& part : fs::path(DYNAMORPH_BINDIR))
      prefix = prefix.parent_path();
    const fs::path guide = prefix / DYNAMORPH_GUIDE_RELATIVE;
    if (fs::is_regular_file(guide, ec)) return guide.lexically_normal().string();
  }
  return DYNAMORPH_GUIDE_CONFIGURED;
}

std::string config_text() {
  return fmt::format(
             "# dynamorph settings. Every key is optional; flags beat this file.\n"
             "# Docs: man dynamorph, and the user guide {}\n",
             installed_guide()) +
         kConfig;
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 100) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

std::string long_type(const std::string& spec, std::string* name = nullptr) {
  std::string why;
  auto k = parse_key_spec(spec, &why);
  if (!k) throw UsageError(fmt::format("'{}': {}", spec, why));
  std::string_view t = k->type == dynamo::AttrType::S   ? "string"
                       : k->type == dynamo::AttrType::N ? "number"
                                                        : "binary";
  if (name) *name = k->name;
  return fmt::format("{}:{}", k->name, t);
}

// `--gsi NAME:TYPE[,SORT:TYPE]` as a gsi entry named by_<partition>[_<sort>].
std::string gsi_entry(const std::string& spec) {
  const auto comma = spec.find(',');
  if (comma != std::string::npos && spec.find(',', comma + 1) != std::string::npos)
    throw UsageError(
        fmt::format("--gsi '{}': expected NAME:TYPE or NAME:TYPE,SORT:TYPE (a partition and a "
                    "sort key)",
                    spec));
  std::string pk_name, sk_name;
  const std::string pk = long_type(spec.substr(0, comma), &pk_name);
  if (comma == std::string::npos)
    return fmt::format("        - {{ name: by_{}, partition_key: {}, projection: all }}\n", pk_name,
                       pk);
  const std::string sk = long_type(spec.substr(comma + 1), &sk_name);
  return fmt::format(
      "        - {{ name: by_{}_{}, partition_key: {}, sort_key: {}, projection: all }}\n", pk_name,
      sk_name, pk, sk);
}

// Files for the repository: rw-r--r-- whatever the umask, like any source file.
void make_shareable(const fs::path& file) {
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
}

}  // namespace

std::vector<std::string> init_project(const std::string& dir) {
  fs::path base = dir.empty() ? fs::path(".") : fs::path(dir);
  fs::path cfg = base / "dynamorph.yaml";
  if (fs::exists(cfg))
    throw UsageError(
        fmt::format("{} exists already; init writes nothing", cfg.lexically_normal().string()));
  fs::create_directories(base / "migrations");
  {
    std::ofstream out(cfg, std::ios::binary);
    out << config_text();
    if (!out) throw Error(fmt::format("{}: cannot write", cfg.string()));
  }
  make_shareable(cfg);
  fs::path keep = base / "migrations" / ".gitkeep";
  if (!fs::exists(keep)) {
    std::ofstream(keep, std::ios::binary);
    make_shareable(keep);
  }
  return {cfg.lexically_normal().string(), (base / "migrations").lexically_normal().string() + "/"};
}

std::string generate_migration(const std::string& migrations_dir, const GenerateOptions& o) {
  if (!valid_name(o.name))
    throw UsageError(fmt::format(
        "generate: name '{}' must be letters, digits, _ or - (it becomes the file name)", o.name));
  if (!o.create_table && (o.partition_key || o.sort_key || !o.gsi.empty()))
    throw UsageError("generate: --partition-key, --sort-key and --gsi need --create-table");
  if (o.create_table && !o.partition_key)
    throw UsageError("generate: --create-table needs --partition-key NAME:TYPE");
  const std::int64_t now = o.now_ms ? o.now_ms : dynamo::now_epoch_ms();
  const std::string version = dynamo::utc_timestamp_version(now);
  std::string text = fmt::format(
      "# Generated by `dynamorph generate` on {}.\n"
      "# Format: man dynamorph, and \"Migration files\" in {}\n",
      dynamo::iso_utc(now), installed_guide());
  text += fmt::format("version: {}\nname: {}\n\nup:\n", version, o.name);
  if (o.create_table) {
    text += fmt::format("  - create_table:\n      table: {}\n      partition_key: {}\n",
                        *o.create_table, long_type(*o.partition_key));
    if (o.sort_key) text += fmt::format("      sort_key: {}\n", long_type(*o.sort_key));
    text += "      billing: on_demand                 # or { read: 5, write: 5 }\n";
    if (!o.gsi.empty()) {
      text += "      gsi:\n";
      for (const auto& g : o.gsi) text += gsi_entry(g);
    }
    text += "      # ttl: expires_at                    # optional TTL attribute\n";
    text += fmt::format("\ndown:\n  - delete_table: {{ table: {} }}\n", *o.create_table);
  } else {
    text += fmt::format(
        "  - pipeline:\n"
        "      source:\n"
        "        table: {0}  # the table to reshape (namespace is added)\n"
        "      where: \"attribute_not_exists(migratedAt)\"\n"
        "      transform:\n"
        "        - update: \"SET migratedAt = :now\"\n"
        "      write:\n"
        "        mode: none                       # none only counts; batch | update | transact | "
        "delete write\n"
        "\n"
        "# down:                                 # without down, `dynamorph down` refuses this "
        "version\n"
        "#   - pipeline: ...\n",
        kPlaceholderTable);
  }
  fs::create_directories(migrations_dir);
  fs::path file = fs::path(migrations_dir) / fmt::format("{}_{}.yaml", version, o.name);
  if (fs::exists(file)) throw UsageError(fmt::format("{} exists already", file.string()));
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw Error(fmt::format("{}: cannot write", file.string()));
  out.close();
  make_shareable(file);
  // A starter must load as written.
  load_migration_file(file.string(), LoadOptions{"", dynamo::iso_utc(now), {}});
  return file.string();
}

}  // namespace dynamorph::migrations
