// The five patterns of a common migration guide, as pipeline steps against DynamoDB Local, with
// every item of the table compared to an expectation computed independently here; plus errors,
// resume and dry runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <date/date.h>
#include <filesystem>

#include "dynamo/errors.h"
#include "dynamo/requests.h"
#include "tests/pipeline/pipeline_support.h"

using namespace dynamorph;
using namespace dynamorph::test;
using pipeline::RunResult;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::int64_t epoch_ms(const std::string& iso) {
  std::istringstream in(iso);
  date::sys_time<std::chrono::milliseconds> t;
  in >> date::parse("%FT%TZ", t);
  return t.time_since_epoch().count();
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = make_client();
    table_ = unique_name("pipe");
    create_simple_table(*client_, table_);
    data_ = make_dataset(300);
    seed(*client_, table_, data_);
  }
  void TearDown() override { drop_table(*client_, table_); }

  RunResult run(const stages::StepSpec& spec, pipeline::RunOptions o = options()) {
    auto store = pipeline::null_checkpoint_store();
    return pipeline::run_pipeline(*client_, spec, *store, o);
  }

  std::unique_ptr<dynamo::Client> client_;
  std::string table_;
  DataSet data_;
};

TEST_F(PipelineTest, NormalizeUsernamesBatch) {
  auto s = step(table_);
  s.values = {{":profile", S("PROFILE")}, {":now", S("2026-11-22T10:15:00.000Z")}};
  s.source.page_size = 37;
  s.where = ex("SK = :profile AND username <> lower(username)");
  s.transform.push_back({ex("SET username = lower(username), migratedAt = :now"), {}, {}});
  auto expected = data_.items;
  std::int64_t changed = 0;
  for (auto& [k, item] : expected) {
    if (item.find("SK")->as<std::string>() != "PROFILE") continue;
    std::string u = item.find("username")->as<std::string>();
    if (u == lower(u)) continue;
    item.set("username", S(lower(u)));
    item.set("migratedAt", S("2026-11-22T10:15:00.000Z"));
    ++changed;
  }
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(expected, read_table(*client_, table_));
  EXPECT_EQ(r.counters.scanned, static_cast<std::int64_t>(data_.items.size()));
  EXPECT_EQ(r.counters.matched, changed);
  EXPECT_EQ(r.counters.written, changed);
  EXPECT_EQ(r.counters.puts, changed);
  EXPECT_EQ(r.counters.consumed_wcu, static_cast<double>(changed));  // every item < 1 KB
}

TEST_F(PipelineTest, WriteCapacityIsMeteredOnASampleAndPricedExactly) {
  // Only a sample of the write requests asks for its ConsumedCapacity: the first 8, then 1 in
  // 16. The others are priced from their estimate, calibrated by the sampled answers; DynamoDB
  // Local meters as the estimate says, so the run's total is still exactly what the server
  // charged: every item is under 1 KB, 1 WCU each.
  auto s = step(table_);
  s.values = {{":now", S("2026-11-22T10:15:00.000Z")}};
  s.source.page_size = 10;
  s.transform.push_back({ex("SET migratedAt = :now"), {}, {}});
  auto expected = data_.items;
  for (auto& [k, item] : expected) item.set("migratedAt", S("2026-11-22T10:15:00.000Z"));
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(expected, read_table(*client_, table_));
  const auto items = static_cast<std::int64_t>(data_.items.size());
  EXPECT_EQ(r.counters.written, items);
  const std::int64_t n = r.write_requests;
  ASSERT_GE(n, items / 10) << "one batch per page at least";
  EXPECT_EQ(r.metered_write_requests, 8 + (n - 8) / 16);
  EXPECT_LT(r.metered_write_requests * 4, n);
  EXPECT_EQ(r.counters.consumed_wcu, static_cast<double>(items));
  EXPECT_EQ(r.estimated_wcu, static_cast<double>(items));
}

