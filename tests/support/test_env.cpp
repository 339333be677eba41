#include "tests/support/test_env.h"

#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <stdexcept>

namespace dynamorph::test {
namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

struct OwnServer {
  std::string script;  // scripts/dynamodb-local.sh or scripts/s3-server.sh
  std::string dir;
  ~OwnServer() {
    if (!dir.empty()) {
      std::string cmd = source_path(script) + " stop " + dir;
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not stop %s\n", dir.c_str());
    }
  }
};

// The endpoint of a fixture's server: from `endpoint_var`, else the port file in `dir_var`'s
// folder, else a server of this process's own started with `script` (stopped at exit).
std::string fixture_endpoint(OwnServer& own, const char* endpoint_var, const char* dir_var,
                             const std::string& script, const std::string& own_dir) {
  if (const char* e = std::getenv(endpoint_var); e && *e) return e;
  std::string dir;
  if (const char* d = std::getenv(dir_var); d && *d) {
    dir = d;
  } else {
    dir = own_dir;
    own.script = script;
    own.dir = dir;
    std::string cmd = source_path(script) + " start " + dir + " >/dev/null";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("could not start " + script);
  }
  std::string port = read_first_line(dir + "/port");
  if (port.empty()) throw std::runtime_error("no server port in " + dir);
  return "http://127.0.0.1:" + port;
}

}  // namespace

std::string source_dir() { return DYNAMORPH_SOURCE_DIR; }
std::string source_path(const std::string& rel) { return source_dir() + "/" + rel; }

std::string dynamorph_bin() {
  if (const char* b = std::getenv("DYNAMORPH_BIN")) return b;
  return std::string(DYNAMORPH_BINARY_DIR) + "/cli/dynamorph";
}

std::string ddb_endpoint() {
  static std::once_flag once;
  static std::string endpoint;
  static OwnServer own;
  std::call_once(once, [] {
    endpoint = fixture_endpoint(
        own, "DYNAMORPH_TEST_ENDPOINT", "DYNAMORPH_TEST_DDB_DIR", "scripts/dynamodb-local.sh",
        std::string(DYNAMORPH_BINARY_DIR) + "/ddb-local-" + std::to_string(::getpid()));
  });
  return endpoint;
}

std::string s3_endpoint() {
  static std::once_flag once;
  static std::string endpoint;
  static OwnServer own;
  std::call_once(once, [] {
    endpoint = fixture_endpoint(
        own, "DYNAMORPH_TEST_S3_ENDPOINT", "DYNAMORPH_TEST_S3_DIR", "scripts/s3-server.sh",
        std::string(DYNAMORPH_BINARY_DIR) + "/s3-server-" + std::to_string(::getpid()));
  });
  return endpoint;
}

std::string s3_bucket() { return "dynamorph-test"; }
std::string s3_access_key() { return "S3RVER"; }

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

unsigned test_seed(const std::string& what) {
  unsigned seed = 0;
  if (const char* v = std::getenv("DYNAMORPH_TEST_SEED"); v && *v)
    seed = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
  else
    seed = std::random_device{}();
  std::fprintf(stderr, "%s: seed %u (DYNAMORPH_TEST_SEED=%u repeats it)\n", what.c_str(), seed,
               seed);
  return seed;
}

}  // namespace dynamorph::test
