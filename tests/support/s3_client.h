// A dynamo::S3Client for tests, pointed at the fixture's S3 server with the key it accepts.
// Thread-safe as S3Client is.
#pragma once

#include <memory>
#include <string>

#include "dynamo/s3.h"

namespace dynamorph::test {

// Empty arguments: the fixture's endpoint and its access key (S3RVER / S3RVER).
std::unique_ptr<dynamo::S3Client> make_s3_client(const std::string& endpoint = {},
                                                 const std::string& access_key = {},
                                                 dynamo::RetryPolicy retry = {});

}  // namespace dynamorph::test