TEST_F(PipelineTest, PagesInFlightAreBoundedByTheirBytes) {
  // The response bytes of pages read and not yet committed stay within max_bytes_in_flight,
  // the page being admitted last excepted. With a budget of 1 byte the run holds one page at a
  // time, so its peak is exactly the largest response the same Scans get (read here before the
  // run, with the request the source sends); without a budget, writes slowed by max_wcu let
  // pages pile up.
  auto largest_page = [&] {
    std::int64_t largest = 0;
    for (int segment = 0; segment < 4; ++segment) {
      dynamo::ScanRequest r;
      r.table = table_;
      r.segment = segment;
      r.total_segments = 4;
      r.limit = 10;
      do {
        std::string body;
        dynamo::write_scan(body, r);
        auto answer = client_->call("Scan", body);
        if (!answer) throw std::runtime_error(answer.error().to_string());
        largest = std::max(largest, static_cast<std::int64_t>(answer.value().body.size()));
        r.exclusive_start_key = dynamo::parse_page(answer.value().body).last_evaluated_key;
      } while (r.exclusive_start_key);
    }
    return largest;
  };
  auto migrate = [&](const std::string& when, std::int64_t budget) {
    auto s = step(table_);
    s.values = {{":now", S(when)}};
    s.source.page_size = 10;
    s.transform.push_back({ex("SET migratedAt = :now"), {}, {}});
    auto o = options(4);
    o.max_wcu = 200;
    o.max_bytes_in_flight = budget;
    RunResult r = run(s, o);
    EXPECT_EQ(r.status, RunResult::Status::Done) << r.error;
    auto expected = data_.items;
    for (auto& [k, item] : expected) item.set("migratedAt", S(when));
    expect_same(expected, read_table(*client_, table_));
    EXPECT_EQ(r.counters.written, static_cast<std::int64_t>(data_.items.size()));
    return r;
  };

  const std::int64_t largest = largest_page();
  RunResult one = migrate("2026-11-22T10:15:00.000Z", 1);
  EXPECT_EQ(one.peak_bytes_in_flight, largest);
  EXPECT_GE(one.reads_held_back, 1);

  const std::int64_t larger = largest_page();  // the items have grown by migratedAt
  RunResult unbounded = migrate("2026-11-23T10:15:00.000Z", 0);
  EXPECT_GT(unbounded.peak_bytes_in_flight, larger);
  EXPECT_EQ(unbounded.reads_held_back, 0);
}

TEST_F(PipelineTest, AddFieldWithDefaultUpdateMode) {
  auto s = step(table_);
  s.names = {{"#st", "status"}};
  s.values = {{":profile", S("PROFILE")}, {":active", S("active")}};
  s.where = ex("SK = :profile");
  s.transform.push_back({ex("SET #st = if_not_exists(#st, :active)"), {}, {}});
  s.write.mode = stages::WriteMode::Update;
  auto expected = data_.items;
  std::int64_t updated = 0, profiles = 0;
  for (auto& [k, item] : expected) {
    if (item.find("SK")->as<std::string>() != "PROFILE") continue;
    ++profiles;
    if (!item.find("status")) {
      item.set("status", S("active"));
      ++updated;
    }
  }
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(expected, read_table(*client_, table_));
  EXPECT_EQ(r.counters.matched, profiles);
  EXPECT_EQ(r.counters.updates, updated);
  EXPECT_EQ(r.counters.skipped, profiles - updated);
}

TEST_F(PipelineTest, ChangeSortKeyFormatTransact) {
  auto s = step(table_);
  s.values = {{":photo", S("PHOTO#")}};
  s.source.page_size = 25;
  s.where = ex("begins_with(SK, :photo)");
  s.transform.push_back(
      {ex("SET SK = concat('PHOTO#', to_string(epoch_ms(createdAt)), '#', strip_prefix(SK, 'PHOTO#'))"), {}, {}});
  s.write.mode = stages::WriteMode::Transact;
  s.write.version_attribute = "_v";
  std::map<std::string, dynamo::Item> expected;
  std::int64_t photos = 0;
  for (const auto& [k, item] : data_.items) {
    std::string sk = item.find("SK")->as<std::string>();
    if (sk.rfind("PHOTO#", 0) != 0) {
      expected[k] = item;
      continue;
    }
    ++photos;
    dynamo::Item n = item;
    n.set("SK", S("PHOTO#" + std::to_string(epoch_ms(item.find("createdAt")->as<std::string>())) + "#" + sk.substr(6)));
    n.set("_v", N("20261122101500"));
    expected[DataSet::key_of(n)] = n;
  }
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(expected, read_table(*client_, table_));
  // New keys may be scanned again by the same step; the version attribute skips them.
  EXPECT_EQ(r.counters.puts, photos);
  EXPECT_EQ(r.counters.deletes, photos);
  EXPECT_GE(r.counters.transactions, 1);

  // Run again: everything is at this version already, nothing is written.
  RunResult again = run(s);
  ASSERT_EQ(again.status, RunResult::Status::Done) << again.error;
  EXPECT_EQ(again.counters.puts, 0);
  EXPECT_EQ(again.counters.skipped, photos);
  expect_same(expected, read_table(*client_, table_));
}

