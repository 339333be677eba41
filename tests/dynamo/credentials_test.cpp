// Credentials chain, shared-file parsing, region and endpoint resolution. The container endpoint
// and IMDSv2 are exercised against a small HTTP server on 127.0.0.1 run by the test itself.
#include "dynamo/credentials.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dynamo/aws_config.h"
#include "dynamo/errors.h"
#include "dynamo/ini_file.h"

namespace dynamorph::dynamo {
namespace {

using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Test fixtures: environment, temporary directory, local HTTP server.

class FakeEnv {
 public:
  FakeEnv& set(std::string name, std::string value) {
    vars_[std::move(name)] = std::move(value);
    return *this;
  }
  GetEnv getenv() const {
    return [vars = vars_](std::string_view name) -> std::optional<std::string> {
      const auto it = vars.find(std::string(name));
      if (it == vars.end() || it->second.empty()) return std::nullopt;
      return it->second;
    };
  }

 private:
  std::map<std::string, std::string> vars_;
};

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "dynamorph-cred-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string write(const std::string& relative, const std::string& content) const {
    const auto file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

struct HttpRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string("<absent>") : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string body;
};

// One connection at a time, Connection: close; enough for credential fetches.
class LocalHttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit LocalHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket failed");
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      throw std::runtime_error("bind/listen failed");
    }
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~LocalHttpServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<HttpRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  int count(const std::string& method, const std::string& target) const {
    int n = 0;
    for (const auto& r : requests()) n += (r.method == method && r.target == target) ? 1 : 0;
    return n;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd fd{listen_fd_, POLLIN, 0};
      if (::poll(&fd, 1, 20) <= 0) continue;
      const int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      timeval timeout{2, 0};
      ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      handle(client);
      ::close(client);
    }
  }

  void handle(int client) {
    std::string data;
    char buffer[4096];
    std::size_t header_end = std::string::npos;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      data.append(buffer, static_cast<std::size_t>(n));
    }
    HttpRequest request;
    std::size_t line_end = data.find("\r\n");
    const std::string request_line = data.substr(0, line_end);
    const std::size_t first_space = request_line.find(' ');
    const std::size_t second_space = request_line.find(' ', first_space + 1);
    request.method = request_line.substr(0, first_space);
    request.target = request_line.substr(first_space + 1, second_space - first_space - 1);
    std::size_t content_length = 0;
    for (std::size_t pos = line_end + 2; pos < header_end;) {
      const std::size_t end = data.find("\r\n", pos);
      const std::string line = data.substr(pos, end - pos);
      const std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      if (name == "content-length") content_length = std::stoul(value);
      request.headers[name] = value;
      pos = end + 2;
    }
    while (data.size() < header_end + 4 + content_length) {
      const ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      data.append(buffer, static_cast<std::size_t>(n));
    }
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(request);
    }
    const HttpResponse response = handler_(request);
    const std::string wire = "HTTP/1.1 " + std::to_string(response.status) +
                             " Status\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(response.body.size()) +
                             "\r\nConnection: close\r\n\r\n" + response.body;
    std::size_t sent = 0;
    while (sent < wire.size()) {
      const ssize_t n = ::send(client, wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<HttpRequest> requests_;
};

std::string iso8601(Clock::time_point when) {
  const std::time_t t = Clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string credentials_json(const std::string& key_id, Clock::time_point expiration) {
  return R"({"Code":"Success","LastUpdated":"2024-05-17T13:01:30Z","Type":"AWS-HMAC",)"
         R"("AccessKeyId":")" +
         key_id + R"(","SecretAccessKey":"secret-)" + key_id + R"(","Token":"token-)" + key_id +
         R"(","Expiration":")" + iso8601(expiration) + R"("})";
}

Clock::time_point whole_seconds(Clock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::seconds>(t);
}

