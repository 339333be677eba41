// The state table, the lease and the state-table checkpoint store against DynamoDB Local.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <thread>

#include "migrations/checkpoint_store.h"
#include "dynamo/clock.h"
#include "dynamo/json.h"
#include "migrations/errors.h"
#include "migrations/lease.h"
#include "migrations/state_table.h"
#include "tests/support/ddb_client.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/test_env.h"

namespace dynamorph::migrations {
namespace {

using namespace std::chrono_literals;

// Resume points as the scan source makes them, in one place.
// (a LastEvaluatedKey in DynamoDB JSON; opaque to the state table).
void set_resume_point(pipeline::SegmentCheckpoint& cp, const std::string& pk) {
  cp.resume_token.emplace();
  dynamo::write_item(*cp.resume_token, dynamo::Item{{"PK", test::S(pk)}, {"SK", test::S("PROFILE")}});
}
std::string resume_point_pk(const pipeline::SegmentCheckpoint& cp) {
  return cp.resume_token ? dynamo::parse_item(*cp.resume_token).find("PK")->as<std::string>() : std::string();
}

// How many requests of `op` the proxy has seen.
long requests_of(test::FaultProxy& proxy, const std::string& op) {
  std::smatch m;
  const std::string stats = proxy.stats_json();
  if (!std::regex_search(stats, m, std::regex("\"" + op + "\": *([0-9]+)"))) return 0;
  return std::stol(m[1]);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = test::make_client();
    state_ = std::make_unique<StateTable>(*client_, test::unique_name("state"));
    EXPECT_FALSE(state_->exists());
    state_->ensure();
    state_->ensure();  // idempotent
    EXPECT_TRUE(state_->exists());
  }
  void TearDown() override { test::drop_table(*client_, state_->name()); }

  std::unique_ptr<dynamo::Client> client_;
  std::unique_ptr<StateTable> state_;
  std::atomic<bool> stop_{false};
};

TEST_F(StateTest, SecondOwnerIsRefusedNamingTheHolder) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  try {
    StateTable other(*client_, state_->name());
    // Same process, but the put is conditional on absence or expiry, so it must fail.
    Lease::acquire(other, 60s, nullptr);
    FAIL() << "second acquire succeeded";
  } catch (const LockHeld& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("held by " + this_process_owner().host + ":"), std::string::npos) << m;
    EXPECT_NE(m.find(" since 20"), std::string::npos) << m;
  }
  lease->release();
  EXPECT_FALSE(state_->read_lock());
  auto again = Lease::acquire(*state_, 60s, nullptr);
  EXPECT_TRUE(state_->read_lock());
}

TEST_F(StateTest, HeartbeatKeepsTheLeaseAlive) {
  // A 3 s lease renewed every second, its fence 1 s before expiry: held across more than two
  // of its lifetimes only by renewals, while a renewal may be a second late (a loaded machine:
  // the server's JVM and the test share two cores with a compiler in CI).
  auto lease = Lease::acquire(*state_, 3s, &stop_);
  std::this_thread::sleep_for(7s);
  auto lock = state_->read_lock();
  ASSERT_TRUE(lock);
  EXPECT_GT(lock->expires_at_ms, dynamo::now_epoch_ms());
  EXPECT_FALSE(lease->lost());
  VersionRecord r;
  r.version = 1;
  r.name = "one";
  r.state = VersionState::Running;
  r.direction = Direction::Up;
  r.checksum = "abc";
  state_->put_version(r, lease->proof());
  EXPECT_EQ(state_->read_versions().at(1).state, VersionState::Running);
}

TEST_F(StateTest, TakenOverLeaseIsLostAndWritesAreRefused) {
  auto lease = Lease::acquire(*state_, 900ms, &stop_);
  LockRecord other{"elsewhere:1:x", "elsewhere", 1, dynamo::now_iso(), dynamo::now_epoch_ms() + 600000};
  ASSERT_TRUE(state_->delete_lock(""));
  ASSERT_TRUE(state_->try_put_lock(other, dynamo::now_epoch_ms()));
  for (int i = 0; i < 50 && !lease->lost(); ++i) std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(lease->lost());
  EXPECT_TRUE(stop_.load());
  VersionRecord r;
  r.version = 1;
  r.state = VersionState::Running;
  EXPECT_THROW(state_->put_version(r, lease->proof()), StepFailed);
  EXPECT_TRUE(state_->read_versions().empty());
  lease->release();  // must not delete the other owner's lock
  EXPECT_EQ(state_->read_lock()->owner, "elsewhere:1:x");
}

