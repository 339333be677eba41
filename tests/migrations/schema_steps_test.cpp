// Schema steps against DynamoDB Local: each one waits until ACTIVE and is idempotent when run
// again after a crash; a different existing table or index is an error naming the step.
#include <gtest/gtest.h>

#include "migrations/errors.h"
#include "migrations/migration_file.h"
#include "migrations/schema_steps.h"
#include "tests/support/ddb_client.h"
#include "tests/support/test_env.h"

namespace dynamorph::migrations {
namespace {

class SchemaStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = test::make_client();
    ns_ = test::unique_name("schema") + "-";
  }
  void TearDown() override {
    for (const char* t : {"posts", "other"}) test::drop_table(*client_, ns_ + t);
  }

  std::vector<Step> steps(const std::string& yaml) {
    auto m = parse_migration("version: 1\nup:\n" + yaml, "migrations/1_x.yaml", "1_x.yaml",
                             LoadOptions{ns_, "2026-11-22T10:15:00.000Z", {}});
    return m.up;
  }
  // Each step twice in a row: the second run is what a resumed version does after a crash
  // that came after the step's request but before its record moved on.
  void run_all(const std::vector<Step>& s) {
    auto line = [this](const std::string& l) { lines_.push_back(l); };
    for (const auto& step : s) {
      ASSERT_TRUE(run_schema_step(*client_, step, line, stop_));
      ASSERT_TRUE(run_schema_step(*client_, step, line, stop_));
    }
  }

  std::unique_ptr<dynamo::Client> client_;
  std::string ns_;
  std::atomic<bool> stop_{false};
  std::vector<std::string> lines_;
};

TEST_F(SchemaStepsTest, EveryStepTwiceIsTheSameAsOnce) {
  auto s = steps(R"(  - create_table:
      table: posts
      partition_key: id:string
      sort_key: at:number
      gsi:
        - { partition_key: updated_at:string }
      lsi:
        - { sort_key: title:string, projection: keys_only }
      ttl: expires_at
  - add_gsi: { table: posts, name: by_author, partition_key: author:string, projection: [title] }
  - update_ttl: { table: posts, attribute: expires_at }
  - delete_gsi: { table: posts, name: updated_at-index }
  - create_table: { table: other, partition_key: k:binary, billing: { read: 2, write: 3 } }
  - delete_table: { table: other }
)");
  run_all(s);
  auto d = client_->describe_table(ns_ + "posts");
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d.value().global_indexes.size(), 1u);
  EXPECT_EQ(d.value().global_indexes[0].name, "by_author");
  EXPECT_EQ(d.value().local_indexes.at(0).name, "title-index");
  auto ttl = client_->describe_ttl(ns_ + "posts");
  ASSERT_TRUE(ttl);
  EXPECT_EQ(ttl.value().attribute, "expires_at");
  EXPECT_EQ(client_->describe_table(ns_ + "other").error().type, "ResourceNotFoundException");
  bool accepted = false;
  for (const auto& l : lines_)
    accepted |= l.find("exists with the same key schema; accepted") != std::string::npos;
  EXPECT_TRUE(accepted);
}

TEST_F(SchemaStepsTest, DifferentExistingTableOrIndexFailsNamingTheStep) {
  run_all(
      steps("  - create_table: { table: posts, partition_key: id:string }\n"
            "  - add_gsi: { table: posts, name: by_a, partition_key: a:string }\n"));
  auto s = steps("  - create_table: { table: posts, partition_key: id:number }\n");
  try {
    run_schema_step(
        *client_, s[0], [](const std::string&) {}, stop_);
    FAIL();
  } catch (const StepFailed& e) {
    EXPECT_EQ(std::string(e.what()), "migrations/1_x.yaml:3: create_table: table " + ns_ +
                                         "posts exists with key (id S), the step wants (id N)");
  }
  auto g = steps("  - add_gsi: { table: posts, name: by_a, partition_key: a:number }\n");
  EXPECT_THROW(run_schema_step(
                   *client_, g[0], [](const std::string&) {}, stop_),
               StepFailed);
  auto missing = steps("  - add_gsi: { table: other, name: x_index, partition_key: a:string }\n");
  EXPECT_THROW(run_schema_step(
                   *client_, missing[0], [](const std::string&) {}, stop_),
               StepFailed);
}

}  // namespace
}  // namespace dynamorph::migrations
