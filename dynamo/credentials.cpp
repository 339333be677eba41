#include "dynamo/credentials.h"

#include <curl/curl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "dynamo/errors.h"
#include "dynamo/redact.h"

namespace dynamorph::dynamo {
namespace {

using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

constexpr std::chrono::seconds kRetryFailedRefreshAfter = 30s;
constexpr std::size_t kMaxResponseBytes = 64 * 1024;  // credentials are a few KiB
constexpr std::string_view kImdsDefault = "http://169.254.169.254";
constexpr std::string_view kImdsDefaultIpv6 = "http://[fd00:ec2::254]";
constexpr std::string_view kImdsCredentialsPath = "/latest/meta-data/iam/security-credentials/";

// A source that is reachable in principle but did not hand out credentials. The chain lists
// `reason` among what it tried; on its own the message names the source too.
class FetchError : public ConfigError {
 public:
  FetchError(std::string_view source, std::string reason)
      : ConfigError(fmt::format("{}: {}", source, reason)), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) {
             return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
           };
           return lower(x) == lower(y);
         });
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

std::string without_trailing_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::string format_utc(Clock::time_point when) {
  const std::time_t t = Clock::to_time_t(when);
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(t));
}

// --- HTTP, for the rare credential fetches: libcurl easy, blocking, short timeouts. ---

struct HttpResult {
  bool transported = false;  // a response arrived, whatever its status
  long status = 0;
  std::string body;
  std::string error;  // why nothing arrived
};

struct CurlFree {
  void operator()(CURL* curl) const noexcept { curl_easy_cleanup(curl); }
};
struct SlistFree {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};

std::size_t collect_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (body->size() + n > kMaxResponseBytes) return 0;  // curl then fails with a write error
  body->append(data, n);
  return n;
}

HttpResult http_call(bool put, const std::string& url, const std::vector<std::string>& headers,
                     std::chrono::milliseconds timeout) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  HttpResult result;
  const std::unique_ptr<CURL, CurlFree> curl{curl_easy_init()};
  if (!curl) {
    result.error = "curl_easy_init failed";
    return result;
  }
  curl_slist* raw_list = nullptr;
  for (const std::string& header : headers) {
    curl_slist* next = curl_slist_append(raw_list, header.c_str());
    if (next == nullptr) {
      curl_slist_free_all(raw_list);
      result.error = "out of memory building headers";
      return result;
    }
    raw_list = next;
  }
  const std::unique_ptr<curl_slist, SlistFree> list{raw_list};

  char error_buffer[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  const long total_ms =
      static_cast<long>(std::max<std::chrono::milliseconds::rep>(timeout.count(), 1));
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(total_ms, 1000L));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
  // These endpoints are link-local or loopback by design: a proxy from the environment would
  // either fail or see the container token.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "dynamorph");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  if (put) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
  }
  const CURLcode code = curl_easy_perform(c);
  if (code != CURLE_OK) {
    result.error = error_buffer[0] != '\0' ? std::string(error_buffer) : curl_easy_strerror(code);
    if (code == CURLE_WRITE_ERROR)
      result.error = fmt::format("response larger than {} bytes", kMaxResponseBytes);
    return result;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.status);
  result.transported = true;
  return result;
}

// --- Parsing what the endpoints return. ---

// "2024-05-17T13:01:30Z", with optional fractional seconds and a ±HH:MM offset instead of Z.
std::optional<Clock::time_point> parse_iso8601(std::string_view s) {
  const auto digits = [&](std::size_t pos, std::size_t count, int& out) {
    if (pos + count > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(5, 2, month) || s[7] != '-' ||
      !digits(8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(11, 2, hour) || s[13] != ':' || !digits(14, 2, minute) || s[16] != ':' ||
      !digits(17, 2, second)) {
    return std::nullopt;
  }
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  }
  int offset_minutes = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int sign = s[i] == '-' ? -1 : 1;
    int oh = 0, om = 0;
    if (!digits(i + 1, 2, oh)) return std::nullopt;
    std::size_t next = i + 3;
    if (next < s.size() && s[next] == ':') ++next;
    if (!digits(next, 2, om)) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
    i = next + 2;
  }
  if (i != s.size()) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  return Clock::time_point(std::chrono::sys_days(ymd)) + std::chrono::hours(hour) +
         std::chrono::minutes(minute - offset_minutes) + std::chrono::seconds(second);
}

