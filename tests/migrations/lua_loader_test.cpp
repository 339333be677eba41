// `lua:` transform steps in migration files: file paths relative to the migration file, inline
// code with the file's line numbers, the script in the version's checksum, and every refusal at
// load (exit 2) naming file:line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dynamo/errors.h"
#include "migrations/checksum.h"
#include "migrations/migration_file.h"

namespace dynamorph::migrations {
namespace {

namespace fs = std::filesystem;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

LoadOptions opts() { return LoadOptions{"ns-", "2026-11-22T10:15:00.000Z", {}}; }

class LuaLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dynamorph_lua_loader_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "migrations" / "lua");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / "migrations" / rel;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  Migration load(const std::string& yaml) {
    return load_migration_file(write("1_x.yaml", yaml), opts());
  }
  std::string error_of(const std::string& yaml) {
    try {
      load(yaml);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "no error";
  }
  std::string yaml_path() const { return (dir_ / "migrations" / "1_x.yaml").string(); }
  std::string lua_path(const std::string& name) const {
    return (dir_ / "migrations" / "lua" / name).string();
  }

  fs::path dir_;
};

std::string step_with(const std::string& transform) {
  return "version: 1\nup:\n  - pipeline:\n      source: { table: app }\n      transform:\n" +
         transform;
}

constexpr const char* kScript =
    "-- lower-case the username\nfunction transform(item, ctx)\n"
    "  item.username = ctx.lower(item.username)\n  return item\nend\n";

TEST_F(LuaLoader, FileRelativeToTheMigrationFile) {
  write("lua/norm.lua", kScript);
  auto m = load(step_with(
      "        - update: \"SET a = :now\"\n"
      "        - lua: { file: lua/norm.lua, max_instructions: 5000, max_memory_mb: 8 }\n"));
  const auto& spec = std::get<PipelineStep>(m.up[0].body).spec;
  ASSERT_EQ(spec.transform.size(), 2u);
  const auto& lua = spec.transform[1].lua;
  EXPECT_EQ(lua.chunk_name, lua_path("norm.lua"));
  EXPECT_EQ(lua.code, kScript);
  EXPECT_EQ(lua.first_line, 1);
  EXPECT_EQ(lua.max_instructions, 5000);
  EXPECT_EQ(lua.max_memory_bytes, 8 << 20);
  EXPECT_TRUE(spec.transform[0].lua.empty());
}

TEST_F(LuaLoader, TheScriptIsPartOfTheChecksum) {
  const std::string yaml = step_with("        - lua: { file: lua/norm.lua }\n");
  write("lua/norm.lua", kScript);
  const std::string first = load(yaml).checksum;
  EXPECT_NE(first, checksum(yaml));  // the script counts
  EXPECT_EQ(load(yaml).checksum, first);
  std::string crlf;
  for (char c : std::string(kScript)) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write("lua/norm.lua", crlf);  // another OS's checkout: not a change
  EXPECT_EQ(load(yaml).checksum, first);
  write("lua/norm.lua", std::string(kScript) + "-- edited\n");
  EXPECT_NE(load(yaml).checksum, first);
  // A file without Lua keeps the checksum it always had.
  const std::string plain = step_with("        - update: \"SET a = :now\"\n");
  EXPECT_EQ(load(plain).checksum, checksum(plain));
}

TEST_F(LuaLoader, InlineCodeKeepsTheFileLines) {
  const std::string yaml = step_with(
      "        - lua:\n"
      "            code: |\n"
      "              function transform(item, ctx)\n"
      "                return item +\n"
      "              end\n");
  EXPECT_EQ(error_of(yaml),
            yaml_path() + ":10: unexpected symbol near 'end' (" + yaml_path() + ":7)");
  const std::string quoted =
      step_with("        - lua: { code: \"function transform(item, ctx) return item end\" }\n");
  const Migration m = load(quoted);
  const auto& spec = std::get<PipelineStep>(m.up[0].body).spec;
  EXPECT_EQ(spec.transform[0].lua.first_line, 6);
  EXPECT_EQ(spec.transform[0].lua.chunk_name, yaml_path());
}

TEST_F(LuaLoader, RefusalsNameFileAndLine) {
  write("lua/bad.lua", "function transform(item, ctx)\n  return item\n");
  EXPECT_EQ(error_of(step_with("        - lua: { file: lua/bad.lua }\n")),
            lua_path("bad.lua") +
                ":3: 'end' expected (to close 'function' at line 1) near <eof> (" + yaml_path() +
                ":6)");
  write("lua/none.lua", "function other(item) return item end\n");
  EXPECT_EQ(
      error_of(step_with("        - lua: { file: lua/none.lua }\n")),
      lua_path("none.lua") + ": defines no function transform(item, ctx) (" + yaml_path() + ":6)");
  EXPECT_EQ(error_of(step_with("        - lua: { file: lua/missing.lua }\n")),
            yaml_path() + ":6: lua.file: cannot read '" + lua_path("missing.lua") + "'");
  EXPECT_EQ(error_of(step_with("        - lua: { file: a.lua, code: x }\n")),
            yaml_path() + ":6: lua: give file: PATH (relative to this file) or code: TEXT");
  EXPECT_EQ(error_of(step_with("        - { lua: { code: x }, update: \"SET a = :now\" }\n")),
            yaml_path() + ":6: transform step: give one of update, stage or lua");
  EXPECT_THAT(error_of(step_with("        - lua: { code: x, budget: 5 }\n")),
              StartsWith(yaml_path() + ":6: unknown key 'budget' in lua"));
  EXPECT_EQ(error_of(step_with("        - lua: { code: x, max_instructions: 0 }\n")),
            yaml_path() + ":6: max_instructions: must be at least 1");
  EXPECT_EQ(error_of(step_with("        - lua: { code: x, max_memory_mb: 0 }\n")),
            yaml_path() + ":6: max_memory_mb: expected 1 to 1048576");
  EXPECT_EQ(error_of(step_with("        - { lua: { code: x }, args: { a: 1 } }\n")),
            yaml_path() + ":6: args: only a stage takes args");
}

TEST_F(LuaLoader, ValuesForLuaAndDownSteps) {
  write("lua/norm.lua", kScript);
  auto m = load(
      "version: 1\nup:\n  - pipeline:\n      values: { \":only_lua\": 5 }\n"
      "      source: { table: app }\n      transform:\n        - lua: { file: lua/norm.lua }\n"
      "down:\n  - pipeline:\n      source: { table: app }\n      transform:\n"
      "        - lua: { code: \"function transform(item, ctx) return nil end\" }\n");
  EXPECT_EQ(std::get<PipelineStep>(m.up[0].body).spec.values.size(), 1u);
  ASSERT_TRUE(m.down);
  EXPECT_FALSE(std::get<PipelineStep>(m.down->at(0).body).spec.transform.at(0).lua.empty());
}

}  // namespace
}  // namespace dynamorph::migrations