// Asserts that `body` throws ConfigError with exactly `message`.
template <typename F>
void expect_config_error(F&& body, const std::string& message) {
  try {
    body();
    ADD_FAILURE() << "no ConfigError; expected: " << message;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

template <typename F>
std::string config_error_text(F&& body) {
  try {
    body();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

// A chain setup that never reaches a real IMDS or the real ~/.aws.
struct Sandbox {
  TempDir home;
  FakeEnv env;
  Sandbox() { env.set("HOME", home.path().string()).set("AWS_EC2_METADATA_DISABLED", "true"); }
  CredentialSources sources() const {
    CredentialSources s;
    s.getenv = env.getenv();
    s.http_timeout = 2000ms;
    return s;
  }
};

void expect_credentials(const Credentials& actual, const std::string& key_id,
                        const std::string& secret, const std::string& token) {
  EXPECT_EQ(actual.access_key_id, key_id);
  EXPECT_EQ(actual.secret_access_key, secret);
  EXPECT_EQ(actual.session_token, token);
}

// ---------------------------------------------------------------------------------------------
// Explicit and environment.

TEST(CredentialsChain, ExplicitWinsOverEnvironment) {
  Sandbox box;
  box.env.set("AWS_ACCESS_KEY_ID", "ENVKEY").set("AWS_SECRET_ACCESS_KEY", "envsecret");
  CredentialSources sources = box.sources();
  sources.explicit_credentials = Credentials{"EXPLICIT", "explicit-secret", "explicit-token", {}};
  const auto provider = default_credentials_chain(sources);
  expect_credentials(provider->get(), "EXPLICIT", "explicit-secret", "explicit-token");
  EXPECT_EQ(provider->describe(), "explicit credentials");
}

TEST(CredentialsChain, ExplicitWithoutSecretIsRejected) {
  Sandbox box;
  CredentialSources sources = box.sources();
  sources.explicit_credentials = Credentials{"EXPLICIT", "", "", {}};
  expect_config_error([&] { default_credentials_chain(sources); },
                      "explicit credentials need both an access key id and a secret access key");
}

TEST(CredentialsChain, ExpiredStaticCredentialsAreRefused) {
  Sandbox box;
  CredentialSources sources = box.sources();
  sources.explicit_credentials =
      Credentials{"EXPLICIT", "s", "", Clock::time_point(std::chrono::seconds(1700000000))};
  const auto provider = default_credentials_chain(sources);
  expect_config_error([&] { provider->get(); },
                      "credentials from explicit credentials expired at 2023-11-14T22:13:20Z");
}

TEST(CredentialsChain, EnvironmentWithSessionToken) {
  Sandbox box;
  box.env.set("AWS_ACCESS_KEY_ID", "ASIAENV")
      .set("AWS_SECRET_ACCESS_KEY", "env/secret+")
      .set("AWS_SESSION_TOKEN", "env-token");
  box.home.write(".aws/credentials",
                 "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n");
  const auto provider = default_credentials_chain(box.sources());
  const Credentials c = provider->get();
  expect_credentials(c, "ASIAENV", "env/secret+", "env-token");
  EXPECT_FALSE(c.expiration.has_value());
  EXPECT_EQ(provider->describe(), "environment");
}

TEST(CredentialsChain, EnvironmentHalfSetIsAnError) {
  Sandbox box;
  box.env.set("AWS_ACCESS_KEY_ID", "ONLYKEY");
  expect_config_error([&] { default_credentials_chain(box.sources()); },
                      "environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  Sandbox other;
  other.env.set("AWS_SECRET_ACCESS_KEY", "onlysecret");
  expect_config_error([&] { default_credentials_chain(other.sources()); },
                      "environment: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
}

// ---------------------------------------------------------------------------------------------
// Shared files.

TEST(CredentialsChain, DefaultProfileFromHomeFiles) {
  Sandbox box;
  box.home.write(".aws/credentials",
                 "# comment\n[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = "
                 "default/secret\n");
  const auto provider = default_credentials_chain(box.sources());
  expect_credentials(provider->get(), "DEFAULTKEY", "default/secret", "");
  EXPECT_EQ(provider->describe(), "profile [default] (~/.aws/credentials:3)");
}

TEST(CredentialsChain, ProfileChosenByFlagThenAwsProfileThenDefault) {
  Sandbox box;
  box.home.write(".aws/credentials",
                 "[default]\naws_access_key_id = D\naws_secret_access_key = d\n"
                 "[dev]\naws_access_key_id = DEV\naws_secret_access_key = dev\n"
                 "[ops]\naws_access_key_id = OPS\naws_secret_access_key = ops\n");
  box.env.set("AWS_PROFILE", "ops");
  CredentialSources sources = box.sources();
  sources.profile = "dev";
  expect_credentials(default_credentials_chain(sources)->get(), "DEV", "dev", "");
  expect_credentials(default_credentials_chain(box.sources())->get(), "OPS", "ops", "");
  box.env.set("AWS_PROFILE", "");
  expect_credentials(default_credentials_chain(box.sources())->get(), "D", "d", "");
}

TEST(CredentialsChain, CredentialsFileWinsOverConfigFileKeyByKey) {
  Sandbox box;
  const std::string credentials =
      box.home.write("creds.ini", "[dev]\naws_access_key_id = FROMCREDS\n");
  const std::string config = box.home.write(
      "conf.ini",
      "[dev]\naws_access_key_id = NOT-A-PROFILE\n"  // in the config file, [dev] is not profile dev
      "[profile dev]\n"
      "aws_access_key_id = FROMCONFIG\n"
      "aws_secret_access_key = config-secret\n"
      "aws_session_token = config-token\n"
      "region = eu-west-1\n");
  box.env.set("AWS_SHARED_CREDENTIALS_FILE", credentials).set("AWS_CONFIG_FILE", config);
  CredentialSources sources = box.sources();
  sources.profile = "dev";
  const auto provider = default_credentials_chain(sources);
  expect_credentials(provider->get(), "FROMCREDS", "config-secret", "config-token");
  EXPECT_EQ(provider->describe(), "profile [dev] (" + credentials + ":2)");
}

TEST(CredentialsChain, ProfileOnlyInConfigFile) {
  Sandbox box;
  box.home.write(".aws/config",
                 "[default]\nregion = us-east-1\n\n[profile cfg]\naws_access_key_id = CFG\n"
                 "aws_secret_access_key = cfg\naws_security_token = legacy-token\n");
  CredentialSources sources = box.sources();
  sources.profile = "cfg";
  const auto provider = default_credentials_chain(sources);
  expect_credentials(provider->get(), "CFG", "cfg", "legacy-token");
  EXPECT_EQ(provider->describe(), "profile [cfg] (~/.aws/config:5)");
}

TEST(CredentialsChain, NamedProfileMissingNamesBothFiles) {
  Sandbox box;
  const std::string credentials =
      box.home.write("c", "[default]\naws_access_key_id = D\naws_secret_access_key = d\n");
  const std::string config = (box.home.path() / "absent-config").string();
  box.env.set("AWS_SHARED_CREDENTIALS_FILE", credentials).set("AWS_CONFIG_FILE", config);
  CredentialSources sources = box.sources();
  sources.profile = "nope";
  expect_config_error(
      [&] { default_credentials_chain(sources); },
      "profile [nope] (from --profile) not found in " + credentials + " or " + config);
  box.env.set("AWS_PROFILE", "gone");
  expect_config_error(
      [&] { default_credentials_chain(box.sources()); },
      "profile [gone] (from AWS_PROFILE) not found in " + credentials + " or " + config);
}

TEST(CredentialsChain, MalformedLineReportsFileAndLine) {
  Sandbox box;
  box.home.write(".aws/credentials", "[default]\naws_access_key_id = D\nthis line is wrong\n");
  expect_config_error(
      [&] { default_credentials_chain(box.sources()); },
      "~/.aws/credentials:3: expected 'key = value' or '[section]', found 'this line is wrong'");
}

TEST(CredentialsChain, KeyWithoutSecretReportsWhere) {
  Sandbox box;
  box.home.write(".aws/credentials",
                 "[other]\nx = 1\n\n[dev]\n  aws_access_key_id = DEVKEY\nregion=us-east-1\n");
  CredentialSources sources = box.sources();
  sources.profile = "dev";
  expect_config_error([&] { default_credentials_chain(sources); },
                      "~/.aws/credentials:5: profile [dev] has no aws_secret_access_key");
}

TEST(CredentialsChain, UnsupportedProfileKindsAreNamed) {
  Sandbox box;
  box.home.write(".aws/config",
                 "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile "
                 "= default\n");
  CredentialSources sources = box.sources();
  sources.profile = "admin";
  expect_config_error(
      [&] { default_credentials_chain(sources); },
      "~/.aws/config:2: profile [admin] uses role_arn, which dynamorph does not support; "
      "give the profile aws_access_key_id and aws_secret_access_key, or export "
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
}

TEST(CredentialsChain, NothingFoundListsWhatWasTried) {
  Sandbox box;
  expect_config_error(
      [&] { default_credentials_chain(box.sources()); },
      "no AWS credentials found; tried environment (AWS_ACCESS_KEY_ID not set), "
      "profile [default] (not in ~/.aws/credentials or ~/.aws/config), container endpoint "
      "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set), IMDSv2 (disabled "
      "by AWS_EC2_METADATA_DISABLED)");
}

TEST(CredentialsChain, NothingFoundWithRegionOnlyDefaultProfile) {
  Sandbox box;
  box.home.write(".aws/config", "[default]\nregion = eu-central-1\n");
  box.env.set("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token");
  expect_config_error(
      [&] { default_credentials_chain(box.sources()); },
      "no AWS credentials found; tried environment (AWS_ACCESS_KEY_ID not set), "
      "profile [default] (~/.aws/config:1 has no aws_access_key_id), container endpoint "
      "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set), IMDSv2 (disabled "
      "by AWS_EC2_METADATA_DISABLED); AWS_WEB_IDENTITY_TOKEN_FILE is set, but web "
      "identity federation is not supported");
}

// ---------------------------------------------------------------------------------------------
// Container endpoint.

TEST(ContainerCredentials, RelativeUriWithAuthorizationToken) {
  const auto expiration = whole_seconds(Clock::now() + 6h);
  LocalHttpServer server([&](const HttpRequest& r) {
    if (r.method != "GET" || r.target != "/v2/credentials/task-1") return HttpResponse{404, ""};
    if (r.header("authorization") != "Bearer task-token") return HttpResponse{401, ""};
    return HttpResponse{
        200, R"({"AccessKeyId":"ASIATASK","SecretAccessKey":"task\/secret","Token":"task-token-1",)"
             R"("Expiration":")" +
                 iso8601(expiration) + R"("})"};
  });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/task-1")
      .set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer task-token");
  CredentialSources sources = box.sources();
  sources.container_base = server.url();
  const auto provider = default_credentials_chain(sources);
  const Credentials c = provider->get();
  expect_credentials(c, "ASIATASK", "task/secret", "task-token-1");
  EXPECT_EQ(c.expiration, expiration);
  EXPECT_EQ(provider->describe(), "container endpoint " + server.url() + "/v2/credentials/task-1");
  EXPECT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests().at(0).header("authorization"), "Bearer task-token");
}

TEST(ContainerCredentials, FullUriTokenFileWinsAndOffsetsParse) {
  LocalHttpServer server([&](const HttpRequest& r) {
    if (r.header("authorization") != "from-file") return HttpResponse{401, ""};
    return HttpResponse{200, R"({"AccessKeyId":"ASIAFULL","SecretAccessKey":"s","Token":"t",)"
                             R"("Expiration":"2030-01-01T02:00:00.123+02:00"})"};
  });
  Sandbox box;
  const std::string token_file = box.home.write("token", "from-file\n");
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds")
      .set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-env")
      .set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file);
  const Credentials c = default_credentials_chain(box.sources())->get();
  expect_credentials(c, "ASIAFULL", "s", "t");
  // 2030-01-01T00:00:00Z
  EXPECT_EQ(c.expiration, Clock::time_point(std::chrono::seconds(1893456000)));
}

TEST(ContainerCredentials, PlainHttpToRemoteHostIsRefused) {
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1@evil.example.com/creds");
  expect_config_error(
      [&] { default_credentials_chain(box.sources()); },
      "AWS_CONTAINER_CREDENTIALS_FULL_URI 'http://127.0.0.1@evil.example.com/creds': plain "
      "http is allowed only to a loopback address, 169.254.170.2, 169.254.170.23 or "
      "[fd00:ec2::23]; use https");
}

TEST(ContainerCredentials, FailingEndpointEndsTheChain) {
  LocalHttpServer server([](const HttpRequest&) { return HttpResponse{500, "oops"}; });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds");
  expect_config_error([&] { default_credentials_chain(box.sources()); },
                      "container endpoint " + server.url() + "/creds: HTTP 500");
}

TEST(ContainerCredentials, MalformedResponsesAreNamed) {
  std::string body;
  LocalHttpServer server([&](const HttpRequest&) { return HttpResponse{200, body}; });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/c");
  const std::string prefix = "container endpoint " + server.url() + "/c: ";
  body = "not json";
  EXPECT_EQ(config_error_text([&] { default_credentials_chain(box.sources()); }),
            prefix + "response is not a JSON object");
  body = R"({"AccessKeyId":"A","Token":"t"})";
  EXPECT_EQ(config_error_text([&] { default_credentials_chain(box.sources()); }),
            prefix + "response has no AccessKeyId or SecretAccessKey");
  body = R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"tomorrow"})";
  EXPECT_EQ(config_error_text([&] { default_credentials_chain(box.sources()); }),
            prefix + "Expiration 'tomorrow' is not an ISO-8601 time");
  body = R"({"AccessKeyId":"A","SecretAccessKey":7})";
  EXPECT_EQ(config_error_text([&] { default_credentials_chain(box.sources()); }),
            prefix + "\"SecretAccessKey\" in the response is not a string");
}

// Serves credential sets in order; each entry is (status, AccessKeyId, expiration).
struct Script {
  struct Step {
    int status;
    std::string key_id;
    Clock::time_point expiration;
  };
  std::vector<Step> steps;
  std::atomic<std::size_t> next{0};
  std::atomic<int> delay_ms{0};

  HttpResponse serve() {
    const std::size_t i = std::min(next.fetch_add(1), steps.size() - 1);
    if (const int ms = delay_ms.load(); ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    const Step& step = steps[i];
    if (step.status != 200) return HttpResponse{step.status, ""};
    return HttpResponse{200, credentials_json(step.key_id, step.expiration)};
  }
};

// Polls `done` for up to `limit`; true once it holds.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

TEST(ContainerCredentials, RenewedOnABackgroundThreadAheadOfExpiry) {
  // KEY1 lives 2 s: it is renewed half-way (a lifetime shorter than twice the 5-minute window),
  // by the provider's own thread; callers keep getting KEY1 at once meanwhile, even while the
  // renewal is slow.
  Script script;
  script.steps = {{200, "KEY1", Clock::now() + 2s}, {200, "KEY2", Clock::now() + 1h}};
  LocalHttpServer server([&](const HttpRequest&) { return script.serve(); });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/c");
  const auto provider = default_credentials_chain(box.sources());
  EXPECT_EQ(server.count("GET", "/c"), 1);
  script.delay_ms = 500;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(provider->get().access_key_id, "KEY1");
  EXPECT_EQ(server.count("GET", "/c"), 1);
  std::chrono::nanoseconds slowest{0};
  std::string key;
  ASSERT_TRUE(eventually([&] {
    const auto a = std::chrono::steady_clock::now();
    key = provider->get().access_key_id;
    slowest = std::max(slowest, std::chrono::steady_clock::now() - a);
    return key == "KEY2";
  }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);  // not before half its lifetime
  EXPECT_LT(slowest, 100ms) << "a caller waited for the renewal";
  EXPECT_EQ(server.count("GET", "/c"), 2);
  // KEY2 lives an hour: renewed 5 minutes before its end, so nothing more now.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(provider->get().session_token, "token-KEY2");
  EXPECT_EQ(server.count("GET", "/c"), 2);
}

TEST(ContainerCredentials, FailedRenewalIsRetriedWhileTheOldCredentialsServe) {
  // KEY1 lives 4 s: renewal at 2 s fails (503), is tried again a second later and succeeds.
  Script script;
  script.steps = {{200, "KEY1", Clock::now() + 4s}, {503, "", {}}, {200, "KEY2", Clock::now() + 1h}};
  LocalHttpServer server([&](const HttpRequest&) { return script.serve(); });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/c");
  const auto provider = default_credentials_chain(box.sources());
  ASSERT_TRUE(eventually([&] { return server.count("GET", "/c") == 2; }));
  EXPECT_EQ(provider->get().access_key_id, "KEY1");  // the renewal failed, KEY1 still serves
  ASSERT_TRUE(eventually([&] { return provider->get().access_key_id == "KEY2"; }));
  EXPECT_EQ(server.count("GET", "/c"), 3);
}

TEST(ContainerCredentials, ExpiredAndRefreshFailingThrows) {
  Script script;
  script.steps = {{200, "KEY1", Clock::now() - 1s}, {503, "", {}}};
  LocalHttpServer server([&](const HttpRequest&) { return script.serve(); });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/c");
  const auto provider = default_credentials_chain(box.sources());
  expect_config_error([&] { provider->get(); },
                      "container endpoint " + server.url() + "/c: HTTP 503");
  EXPECT_EQ(server.count("GET", "/c"), 2);
}

TEST(ContainerCredentials, ConcurrentCallersShareOneFetchOfExpiredCredentials) {
  Script script;
  script.steps = {{200, "KEY1", Clock::now() - 1s}, {200, "KEY2", Clock::now() + 1h}};
  LocalHttpServer server([&](const HttpRequest&) { return script.serve(); });
  Sandbox box;
  box.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/c");
  const auto provider = default_credentials_chain(box.sources());
  script.delay_ms = 200;  // the fetch is slow: one caller makes it, the others wait for it
  std::vector<std::string> seen(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = provider->get().access_key_id; });
  }
  for (auto& t : threads) t.join();
  for (const auto& key : seen) EXPECT_EQ(key, "KEY2");
  EXPECT_EQ(server.count("GET", "/c"), 2);
  EXPECT_EQ(provider->get().access_key_id, "KEY2");
  EXPECT_EQ(server.count("GET", "/c"), 2);
}

// ---------------------------------------------------------------------------------------------
// IMDSv2.

constexpr const char* kRolePath = "/latest/meta-data/iam/security-credentials/";

struct Imds {
  Script script;
  std::atomic<int> tokens{0};
  std::string role = "web-role";

  HttpResponse handle(const HttpRequest& r) {
    if (r.method == "PUT" && r.target == "/latest/api/token") {
      if (r.header("x-aws-ec2-metadata-token-ttl-seconds") != "21600") return {400, ""};
      return {200, "TOKEN-" + std::to_string(++tokens)};
    }
    // IMDSv2 proper: nothing is served without the session token issued last.
    if (r.header("x-aws-ec2-metadata-token") != "TOKEN-" + std::to_string(tokens.load()))
      return {401, ""};
    if (r.method == "GET" && r.target == kRolePath) {
      return role.empty() ? HttpResponse{404, ""} : HttpResponse{200, role + "\n"};
    }
    if (r.method == "GET" && r.target == kRolePath + role) return script.serve();
    return {404, ""};
  }
};

TEST(ImdsCredentials, TokenThenRoleThenCredentials) {
  Imds imds;
  const auto expiration = whole_seconds(Clock::now() + 6h);
  imds.script.steps = {{200, "ASIAIMDS", expiration}};
  LocalHttpServer server([&](const HttpRequest& r) { return imds.handle(r); });
  Sandbox box;
  box.env.set("AWS_EC2_METADATA_DISABLED", "false")
      .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url() + "/");
  const auto provider = default_credentials_chain(box.sources());
  const Credentials c = provider->get();
  expect_credentials(c, "ASIAIMDS", "secret-ASIAIMDS", "token-ASIAIMDS");
  EXPECT_EQ(c.expiration, expiration);
  EXPECT_EQ(provider->describe(), "IMDSv2 " + server.url() + " role web-role");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method + " " + requests[0].target, "PUT /latest/api/token");
  EXPECT_EQ(requests[1].method + " " + requests[1].target,
            "GET /latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(requests[2].method + " " + requests[2].target,
            "GET /latest/meta-data/iam/security-credentials/web-role");
  EXPECT_EQ(requests[1].header("x-aws-ec2-metadata-token"), "TOKEN-1");
  EXPECT_EQ(requests[2].header("x-aws-ec2-metadata-token"), "TOKEN-1");
}

