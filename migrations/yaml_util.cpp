#include "migrations/yaml_util.h"

#include "dynamo/suggest.h"
#include "migrations/yaml_explain.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace dynamorph::migrations {

YamlDoc YamlDoc::parse(std::string text, std::string display) {
  YamlDoc doc;
  doc.text_ = std::move(text);
  doc.display_ = std::move(display);
  try {
    doc.root_ = YAML::Load(doc.text_);
  } catch (const YAML::ParserException& e) {
    if (auto why = explain_yaml_error(doc.text_, e.mark.line, e.mark.column, e.msg))
      throw UsageError(fmt::format("{}:{}:{}: {} (yaml-cpp: {})", doc.display_, e.mark.line + 1,
                                   e.mark.column + 1, *why, e.msg));
    throw UsageError(
        fmt::format("{}:{}:{}: {}", doc.display_, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const YAML::Exception& e) {
    throw UsageError(fmt::format("{}: {}", doc.display_, e.msg));
  }
  if (auto open = unclosed_quote_at_end(doc.text_))
    throw UsageError(fmt::format("{}:{}: {}", doc.display_, open->first, open->second));
  doc.check_tags(doc.root_);
  return doc;
}

// A value written `!x = 1` parses as the string "= 1" tagged "!x": nothing here uses tags, so
// one is a value that needed quoting.
void YamlDoc::check_tags(const YAML::Node& node) const {
  const std::string& tag = node.Tag();
  if (node.IsScalar() && tag != "?" && tag != "!" && !tag.starts_with("tag:yaml.org,2002:")) {
    const YAML::Mark m = node.Mark();
    const auto why = explain_yaml_error(text_, m.line, m.column, "tag");
    fail(node, why ? *why
                   : fmt::format("a plain value cannot start with '!' (YAML reads '{}' as a tag); "
                                 "quote it",
                                 tag));
  }
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      check_tags(it->first);
      check_tags(it->second);
    }
  } else if (node.IsSequence()) {
    for (const auto& n : node) check_tags(n);
  }
}

std::string YamlDoc::where(const YAML::Node& node) const {
  const YAML::Mark m = node.Mark();
  if (m.is_null() || m.line < 0) return display_;
  return fmt::format("{}:{}", display_, m.line + 1);
}

void YamlDoc::fail(const YAML::Node& node, std::string_view message) const {
  throw UsageError(fmt::format("{}: {}", where(node), message));
}

void YamlDoc::check_keys_unique(const YAML::Node& node) const {
  std::set<std::string, std::less<>> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) fail(it->first, "keys must be plain names");
    const std::string k = it->first.Scalar();
    if (!seen.insert(k).second) fail(it->first, fmt::format("'{}' appears twice", k));
  }
}

void YamlDoc::check_map(const YAML::Node& node, std::string_view what,
                        const std::set<std::string, std::less<>>& allowed) const {
  if (!node.IsMap()) fail(node, fmt::format("{} must be a map", what));
  check_keys_unique(node);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string k = it->first.Scalar();
    if (!allowed.contains(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      auto near = dynamo::nearest_name(k, std::vector<std::string>(allowed.begin(), allowed.end()));
      fail(it->first, fmt::format("unknown key '{}' in {} ({}expected one of: {})", k, what,
                                  near ? "did you mean '" + *near + "'? " : "", list));
    }
  }
}

bool is_plain_scalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "?"; }

bool is_null_scalar(const YAML::Node& node) {
  if (node.IsNull()) return true;
  if (!is_plain_scalar(node)) return false;
  const std::string& s = node.Scalar();
  return s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty();
}

std::string YamlDoc::string(const YAML::Node& node, std::string_view key) const {
  if (!node.IsScalar() || is_null_scalar(node))
    fail(node, fmt::format("{}: expected a string", key));
  return node.Scalar();
}

std::int64_t YamlDoc::integer(const YAML::Node& node, std::string_view key) const {
  if (!node.IsScalar()) fail(node, fmt::format("{}: expected an integer", key));
  const std::string& s = node.Scalar();
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    fail(node, fmt::format("{}: expected an integer, got '{}'", key, s));
  return v;
}

double YamlDoc::number(const YAML::Node& node, std::string_view key) const {
  if (!node.IsScalar()) fail(node, fmt::format("{}: expected a number", key));
  const std::string& s = node.Scalar();
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || !std::isfinite(v))
    fail(node, fmt::format("{}: expected a number, got '{}'", key, s));
  return v;
}

bool YamlDoc::boolean(const YAML::Node& node, std::string_view key) const {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  fail(node, fmt::format("{}: expected true or false", key));
}

std::vector<std::string> YamlDoc::string_list(const YAML::Node& node, std::string_view key) const {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    out.push_back(string(node, key));
    return out;
  }
  if (!node.IsSequence()) fail(node, fmt::format("{}: expected a list of strings", key));
  for (const auto& n : node) out.push_back(string(n, key));
  return out;
}

}  // namespace dynamorph::migrations
