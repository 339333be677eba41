#include "migrations/config.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "dynamo/s3.h"
#include "migrations/yaml_util.h"

namespace dynamorph::migrations {
namespace {

const std::set<std::string, std::less<>> kTopKeys = {
    "region",        "endpoint", "namespace",    "state_table", "migrations_dir", "lock_ttl",
    "reconnect_for", "defaults", "environments", "pricing",     "journal",        "allow_insecure_http"};
const std::set<std::string, std::less<>> kOverlayKeys = {
    "region",        "endpoint", "namespace", "state_table", "migrations_dir", "lock_ttl",
    "reconnect_for", "defaults", "pricing",   "journal",     "allow_insecure_http"};
const std::set<std::string, std::less<>> kPricingKeys = {"region", "as_of", "read_per_million",
                                                         "write_per_million"};
const std::set<std::string, std::less<>> kDefaultsKeys = {"segments", "max_wcu", "max_rcu"};

void apply(const YamlDoc& doc, const YAML::Node& node, std::string_view what,
           const std::set<std::string, std::less<>>& allowed, Config& c) {
  doc.check_map(node, what, allowed);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string k = it->first.Scalar();
    const YAML::Node v = it->second;  // a copy: it-> yields a temporary pair
    if (k == "region") {
      c.region = doc.string(v, k);
    } else if (k == "endpoint") {
      c.endpoint = doc.string(v, k);
      if (c.endpoint->rfind("http://", 0) != 0 && c.endpoint->rfind("https://", 0) != 0)
        doc.fail(
            v, fmt::format("endpoint: expected an http:// or https:// URL, got '{}'", *c.endpoint));
    } else if (k == "allow_insecure_http") {
      c.allow_insecure_http = doc.boolean(v, k);
    } else if (k == "namespace") {
      c.table_namespace = is_null_scalar(v) ? std::string() : doc.string(v, k);
    } else if (k == "state_table") {
      c.state_table = doc.string(v, k);
      if (c.state_table.empty()) doc.fail(v, "state_table: must not be empty");
    } else if (k == "migrations_dir") {
      c.migrations_dir = doc.string(v, k);
    } else if (k == "lock_ttl") {
      auto d = parse_duration(doc.string(v, k));
      if (!d)
        doc.fail(v, fmt::format("lock_ttl: expected a duration like 30s, 5m or 1h, got '{}'",
                                v.Scalar()));
      c.lock_ttl = *d;
    } else if (k == "reconnect_for") {
      const std::string text = doc.string(v, k);
      auto d = text == "0" ? std::optional(std::chrono::milliseconds(0)) : parse_duration(text);
      if (!d)
        doc.fail(v, fmt::format("reconnect_for: expected a duration like 30s or 2m, or 0 (off), "
                                "got '{}'",
                                v.Scalar()));
      c.reconnect_for = *d;
    } else if (k == "pricing") {
      doc.check_map(v, "pricing", kPricingKeys);
      for (auto d = v.begin(); d != v.end(); ++d) {
        const std::string& pk = d->first.Scalar();
        if (pk == "region") {
          c.prices.region = doc.string(d->second, pk);
        } else if (pk == "as_of") {
          c.prices.as_of = doc.string(d->second, pk);
        } else {
          double x = doc.number(d->second, pk);
          if (x < 0) doc.fail(d->second, fmt::format("pricing.{}: must not be negative", pk));
          (pk == "read_per_million" ? c.prices.read_per_million : c.prices.write_per_million) = x;
        }
      }
    } else if (k == "journal") {
      if (is_null_scalar(v)) {
        c.journal.reset();
        continue;
      }
      std::string j = doc.string(v, k);
      if (j.empty()) doc.fail(v, "journal: expected a folder or s3://bucket/prefix, got ''");
      if (dynamo::is_s3_url(j)) {
        try {
          dynamo::parse_s3_url(j);
        } catch (const UsageError& e) {
          doc.fail(v, fmt::format("journal: {}", e.what()));
        }
      }
      c.journal = j;
    } else if (k == "defaults") {
      doc.check_map(v, "defaults", kDefaultsKeys);
      for (auto d = v.begin(); d != v.end(); ++d) {
        const std::string& dk = d->first.Scalar();
        if (dk == "segments") {
          auto n = doc.integer(d->second, "segments");
          if (n < 1 || n > 1000000) doc.fail(d->second, "segments: expected 1 to 1000000");
          c.segments = static_cast<int>(n);
        } else {
          double x = doc.number(d->second, dk);
          if (x < 0) doc.fail(d->second, fmt::format("{}: must not be negative", dk));
          (dk == "max_wcu" ? c.max_wcu : c.max_rcu) = x;
        }
      }
    }
  }
}

}  // namespace

