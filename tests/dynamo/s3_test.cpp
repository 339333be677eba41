// The S3 client against a real S3 implementation on loopback (the s3 fixture's s3rver): put and
// get, byte ranges, paged listings, and the errors the server gives back.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "dynamo/s3.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/s3_client.h"
#include "tests/support/test_env.h"

using namespace dynamorph;
using namespace dynamorph::dynamo;

namespace {

class S3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = test::make_s3_client();
    bucket_ = test::s3_bucket();
    prefix_ = test::unique_name("s3test") + "/";
  }

  std::string put(const std::string& key, std::string body) {
    auto r = client_->put_object(bucket_, prefix_ + key, std::move(body));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? r.value() : std::string();
  }

  std::unique_ptr<S3Client> client_;
  std::string bucket_;
  std::string prefix_;
};

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen() & 0xFF);
  return out;
}

TEST_F(S3Test, PutThenGetReturnsTheSameBytes) {
  const std::string body = random_bytes(100000, 1);
  const std::string etag = put("data/blob.bin", body);
  // s3rver's ETag, like S3's for a single-part upload, is the quoted MD5 in hex.
  EXPECT_EQ(etag.size(), 34u);
  EXPECT_EQ(etag.front(), '"');
  auto r = client_->get_object(bucket_, prefix_ + "data/blob.bin");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value().body, body);
  EXPECT_EQ(r.value().object_size, body.size());
  EXPECT_EQ(r.value().etag, etag);
}

TEST_F(S3Test, KeysThatNeedEncoding) {
  const std::string key = "odd keys/a b+c(1)$&'=;,@~!*.json.gz";
  put(key, "hello");
  auto r = client_->get_object(bucket_, prefix_ + key);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value().body, "hello");
  auto list = client_->list_objects(bucket_, prefix_ + "odd keys/");
  ASSERT_TRUE(list.ok()) << list.error().to_string();
  ASSERT_EQ(list.value().size(), 1u);
  EXPECT_EQ(list.value()[0].key, prefix_ + key);
  EXPECT_EQ(list.value()[0].size, 5u);
}

TEST_F(S3Test, EmptyObject) {
  put("empty", "");
  auto r = client_->get_object(bucket_, prefix_ + "empty");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value().body, "");
  EXPECT_EQ(r.value().object_size, 0u);
}

TEST_F(S3Test, RangedGetsReassembleTheObject) {
  const std::string body = random_bytes(5 * 1024 * 1024 + 123, 2);
  const std::string etag = put("big.bin", body);
  const std::uint64_t chunk = 1 << 20;
  std::string joined;
  std::uint64_t offset = 0;
  int requests = 0;
  while (offset < body.size()) {
    auto r =
        client_->get_object_range(bucket_, prefix_ + "big.bin", offset, offset + chunk - 1, etag);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r.value().object_size, body.size());
    EXPECT_EQ(r.value().body.size(), std::min<std::uint64_t>(chunk, body.size() - offset));
    joined += r.value().body;
    offset += r.value().body.size();
    ++requests;
  }
  EXPECT_EQ(requests, 6);
  EXPECT_EQ(joined, body);

  auto mid = client_->get_object_range(bucket_, prefix_ + "big.bin", 10, 19);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid.value().body, body.substr(10, 10));

  auto past =
      client_->get_object_range(bucket_, prefix_ + "big.bin", body.size() + 10, body.size() + 20);
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().type, "InvalidRange");
  EXPECT_EQ(past.error().http_status, 416);
}

TEST_F(S3Test, ListingPagesThroughEveryKeyInOrder) {
  std::set<std::string> expected;
  for (int i = 0; i < 23; ++i) {
    const std::string key = "list/item-" + std::to_string(100 + i);
    put(key, std::to_string(i));
    expected.insert(prefix_ + key);
  }
  put("other/x", "x");  // outside the listed prefix

  auto first = client_->list_objects_page(bucket_, prefix_ + "list/", {}, 10);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(first.value().objects.size(), 10u);
  EXPECT_FALSE(first.value().next_token.empty());

  auto all = client_->list_objects(bucket_, prefix_ + "list/", 10);
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  std::vector<std::string> keys;
  for (const auto& o : all.value()) keys.push_back(o.key);
  EXPECT_EQ(keys, std::vector<std::string>(expected.begin(), expected.end()));
  EXPECT_GE(client_->stats().requests.load(), 3u + 23u);

  auto none = client_->list_objects(bucket_, prefix_ + "nothing-here/");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.value().empty());
}