TEST(ImdsCredentials, RefreshFetchesANewToken) {
  Imds imds;
  imds.script.steps = {{200, "KEY1", Clock::now() + 1s}, {200, "KEY2", Clock::now() + 1h}};
  LocalHttpServer server([&](const HttpRequest& r) { return imds.handle(r); });
  Sandbox box;
  box.env.set("AWS_EC2_METADATA_DISABLED", "")
      .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url());
  const auto provider = default_credentials_chain(box.sources());
  ASSERT_TRUE(eventually([&] { return provider->get().access_key_id == "KEY2"; }));
  EXPECT_EQ(imds.tokens.load(), 2);
  EXPECT_EQ(server.count("GET", std::string(kRolePath) + "web-role"), 2);
}

TEST(ImdsCredentials, NoRoleIsReportedAmongWhatWasTried) {
  Imds imds;
  imds.role = "";
  LocalHttpServer server([&](const HttpRequest& r) { return imds.handle(r); });
  Sandbox box;
  box.env.set("AWS_EC2_METADATA_DISABLED", "")
      .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url());
  expect_config_error(
      [&] { default_credentials_chain(box.sources()); },
      "no AWS credentials found; tried environment (AWS_ACCESS_KEY_ID not set), "
      "profile [default] (not in ~/.aws/credentials or ~/.aws/config), container endpoint "
      "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set), IMDSv2 " +
          server.url() + " (no IAM role attached to this instance)");
}

