// The client against a real DynamoDB Local: every attribute type round-trips, table operations,
// paged and segmented scans, batches, transactions and the errors the server gives back.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "dynamo/client.h"
#include "dynamo/json.h"
#include "tests/support/ddb_client.h"
#include "tests/support/test_env.h"

using namespace dynamorph;
using namespace dynamorph::dynamo;
using dynamorph::test::N;
using dynamorph::test::S;

namespace {

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = test::make_client();
    table_ = test::unique_name("client");
    test::create_simple_table(*client_, table_);
  }
  void TearDown() override { test::drop_table(*client_, table_); }

  Item get(const Item& key) {
    auto r = client_->get_item({table_, key, true});
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() && r.value() ? *r.value() : Item{};
  }

  std::unique_ptr<Client> client_;
  std::string table_;
};

Item every_type_item() {
  Item nested{{"deep", AttributeValue(Map{{"x", AttributeValue(List{N("1"), S("two"), AttributeValue(Null{})})}})}};
  return Item{
      {"PK", S("USER#1")},
      {"SK", S("PROFILE")},
      {"s", S("héllo \"quoted\" \\ back\nline\ttab \x01 ctl ☃ 𝄞")},
      {"n38", N("12345678901234567890123456789012345678")},
      {"nneg", N("-0.000000000000000000000000000000000001")},
      {"nbig", N("9.9999999999999999999999999999999999999E+125")},
      {"nsmall", N("1E-130")},
      {"b", AttributeValue(Binary{std::string("\x00\x01\xff\xfe binary", 12)})},
      {"t", AttributeValue(true)},
      {"f", AttributeValue(false)},
      {"nul", AttributeValue(Null{})},
      {"m", AttributeValue(nested)},
      // DynamoDB Local 1.11 still rejects empty strings anywhere (AWS allows them off-key).
      {"l", AttributeValue(List{AttributeValue(List{}), AttributeValue(Map{}), S(" "), N("0")})},
      {"ss", AttributeValue(StringSet{"a", "b", "☃"})},
      {"ns", AttributeValue(NumberSet{Number::from_canonical("1"), Number::from_canonical("-2.5"), Number::from_canonical("1000")})},
      {"bs", AttributeValue(BinarySet{Binary{"\x01"}, Binary{std::string("\x00", 1)}})},
  };
}

TEST_F(ClientTest, EveryAttributeTypeRoundTrips) {
  Item item = every_type_item();
  auto put = client_->put_item({table_, item, {}});
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  Item back = get({{"PK", S("USER#1")}, {"SK", S("PROFILE")}});
  EXPECT_EQ(back, item) << to_debug_string(back);
  // Numbers come back in DynamoDB's canonical text.
  EXPECT_EQ(back.find("nbig")->as<Number>().text(), "999999999999999999999999999999999999990000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
  EXPECT_EQ(back.find("nneg")->as<Number>().text(), "-0.000000000000000000000000000000000001");
  EXPECT_EQ(back.find("b")->as<Binary>().bytes, std::string("\x00\x01\xff\xfe binary", 12));
  EXPECT_GT(put.value().consumed_capacity, 0);
}

TEST_F(ClientTest, EmptySetsAreRejectedByTheServer) {
  Item item{{"PK", S("a")}, {"SK", S("b")}, {"ss", AttributeValue(StringSet{})}};
  auto put = client_->put_item({table_, item, {}});
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().type, "ValidationException");
  EXPECT_EQ(put.error().http_status, 400);
  EXPECT_EQ(put.error().attempts, 1) << "validation errors are never retried";
  EXPECT_NE(put.error().message.find("empty"), std::string::npos) << put.error().message;
}

TEST_F(ClientTest, ItemsNearTheSizeLimit) {
  // 400 KB counts names and values; leave room for the keys and the name.
  std::string big(400 * 1024 - 64, 'x');
  Item ok{{"PK", S("big")}, {"SK", S("1")}, {"payload", S(big)}};
  ASSERT_LT(item_size(ok), 400u * 1024);
  auto put = client_->put_item({table_, ok, {}});
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  EXPECT_EQ(get({{"PK", S("big")}, {"SK", S("1")}}), ok);

  Item too_big{{"PK", S("big")}, {"SK", S("2")}, {"payload", S(std::string(400 * 1024 + 10, 'y'))}};
  auto fail = client_->put_item({table_, too_big, {}});
  ASSERT_FALSE(fail.ok());
  EXPECT_EQ(fail.error().type, "ValidationException");
  EXPECT_NE(fail.error().message.find("size"), std::string::npos) << fail.error().message;
}

