#include "dynamo/aws_config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "dynamo/errors.h"
#include "dynamo/ini_file.h"

namespace dynamorph::dynamo {
namespace {

std::optional<std::string> home_directory(const GetEnv& getenv) {
  if (auto home = getenv("HOME")) return home;
  // Like Python's expanduser: without HOME, the password database.
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr &&
      found->pw_dir != nullptr && *found->pw_dir != '\0') {
    return std::string(found->pw_dir);
  }
  return std::nullopt;
}

SharedFile shared_file(const GetEnv& getenv, std::string_view variable, std::string_view fallback) {
  SharedFile file;
  file.display = getenv(variable).value_or(std::string(fallback));
  if (file.display == "~" || file.display.starts_with("~/")) {
    const auto home = home_directory(getenv);
    // Without a home there is no such file; an empty path never exists.
    file.path =
        home ? std::filesystem::path(*home + file.display.substr(1)) : std::filesystem::path();
  } else {
    file.path = file.display;
  }
  return file;
}

std::optional<IniFile> load_if_present(const SharedFile& file) {
  if (file.path.empty()) return std::nullopt;
  return IniFile::load(file.path, file.display);
}

void merge_section(Profile& profile, const IniFile& file, const IniSection& section) {
  for (const auto& [key, value] : section.entries) {
    profile.settings.insert_or_assign(
        key, ProfileSetting{value.value, fmt::format("{}:{}", file.display_name(), value.line)});
  }
}

bool valid_region(std::string_view region) {
  // A DNS label, as botocore checks: it becomes part of the endpoint host name.
  if (region.empty() || region.size() > 63 || region.front() == '-' || region.back() == '-') {
    return false;
  }
  for (const char c : region) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string checked_region(std::string region, std::string_view source) {
  if (!valid_region(region)) {
    throw ConfigError(fmt::format(
        "region '{}' from {} is not a region name (letters, digits and '-', like us-east-1)",
        region, source));
  }
  return region;
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

std::string checked_endpoint(std::string url, std::string_view source) {
  std::size_t scheme_length = 0;
  if (starts_with_ci(url, "https://")) {
    scheme_length = 8;
  } else if (starts_with_ci(url, "http://")) {
    scheme_length = 7;
  } else {
    throw ConfigError(
        fmt::format("endpoint '{}' from {} must start with http:// or https://", url, source));
  }
  const std::string_view rest = std::string_view(url).substr(scheme_length);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.front() == ':') {
    throw ConfigError(fmt::format("endpoint '{}' from {} has no host", url, source));
  }
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= ' ') {
      throw ConfigError(fmt::format("endpoint '{}' from {} contains white space", url, source));
    }
  }
  while (url.size() > scheme_length + authority.size() && url.back() == '/') url.pop_back();
  return url;
}

// The host of an http(s) URL, lowercased, without port, user info or IPv6 brackets.
std::string url_host(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  std::string_view rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    rest.remove_prefix(at + 1);
  }
  std::string_view host;
  if (!rest.empty() && rest.front() == '[') {
    host = rest.substr(1, rest.find(']') - 1);  // npos - 1: to the end
  } else {
    host = rest.substr(0, rest.find(':'));
  }
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A certificate file named by `source`: readable, or a ConfigError saying which and why.
std::string checked_ca_bundle(std::string path, std::string_view source) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(fmt::format("ca_bundle '{}' from {}: cannot read it ({})", path, source,
                                  std::strerror(errno)));
  }
  return path;
}

}  // namespace

