// What the client trusts and where it may send signed requests: loopback endpoints, the refusal
// of plain http elsewhere, and where the CA bundle comes from (AWS_CA_BUNDLE, then the profile).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "dynamo/aws_config.h"
#include "dynamo/errors.h"

namespace dynamorph::dynamo {
namespace {

namespace fs = std::filesystem;

TEST(LoopbackEndpoint, LoopbackHostsOnly) {
  for (const char* url : {"http://127.0.0.1:8000", "http://127.255.0.9", "HTTP://LOCALHOST:1/x",
                          "http://localhost", "http://[::1]:8000", "https://[0:0:0:0:0:0:0:1]/",
                          "http://user@127.0.0.1:80"}) {
    EXPECT_TRUE(loopback_endpoint(url)) << url;
  }
  for (const char* url : {"http://128.0.0.1", "http://0.0.0.0:8000", "http://192.0.2.1:9",
                          "http://127.0.0.1.example.com", "http://localhost.example.com",
                          "http://[2001:db8::1]:8000", "http://127.0.0.1@192.0.2.1/",
                          "https://dynamodb.us-east-1.amazonaws.com", "http://10.0.0.1"}) {
    EXPECT_FALSE(loopback_endpoint(url)) << url;
  }
}

TEST(CheckPlainHttp, RefusesPlainHttpAwayFromLoopbackUnlessAllowed) {
  EXPECT_NO_THROW(check_plain_http("http://127.0.0.1:8000", "the DynamoDB endpoint", false));
  EXPECT_NO_THROW(check_plain_http("https://192.0.2.1:9", "the DynamoDB endpoint", false));
  EXPECT_NO_THROW(check_plain_http("http://192.0.2.1:9", "the DynamoDB endpoint", true));
  try {
    check_plain_http("HTTP://192.0.2.1:9", "the S3 endpoint", false);
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "the S3 endpoint HTTP://192.0.2.1:9 is plain http to a host that is not "
                 "loopback: signed requests and session tokens would cross the network "
                 "unencrypted; use https://, or set allow_insecure_http: true in dynamorph.yaml");
  }
}

class CaBundle : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dynamorph_ca_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / ".aws");
    env_["HOME"] = dir_.string();
    write("bundle.pem", "-----BEGIN CERTIFICATE-----\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  GetEnv getenv() const {
    return [this](std::string_view name) -> std::optional<std::string> {
      auto it = env_.find(std::string(name));
      if (it == env_.end() || it->second.empty()) return std::nullopt;
      return it->second;
    };
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(CaBundle, NoneByDefault) { EXPECT_EQ(resolve_ca_bundle(getenv()), std::nullopt); }

TEST_F(CaBundle, EnvironmentBeatsTheProfile) {
  write(".aws/config", "[default]\nca_bundle = ~/other.pem\n\n[profile p]\nca_bundle = ~/bundle.pem\n");
  write("other.pem", "x");
  EXPECT_EQ(resolve_ca_bundle(getenv()), path("other.pem"));
  EXPECT_EQ(resolve_ca_bundle(getenv(), "p"), path("bundle.pem"));
  env_["AWS_PROFILE"] = "p";
  EXPECT_EQ(resolve_ca_bundle(getenv()), path("bundle.pem"));
  env_["AWS_CA_BUNDLE"] = path("bundle.pem");
  EXPECT_EQ(resolve_ca_bundle(getenv(), "default"), path("bundle.pem"));
}

TEST_F(CaBundle, AFileThatCannotBeReadIsNamedWithItsSource) {
  env_["AWS_CA_BUNDLE"] = path("missing.pem");
  try {
    (void)resolve_ca_bundle(getenv());
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "ca_bundle '" + path("missing.pem") +
                                         "' from AWS_CA_BUNDLE: cannot read it (No such file or "
                                         "directory)");
  }
  env_.erase("AWS_CA_BUNDLE");
  write(".aws/config", "[default]\nregion = us-east-1\nca_bundle = /no/such.pem\n");
  try {
    (void)resolve_ca_bundle(getenv());
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "ca_bundle '/no/such.pem' from ~/.aws/config:3: cannot read it (No such file or "
                 "directory)");
  }
}

}  // namespace
}  // namespace dynamorph::dynamo
