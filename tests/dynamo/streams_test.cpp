// DynamoDB Streams against a real DynamoDB Local (which serves them on its own endpoint, under
// the DynamoDBStreams_20120810 target prefix): the stream a table gets from update_stream,
// DescribeStream with its shards, every iterator type and GetRecords with each event's images;
// plus the endpoint rules and the parsers on fixed answers.
#include <gtest/gtest.h>

#include <map>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/streams.h"
#include "tests/support/ddb_client.h"
#include "tests/support/test_env.h"

using namespace dynamorph;
using namespace dynamorph::dynamo;
using dynamorph::test::N;
using dynamorph::test::S;

namespace {

GetEnv env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(StreamsEndpoint, FollowsTheContract) {
  EXPECT_EQ(
      resolve_streams_endpoint("https://dynamodb.eu-west-1.amazonaws.com", "eu-west-1", env({})),
      "https://streams.dynamodb.eu-west-1.amazonaws.com");
  EXPECT_EQ(resolve_streams_endpoint("https://dynamodb.cn-north-1.amazonaws.com.cn", "cn-north-1",
                                     env({})),
            "https://streams.dynamodb.cn-north-1.amazonaws.com.cn");
  // A local server serves Streams itself.
  EXPECT_EQ(resolve_streams_endpoint("http://127.0.0.1:8000", "us-east-1", env({})),
            "http://127.0.0.1:8000");
  // The variable wins over both.
  EXPECT_EQ(resolve_streams_endpoint(
                "http://127.0.0.1:8000", "us-east-1",
                env({{"AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:9001/"}})),
            "http://127.0.0.1:9001");
  EXPECT_THROW(resolve_streams_endpoint("http://127.0.0.1:8000", "us-east-1",
                                        env({{"AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "ftp://x"}})),
               dynamorph::ConfigError);
  ClientOptions o;
  o.endpoint = "http://127.0.0.1:8000";
  o.region = "us-east-1";
  auto s = streams_client_options(o, env({}));
  EXPECT_EQ(s.target_prefix, "DynamoDBStreams_20120810");
  EXPECT_EQ(s.endpoint, "http://127.0.0.1:8000");
}

TEST(StreamsParse, RecordsWithImagesAndTheEndOfAShard) {
  std::string body = R"({"Records":[
    {"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1796171580.5,
      "Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"n":{"N":"1.50"}},
      "SequenceNumber":"000000000000000000001","StreamViewType":"NEW_AND_OLD_IMAGES"}},
    {"eventName":"REMOVE","dynamodb":{"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}},
      "SequenceNumber":"000000000000000000002"}}],"NextShardIterator":null})";
  pad_for_parsing(body);
  RecordsPage p = parse_get_records(body);
  ASSERT_EQ(p.records.size(), 2u);
  EXPECT_FALSE(p.next_iterator);  // closed and read to its end
  EXPECT_EQ(p.records[0].event, StreamRecord::Event::Insert);
  EXPECT_EQ(p.records[0].created_ms, 1796171580500);
  ASSERT_TRUE(p.records[0].new_image);
  EXPECT_EQ(to_debug_string(*p.records[0].new_image), R"({"pk":{"S":"a"},"n":{"N":"1.50"}})");
  EXPECT_FALSE(p.records[0].old_image);
  EXPECT_EQ(p.records[1].event, StreamRecord::Event::Remove);
  EXPECT_TRUE(p.records[1].old_image);
  EXPECT_EQ(p.records[1].sequence, "000000000000000000002");

  std::string d = R"({"StreamDescription":{"StreamArn":"arn:x","StreamStatus":"ENABLED",
    "StreamViewType":"NEW_IMAGE","TableName":"t","Shards":[
    {"ShardId":"s1","SequenceNumberRange":{"StartingSequenceNumber":"1","EndingSequenceNumber":"9"}},
    {"ShardId":"s2","ParentShardId":"s1","SequenceNumberRange":{"StartingSequenceNumber":"10"}}],
    "LastEvaluatedShardId":"s2"}})";
  pad_for_parsing(d);
  auto [desc, last] = parse_describe_stream(d);
  EXPECT_EQ(last, "s2");
  ASSERT_EQ(desc.shards.size(), 2u);
  EXPECT_TRUE(desc.shards[0].closed());
  EXPECT_FALSE(desc.shards[1].closed());
  EXPECT_EQ(desc.shards[1].parent, "s1");
  EXPECT_EQ(desc.view_type, "NEW_IMAGE");
}

