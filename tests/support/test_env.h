// Where tests find the DynamoDB Local and the S3 server started by the ctest fixtures, the
// source tree and the dynamorph binary. Thread-safe (reads only).
#pragma once

#include <string>

namespace dynamorph::test {

// http://127.0.0.1:PORT of the fixture's DynamoDB Local; starts one for this process when the
// test runs outside ctest (and stops it at exit).
std::string ddb_endpoint();
// http://127.0.0.1:PORT of the fixture's S3 server (scripts/s3-server.sh; DYNAMORPH_TEST_S3_DIR
// or DYNAMORPH_TEST_S3_ENDPOINT); starts one for this process when run outside ctest.
std::string s3_endpoint();
std::string s3_bucket();      // the bucket that exists on it: "dynamorph-test"
std::string s3_access_key();  // the one key it accepts: "S3RVER" (secret "S3RVER")
std::string source_dir();     // the repository root
std::string source_path(const std::string& rel);  // source_dir() + "/" + rel
std::string dynamorph_bin();                      // path of the built dynamorph executable
// A table name unique to this process and call, so tests never collide on a shared server.
std::string unique_name(const std::string& prefix);
// The seed of a test's random choices: DYNAMORPH_TEST_SEED when set (to repeat a failure), a
// fresh one otherwise. Printed on stderr with `what`, so that a failing run can be repeated.
unsigned test_seed(const std::string& what);

}  // namespace dynamorph::test