TEST_F(PipelineTest, DeleteOneEntityType) {
  auto s = step(table_);
  s.values = {{":photo", S("PHOTO#")}};
  s.source.filter = ex("begins_with(SK, :photo)");  // server-side this time
  s.write.mode = stages::WriteMode::Delete;
  std::map<std::string, dynamo::Item> expected;
  std::int64_t photos = 0;
  for (const auto& [k, item] : data_.items) {
    if (item.find("SK")->as<std::string>().rfind("PHOTO#", 0) == 0) {
      ++photos;
    } else {
      expected[k] = item;
    }
  }
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(expected, read_table(*client_, table_));
  EXPECT_EQ(r.counters.deletes, photos);
  EXPECT_EQ(r.counters.matched, photos);
  EXPECT_EQ(r.counters.scanned, static_cast<std::int64_t>(data_.items.size()));
}

TEST_F(PipelineTest, CreatedAtIfMissingAndUpdatedAtOverManyPages) {
  auto s = step(table_);
  s.source.page_size = 11;
  s.transform.push_back({ex("SET createdAt = if_not_exists(createdAt, :now), updatedAt = :now"), {}, {}});
  auto expected = data_.items;
  for (auto& [k, item] : expected) {
    if (!item.find("createdAt")) item.set("createdAt", S("2026-11-22T10:15:00.000Z"));
    item.set("updatedAt", S("2026-11-22T10:15:00.000Z"));
  }
  auto o = options(3);
  RunResult r = run(s, o);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(expected, read_table(*client_, table_));
  EXPECT_EQ(r.counters.written, static_cast<std::int64_t>(data_.items.size()));
}

TEST_F(PipelineTest, StopThenResumeFromFileCheckpointsAppliesEachItemOnce) {
  auto s = step(table_);
  s.values = {{":one", N("1")}};
  s.source.page_size = 10;
  s.transform.push_back({ex("SET visits = if_not_exists(visits, :one) + :one"), {}, {}});
  s.write.version_attribute = "_v";
  auto path = std::filesystem::temp_directory_path() / (table_ + ".ckpt");
  std::filesystem::remove(path);

  // Stopped once 100 items carry the version (polled), whatever the machine's speed: the first
  // run surely wrote some and surely not all.
  const std::int64_t total = static_cast<std::int64_t>(data_.items.size());
  auto versioned = [&] {
    std::int64_t n = 0;
    for (const auto& i : scan_all(*client_, table_)) n += i.find("_v") != nullptr;
    return n;
  };
  std::atomic<bool> stop{false};
  auto o = options(4);
  o.stop = &stop;
  o.max_wcu = 150;  // slow enough to stop part-way
  std::thread stopper([&] {
    while (!stop && versioned() < 100) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop = true;
  });
  auto store = pipeline::file_checkpoint_store(path.string());
  RunResult first = pipeline::run_pipeline(*client_, s, *store, o);
  stop = true;
  stopper.join();
  ASSERT_EQ(first.status, RunResult::Status::Stopped) << first.error;
  const std::int64_t after_first = versioned();
  EXPECT_GE(after_first, 100);
  ASSERT_LT(after_first, total);
  // Committed counters cover acknowledged pages only: some, and never more than was written.
  EXPECT_GT(first.counters.written, 0);
  EXPECT_LE(first.counters.written, after_first);

  auto store2 = pipeline::file_checkpoint_store(path.string());
  auto o2 = options(7);  // ignored: the checkpoint keeps its 4 segments
  RunResult second = pipeline::run_pipeline(*client_, s, *store2, o2);
  ASSERT_EQ(second.status, RunResult::Status::Done) << second.error;
  auto loaded = pipeline::file_checkpoint_store(path.string())->load();
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->total_segments, 4);

  auto expected = data_.items;
  for (auto& [k, item] : expected) {
    const auto* v = item.find("visits");
    std::int64_t before = v ? *v->as<dynamo::Number>().value().to_int64() : 0;
    item.set("visits", N(std::to_string(v ? before + 1 : 2)));
    item.set("_v", N("20261122101500"));
  }
  expect_same(expected, read_table(*client_, table_));
  // Counters continue across the resume.
  EXPECT_EQ(second.counters.written + second.counters.skipped, total);
  // The items the first run wrote past its last checkpoint are read again and skipped (their
  // version is already there); the others were written once, by one of the two runs.
  EXPECT_EQ(second.counters.skipped, after_first - first.counters.written);
  std::filesystem::remove(path);
}