TEST(ImdsCredentials, DisabledMeansNoRequest) {
  Imds imds;
  LocalHttpServer server([&](const HttpRequest& r) { return imds.handle(r); });
  Sandbox box;
  box.env.set("AWS_EC2_METADATA_DISABLED", "TRUE")
      .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url());
  EXPECT_NE(config_error_text([&] {
              default_credentials_chain(box.sources());
            }).find("IMDSv2 (disabled by AWS_EC2_METADATA_DISABLED)"),
            std::string::npos);
  EXPECT_EQ(server.requests().size(), 0u);
}

TEST(ImdsCredentials, UnreachableEndpointFailsFastIntoTheList) {
  // A port just released by a listener: connecting is refused at once.
  std::string url;
  {
    LocalHttpServer closed([](const HttpRequest&) { return HttpResponse{}; });
    url = closed.url();
  }
  Sandbox box;
  box.env.set("AWS_EC2_METADATA_DISABLED", "").set("AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
  const std::string text = config_error_text([&] { default_credentials_chain(box.sources()); });
  const std::string expected_start =
      "no AWS credentials found; tried environment (AWS_ACCESS_KEY_ID not set), profile [default] "
      "(not in "
      "~/.aws/credentials or ~/.aws/config), container endpoint "
      "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
      "_FULL_URI not set), IMDSv2 " +
      url + " (";
  EXPECT_EQ(text.substr(0, expected_start.size()), expected_start);
  EXPECT_NE(text.find("Couldn't connect to server"), std::string::npos) << text;
  EXPECT_EQ(text.back(), ')');
}

TEST(ImdsCredentials, HungEndpointTimesOut) {
  LocalHttpServer server([](const HttpRequest&) {
    std::this_thread::sleep_for(700ms);
    return HttpResponse{200, "late"};
  });
  Sandbox box;
  box.env.set("AWS_EC2_METADATA_DISABLED", "")
      .set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url());
  CredentialSources sources = box.sources();
  sources.http_timeout = 200ms;
  const std::string text = config_error_text([&] { default_credentials_chain(sources); });
  EXPECT_NE(text.find("IMDSv2 " + server.url() + " (Operation timed out after"), std::string::npos)
      << text;
}

