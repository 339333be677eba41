// Keeps the documentation true: every example file under docs/ and configs/, and every ```yaml
// block of docs/*.md, loads without error (migration files through the migration loader,
// everything else as dynamorph.yaml with each of its environments). configs/k8s/ holds
// Kubernetes manifests, not dynamorph files: tests/cli/k8s_manifest_test.py checks them and
// loads the dynamorph.yaml and migrations of their ConfigMap with the real binary.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "dynamo/errors.h"
#include "migrations/config.h"
#include "migrations/migration_file.h"
#include "tests/support/test_env.h"

namespace dynamorph::migrations {
namespace {

namespace fs = std::filesystem;

const std::regex kMigrationName(R"(^\d+_[^/]+\.ya?ml$)");
const std::regex kVersionLine(R"((^|\n)version:\s*(\d+))");

LoadOptions opts() { return LoadOptions{"docs-", "2026-11-22T10:15:00.000Z", {}}; }

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> files_under(const std::string& rel, const std::vector<std::string>& exts) {
  std::vector<fs::path> out;
  fs::path root = test::source_path(rel);
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    for (const auto& x : exts)
      if (e.path().extension() == x) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Loads a dynamorph.yaml and every environment it defines.
void load_config_with_environments(const std::string& path) {
  Config base = load_config(path, std::nullopt);
  std::string text = read(path);
  std::smatch m;
  // Environment names: keys indented under "environments:".
  auto pos = text.find("\nenvironments:");
  if (pos == std::string::npos) return;
  std::istringstream lines(text.substr(pos + 14));
  std::string line;
  std::getline(lines, line);
  if (line.find('{') != std::string::npos) return;  // flow style: validated by load_config already
  std::size_t indent = std::string::npos;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t first = line.find_first_not_of(' ');
    if (first == 0) break;
    if (first == std::string::npos || line[first] == '#') continue;
    if (indent == std::string::npos) indent = first;
    if (first != indent) continue;
    std::string name = line.substr(first, line.find(':') - first);
    SCOPED_TRACE(path + " environment " + name);
    Config c = load_config(path, name);
    EXPECT_EQ(c.environment, name);
  }
}

TEST(DocsExamples, EveryExampleFileLoads) {
  int migrations = 0, configs = 0;
  for (const auto& dir : {"docs", "configs"}) {
    for (const auto& p : files_under(dir, {".yaml", ".yml"})) {
      if (p.parent_path() == test::source_path("configs/k8s")) continue;
      SCOPED_TRACE(p.string());
      try {
        if (std::regex_match(p.filename().string(), kMigrationName)) {
          load_migration_file(p.string(), opts());
          ++migrations;
        } else {
          load_config_with_environments(p.string());
          Config c = load_config(p.string(), std::nullopt);
          if (fs::exists(c.migrations_dir)) load_migrations(c.migrations_dir, opts());
          ++configs;
        }
      } catch (const Error& e) {
        ADD_FAILURE() << e.what();
      }
    }
  }
  EXPECT_GE(migrations, 5);  // the five patterns at least
  EXPECT_GE(configs, 2);
}

TEST(DocsExamples, ExampleFolderLoadsAsOneHistory) {
  auto all = load_migrations(test::source_path("docs/examples/migrations"), opts());
  EXPECT_GE(all.size(), 5u);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].version, all[i].version);
}

TEST(DocsExamples, EveryYamlBlockOfTheGuideLoads) {
  int blocks = 0;
  for (const auto& md : files_under("docs", {".md"})) {
    std::istringstream in(read(md));
    std::string line, block;
    int n = 0, start = 0;
    bool inside = false;
    while (std::getline(in, line)) {
      ++n;
      if (!inside && (line == "```yaml" || line == "```yml")) {
        inside = true;
        start = n + 1;
        block.clear();
        continue;
      }
      if (inside && line.rfind("```", 0) == 0) {
        inside = false;
        ++blocks;
        const std::string where =
            fmt::format("{}:{}", fs::relative(md, test::source_dir()).string(), start);
        SCOPED_TRACE(where);
        try {
          std::smatch m;
          if (std::regex_search(block, m, kVersionLine)) {
            parse_migration(block, where, m[2].str() + "_example.yaml", opts());
          } else {
            fs::path tmp = fs::temp_directory_path() /
                           fmt::format("dynamorph_doc_{}_{}.yaml", ::getpid(), start);
            std::ofstream(tmp, std::ios::binary) << block;
            load_config_with_environments(tmp.string());
            fs::remove(tmp);
          }
        } catch (const Error& e) {
          ADD_FAILURE() << where << ": " << e.what();
        }
        continue;
      }
      if (inside) block += line + "\n";
    }
    EXPECT_FALSE(inside) << md << ": unterminated code block";
  }
  EXPECT_GE(blocks, 3);
}

}  // namespace
}  // namespace dynamorph::migrations