TEST_F(StateTest, AnUnknownStateWordIsAHistoryError) {
  dynamo::PutItemRequest p;
  p.table = state_->name();
  p.item = dynamo::Item{{"pk", test::S("dynamorph")},
                        {"sk", test::S(version_sort_key(3))},
                        {"version", test::N("3")},
                        {"state", test::S("paused")},
                        {"direction", test::S("up")}};
  ASSERT_TRUE(client_->put_item(p));
  try {
    state_->read_versions();
    FAIL() << "an unknown state was accepted";
  } catch (const HistoryError& e) {
    EXPECT_NE(std::string(e.what()).find("version 3 has state 'paused'"), std::string::npos)
        << e.what();
  }
}

TEST_F(StateTest, VersionRecordKeepsTheSchemaBlockInOrder) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  VersionRecord r;
  r.version = 4;
  r.name = "orders";
  r.state = VersionState::Applied;
  r.checksum = "abc";
  ModelSchema schema;
  schema.description = "Orders become their own entity";
  SchemaEntity order;
  order.name = "Order";
  order.table = "app";
  order.keys = {{"PK", "USER#<user_id>"}, {"SK", "ORDER#<order_id>"}, {"GSI1PK", "ORDER"}};
  order.attributes = {{"user_id", dynamo::AttrType::S},
                      {"order_id", dynamo::AttrType::S},
                      {"lines", dynamo::AttrType::L},
                      {"tags", dynamo::AttrType::SS}};
  SchemaEntity bare;
  bare.name = "Bare";
  bare.keys = {{"PK", "BARE"}};
  schema.entities = {order, bare};
  r.schema = schema;
  state_->put_version(r, lease->proof());
  auto got = state_->read_versions().at(4);
  ASSERT_TRUE(got.schema);
  EXPECT_EQ(*got.schema, schema);
  r.version = 5;
  r.schema.reset();
  state_->put_version(r, lease->proof());
  EXPECT_FALSE(state_->read_versions().at(5).schema);
}

TEST_F(StateTest, ExpiredLeaseIsTakenOver) {
  LockRecord old{"gone:2:y", "gone", 2, dynamo::now_iso(), dynamo::now_epoch_ms() - 1000};
  ASSERT_TRUE(state_->try_put_lock(old, dynamo::now_epoch_ms() - 2000));
  auto lease = Lease::acquire(*state_, 60s, nullptr);
  EXPECT_EQ(state_->read_lock()->owner, lease->proof().owner);
}

TEST_F(StateTest, CheckpointsRoundTripCoalesceAndClear) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  {
    StateCheckpointStore store(*state_, *lease, 7, Direction::Up, 2);
    EXPECT_FALSE(store.load());
    for (int page = 1; page <= 20; ++page) {
      for (int seg = 0; seg < 3; ++seg) {
        pipeline::SegmentCheckpoint cp;
        cp.segment = seg;
        cp.pages = page;
        // Opaque bytes, NUL and non-UTF-8 included: stored and returned as they are.
        cp.resume_token = std::string("tok\0\xff#", 6) + std::to_string(page);
        cp.counters.scanned = page * 10;
        cp.counters.written = page;
        cp.counters.consumed_wcu = page * 0.5;
        store.save(cp, 3);
      }
    }
    pipeline::SegmentCheckpoint last;
    last.segment = 2;
    last.pages = 21;
    last.done = true;
    store.save(last, 3);
    store.flush();
    auto run = store.load();
    ASSERT_TRUE(run);
    EXPECT_EQ(run->total_segments, 3);
    ASSERT_EQ(run->segments.size(), 3u);
    EXPECT_EQ(run->segments[0].pages, 20);
    EXPECT_EQ(run->segments[0].counters.scanned, 200);
    EXPECT_DOUBLE_EQ(run->segments[0].counters.consumed_wcu, 10.0);
    EXPECT_EQ(*run->segments[0].resume_token, std::string("tok\0\xff#20", 8));
    EXPECT_TRUE(run->segments[2].done);
    EXPECT_FALSE(run->segments[2].resume_token);
  }
  // Another step, another direction: separate.
  EXPECT_FALSE(state_->load_checkpoints(7, Direction::Up, 1));
  EXPECT_FALSE(state_->load_checkpoints(7, Direction::Down, 2));
  state_->delete_checkpoints(7, lease->proof());
  EXPECT_FALSE(state_->load_checkpoints(7, Direction::Up, 2));
}