// ---------------------------------------------------------------------------------------------
// INI parsing.

TEST(IniFile, ParsesCommentsContinuationsAndCase) {
  const IniFile file = IniFile::parse(
      "\xEF\xBB\xBF; leading comment\n"
      "[default]\r\n"
      "AWS_Access_Key_ID=KEY  \n"
      "  # indented comment\n"
      "secret: has # and = inside\n"
      "s3 =\n"
      "    max_concurrent_requests = 20\n"
      "    addressing_style = path\n"
      "[profile dev]   # trailing comment\n"
      "empty =\n",
      "cfg");
  ASSERT_EQ(file.sections().size(), 2u);
  const IniSection* d = file.find("default");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->line, 2);
  ASSERT_NE(d->find("aws_access_key_id"), nullptr);
  EXPECT_EQ(d->find("aws_access_key_id")->value, "KEY");
  EXPECT_EQ(d->find("aws_access_key_id")->line, 3);
  EXPECT_EQ(d->find("secret")->value, "has # and = inside");
  EXPECT_EQ(d->find("s3")->value, "\nmax_concurrent_requests = 20\naddressing_style = path");
  EXPECT_EQ(d->find("max_concurrent_requests"), nullptr);
  const IniSection* dev = file.find("profile dev");
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->line, 9);
  EXPECT_EQ(dev->find("empty")->value, "");
}