TEST_F(PipelineTest, MaxRcuCapsTheReadRate) {
  // The read side's cap, as max_wcu caps writes: pages are booked at the estimated RCU of a
  // page and settled with what the server says it consumed, so the whole scan takes at least
  // its consumption over the cap, less what may go out before the first answer settles the
  // estimate (8 pages in flight, and a quarter second of burst).
  auto s = step(table_);
  s.source.page_size = 10;
  auto o = options(4);
  o.dry_run = true;  // reads only
  o.max_rcu = 8;
  const auto t0 = std::chrono::steady_clock::now();
  RunResult r = run(s, o);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  EXPECT_EQ(r.counters.scanned, static_cast<std::int64_t>(data_.items.size()));
  const double page_rcu = 0.5;  // ten small items, eventually consistent: one half unit a page
  ASSERT_GT(r.counters.consumed_rcu, 20 * page_rcu) << "the server reported no read capacity";
  const double free_rcu = 8 * page_rcu + 0.25 * o.max_rcu;
  EXPECT_GE(took, (r.counters.consumed_rcu - free_rcu) / o.max_rcu)
      << r.counters.consumed_rcu << " RCU in " << took << " s at max_rcu " << o.max_rcu;
  RecordProperty("seconds", std::to_string(took));
}

TEST_F(PipelineTest, DryRunWritesNothingAndSamplesChanges) {
  auto s = step(table_);
  s.values = {{":profile", S("PROFILE")}};
  s.where = ex("SK = :profile AND username <> lower(username)");
  s.transform.push_back({ex("SET username = lower(username)"), {}, {}});
  auto o = options();
  o.dry_run = true;
  o.sample_changes = 3;
  RunResult r = run(s, o);
  ASSERT_EQ(r.status, RunResult::Status::Done) << r.error;
  expect_same(data_.items, read_table(*client_, table_));
  EXPECT_GT(r.counters.puts, 0);
  EXPECT_EQ(r.counters.written, 0);
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_EQ(r.samples[0].after->find("username")->as<std::string>(),
            lower(r.samples[0].before.find("username")->as<std::string>()));
}

