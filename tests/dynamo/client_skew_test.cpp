// Clock-skew correction: when DynamoDB rejects a request because this machine's clock is off,
// the client learns the offset from the response's Date header and re-signs at once.
#include <gtest/gtest.h>

#include "tests/support/ddb_client.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/test_env.h"

using namespace dynamorph;

namespace {

TEST(ClockSkew, LearnsTheServersClockAndRetries) {
  test::FaultProxy proxy(test::ddb_endpoint());
  proxy.set_rules(R"json([{"op": "ListTables", "fault": "error", "status": 400, "count": 1,
      "type": "com.amazon.coral.service#InvalidSignatureException",
      "message": "Signature expired: 20261122T010000Z is now earlier than 20261122T020000Z (20261122T022000Z - 15 min.)",
      "date_offset_s": 3600}])json");
  auto client = test::make_client(proxy.endpoint());
  auto r = client->list_tables();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto skew = client->clock_skew();
  EXPECT_GT(skew, std::chrono::minutes(59));
  EXPECT_LT(skew, std::chrono::minutes(61));
  EXPECT_EQ(client->stats().retries.load(), 1u);
}

TEST(ClockSkew, OtherSignatureErrorsAreNotRetried) {
  test::FaultProxy proxy(test::ddb_endpoint());
  proxy.set_rules(R"json([{"op": "ListTables", "fault": "error", "status": 400, "count": 1,
      "type": "com.amazon.coral.service#UnrecognizedClientException",
      "message": "The security token included in the request is invalid."}])json");
  auto client = test::make_client(proxy.endpoint());
  auto r = client->list_tables();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().type, "UnrecognizedClientException");
  EXPECT_EQ(r.error().attempts, 1);
  EXPECT_EQ(r.error().to_string(),
            "ListTables: UnrecognizedClientException: The security token included in the request is invalid. "
            "(HTTP 400, request id " + r.error().request_id + ")");
  EXPECT_EQ(client->clock_skew(), std::chrono::milliseconds(0));
}

}  // namespace