TEST_F(ClientTest, ConditionalFailureIsTypedAndNotRetried) {
  Item item{{"PK", S("c")}, {"SK", S("1")}, {"v", N("1")}};
  ASSERT_TRUE(client_->put_item({table_, item, {}}).ok());
  WireExpression cond{"attribute_not_exists(PK)", {}, {}};
  auto r = client_->put_item({table_, item, cond});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "ConditionalCheckFailedException");
  EXPECT_TRUE(r.error().conditional_check_failed());
  EXPECT_FALSE(r.error().retryable());
  EXPECT_EQ(r.error().attempts, 1);
}

TEST_F(ClientTest, UpdateDeleteAndReturnValues) {
  ASSERT_TRUE(client_->put_item({table_, {{"PK", S("u")}, {"SK", S("1")}, {"visits", N("41")}}, {}}).ok());
  UpdateItemRequest u;
  u.table = table_;
  u.key = {{"PK", S("u")}, {"SK", S("1")}};
  u.update = {"SET visits = visits + :one, #n = :name", {{"#n", "name"}}, {{":one", N("1")}, {":name", S("Ann")}}};
  u.condition = {"visits = :was", {}, {{":was", N("41")}}};
  u.return_values = "ALL_NEW";
  auto r = client_->update_item(u);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_TRUE(r.value().attributes.has_value());
  EXPECT_EQ(*r.value().attributes, (Item{{"PK", S("u")}, {"SK", S("1")}, {"visits", N("42")}, {"name", S("Ann")}}));
  auto d = client_->delete_item({table_, {{"PK", S("u")}, {"SK", S("1")}}, {}});
  ASSERT_TRUE(d.ok());
  auto g = client_->get_item({table_, {{"PK", S("u")}, {"SK", S("1")}}, true});
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(g.value().has_value());
}

TEST_F(ClientTest, SegmentedPagedScanSeesEveryItemOnce) {
  std::vector<BatchWriteEntry> batch;
  std::set<std::string> expected;
  for (int i = 0; i < 600; ++i) {
    std::string pk = "USER#" + std::to_string(i);
    expected.insert(pk);
    batch.push_back({table_, BatchWriteEntry::Kind::Put, {{"PK", S(pk)}, {"SK", S(i % 5 ? "PROFILE" : "PHOTO#1")}, {"i", N(std::to_string(i))}}});
    if (batch.size() == 25) {
      auto r = client_->batch_write(std::move(batch));
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      batch.clear();
    }
  }
  std::multiset<std::string> seen;
  std::int64_t scanned = 0, matched = 0;
  int pages = 0;
  for (int seg = 0; seg < 4; ++seg) {
    ScanRequest r;
    r.table = table_;
    r.segment = seg;
    r.total_segments = 4;
    r.limit = 40;
    r.filter = {"SK = :p", {}, {{":p", S("PROFILE")}}};
    while (true) {
      auto page = client_->scan(r);
      ASSERT_TRUE(page.ok()) << page.error().to_string();
      ++pages;
      scanned += page.value().scanned_count;
      matched += page.value().count;
      EXPECT_EQ(page.value().count, static_cast<std::int64_t>(page.value().items.size()));
      for (auto& item : page.value().items) seen.insert(item.find("PK")->as<std::string>());
      if (!page.value().last_evaluated_key) break;
      r.exclusive_start_key = page.value().last_evaluated_key;
    }
  }
  EXPECT_EQ(scanned, 600);
  EXPECT_EQ(matched, 480);
  EXPECT_EQ(seen.size(), 480u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 480u) << "no item twice";
  EXPECT_GE(pages, 15);
}