TEST_F(PipelineTest, TransformErrorStopsTheRunNamingTheItem) {
  auto s = step(table_);
  s.values = {{":photo", S("PHOTO#")}, {":x", AttributeValue(dynamo::List{S("x")})}};
  s.where = ex("begins_with(SK, :photo)");
  s.transform.push_back({ex("SET url = list_append(url, :x)"), {}, {}});
  RunResult r = run(s);
  ASSERT_EQ(r.status, RunResult::Status::Failed);
  EXPECT_NE(r.error.find("item {\"PK\":{\"S\":\"USER#"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find('\n'), std::string::npos);
  expect_same(data_.items, read_table(*client_, table_));  // nothing written
}

TEST_F(PipelineTest, PlanErrorsBeforeAnyWrite) {
  auto s = step(table_);
  s.transform.push_back({ex("SET SK = concat(SK, '#2')"), {}, {}});
  s.write.mode = stages::WriteMode::Update;
  try {
    run(s);
    FAIL() << "update mode with a key change must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("changes a key attribute"), std::string::npos) << e.what();
  }
  auto b = step(table_);
  b.transform.push_back({ex("SET a = :v"), {}, {}});
  b.values = {{":v", N("1")}};
  b.write.guard = stages::Guard::Unchanged;
  try {
    run(b);
    FAIL() << "guard with batch must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("not possible with mode 'batch'"), std::string::npos) << e.what();
  }
  auto u = step(table_);
  u.values = {{":unused", N("1")}};
  u.transform.push_back({ex("SET a = b"), {}, {}});
  EXPECT_THROW(run(u), UsageError);
  auto missing = step("no_such_table_here");
  missing.transform.push_back({ex("SET a = b"), {}, {}});
  try {
    run(missing);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "test step: source table 'no_such_table_here' does not exist");
  }
  expect_same(data_.items, read_table(*client_, table_));
}

TEST_F(PipelineTest, CopyIntoAnotherTableWithANewKey) {
  std::string target = unique_name("copy");
  dynamo::CreateTableRequest r;
  r.table = target;
  r.partition_key = {"user_id", dynamo::AttrType::S};
  ASSERT_TRUE(client_->create_table(r).ok());
  ASSERT_TRUE(client_->wait_until_active(target, std::chrono::seconds(30)).ok());
  auto s = step(table_);
  s.values = {{":profile", S("PROFILE")}};
  s.where = ex("SK = :profile");
  s.transform.push_back({ex("SET user_id = strip_prefix(PK, 'USER#') REMOVE PK, SK"), {}, {}});
  s.write.table = target;
  RunResult res = run(s);
  ASSERT_EQ(res.status, RunResult::Status::Done) << res.error;
  std::map<std::string, dynamo::Item> expected;
  for (const auto& [k, item] : data_.items) {
    if (item.find("SK")->as<std::string>() != "PROFILE") continue;
    dynamo::Item n = item;
    n.set("user_id", S(item.find("PK")->as<std::string>().substr(5)));
    n.erase("PK");
    n.erase("SK");
    expected[n.find("user_id")->as<std::string>()] = n;
  }
  std::map<std::string, dynamo::Item> actual;
  for (auto& i : scan_all(*client_, target)) actual[i.find("user_id")->as<std::string>()] = i;
  expect_same(expected, actual);
  expect_same(data_.items, read_table(*client_, table_));  // the source is untouched
  drop_table(*client_, target);
}

}  // namespace

namespace {

TEST(PipelineCapacity, CapacityPercentCapsTheWriteRate) {
  auto client = make_client();
  std::string table = unique_name("capacity");
  dynamo::CreateTableRequest r;
  r.table = table;
  r.partition_key = {"PK", dynamo::AttrType::S};
  r.sort_key = dynamo::KeyAttribute{"SK", dynamo::AttrType::S};
  r.provisioned = dynamo::Throughput{1000, 40};
  ASSERT_TRUE(client->create_table(r).ok());
  ASSERT_TRUE(client->wait_until_active(table, std::chrono::seconds(30)).ok());
  auto data = make_dataset(100);  // 100 profiles + 68 photos, each under 1 KB: 1 WCU a write
  seed(*client, table, data);

  auto s = step(table);
  s.transform.push_back({ex("SET touched = :now"), {}, {}});
  auto o = options(2);
  o.capacity_percent = 50;  // 20 WCU/s of the table's 40
  auto store = pipeline::null_checkpoint_store();
  RunResult res = pipeline::run_pipeline(*client, s, *store, o);
  ASSERT_EQ(res.status, RunResult::Status::Done) << res.error;
  EXPECT_EQ(res.counters.written, static_cast<std::int64_t>(data.items.size()));
  // 168 WCU at 20 WCU/s, one second of burst allowed: at least ~7 s whatever the machine does.
  EXPECT_GE(res.wall_s, 6.0) << "the write rate was not capped";
  drop_table(*client, table);
}

}  // namespace