// The JSON shape shared by the container endpoint and IMDS:
// {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} (IMDS adds "Code", "Type", ...).
Credentials parse_credentials_json(std::string_view body, std::string_view source) {
  const auto fail = [&](std::string reason) { return FetchError(source, std::move(reason)); };
  simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object object;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(object) != simdjson::SUCCESS) {
    throw fail("response is not a JSON object");
  }
  Credentials credentials;
  std::optional<std::string> expiration, code, message;
  for (auto field_result : object) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) != simdjson::SUCCESS ||
        field.unescaped_key().get(key) != simdjson::SUCCESS) {
      throw fail("response is malformed JSON");
    }
    std::string* target = nullptr;
    if (key == "AccessKeyId")
      target = &credentials.access_key_id;
    else if (key == "SecretAccessKey")
      target = &credentials.secret_access_key;
    else if (key == "Token")
      target = &credentials.session_token;
    else if (key == "Expiration")
      target = &expiration.emplace();
    else if (key == "Code")
      target = &code.emplace();
    else if (key == "Message")
      target = &message.emplace();
    if (target == nullptr) continue;
    std::string_view value;
    if (field.value().get_string().get(value) != simdjson::SUCCESS) {
      throw fail(fmt::format("\"{}\" in the response is not a string", key));
    }
    target->assign(value);
  }
  if (code && *code != "Success") {
    throw fail(fmt::format("Code {}{}{}", *code, message ? ": " : "", message.value_or("")));
  }
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    throw fail("response has no AccessKeyId or SecretAccessKey");
  }
  if (expiration) {
    credentials.expiration = parse_iso8601(*expiration);
    if (!credentials.expiration) {
      throw fail(fmt::format("Expiration '{}' is not an ISO-8601 time", *expiration));
    }
  }
  return credentials;
}

// --- Providers. ---

class StaticProvider final : public CredentialsProvider {
 public:
  StaticProvider(Credentials credentials, std::string description)
      : credentials_(std::move(credentials)), description_(std::move(description)) {
    remember_secrets(credentials_);
  }

  Credentials get() override {
    if (credentials_.expiration && *credentials_.expiration <= Clock::now()) {
      throw ConfigError(fmt::format("credentials from {} expired at {}", description_,
                                    format_utc(*credentials_.expiration)));
    }
    return credentials_;
  }
  std::string describe() const override { return description_; }

 private:
  const Credentials credentials_;
  const std::string description_;
};

// Caches what fetch() returns and renews it on a background thread of its own ahead of expiry:
// at the refresh window before it (kCredentialsRefreshWindow, or half the credentials' lifetime
// when they live shorter than twice that), so that no caller — least of all the client's I/O
// thread, which signs every retry — waits on the network for credentials that still work. A
// failed renewal is tried again 1 s, 2 s … 30 s later while the old credentials are valid.
// Only when there are none yet, or they have expired, does get() fetch itself (one caller at a
// time; the others wait for its result).
class RefreshingProvider : public CredentialsProvider {
 public:
  ~RefreshingProvider() override { stop_renewing(); }

  Credentials get() final {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (cached_ && !expired(*cached_, Clock::now())) return *cached_;
      if (!fetching_) break;
      fetched_.wait(lock, [&] { return !fetching_; });
    }
    fetching_ = true;
    lock.unlock();
    std::optional<Credentials> fresh;
    std::exception_ptr failure;
    try {
      fresh = fetch();
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    fetching_ = false;
    fetched_.notify_all();
    if (!fresh) std::rethrow_exception(failure);
    store(std::move(*fresh));
    return *cached_;
  }

 protected:
  virtual Credentials fetch() = 0;