std::optional<std::string> system_getenv(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

SharedFiles shared_files(const GetEnv& getenv) {
  return SharedFiles{shared_file(getenv, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
                     shared_file(getenv, "AWS_CONFIG_FILE", "~/.aws/config")};
}

ProfileChoice choose_profile(const std::optional<std::string>& flag, const GetEnv& getenv) {
  if (flag && !flag->empty()) return {*flag, "--profile"};
  if (auto env = getenv("AWS_PROFILE")) return {*env, "AWS_PROFILE"};
  return {"default", "default"};
}

const ProfileSetting* Profile::find(std::string_view key) const {
  const auto it = settings.find(key);
  return it == settings.end() ? nullptr : &it->second;
}

Profile load_profile(const SharedFiles& files, std::string_view name) {
  Profile profile;
  profile.name = std::string(name);
  std::string credentials_where;
  std::string config_where;
  // Config first so that the credentials file, merged second, wins.
  if (const auto config = load_if_present(files.config)) {
    std::vector<const IniSection*> sections;
    if (name == "default") {
      // [default] and [profile default] are the same profile; the explicit form wins.
      if (const IniSection* s = config->find("default")) sections.push_back(s);
    }
    if (const IniSection* s = config->find(fmt::format("profile {}", name))) sections.push_back(s);
    for (const IniSection* s : sections) {
      merge_section(profile, *config, *s);
      config_where = fmt::format("{}:{}", config->display_name(), s->line);
    }
    profile.in_config_file = !sections.empty();
  }
  if (const auto credentials = load_if_present(files.credentials)) {
    if (const IniSection* s = credentials->find(name)) {
      merge_section(profile, *credentials, *s);
      profile.in_credentials_file = true;
      credentials_where = fmt::format("{}:{}", credentials->display_name(), s->line);
    }
  }
  profile.section_where = !credentials_where.empty() ? credentials_where : config_where;
  return profile;
}

std::string resolve_region(std::optional<std::string> flag, const GetEnv& getenv,
                           std::optional<std::string> profile_flag) {
  if (flag && !flag->empty()) return checked_region(std::move(*flag), "--region");
  for (const char* variable : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (auto value = getenv(variable)) return checked_region(std::move(*value), variable);
  }
  const ProfileChoice choice = choose_profile(profile_flag, getenv);
  const SharedFiles files = shared_files(getenv);
  const Profile profile = load_profile(files, choice.name);
  if (choice.named() && !profile.exists()) {
    throw ConfigError(fmt::format("profile [{}] (from {}) not found in {} or {}", choice.name,
                                  choice.source, files.credentials.display, files.config.display));
  }
  if (const ProfileSetting* region = profile.find("region"); region && !region->value.empty()) {
    return checked_region(region->value, region->where);
  }
  throw ConfigError(
      fmt::format("no AWS region: set --region, AWS_REGION or AWS_DEFAULT_REGION, or 'region' in "
                  "profile [{}] of {}",
                  choice.name, files.config.display));
}

std::string resolve_endpoint(std::optional<std::string> flag, std::string_view region,
                             const GetEnv& getenv) {
  if (flag && !flag->empty()) return checked_endpoint(std::move(*flag), "--endpoint");
  for (const char* variable : {"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"}) {
    if (auto value = getenv(variable)) return checked_endpoint(std::move(*value), variable);
  }
  const std::string_view suffix =
      region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  return fmt::format("https://dynamodb.{}{}", checked_region(std::string(region), "the region"),
                     suffix);
}

S3Endpoint resolve_s3_endpoint(std::string_view region, const GetEnv& getenv) {
  for (const char* variable : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
    if (auto value = getenv(variable)) return {checked_endpoint(std::move(*value), variable), true};
  }
  const std::string_view suffix =
      region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  return {fmt::format("https://s3.{}{}", checked_region(std::string(region), "the region"), suffix),
          false};
}

std::optional<std::string> resolve_ca_bundle(const GetEnv& getenv,
                                             std::optional<std::string> profile_flag) {
  if (auto path = getenv("AWS_CA_BUNDLE")) {
    return checked_ca_bundle(std::move(*path), "AWS_CA_BUNDLE");
  }
  const ProfileChoice choice = choose_profile(profile_flag, getenv);
  const Profile profile = load_profile(shared_files(getenv), choice.name);
  const ProfileSetting* bundle = profile.find("ca_bundle");
  if (bundle == nullptr || bundle->value.empty()) return std::nullopt;
  std::string path = bundle->value;
  if (path == "~" || path.starts_with("~/")) {
    if (const auto home = home_directory(getenv)) path = *home + path.substr(1);
  }
  return checked_ca_bundle(std::move(path), bundle->where);
}

bool loopback_endpoint(std::string_view endpoint) {
  const std::string host = url_host(endpoint);
  if (host == "localhost" || host == "localhost.") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

void check_plain_http(std::string_view endpoint, std::string_view what, bool allowed) {
  if (allowed || !starts_with_ci(endpoint, "http://") || loopback_endpoint(endpoint)) return;
  throw ConfigError(fmt::format(
      "{} {} is plain http to a host that is not loopback: signed requests and session tokens "
      "would cross the network unencrypted; use https://, or set allow_insecure_http: true in "
      "dynamorph.yaml",
      what, endpoint));
}

}  // namespace dynamorph::dynamo