Config load_config(const std::optional<std::string>& path,
                   const std::optional<std::string>& environment) {
  Config c;
  std::string file;
  if (path) {
    file = *path;
    if (!std::filesystem::exists(file))
      throw UsageError(fmt::format("--config {}: no such file", file));
  } else if (std::filesystem::exists("dynamorph.yaml")) {
    file = "dynamorph.yaml";
  }
  const std::string env = environment.value_or("");
  if (file.empty()) {
    if (!env.empty())
      throw UsageError(
          fmt::format("environment '{}' asked for, but there is no dynamorph.yaml here "
                      "(use --config FILE)",
                      env));
    return c;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UsageError(fmt::format("{}: cannot read", file));
  std::stringstream ss;
  ss << in.rdbuf();
  YamlDoc doc = YamlDoc::parse(ss.str(), file);
  c.file = file;
  if (const auto folder = std::filesystem::path(file).parent_path(); !folder.empty())
    c.project_dir = folder.string();
  const YAML::Node& root = doc.root();
  if (root.IsNull()) {
    if (!env.empty())
      throw UsageError(fmt::format("{}: no environment '{}' (the file is empty)", file, env));
    return c;
  }
  if (!root.IsMap()) doc.fail(root, "expected a map of settings");
  apply(doc, root, "dynamorph.yaml", kTopKeys, c);
  const std::filesystem::path dir = std::filesystem::path(file).parent_path();
  if (!env.empty()) {
    const YAML::Node envs = root["environments"];
    if (!envs || !envs.IsMap())
      throw UsageError(
          fmt::format("{}: no environment '{}' (no environments: section)", file, env));
    doc.check_keys_unique(envs);
    YAML::Node chosen = envs[env];
    if (!chosen) {
      std::string names;
      for (auto it = envs.begin(); it != envs.end(); ++it)
        names += (names.empty() ? "" : ", ") + it->first.Scalar();
      YAML::Node key_node = envs;
      for (auto it = root.begin(); it != root.end(); ++it)
        if (it->first.Scalar() == "environments") key_node = it->first;
      throw UsageError(
          fmt::format("{}: no environment '{}' (defined: {})", doc.where(key_node), env, names));
    }
    apply(doc, chosen, fmt::format("environments.{}", env), kOverlayKeys, c);
    c.environment = env;
  } else if (const YAML::Node envs = root["environments"]) {
    if (!envs.IsMap()) doc.fail(envs, "environments: expected a map of name: settings");
    doc.check_keys_unique(envs);
    for (auto it = envs.begin(); it != envs.end(); ++it) {  // validate every overlay anyway
      Config scratch;
      apply(doc, it->second, fmt::format("environments.{}", it->first.Scalar()), kOverlayKeys,
            scratch);
    }
  }
  if (c.journal && !dynamo::is_s3_url(*c.journal) && !dir.empty() &&
      std::filesystem::path(*c.journal).is_relative())
    c.journal = (dir / *c.journal).lexically_normal().string();
  if (!dir.empty() && std::filesystem::path(c.migrations_dir).is_relative())
    c.migrations_dir = (dir / c.migrations_dir).lexically_normal().string();
  return c;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::int64_t total = 0;
  std::size_t i = 0;
  if (text.empty()) return std::nullopt;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    std::int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i] - '0');
      if (n > 100000000) return std::nullopt;
      ++i;
    }
    std::size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    std::string_view unit = text.substr(i, j - i);
    i = j;
    if (unit == "ms")
      total += n;
    else if (unit == "s")
      total += n * 1000;
    else if (unit == "m")
      total += n * 60000;
    else if (unit == "h")
      total += n * 3600000;
    else
      return std::nullopt;
  }
  if (total <= 0) return std::nullopt;
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms % 3600000 == 0) return fmt::format("{}h", ms / 3600000);
  if (ms % 60000 == 0) return fmt::format("{}m", ms / 60000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

}  // namespace dynamorph::migrations