  // Derived classes call this first in their destructor: the renewing thread calls fetch().
  void stop_renewing() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    fetched_.notify_all();
    if (renewer_.joinable()) renewer_.join();
  }

 private:
  static bool expired(const Credentials& c, Clock::time_point now) {
    return c.expiration && *c.expiration <= now;
  }

  // Caller holds mutex_. Starts the renewing thread with the first expiring credentials.
  void store(Credentials c) {
    remember_secrets(c);  // redacted from every message from now on
    const auto now = Clock::now();
    if (c.expiration) {
      const auto lifetime = *c.expiration - now;
      const auto window = std::min<Clock::duration>(kCredentialsRefreshWindow, lifetime / 2);
      renew_at_ = *c.expiration - window;
    }
    const bool expiring = c.expiration.has_value();
    cached_ = std::move(c);
    failures_ = 0;
    if (expiring && !renewer_.joinable() && !stopping_)
      renewer_ = std::thread([this] { renew_loop(); });
    wake_.notify_all();
  }

  void renew_loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (!cached_ || !cached_->expiration) return;
      if (expired(*cached_, Clock::now())) {
        // Expired credentials are fetched by the get() that needs them (it waits anyway); a
        // renewal racing it would only ask the endpoint twice.
        wake_.wait(lock);
        continue;
      }
      if (Clock::now() < renew_at_) {
        wake_.wait_until(lock, renew_at_);
        continue;
      }
      if (fetching_) {  // get() is fetching (expired credentials): its result will do
        fetched_.wait(lock, [&] { return !fetching_ || stopping_; });
        continue;
      }
      fetching_ = true;
      lock.unlock();
      std::optional<Credentials> fresh;
      try {
        fresh = fetch();
      } catch (const std::exception&) {
        // kept below: the old credentials serve until they expire; then get() fetches itself
      }
      lock.lock();
      fetching_ = false;
      fetched_.notify_all();
      if (fresh) {
        store(std::move(*fresh));
      } else {
        renew_at_ = Clock::now() + std::min<Clock::duration>(kRetryFailedRefreshAfter,
                                                             1s * (1 << std::min(failures_, 5)));
        ++failures_;
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable fetched_, wake_;
  std::optional<Credentials> cached_;  // guarded by mutex_
  bool fetching_ = false;              // guarded by mutex_
  bool stopping_ = false;              // guarded by mutex_
  Clock::time_point renew_at_{};       // guarded by mutex_
  int failures_ = 0;                   // guarded by mutex_
  std::thread renewer_;
};

std::string checked_header_value(std::string value, std::string_view source) {
  if (value.empty()) throw ConfigError(fmt::format("{} is empty", source));
  if (value.find_first_of("\r\n") != std::string::npos) {
    throw ConfigError(fmt::format("{} contains a line break", source));
  }
  return value;
}

class ContainerProvider final : public RefreshingProvider {
 public:
  ContainerProvider(std::string url, std::optional<std::string> token,
                    std::optional<std::string> token_file, std::chrono::milliseconds timeout)
      : url_(std::move(url)),
        token_(std::move(token)),
        token_file_(std::move(token_file)),
        timeout_(timeout) {}

  ~ContainerProvider() override { stop_renewing(); }

  std::string describe() const override { return fmt::format("container endpoint {}", url_); }

 protected:
  Credentials fetch() override {
    const std::string source = describe();
    std::vector<std::string> headers{"Accept: application/json"};
    if (auto token = authorization()) headers.push_back("Authorization: " + *token);
    const HttpResult response = http_call(false, url_, headers, timeout_);
    if (!response.transported) throw FetchError(source, response.error);
    if (response.status != 200) throw FetchError(source, fmt::format("HTTP {}", response.status));
    return parse_credentials_json(response.body, source);
  }

 private:
  // Read at every fetch: EKS rotates the token file under a running process.
  std::optional<std::string> authorization() const {
    if (token_file_) {
      std::ifstream in(*token_file_, std::ios::binary);
      std::ostringstream content;
      content << in.rdbuf();
      if (!in) {
        throw ConfigError(
            fmt::format("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: cannot read", *token_file_));
      }
      return checked_header_value(
          std::string(trim(content.str())),
          fmt::format("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}", *token_file_));
    }
    if (token_) return checked_header_value(*token_, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    return std::nullopt;
  }

  const std::string url_;
  const std::optional<std::string> token_;
  const std::optional<std::string> token_file_;
  const std::chrono::milliseconds timeout_;
};

class ImdsProvider final : public RefreshingProvider {
 public:
  ImdsProvider(std::string endpoint, std::chrono::milliseconds timeout)
      : endpoint_(std::move(endpoint)), timeout_(timeout) {}
  ~ImdsProvider() override { stop_renewing(); }

  std::string describe() const override {
    std::lock_guard lock(role_mutex_);
    return role_.empty() ? fmt::format("IMDSv2 {}", endpoint_)
                         : fmt::format("IMDSv2 {} role {}", endpoint_, role_);
  }

  const std::string& endpoint() const { return endpoint_; }

