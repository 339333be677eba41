#include "tests/support/s3_client.h"

#include "dynamo/credentials.h"
#include "tests/support/test_env.h"

namespace dynamorph::test {

std::unique_ptr<dynamo::S3Client> make_s3_client(const std::string& endpoint,
                                                 const std::string& access_key,
                                                 dynamo::RetryPolicy retry) {
  dynamo::S3ClientOptions o;
  o.endpoint = endpoint.empty() ? s3_endpoint() : endpoint;
  o.region = "us-east-1";
  o.path_style = true;
  const std::string key = access_key.empty() ? s3_access_key() : access_key;
  o.credentials = dynamo::static_credentials(
      dynamo::Credentials{key, s3_access_key(), "", std::nullopt}, "test S3 server key");
  o.retry = retry;
  return std::make_unique<dynamo::S3Client>(std::move(o));
}

}  // namespace dynamorph::test