TEST(IniFile, MalformedInputNamesFileAndLine) {
  expect_config_error([] { IniFile::parse("key = 1\n", "f"); },
                      "f:1: 'key' is outside of any [section]");
  expect_config_error([] { IniFile::parse("[a]\n[b\n", "f"); },
                      "f:2: section header has no closing ']'");
  expect_config_error([] { IniFile::parse("[a] x\n", "f"); },
                      "f:1: unexpected text after section header: 'x'");
  expect_config_error([] { IniFile::parse("[ ]\n", "f"); }, "f:1: empty section name '[]'");
  expect_config_error([] { IniFile::parse("[a]\n= v\n", "f"); }, "f:2: missing key before '='");
  expect_config_error([] { IniFile::parse("[a]\nk=1\n\n[b]\n[a]\n", "f"); },
                      "f:5: section [a] appears twice (first at line 1)");
  expect_config_error([] { IniFile::parse("[a]\nk=1\nK = 2\n", "f"); },
                      "f:3: 'k' appears twice in [a] (first at line 2)");
}

TEST(IniFile, LoadDistinguishesMissingFromUnreadable) {
  TempDir dir;
  EXPECT_FALSE(IniFile::load(dir.path() / "missing", "missing").has_value());
  expect_config_error([&] { IniFile::load(dir.path(), "~/.aws"); },
                      "~/.aws: is a directory, expected a file");
  const auto loaded = IniFile::load(dir.write("x", "[s]\nk = v\n"), "x");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->find("s")->find("k")->value, "v");
}