 protected:
  Credentials fetch() override {
    const std::string source = fmt::format("IMDSv2 {}", endpoint_);
    const auto call = [&](bool put, std::string_view path,
                          const std::vector<std::string>& headers) {
      HttpResult response = http_call(put, endpoint_ + std::string(path), headers, timeout_);
      if (!response.transported) throw FetchError(source, response.error);
      return response;
    };

    const HttpResult token = call(true, "/latest/api/token",
                                  {"X-aws-ec2-metadata-token-ttl-seconds: 21600", "Content-Type:"});
    if (token.status != 200) {
      throw FetchError(source, fmt::format("HTTP {} from PUT /latest/api/token", token.status));
    }
    const std::string_view token_text = trim(token.body);
    if (token_text.empty() || token_text.find_first_of("\r\n") != std::string_view::npos) {
      throw FetchError(source, "PUT /latest/api/token returned no usable token");
    }
    const std::string token_header = "X-aws-ec2-metadata-token: " + std::string(token_text);

    const HttpResult roles = call(false, kImdsCredentialsPath, {token_header});
    if (roles.status == 404) throw FetchError(source, "no IAM role attached to this instance");
    if (roles.status != 200) {
      throw FetchError(source,
                       fmt::format("HTTP {} from GET {}", roles.status, kImdsCredentialsPath));
    }
    const std::string_view listing = trim(roles.body);
    const std::string role(trim(listing.substr(0, listing.find('\n'))));
    if (role.empty()) throw FetchError(source, "no IAM role attached to this instance");

    const HttpResult credentials =
        call(false, std::string(kImdsCredentialsPath) + role, {token_header});
    if (credentials.status != 200) {
      throw FetchError(source, fmt::format("HTTP {} from GET {}{}", credentials.status,
                                           kImdsCredentialsPath, role));
    }
    Credentials parsed =
        parse_credentials_json(credentials.body, fmt::format("{} role {}", source, role));
    std::lock_guard lock(role_mutex_);
    role_ = role;
    return parsed;
  }

 private:
  const std::string endpoint_;
  const std::chrono::milliseconds timeout_;
  mutable std::mutex role_mutex_;
  std::string role_;  // guarded by role_mutex_
};

// Plain http is accepted only to addresses that cannot leave the host or the task, so that the
// authorization token never travels in clear over a network (the rule of the AWS SDKs).
void check_full_uri(const std::string& url) {
  constexpr std::string_view kWhat = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
  if (starts_with_ci(url, "https://")) return;
  if (!starts_with_ci(url, "http://")) {
    throw ConfigError(fmt::format("{} '{}' must start with http:// or https://", kWhat, url));
  }
  std::string_view authority = std::string_view(url).substr(7);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  const bool loopback_v4 = host.starts_with("127.") &&
                           std::count(host.begin(), host.end(), '.') == 3 &&
                           host.find_first_not_of("0123456789.") == std::string_view::npos;
  if (loopback_v4 || iequals(host, "localhost") || host == "[::1]" || host == "169.254.170.2" ||
      host == "169.254.170.23" || iequals(host, "[fd00:ec2::23]")) {
    return;
  }
  throw ConfigError(fmt::format(
      "{} '{}': plain http is allowed only to a loopback address, 169.254.170.2, 169.254.170.23 "
      "or [fd00:ec2::23]; use https",
      kWhat, url));
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.append(separator);
    out.append(parts[i]);
  }
  return out;
}