TEST_F(ClientTest, QueryAndBatchGet) {
  std::vector<BatchWriteEntry> batch;
  for (int i = 0; i < 20; ++i) {
    batch.push_back({table_, BatchWriteEntry::Kind::Put, {{"PK", S("USER#q")}, {"SK", S("PHOTO#" + std::to_string(100 + i))}}});
  }
  ASSERT_TRUE(client_->batch_write(batch).ok());
  QueryRequest q;
  q.table = table_;
  q.key_condition = {"PK = :pk AND begins_with(SK, :p)", {}, {{":pk", S("USER#q")}, {":p", S("PHOTO#11")}}};
  q.scan_forward = false;
  auto r = client_->query(q);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r.value().items.size(), 10u);
  EXPECT_EQ(r.value().items.front().find("SK")->as<std::string>(), "PHOTO#119");

  // 150 keys → two BatchGetItem requests; 20 exist.
  BatchGetRequest g{table_, {}, true};
  for (int i = 0; i < 150; ++i) g.keys.push_back({{"PK", S("USER#q")}, {"SK", S("PHOTO#" + std::to_string(100 + i))}});
  auto got = client_->batch_get(g);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(got.value().size(), 20u);
}

TEST_F(ClientTest, TransactionIsAtomicAndTokenMakesRetriesIdempotent) {
  ASSERT_TRUE(client_->put_item({table_, {{"PK", S("t")}, {"SK", S("1")}, {"n", N("1")}}, {}}).ok());
  std::vector<TransactAction> actions(2);
  actions[0].kind = TransactAction::Kind::Update;
  actions[0].table = table_;
  actions[0].item = {{"PK", S("t")}, {"SK", S("1")}};
  actions[0].update = {"SET n = n + :one", {}, {{":one", N("1")}}};
  actions[1].kind = TransactAction::Kind::Put;
  actions[1].table = table_;
  actions[1].item = {{"PK", S("t")}, {"SK", S("2")}};
  std::string token = "dynamorph-test-token-" + table_;
  ASSERT_TRUE(client_->transact_write(actions, token).ok());
  // The same token again: DynamoDB treats it as the same transaction, not a second increment.
  auto again = client_->transact_write(actions, token);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(get({{"PK", S("t")}, {"SK", S("1")}}).find("n")->as<Number>().text(), "2");

  // A cancelled transaction changes nothing and says why, per action.
  actions[1].condition = {"attribute_not_exists(PK)", {}, {}};
  auto cancelled = client_->transact_write(actions);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.error().type, "TransactionCanceledException");
  EXPECT_EQ(cancelled.error().cancellation_reasons, (std::vector<std::string>{"None", "ConditionalCheckFailed"}));
  EXPECT_TRUE(cancelled.error().conditional_check_failed());
  EXPECT_EQ(get({{"PK", S("t")}, {"SK", S("1")}}).find("n")->as<Number>().text(), "2");
}

TEST(ClientTables, CreateDescribeIndexesTtlListDelete) {
  auto client = test::make_client();
  std::string table = test::unique_name("tables");
  CreateTableRequest r;
  r.table = table;
  r.partition_key = {"id", AttrType::S};
  r.sort_key = KeyAttribute{"created", AttrType::N};
  r.provisioned = Throughput{5, 7};
  IndexDefinition gsi{"by_author", {"author", AttrType::S}, KeyAttribute{"created", AttrType::N}, {}, std::nullopt};
  r.global_indexes.push_back(gsi);
  IndexDefinition lsi{"by_title", {"id", AttrType::S}, KeyAttribute{"title", AttrType::S},
                      {Projection::Kind::Include, {"summary"}}, std::nullopt};
  r.local_indexes.push_back(lsi);
  auto c = client->create_table(r);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  auto d = client->wait_until_active(table, std::chrono::seconds(30));
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_EQ(d.value().name, table);
  EXPECT_EQ(d.value().partition_key, (KeyAttribute{"id", AttrType::S}));
  EXPECT_EQ(d.value().sort_key, (KeyAttribute{"created", AttrType::N}));
  EXPECT_EQ(d.value().provisioned, (Throughput{5, 7}));
  ASSERT_EQ(d.value().global_indexes.size(), 1u);
  EXPECT_EQ(d.value().global_indexes[0].name, "by_author");
  EXPECT_EQ(d.value().global_indexes[0].partition_key.name, "author");
  ASSERT_EQ(d.value().local_indexes.size(), 1u);
  EXPECT_EQ(d.value().local_indexes[0].projection.kind, Projection::Kind::Include);
  EXPECT_EQ(d.value().local_indexes[0].projection.non_key_attributes, std::vector<std::string>{"summary"});

  // Add then remove a GSI.
  GlobalIndexUpdate add{GlobalIndexUpdate::Kind::Create, {"by_tag", {"tag", AttrType::S}, std::nullopt, {Projection::Kind::KeysOnly, {}}, Throughput{1, 1}}};
  auto u = client->update_table(table, {add});
  ASSERT_TRUE(u.ok()) << u.error().to_string();
  auto d2 = client->wait_until_active(table, std::chrono::seconds(30));
  ASSERT_TRUE(d2.ok());
  ASSERT_NE(d2.value().find_global_index("by_tag"), nullptr);
  EXPECT_EQ(d2.value().find_global_index("by_tag")->projection.kind, Projection::Kind::KeysOnly);
  GlobalIndexUpdate del{GlobalIndexUpdate::Kind::Delete, {"by_tag", {}, std::nullopt, {}, std::nullopt}};
  ASSERT_TRUE(client->update_table(table, {del}).ok());
  auto d3 = client->wait_until_active(table, std::chrono::seconds(30));
  ASSERT_TRUE(d3.ok());
  EXPECT_EQ(d3.value().find_global_index("by_tag"), nullptr);

  auto ttl = client->update_ttl(table, "expires", true);
  ASSERT_TRUE(ttl.ok()) << ttl.error().to_string();
  auto dt = client->describe_ttl(table);
  ASSERT_TRUE(dt.ok());
  EXPECT_EQ(dt.value().status, "ENABLED");
  EXPECT_EQ(dt.value().attribute, "expires");

  auto list = client->list_tables();
  ASSERT_TRUE(list.ok());
  EXPECT_NE(std::find(list.value().begin(), list.value().end(), table), list.value().end());

  ASSERT_TRUE(client->delete_table(table).ok());
  ASSERT_TRUE(client->wait_until_deleted(table, std::chrono::seconds(30)).ok());
  auto gone = client->describe_table(table);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().type, "ResourceNotFoundException");
  EXPECT_EQ(gone.error().to_string().find('\n'), std::string::npos) << "one line";
}