TEST_F(StateTest, LongHistoryIsReadAcrossPages) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  const std::string big(3000, 'x');  // ~3 KB per record: 400 records need several 1 MB pages
  for (int v = 1; v <= 400; ++v) {
    VersionRecord r;
    r.version = v;
    r.name = "v" + std::to_string(v);
    r.state = VersionState::Applied;
    r.direction = Direction::Up;
    r.checksum = "c";
    r.error = big;
    r.counters.written = v;
    state_->put_version(r, lease->proof());
  }
  pipeline::SegmentCheckpoint cp;
  cp.pages = 3;
  state_->put_checkpoints(400, Direction::Up, 0, {{cp, 1}}, lease->proof());
  auto all = state_->read_versions();
  ASSERT_EQ(all.size(), 400u);
  EXPECT_EQ(all.at(400).counters.written, 400);
  EXPECT_EQ(all.begin()->first, 1);
  auto history = state_->read_history();  // what status reads: versions and lock, no checkpoints
  EXPECT_EQ(history.versions.size(), 400u);
  ASSERT_TRUE(history.lock);
  EXPECT_EQ(history.lock->owner, lease->proof().owner);
}

// 4,096 segments: saved in chunks within DynamoDB Local's limit of 10 actions (learnt from its
// refusal of the first, longer, transaction), read back by resume in a paged Query, cleared.
TEST_F(StateTest, ThousandsOfSegmentsAreSavedInChunksReadPagedAndCleared) {
  constexpr int kSegments = 4096;
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  std::vector<std::pair<pipeline::SegmentCheckpoint, int>> cps;
  for (int s = 0; s < kSegments; ++s) {
    pipeline::SegmentCheckpoint cp;
    cp.segment = s;
    cp.pages = s % 7 + 1;
    cp.done = s % 5 == 0;
    // Long resume points (~200 bytes) make the 4,096 items about 1.7 MB: at least two pages.
    if (!cp.done) set_resume_point(cp, fmt::format("USER#{:06}#{}", s, std::string(190, 'k')));
    cp.counters.scanned = s;
    cp.counters.written = s / 2;
    cp.counters.consumed_wcu = s * 0.5;
    cps.emplace_back(cp, kSegments);
  }
  EXPECT_EQ(state_->transaction_limit(), 100);
  auto t0 = std::chrono::steady_clock::now();
  CheckpointCost put = state_->put_checkpoints(9, Direction::Up, 0, cps, lease->proof());
  const double put_s = seconds_since(t0);
  EXPECT_EQ(state_->transaction_limit(), 10);  // DynamoDB Local's
  EXPECT_EQ(put.writes, kSegments);
  EXPECT_EQ(put.transactions, (kSegments + 8) / 9);
  EXPECT_DOUBLE_EQ(put.wcu, 2.0 * kSegments + 2.0 * static_cast<double>(put.transactions));

  // Resume reads them the way a run does, through a proxy that counts the requests.
  test::FaultProxy proxy(test::ddb_endpoint());
  auto via = test::make_client(proxy.endpoint());
  StateTable table(*via, state_->name());
  t0 = std::chrono::steady_clock::now();
  auto run = StateCheckpointStore(table, *lease, 9, Direction::Up, 0).load();
  const double load_s = seconds_since(t0);
  const long queries = requests_of(proxy, "Query");
  ASSERT_TRUE(run);
  EXPECT_EQ(run->total_segments, kSegments);
  ASSERT_EQ(run->segments.size(), static_cast<std::size_t>(kSegments));
  for (int s = 0; s < kSegments; ++s) {
    const auto& cp = run->segments[static_cast<std::size_t>(s)];
    ASSERT_EQ(cp.segment, s);
    EXPECT_EQ(cp.pages, s % 7 + 1);
    EXPECT_EQ(cp.done, s % 5 == 0);
    EXPECT_EQ(resume_point_pk(cp),
              cp.done ? std::string() : fmt::format("USER#{:06}#{}", s, std::string(190, 'k')));
    EXPECT_EQ(cp.counters.scanned, s);
    EXPECT_EQ(cp.counters.written, s / 2);
    EXPECT_DOUBLE_EQ(cp.counters.consumed_wcu, s * 0.5);
  }
  EXPECT_GE(queries, 2) << "one Query page holds at most 1 MB";
  EXPECT_EQ(requests_of(proxy, "GetItem"), 0);

  t0 = std::chrono::steady_clock::now();
  CheckpointCost cleared = state_->delete_checkpoints(9, lease->proof());
  const double clear_s = seconds_since(t0);
  EXPECT_EQ(cleared.writes, kSegments);
  EXPECT_EQ(cleared.transactions, (kSegments + 8) / 9);
  EXPECT_FALSE(state_->load_checkpoints(9, Direction::Up, 0));
  // Measurements, not assertions.
  std::printf(
      "[ measure  ] %d checkpoints: put in %.2f s (%lld transactions), read by resume in %.3f s "
      "(%ld Query pages), cleared in %.2f s\n",
      kSegments, put_s, static_cast<long long>(put.transactions), load_s, queries, clear_s);
}