TEST_F(S3Test, MissingKeyNamesTheObject) {
  auto r = client_->get_object(bucket_, prefix_ + "no/such/key.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "NoSuchKey");
  EXPECT_EQ(r.error().http_status, 404);
  EXPECT_EQ(r.error().attempts, 1);
  EXPECT_EQ(r.error().to_string(),
            "GetObject s3://dynamorph-test/" + prefix_ +
                "no/such/key.json: NoSuchKey: The specified key does not exist. (HTTP 404)");
}

TEST_F(S3Test, MissingBucket) {
  auto r = client_->list_objects_page("no-such-bucket-here", "x/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "NoSuchBucket");
  EXPECT_FALSE(r.error().retryable());
}

TEST_F(S3Test, UnknownAccessKeyIsRefused) {
  auto bad = test::make_s3_client({}, "AKIANOTKNOWNHERE0000");
  auto r = bad->get_object(bucket_, prefix_ + "whatever");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "InvalidAccessKeyId");
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().attempts, 1);
  auto p = bad->put_object(bucket_, prefix_ + "whatever", "x");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().type, "InvalidAccessKeyId");
}

// 5xx answers, throttling and dropped connections (a fault-injecting proxy in front of the
// server) are retried with back-off; what arrives is still exactly the object.
TEST_F(S3Test, RetriesServerErrorsThrottlingAndResets) {
  const std::string body = random_bytes(3 * 1024 * 1024 + 7, 3);
  put("faulty.bin", body);
  test::FaultProxy proxy(test::s3_endpoint());
  RetryPolicy fast;
  fast.base = std::chrono::milliseconds(1);
  fast.throttle_base = std::chrono::milliseconds(1);
  auto client = test::make_s3_client(proxy.endpoint(), {}, fast);

  proxy.set_rules(R"([{"fault":"http500","count":2},
                      {"fault":"error","status":503,"type":"SlowDown","count":1},
                      {"fault":"drop_before","count":1},{"fault":"drop_after","rst":true,"count":1}])");
  auto whole = client->get_object(bucket_, prefix_ + "faulty.bin");
  ASSERT_TRUE(whole.ok()) << whole.error().to_string();
  EXPECT_EQ(whole.value().body, body);
  EXPECT_NE(proxy.stats_json().find("\"total_faults\": 5"), std::string::npos)
      << proxy.stats_json();
  // libcurl itself re-sends a request whose reused connection closed before any answer
  // (http_transport.h), so the drop before forwarding may not count as the client's retry.
  EXPECT_GE(client->stats().retries.load(), 4u);
  EXPECT_LE(client->stats().retries.load(), 5u);
  EXPECT_EQ(client->stats().throttles.load(), 1u);

  // Ranged reads with a fault on about a third of the requests.
  proxy.set_rules(R"([{"fault":"http503","probability":0.2,"seed":7},
                      {"fault":"drop_before","probability":0.15,"seed":8}])");
  std::string joined;
  while (joined.size() < body.size()) {
    auto r = client->get_object_range(bucket_, prefix_ + "faulty.bin", joined.size(),
                                      joined.size() + 256 * 1024 - 1);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    joined += r.value().body;
  }
  EXPECT_EQ(joined, body);
  EXPECT_GT(client->stats().retries.load(), 5u);

  // A 4xx is the answer, not a reason to try again.
  proxy.set_rules(R"([{"fault":"error","status":403,"type":"AccessDenied","count":1}])");
  const auto retries = client->stats().retries.load();
  auto denied = client->get_object(bucket_, prefix_ + "faulty.bin");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().http_status, 403);
  EXPECT_EQ(client->stats().retries.load(), retries);
}

TEST_F(S3Test, NothingListeningGivesUpQuickly) {
  RetryPolicy fast;
  fast.base = std::chrono::milliseconds(1);
  // Port 9 (discard): nothing listens there on this machine.
  auto client = test::make_s3_client("http://127.0.0.1:9", {}, fast);
  auto r = client->get_object(bucket_, "k");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "ConnectionRefused");
  EXPECT_EQ(r.error().attempts, 3);
  EXPECT_NE(r.error().to_string().find("no response from S3 (ConnectionRefused)"),
            std::string::npos);
}

}  // namespace