std::shared_ptr<CredentialsProvider> from_profile(const CredentialSources& sources,
                                                  std::vector<std::string>& tried) {
  const ProfileChoice choice = choose_profile(sources.profile, sources.getenv);
  const SharedFiles files = shared_files(sources.getenv);
  const Profile profile = load_profile(files, choice.name);
  if (!profile.exists()) {
    if (choice.named()) {
      throw ConfigError(fmt::format("profile [{}] (from {}) not found in {} or {}", choice.name,
                                    choice.source, files.credentials.display,
                                    files.config.display));
    }
    tried.push_back(fmt::format("profile [{}] (not in {} or {})", choice.name,
                                files.credentials.display, files.config.display));
    return nullptr;
  }
  const auto value = [&](std::string_view key) -> const ProfileSetting* {
    const ProfileSetting* setting = profile.find(key);
    return setting != nullptr && !setting->value.empty() ? setting : nullptr;
  };
  const ProfileSetting* key_id = value("aws_access_key_id");
  const ProfileSetting* secret = value("aws_secret_access_key");
  if (key_id != nullptr && secret != nullptr) {
    const ProfileSetting* token = value("aws_session_token");
    if (token == nullptr) token = value("aws_security_token");  // the name older tools write
    return static_credentials(
        Credentials{key_id->value, secret->value, token != nullptr ? token->value : "", {}},
        fmt::format("profile [{}] ({})", choice.name, key_id->where));
  }
  if (key_id != nullptr) {
    throw ConfigError(
        fmt::format("{}: profile [{}] has no aws_secret_access_key", key_id->where, choice.name));
  }
  if (secret != nullptr) {
    throw ConfigError(
        fmt::format("{}: profile [{}] has no aws_access_key_id", secret->where, choice.name));
  }
  for (const char* unsupported : {"role_arn", "credential_process", "sso_session", "sso_start_url",
                                  "web_identity_token_file"}) {
    if (const ProfileSetting* setting = profile.find(unsupported)) {
      throw ConfigError(fmt::format(
          "{}: profile [{}] uses {}, which dynamorph does not support; give the profile "
          "aws_access_key_id and aws_secret_access_key, or export AWS_ACCESS_KEY_ID and "
          "AWS_SECRET_ACCESS_KEY",
          setting->where, choice.name, unsupported));
    }
  }
  tried.push_back(fmt::format("profile [{}] ({} has no aws_access_key_id)", choice.name,
                              profile.section_where));
  return nullptr;
}

}  // namespace

std::shared_ptr<CredentialsProvider> static_credentials(Credentials credentials,
                                                        std::string description) {
  return std::make_shared<StaticProvider>(std::move(credentials), std::move(description));
}

std::shared_ptr<CredentialsProvider> default_credentials_chain(const CredentialSources& sources) {
  const GetEnv& env = sources.getenv;
  std::vector<std::string> tried;

  if (sources.explicit_credentials) {
    const Credentials& given = *sources.explicit_credentials;
    if (given.access_key_id.empty() || given.secret_access_key.empty()) {
      throw ConfigError("explicit credentials need both an access key id and a secret access key");
    }
    return static_credentials(given, "explicit credentials");
  }

  const auto key_id = env("AWS_ACCESS_KEY_ID");
  const auto secret = env("AWS_SECRET_ACCESS_KEY");
  if (key_id && secret) {
    return static_credentials(
        Credentials{*key_id, *secret, env("AWS_SESSION_TOKEN").value_or(""), {}}, "environment");
  }
  if (key_id)
    throw ConfigError("environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  if (secret)
    throw ConfigError("environment: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  tried.emplace_back("environment (AWS_ACCESS_KEY_ID not set)");

  if (auto provider = from_profile(sources, tried)) return provider;

  const auto relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (relative || full) {
    std::string url;
    if (relative) {
      url = without_trailing_slashes(sources.container_base) +
            (relative->starts_with('/') ? "" : "/") + *relative;
    } else {
      url = *full;
      check_full_uri(url);
    }
    auto provider = std::make_shared<ContainerProvider>(
        url, env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), sources.http_timeout);
    // A task that advertises an endpoint must serve it: a failure here ends the run rather than
    // falling through to the instance's own role.
    provider->get();
    return provider;
  }
  tried.emplace_back(
      "container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set)");

  if (const auto disabled = env("AWS_EC2_METADATA_DISABLED");
      disabled && iequals(trim(*disabled), "true")) {
    tried.emplace_back("IMDSv2 (disabled by AWS_EC2_METADATA_DISABLED)");
  } else {
    std::string endpoint;
    if (auto configured = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
      endpoint = without_trailing_slashes(*configured);
    } else {
      const auto mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
      endpoint = std::string(mode && iequals(*mode, "ipv6") ? kImdsDefaultIpv6 : kImdsDefault);
    }
    auto provider = std::make_shared<ImdsProvider>(endpoint, sources.http_timeout);
    try {
      provider->get();
      return provider;
    } catch (const FetchError& error) {
      tried.push_back(fmt::format("IMDSv2 {} ({})", endpoint, error.reason()));
    }
  }

  std::string message = fmt::format("no AWS credentials found; tried {}", join(tried, ", "));
  if (env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
    message += "; AWS_WEB_IDENTITY_TOKEN_FILE is set, but web identity federation is not supported";
  }
  throw ConfigError(message);
}

}  // namespace dynamorph::dynamo