// ---------------------------------------------------------------------------------------------
// Region and endpoint.

TEST(ResolveRegion, Precedence) {
  Sandbox box;
  box.home.write(".aws/config",
                 "[default]\nregion = ap-south-1\n[profile dev]\nregion = eu-west-1\n");
  box.env.set("AWS_REGION", "us-west-2").set("AWS_DEFAULT_REGION", "us-east-2");
  const GetEnv env = box.env.getenv();
  EXPECT_EQ(resolve_region("ca-central-1", env, "dev"), "ca-central-1");
  EXPECT_EQ(resolve_region(std::nullopt, env, "dev"), "us-west-2");
  box.env.set("AWS_REGION", "");
  EXPECT_EQ(resolve_region(std::nullopt, box.env.getenv(), "dev"), "us-east-2");
  box.env.set("AWS_DEFAULT_REGION", "");
  EXPECT_EQ(resolve_region(std::nullopt, box.env.getenv(), "dev"), "eu-west-1");
  EXPECT_EQ(resolve_region(std::nullopt, box.env.getenv(), std::nullopt), "ap-south-1");
  box.env.set("AWS_PROFILE", "dev");
  EXPECT_EQ(resolve_region(std::nullopt, box.env.getenv(), std::nullopt), "eu-west-1");
}

