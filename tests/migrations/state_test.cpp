// The state table, the lease and the state-table checkpoint store against DynamoDB Local.
#include <gtest/gtest.h>

#include <thread>

#include "migrations/checkpoint_store.h"
#include "dynamo/clock.h"
#include "migrations/errors.h"
#include "migrations/lease.h"
#include "migrations/state_table.h"
#include "tests/support/ddb_client.h"
#include "tests/support/test_env.h"

namespace dynamorph::migrations {
namespace {

using namespace std::chrono_literals;

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
  auto lease = Lease::acquire(*state_, 900ms, &stop_);
  std::this_thread::sleep_for(2500ms);
  auto lock = state_->read_lock();
  ASSERT_TRUE(lock);
  EXPECT_GT(lock->expires_at_ms, dynamo::now_epoch_ms());
  EXPECT_FALSE(lease->lost());
  VersionRecord r;
  r.version = 1;
  r.name = "one";
  r.state = "running";
  r.direction = "up";
  r.checksum = "abc";
  state_->put_version(r, lease->proof());
  EXPECT_EQ(state_->read_versions().at(1).state, "running");
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
  r.state = "running";
  EXPECT_THROW(state_->put_version(r, lease->proof()), StepFailed);
  EXPECT_TRUE(state_->read_versions().empty());
  lease->release();  // must not delete the other owner's lock
  EXPECT_EQ(state_->read_lock()->owner, "elsewhere:1:x");
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
    StateCheckpointStore store(*state_, *lease, 7, "up", 2);
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
  EXPECT_FALSE(state_->load_checkpoints(7, "up", 1));
  EXPECT_FALSE(state_->load_checkpoints(7, "down", 2));
  state_->delete_checkpoints(7, lease->proof());
  EXPECT_FALSE(state_->load_checkpoints(7, "up", 2));
}

TEST_F(StateTest, LongHistoryIsReadAcrossPages) {
  auto lease = Lease::acquire(*state_, 60s, &stop_);
  const std::string big(3000, 'x');  // ~3 KB per record: 400 records need several 1 MB pages
  for (int v = 1; v <= 400; ++v) {
    VersionRecord r;
    r.version = v;
    r.name = "v" + std::to_string(v);
    r.state = "applied";
    r.direction = "up";
    r.checksum = "c";
    r.error = big;
    r.counters.written = v;
    state_->put_version(r, lease->proof());
  }
  pipeline::SegmentCheckpoint cp;
  cp.pages = 3;
  state_->put_checkpoints(400, "up", 0, {{cp, 1}}, lease->proof());
  auto all = state_->read_versions();
  ASSERT_EQ(all.size(), 400u);
  EXPECT_EQ(all.at(400).counters.written, 400);
  EXPECT_EQ(all.begin()->first, 1);
  auto history = state_->read_history();  // what status reads: versions and lock, no checkpoints
  EXPECT_EQ(history.versions.size(), 400u);
  ASSERT_TRUE(history.lock);
  EXPECT_EQ(history.lock->owner, lease->proof().owner);
}

}  // namespace
}  // namespace dynamorph::migrations
