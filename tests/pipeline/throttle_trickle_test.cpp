// A steady trickle of faults must not starve a run (issue 17): through the fault proxy, a random
// 5% of requests throttled, 2% answered 500, 2% 503, 1% dropped before and 1% after reaching the
// server, and 30% of batches answered half unprocessed. 15,000 items in batch mode and in
// update mode with a version attribute: the table ends exactly right, and the run finishes.
// Times are measured, not asserted: each run's time and the fault-free time are printed and
// recorded as test properties (the target is within 3x).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "tests/pipeline/pipeline_support.h"
#include "tests/support/fault_proxy.h"

using namespace dynamorph;
using namespace dynamorph::test;
using pipeline::RunResult;

namespace {

// The proxy fires the first rule, in list order, whose draw succeeds; each probability is
// therefore the wanted share over what the rules before it left (5% of all requests, then 2%
// of all is 2/95 of the rest, ...).
std::string fault_mix() {
  double left = 1;
  std::string rules = "[";
  auto add = [&](const char* fault, double share, int seed, const char* op = "*") {
    double p = share / left;
    left -= share;
    rules += fmt::format(R"({}{{"op": "{}", "fault": "{}", "probability": {:.6f}, "seed": {}}})",
                         rules.size() > 1 ? ", " : "", op, fault, p, seed);
  };
  add("throttling", 0.05, 1);
  add("http500", 0.02, 2);
  add("http503", 0.02, 3);
  add("drop_before", 0.01, 4);
  add("drop_after", 0.01, 5);
  rules +=
      R"(, {"op": "BatchWriteItem", "fault": "partial_unprocessed", "probability": 0.3, "seed": 6}])";
  return rules;
}

class ThrottleTrickle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    direct_ = make_client().release();
    table_ = new std::string(unique_name("trickle"));
    create_simple_table(*direct_, *table_);
    data_ = new DataSet(make_dataset(9000, 17));  // 9,000 profiles and 6,000 photos
    ASSERT_EQ(data_->items.size(), 15000u);
    seed(*direct_, *table_, *data_);
  }
  static void TearDownTestSuite() {
    drop_table(*direct_, *table_);
    delete direct_;
    delete table_;
    delete data_;
  }

  // Every item gets pass = `pass` (and in update mode the version): all 15,000 are written.
  static stages::StepSpec mark(stages::WriteMode mode, int pass) {
    auto s = step(*table_);
    s.values = {{":pass", N(std::to_string(pass))}};
    s.transform.push_back({ex("SET pass = :pass"), {}, {}});
    s.write.mode = mode;
    if (mode == stages::WriteMode::Update) s.write.version_attribute = "_v";
    return s;
  }
  static std::map<std::string, dynamo::Item> expected(int pass, std::int64_t version) {
    auto e = data_->items;
    for (auto& [k, item] : e) {
      item.set("pass", N(std::to_string(pass)));
      if (version) item.set("_v", N(std::to_string(version)));
    }
    return e;
  }
  // Runs one step (version `version`), returns its wall time in seconds.
  static double timed(dynamo::Client& client, const stages::StepSpec& s, std::int64_t version) {
    auto o = options(4);
    if (version) o.version = version;
    auto store = pipeline::null_checkpoint_store();
    auto start = std::chrono::steady_clock::now();
    RunResult r = pipeline::run_pipeline(client, s, *store, o);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(r.status, RunResult::Status::Done) << r.error;
    EXPECT_EQ(r.counters.failed, 0);
    return took;
  }

  void compare(const char* mode, stages::WriteMode m, int pass, std::int64_t v_clean,
               std::int64_t v_faults, bool versioned) {
    double clean = timed(*direct_, mark(m, pass), v_clean);
    expect_same(expected(pass, versioned ? v_clean : 0), read_table(*direct_, *table_));

    FaultProxy proxy(ddb_endpoint());
    proxy.set_rules(fault_mix());
    auto client = make_client(proxy.endpoint());  // the default retry policy, as a user has it
    double faulty = timed(*client, mark(m, pass + 1), v_faults);
    expect_same(expected(pass + 1, versioned ? v_faults : 0), read_table(*direct_, *table_));

    std::printf(
        "%s mode, 15,000 items: fault-free %.1f s, under the fault mix %.1f s (%.2fx)\n"
        "proxy: %s\n",
        mode, clean, faulty, faulty / clean, proxy.stats_json().c_str());
    RecordProperty(std::string(mode) + "_fault_free_s", fmt::format("{:.1f}", clean));
    RecordProperty(std::string(mode) + "_faults_s", fmt::format("{:.1f}", faulty));
  }

  static dynamo::Client* direct_;
  static std::string* table_;
  static DataSet* data_;
};

dynamo::Client* ThrottleTrickle::direct_ = nullptr;
std::string* ThrottleTrickle::table_ = nullptr;
DataSet* ThrottleTrickle::data_ = nullptr;

TEST_F(ThrottleTrickle, BatchModeIsExactAndFinishes) {
  compare("batch", stages::WriteMode::Batch, 1, 0, 0, false);
}

TEST_F(ThrottleTrickle, VersionedUpdateModeIsExactAndFinishes) {
  compare("update", stages::WriteMode::Update, 11, 20261122101500, 20261122101600, true);
}

}  // namespace