// The limit comes from the refusal: a server saying 25 (injected) then DynamoDB Local's own 10;
// each is learnt once, and later writes go straight in chunks of 10.
TEST_F(StateTest, TransactionLimitIsLearntFromTheServersRefusalOnce) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  test::FaultProxy proxy(test::ddb_endpoint());
  proxy.set_rules(R"json([{"op": "TransactWriteItems", "fault": "error", "status": 400,
    "count": 1, "type": "com.amazon.coral.validate#ValidationException",
    "message": "1 validation error detected: Value '[...]' at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 25"}])json");
  auto via = test::make_client(proxy.endpoint());
  StateTable table(*via, state_->name());
  std::vector<std::pair<pipeline::SegmentCheckpoint, int>> cps;
  for (int s = 0; s < 100; ++s) {
    pipeline::SegmentCheckpoint cp;
    cp.segment = s;
    cp.pages = 1;
    cps.emplace_back(cp, 100);
  }
  CheckpointCost c = table.put_checkpoints(3, Direction::Up, 0, cps, lease->proof());
  EXPECT_EQ(table.transaction_limit(), 10);
  EXPECT_EQ(c.transactions, 12);  // ⌈100 / 9⌉
  // 100 actions refused by the proxy (≤ 25), 25 by DynamoDB Local (≤ 10), then 12 of ≤ 10.
  EXPECT_EQ(requests_of(proxy, "TransactWriteItems"), 14);
  table.put_checkpoints(3, Direction::Up, 0, cps, lease->proof());
  EXPECT_EQ(requests_of(proxy, "TransactWriteItems"), 26);
  EXPECT_EQ(state_->load_checkpoints(3, Direction::Up, 0)->segments.size(), 100u);
  table.delete_checkpoints(3, lease->proof());
  EXPECT_EQ(requests_of(proxy, "TransactWriteItems"), 38);
  EXPECT_FALSE(state_->load_checkpoints(3, Direction::Up, 0));
}

