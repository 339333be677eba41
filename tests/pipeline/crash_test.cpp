// kill -9 at random moments during a non-idempotent step (visits = visits + 1, with
// version_attribute), resumed from file checkpoints each time: afterwards every item's visits
// rose by exactly one. Children are forked before this process starts any thread, so each child
// owns a clean copy; the parent talks to DynamoDB only at the end.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "tests/pipeline/pipeline_support.h"

using namespace dynamorph;
using namespace dynamorph::test;

namespace {

constexpr int kUsers = 1500;

stages::StepSpec visits_step(const std::string& table) {
  auto s = step(table);
  s.values = {{":one", N("1")}};
  s.source.page_size = 25;
  s.transform.push_back({ex("SET visits = if_not_exists(visits, :one) + :one"), {}, {}});
  s.write.version_attribute = "_v";
  return s;
}

TEST(CrashSafety, KillNineAtRandomMomentsThenResume) {
  std::string table = unique_name("crash");
  std::string ckpt = (std::filesystem::temp_directory_path() / (table + ".ckpt")).string();
  std::filesystem::remove(ckpt);
  std::string endpoint = ddb_endpoint();  // reads a file only: no thread yet

  ASSERT_EQ(wait_for(spawn([&] {
              auto c = make_client(endpoint);
              create_simple_table(*c, table);
              seed(*c, table, make_dataset(kUsers, 3));
              return ::testing::Test::HasFailure() ? 1 : 0;
            })),
            0);

  auto run_child = [&](double max_wcu) {
    return spawn([&, max_wcu] {
      auto c = make_client(endpoint);
      auto store = pipeline::file_checkpoint_store(ckpt);
      auto o = options(4);
      o.max_wcu = max_wcu;
      auto r = pipeline::run_pipeline(*c, visits_step(table), *store, o);
      return r.status == pipeline::RunResult::Status::Done ? 0 : 2;
    });
  };
  std::mt19937 rng(test::test_seed("crash_test: kill times"));
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
  auto data = make_dataset(kUsers, 3);
  auto expected = data.items;
  for (auto& [k, item] : expected) {
    const auto* v = item.find("visits");
    std::int64_t before = v ? *v->as<dynamo::Number>().value().to_int64() : 0;
    item.set("visits", N(std::to_string(v ? before + 1 : 2)));
    item.set("_v", N("20261122101500"));
  }
  expect_same(expected, read_table(*client, table));
  drop_table(*client, table);
  std::filesystem::remove(ckpt);
}

}  // namespace