TEST(StreamsParse, SequenceNumbersCompareAsNumbers) {
  EXPECT_LT(compare_sequence("9", "10"), 0);
  EXPECT_EQ(compare_sequence("00010", "10"), 0);
  EXPECT_GT(compare_sequence("100000000000000000000000000000000000001",
                             "99999999999999999999999999999999999999"),
            0);
}

class StreamsLocal : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = test::make_client();
    table_ = test::unique_name("streams");
    test::create_simple_table(*client_, table_, false);
  }
  void TearDown() override { test::drop_table(*client_, table_); }
  std::unique_ptr<Client> client_;
  std::string table_;
};

TEST_F(StreamsLocal, IteratorsAndRecords) {
  auto t = client_->update_stream(table_, true, "NEW_AND_OLD_IMAGES");
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  auto d = client_->describe_table(table_);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d.value().stream_view_type, "NEW_AND_OLD_IMAGES");
  const std::string arn = d.value().latest_stream_arn;
  ASSERT_FALSE(arn.empty());

  StreamsClient streams(streams_client_options(client_->options()));
  auto put = [&](const std::string& k, const std::string& v) {
    PutItemRequest p;
    p.table = table_;
    p.item = Item{{"PK", S(k)}, {"v", N(v)}};
    ASSERT_TRUE(client_->put_item(p).ok());
  };
  put("a", "1");
  put("a", "2");
  DeleteItemRequest del;
  del.table = table_;
  del.key = Item{{"PK", S("a")}};
  ASSERT_TRUE(client_->delete_item(del).ok());

  auto desc = streams.describe(arn);
  ASSERT_TRUE(desc.ok()) << desc.error().to_string();
  EXPECT_EQ(desc.value().status, "ENABLED");
  ASSERT_FALSE(desc.value().shards.empty());
  const auto& shard = desc.value().shards.front();

  auto read_all = [&](IteratorType type, const std::string& seq) {
    auto it = streams.iterator(arn, shard.id, type, seq);
    EXPECT_TRUE(it.ok()) << it.error().to_string();
    auto r = streams.get_records_raw(it.value(), 1000);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return parse_get_records(r.value().body);
  };
  auto all = read_all(IteratorType::TrimHorizon, "");
  ASSERT_EQ(all.records.size(), 3u);
  EXPECT_TRUE(all.next_iterator);  // open shard
  EXPECT_EQ(all.records[0].event, StreamRecord::Event::Insert);
  EXPECT_EQ(all.records[1].event, StreamRecord::Event::Modify);
  EXPECT_EQ(*all.records[1].old_image, (Item{{"PK", S("a")}, {"v", N("1")}}));
  EXPECT_EQ(*all.records[1].new_image, (Item{{"PK", S("a")}, {"v", N("2")}}));
  EXPECT_EQ(all.records[2].event, StreamRecord::Event::Remove);
  EXPECT_FALSE(all.records[2].new_image);
  EXPECT_EQ(to_debug_string(all.records[2].keys), R"({"PK":{"S":"a"}})");

  auto at = read_all(IteratorType::AtSequence, all.records[1].sequence);
  ASSERT_EQ(at.records.size(), 2u);
  EXPECT_EQ(at.records[0].sequence, all.records[1].sequence);
  auto after = read_all(IteratorType::AfterSequence, all.records[1].sequence);
  ASSERT_EQ(after.records.size(), 1u);
  EXPECT_EQ(after.records[0].sequence, all.records[2].sequence);
  auto latest = read_all(IteratorType::Latest, "");
  EXPECT_TRUE(latest.records.empty());

  // Following the NextShardIterator sees what is written later, and nothing twice.
  put("b", "7");
  auto r = streams.get_records_raw(*all.next_iterator, 1000);
  ASSERT_TRUE(r.ok());
  auto more = parse_get_records(r.value().body);
  ASSERT_EQ(more.records.size(), 1u);
  EXPECT_EQ(to_debug_string(more.records[0].keys), R"({"PK":{"S":"b"}})");

  // A shard that is not there.
  auto none =
      streams.iterator(arn, "shardId-00000000000000000000-00000000", IteratorType::TrimHorizon);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().type, "ResourceNotFoundException");

  auto off = client_->update_stream(table_, false, "");
  ASSERT_TRUE(off.ok()) << off.error().to_string();
  auto d2 = client_->describe_table(table_);
  ASSERT_TRUE(d2.ok());
  EXPECT_FALSE(d2.value().stream_view_type);
}

}  // namespace