TEST_F(StateTest, OtherLengthLimitsAreNotTakenForTheActionLimit) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  test::FaultProxy proxy(test::ddb_endpoint());
  proxy.set_rules(R"json([{"op": "TransactWriteItems", "fault": "error", "status": 400,
    "count": 1, "type": "com.amazon.coral.validate#ValidationException",
    "message": "1 validation error detected: Value 'x' at 'transactItems.1.member.put.tableName' failed to satisfy constraint: Member must have length less than or equal to 5"}])json");
  auto via = test::make_client(proxy.endpoint());
  StateTable table(*via, state_->name());
  pipeline::SegmentCheckpoint cp;
  try {
    table.put_checkpoints(3, Direction::Up, 0, {{cp, 1}}, lease->proof());
    FAIL() << "the refusal was not reported";
  } catch (const StepFailed&) {
    FAIL() << "not a lost lock";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("saving checkpoints of version 3"), std::string::npos);
  }
  EXPECT_EQ(table.transaction_limit(), 100);
}

// The lease's heartbeat writes the lock item every check reads: a transaction cancelled by such
// a conflict is sent again.
TEST_F(StateTest, CheckpointsCancelledByAConflictAreSentAgain) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  test::FaultProxy proxy(test::ddb_endpoint());
  proxy.set_rules(R"json([{"op": "TransactWriteItems", "fault": "error", "status": 400,
    "count": 3, "type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
    "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]"}])json");
  auto via = test::make_client(proxy.endpoint());
  StateTable table(*via, state_->name());
  pipeline::SegmentCheckpoint cp;
  cp.pages = 4;
  table.put_checkpoints(3, Direction::Up, 1, {{cp, 1}}, lease->proof());
  EXPECT_EQ(requests_of(proxy, "TransactWriteItems"), 4);
  EXPECT_EQ(state_->load_checkpoints(3, Direction::Up, 1)->segments.at(0).pages, 4);
}

// Saves of many pages end as about one write per segment per round, and each round keeps the
// version record's counters and checkpoint cost current (what `status` shows during a run).
TEST_F(StateTest, StoreCoalescesPerSegmentAndKeepsTheRecordCurrent) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  VersionRecord rec;
  rec.version = 5;
  rec.name = "five";
  rec.state = VersionState::Running;
  rec.direction = Direction::Up;
  rec.checksum = "abc";
  rec.step = 1;
  rec.counters.scanned = 100;
  rec.counters.written = 50;
  rec.counters_before_step = rec.counters;
  rec.checkpoint_cost = CheckpointCost{3, 1, 8};
  state_->put_version(rec, lease->proof());
  constexpr int kSegments = 64, kPages = 50;
  CheckpointCost spent;
  {
    StateCheckpointStore store(*state_, *lease, 5, Direction::Up, 1, rec);
    EXPECT_FALSE(store.load());
    for (int page = 1; page <= kPages; ++page) {
      for (int seg = 0; seg < kSegments; ++seg) {
        pipeline::SegmentCheckpoint cp;
        cp.segment = seg;
        cp.pages = page;
        cp.done = page == kPages;
        cp.counters.scanned = page * 10;
        cp.counters.written = page;
        store.save(cp, kSegments);
      }
    }
    store.flush();
    spent = store.cost();
  }
  // 3,200 saves made in milliseconds: a round or two, never one write per save.
  EXPECT_GE(spent.writes, kSegments);
  EXPECT_LE(spent.writes, 10 * kSegments);
  auto got = state_->read_versions().at(5);
  EXPECT_EQ(got.state, VersionState::Running);
  EXPECT_EQ(got.counters.scanned, 100 + kSegments * kPages * 10);
  EXPECT_EQ(got.counters.written, 50 + kSegments * kPages);
  ASSERT_TRUE(got.counters_before_step);
  EXPECT_EQ(got.counters_before_step->scanned, 100);
  EXPECT_EQ(got.checkpoint_cost.writes, 3 + spent.writes);
  EXPECT_EQ(got.checkpoint_cost.transactions, 1 + spent.transactions);
  EXPECT_DOUBLE_EQ(got.checkpoint_cost.wcu, 8 + spent.wcu);
  auto run = state_->load_checkpoints(5, Direction::Up, 1);
  ASSERT_TRUE(run);
  ASSERT_EQ(run->segments.size(), static_cast<std::size_t>(kSegments));
  for (const auto& cp : run->segments) {
    EXPECT_EQ(cp.pages, kPages);
    EXPECT_TRUE(cp.done);
  }
}

}  // namespace
}  // namespace dynamorph::migrations
