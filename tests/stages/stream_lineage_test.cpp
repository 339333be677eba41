// The stream source's shard lineage: which shards a lane may start, children only once their
// parent is done (in whatever lane), and a stable lane per shard.
#include <gtest/gtest.h>

#include "stages/stream_source.h"

using namespace dynamorph::stages;

namespace {

TEST(StreamLineage, ChildrenWaitForTheirParents) {
  // s1 → s2 → s3 (a chain), s4 alone; one lane sees them all.
  std::vector<ShardInfo> shards{{"s1", ""}, {"s2", "s1"}, {"s3", "s2"}, {"s4", ""}};
  EXPECT_EQ(adoptable_shards(shards, {}, {}, 0, 1), (std::vector<std::string>{"s1", "s4"}));
  // s1 started, not done: s2 waits.
  EXPECT_EQ(adoptable_shards(shards, {"s1", "s4"}, {}, 0, 1), (std::vector<std::string>{}));
  EXPECT_EQ(adoptable_shards(shards, {"s1", "s4"}, {"s1"}, 0, 1), (std::vector<std::string>{"s2"}));
  // A parent neither listed nor known is older than the stream's retention: no wait.
  std::vector<ShardInfo> trimmed{{"s2", "s1"}};
  EXPECT_EQ(adoptable_shards(trimmed, {}, {}, 0, 1), (std::vector<std::string>{"s2"}));
  // A parent no longer listed but still being read (known, not done): wait.
  EXPECT_EQ(adoptable_shards(trimmed, {"s1"}, {}, 0, 1), (std::vector<std::string>{}));
}

TEST(StreamLineage, EachShardHasOneStableLane) {
  std::vector<ShardInfo> shards;
  for (int i = 0; i < 40; ++i) shards.push_back({"shardId-" + std::to_string(i), ""});
  std::vector<int> seen(4, 0);
  for (const auto& s : shards) {
    int lane = lane_of_shard(s.id, 4);
    ASSERT_GE(lane, 0);
    ASSERT_LT(lane, 4);
    EXPECT_EQ(lane, lane_of_shard(s.id, 4));
    ++seen[static_cast<std::size_t>(lane)];
  }
  std::size_t total = 0;
  for (int lane = 0; lane < 4; ++lane) {
    auto mine = adoptable_shards(shards, {}, {}, lane, 4);
    for (const auto& id : mine) EXPECT_EQ(lane_of_shard(id, 4), lane);
    EXPECT_EQ(static_cast<int>(mine.size()), seen[static_cast<std::size_t>(lane)]);
    EXPECT_GT(mine.size(), 0u);  // 40 shards spread over every lane
    total += mine.size();
  }
  EXPECT_EQ(total, shards.size());
  // A child in another lane than its parent still waits for it.
  std::string parent = shards[0].id, child;
  for (const auto& s : shards)
    if (lane_of_shard(s.id, 4) != lane_of_shard(parent, 4)) child = s.id;
  std::vector<ShardInfo> pair{{parent, ""}, {child, parent}};
  EXPECT_TRUE(adoptable_shards(pair, {parent}, {}, lane_of_shard(child, 4), 4).empty());
  EXPECT_EQ(adoptable_shards(pair, {parent}, {parent}, lane_of_shard(child, 4), 4),
            (std::vector<std::string>{child}));
}

}  // namespace
