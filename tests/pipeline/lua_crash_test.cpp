// kill -9 at random moments during a Lua run (a JSON attribute parsed into a map and visits + 1,
// which is not idempotent, with version_attribute), resumed from file checkpoints each time:
// afterwards every item is exactly what one application gives. Children are forked before this
// process starts any thread (as in crash_test.cpp); the parent talks to DynamoDB only at the end.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "tests/pipeline/lua_support.h"

using namespace dynamorph;
using namespace dynamorph::test;

namespace {

constexpr int kUsers = 1500;  // 1,500 profiles + 1,000 photos

stages::StepSpec lua_job(const std::string& table) {
  auto s = step(table);
  s.source.page_size = 25;
  s.transform.push_back(lua_step(prefs_job_lua(), "lua/prefs.lua"));
  s.write.version_attribute = "_v";
  return s;
}

TEST(LuaCrashSafety, KillNineDuringALuaRunThenResumeAppliesEachItemOnce) {
  std::string table = unique_name("lua_crash");
  std::string ckpt = (std::filesystem::temp_directory_path() / (table + ".ckpt")).string();
  std::filesystem::remove(ckpt);
  std::string endpoint = ddb_endpoint();  // reads a file only: no thread yet

  ASSERT_EQ(wait_for(spawn([&] {
              auto c = make_client(endpoint);
              create_simple_table(*c, table);
              seed(*c, table, dataset_with_prefs(kUsers, 5));
              return ::testing::Test::HasFailure() ? 1 : 0;
            })),
            0);

  auto run_child = [&](double max_wcu) {
    return spawn([&, max_wcu] {
      auto c = make_client(endpoint);
      auto store = pipeline::file_checkpoint_store(ckpt);
      auto o = options(4);
      o.max_wcu = max_wcu;
      auto r = pipeline::run_pipeline(*c, lua_job(table), *store, o);
      return r.status == pipeline::RunResult::Status::Done ? 0 : 2;
    });
  };
  std::mt19937 rng(test::test_seed("lua_crash_test: kill times"));
  int killed = 0;
  for (int round = 0; round < 6; ++round) {
    pid_t pid = run_child(600);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 900));
    if (kill(pid, SIGKILL) == 0) ++killed;
    int st = wait_for(pid);
    EXPECT_TRUE(st == -SIGKILL || st == 0) << "child ended with " << st;
  }
  EXPECT_GE(killed, 5);
  ASSERT_EQ(wait_for(run_child(0)), 0) << "the final resume must finish the step";

  auto client = make_client(endpoint);
  const DataSet data = dataset_with_prefs(kUsers, 5);
  expect_same(after_prefs_job(data, options().version), read_table(*client, table));
  drop_table(*client, table);
  std::filesystem::remove(ckpt);
}

}  // namespace