TEST(ResolveRegion, Errors) {
  Sandbox box;
  expect_config_error(
      [&] { resolve_region(std::nullopt, box.env.getenv()); },
      "no AWS region: set --region, AWS_REGION or AWS_DEFAULT_REGION, or 'region' in "
      "profile [default] of ~/.aws/config");
  expect_config_error(
      [&] { resolve_region(std::nullopt, box.env.getenv(), "ghost"); },
      "profile [ghost] (from --profile) not found in ~/.aws/credentials or ~/.aws/config");
  expect_config_error(
      [&] { resolve_region("us east 1", box.env.getenv()); },
      "region 'us east 1' from --region is not a region name (letters, digits and '-', "
      "like us-east-1)");
  box.env.set("AWS_DEFAULT_REGION", "-bad");
  expect_config_error(
      [&] { resolve_region(std::nullopt, box.env.getenv()); },
      "region '-bad' from AWS_DEFAULT_REGION is not a region name (letters, digits and "
      "'-', like us-east-1)");
  box.env.set("AWS_DEFAULT_REGION", "");
  box.home.write(".aws/config", "[default]\n\nregion = eu_west\n");
  expect_config_error(
      [&] { resolve_region(std::nullopt, box.env.getenv()); },
      "region 'eu_west' from ~/.aws/config:3 is not a region name (letters, digits and "
      "'-', like us-east-1)");
}

TEST(ResolveEndpoint, Precedence) {
  FakeEnv env;
  env.set("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000/")
      .set("AWS_ENDPOINT_URL", "https://proxy.example");
  EXPECT_EQ(resolve_endpoint("HTTP://127.0.0.1:8001//", "us-east-1", env.getenv()),
            "HTTP://127.0.0.1:8001");
  EXPECT_EQ(resolve_endpoint(std::nullopt, "us-east-1", env.getenv()), "http://localhost:8000");
  env.set("AWS_ENDPOINT_URL_DYNAMODB", "");
  EXPECT_EQ(resolve_endpoint(std::nullopt, "us-east-1", env.getenv()), "https://proxy.example");
  env.set("AWS_ENDPOINT_URL", "");
  EXPECT_EQ(resolve_endpoint(std::nullopt, "eu-west-1", env.getenv()),
            "https://dynamodb.eu-west-1.amazonaws.com");
  EXPECT_EQ(resolve_endpoint(std::nullopt, "cn-north-1", env.getenv()),
            "https://dynamodb.cn-north-1.amazonaws.com.cn");
}

TEST(ResolveEndpoint, Errors) {
  FakeEnv env;
  expect_config_error(
      [&] { resolve_endpoint("localhost:8000", "us-east-1", env.getenv()); },
      "endpoint 'localhost:8000' from --endpoint must start with http:// or https://");
  expect_config_error([&] { resolve_endpoint("http:///path", "us-east-1", env.getenv()); },
                      "endpoint 'http:///path' from --endpoint has no host");
  expect_config_error([&] { resolve_endpoint("http://a b", "us-east-1", env.getenv()); },
                      "endpoint 'http://a b' from --endpoint contains white space");
  env.set("AWS_ENDPOINT_URL", "ftp://files.example");
  expect_config_error(
      [&] { resolve_endpoint(std::nullopt, "us-east-1", env.getenv()); },
      "endpoint 'ftp://files.example' from AWS_ENDPOINT_URL must start with http:// or https://");
}

}  // namespace
}  // namespace dynamorph::dynamo
