// Region, endpoint, shared config/credentials files and profile, from flags, environment, ~/.aws.
// Thread-safe: free functions over their arguments; files are read at each call (startup only).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace dynamorph::dynamo {

// Environment lookup, injectable so tests never touch the real environment. An empty
// variable counts as unset, as in the AWS CLI.
using GetEnv = std::function<std::optional<std::string>(std::string_view name)>;
std::optional<std::string> system_getenv(std::string_view name);

struct SharedFile {
  std::filesystem::path path;  // "~" expanded
  std::string display;         // as the user wrote it, for messages: "~/.aws/config"
};

struct SharedFiles {
  SharedFile credentials;  // AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials
  SharedFile config;       // AWS_CONFIG_FILE, default ~/.aws/config
};
SharedFiles shared_files(const GetEnv& getenv);

struct ProfileChoice {
  std::string name;
  std::string source;                                 // "--profile", "AWS_PROFILE" or "default"
  bool named() const { return source != "default"; }  // the user asked for it by name
};
// --profile, then AWS_PROFILE, then "default".
ProfileChoice choose_profile(const std::optional<std::string>& flag, const GetEnv& getenv);

struct ProfileSetting {
  std::string value;
  std::string where;  // "<file display>:<line>"
};

// One profile merged from both files: [NAME] in the credentials file wins over
// [profile NAME] in the config file ([default] or [profile default] for "default").
struct Profile {
  std::string name;
  bool in_credentials_file = false;
  bool in_config_file = false;
  std::string
      section_where;  // "<file>:<line>" of the section that holds its keys, credentials file first
  std::map<std::string, ProfileSetting, std::less<>> settings;

  bool exists() const { return in_credentials_file || in_config_file; }
  const ProfileSetting* find(std::string_view key) const;
};
// Throws ConfigError for a malformed file (file:line).
Profile load_profile(const SharedFiles& files, std::string_view name);

// --region, AWS_REGION, AWS_DEFAULT_REGION, then `region` of the profile (see choose_profile)
// in the config file. Throws ConfigError naming every place looked at when none has one, or
// naming the source of a value that is not a region name.
std::string resolve_region(std::optional<std::string> flag, const GetEnv& getenv = system_getenv,
                           std::optional<std::string> profile = std::nullopt);

// --endpoint, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, else
// https://dynamodb.<region>.amazonaws.com (.amazonaws.com.cn for cn- regions). Trailing '/'
// removed. Throws ConfigError naming the source when the URL is not http:// or https:// with a
// host.
std::string resolve_endpoint(std::optional<std::string> flag, std::string_view region,
                             const GetEnv& getenv = system_getenv);

// S3's endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else https://s3.<region>.amazonaws.com
// (.amazonaws.com.cn for cn- regions). `custom` is true for the first two (S3-compatible
// servers, tests), which are addressed path-style. Throws ConfigError like resolve_endpoint.
struct S3Endpoint {
  std::string url;
  bool custom = false;
};
S3Endpoint resolve_s3_endpoint(std::string_view region, const GetEnv& getenv = system_getenv);

// The certificates to trust for https instead of the system's: AWS_CA_BUNDLE, else `ca_bundle`
// of the profile (see choose_profile), as the AWS CLI reads them; nullopt: the system's store.
// Throws ConfigError naming the source when the file cannot be read.
std::optional<std::string> resolve_ca_bundle(const GetEnv& getenv = system_getenv,
                                             std::optional<std::string> profile = std::nullopt);

// True when the endpoint's host is loopback: 127.0.0.0/8, ::1 or localhost.
bool loopback_endpoint(std::string_view endpoint);

// Signed requests in plain http to a host that is not loopback would carry the credentials'
// signatures and session token across the network in the clear: throws ConfigError naming the
// endpoint, `what` uses it ("the DynamoDB endpoint") and the fix, unless `allowed`.
void check_plain_http(std::string_view endpoint, std::string_view what, bool allowed);

}  // namespace dynamorph::dynamo