TEST(ClientErrors, UnreachableEndpointFailsFastWithOneLine) {
  // A port nobody listens on (bound then closed) on loopback.
  auto client = test::make_client("http://127.0.0.1:9");
  auto start = std::chrono::steady_clock::now();
  auto r = client->list_tables();
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "ConnectionRefused");
  EXPECT_LE(r.error().attempts, 3);
  EXPECT_LT(took, std::chrono::seconds(5));
  std::string line = r.error().to_string();
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("ListTables: no response from DynamoDB (ConnectionRefused)"), std::string::npos) << line;
}

TEST(ClientErrors, UnknownHostIsNotRetried) {
  auto client = test::make_client("http://no-such-host.invalid:8000");
  auto r = client->list_tables();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "UnknownHost");
  EXPECT_EQ(r.error().attempts, 1);
}

TEST(ClientErrors, RetryTable) {
  EXPECT_TRUE(classify("ProvisionedThroughputExceededException", 400).throttling);
  EXPECT_TRUE(classify("ThrottlingException", 400).retryable);
  EXPECT_TRUE(classify("RequestLimitExceeded", 400).throttling);
  EXPECT_TRUE(classify("InternalServerError", 500).retryable);
  EXPECT_TRUE(classify("", 503).retryable);
  EXPECT_FALSE(classify("ValidationException", 400).retryable);
  EXPECT_FALSE(classify("ConditionalCheckFailedException", 400).retryable);
  EXPECT_FALSE(classify("ResourceNotFoundException", 400).retryable);
  EXPECT_FALSE(classify("UnrecognizedClientException", 400).retryable);
  EXPECT_FALSE(classify("AccessDeniedException", 400).retryable);
  EXPECT_TRUE(classify("ConnectionReset", 0).retryable);
  EXPECT_FALSE(classify("UnknownHost", 0).retryable);
}

TEST(ClientErrors, ServiceErrorParsing) {
  HttpResponse r;
  r.status = 400;
  r.request_id = "RID";
  r.body = R"({"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]"})";
  pad_for_parsing(r.body);
  ServiceError e = parse_service_error("TransactWriteItems", r);
  EXPECT_EQ(e.type, "TransactionCanceledException");
  EXPECT_EQ(e.cancellation_reasons, (std::vector<std::string>{"None", "ConditionalCheckFailed"}));
  EXPECT_EQ(e.request_id, "RID");
  r.status = 503;
  r.body = "<html>Service Unavailable</html>";
  pad_for_parsing(r.body);
  e = parse_service_error("Scan", r);
  EXPECT_TRUE(e.retryable());
  EXPECT_EQ(e.message, "<html>Service Unavailable</html>");
}

}  // namespace
