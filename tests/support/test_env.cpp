#include "tests/support/test_env.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <unistd.h>

namespace dynamorph::test {
namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

struct OwnServer {
  std::string dir;
  ~OwnServer() {
    if (!dir.empty()) {
      std::string cmd = source_path("scripts/dynamodb-local.sh") + " stop " + dir;
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not stop %s\n", dir.c_str());
    }
  }
};

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
    if (const char* e = std::getenv("DYNAMORPH_TEST_ENDPOINT")) {
      endpoint = e;
      return;
    }
    std::string dir;
    if (const char* d = std::getenv("DYNAMORPH_TEST_DDB_DIR")) {
      dir = d;
    } else {
      dir = std::string(DYNAMORPH_BINARY_DIR) + "/ddb-local-" + std::to_string(::getpid());
      own.dir = dir;
      std::string cmd = source_path("scripts/dynamodb-local.sh") + " start " + dir + " >/dev/null";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("could not start DynamoDB Local");
    }
    std::string port = read_first_line(dir + "/port");
    if (port.empty()) throw std::runtime_error("no DynamoDB Local port in " + dir);
    endpoint = "http://127.0.0.1:" + port;
  });
  return endpoint;
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

}  // namespace dynamorph::test
