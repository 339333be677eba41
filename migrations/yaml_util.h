// Reading YAML with positions: every error names "file:line: key: what was expected".
// yaml-cpp nodes carry their marks; these helpers keep the file's display name next to them.
// Not thread-safe per document (yaml-cpp nodes are not); documents are read at plan time.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/errors.h"

namespace dynamorph::migrations {

// A YAML document and the name it is reported under ("migrations/1_x.yaml").
class YamlDoc {
 public:
  // Parses text; a syntax error becomes UsageError "file:line:column: message".
  static YamlDoc parse(std::string text, std::string display);

  const YAML::Node& root() const { return root_; }
  const std::string& display() const { return display_; }
  const std::string& text() const { return text_; }

  // "file:line" of a node (1-based line); of the document start when the node has no mark.
  std::string where(const YAML::Node& node) const;
  [[noreturn]] void fail(const YAML::Node& node, std::string_view message) const;

  // Checks that `node` is a map whose keys are all in `allowed` and unique; returns it.
  void check_map(const YAML::Node& node, std::string_view what,
                 const std::set<std::string, std::less<>>& allowed) const;
  void check_keys_unique(const YAML::Node& node) const;

  // Typed readers; `key` names the value in messages.
  std::string string(const YAML::Node& node, std::string_view key) const;
  std::int64_t integer(const YAML::Node& node, std::string_view key) const;
  double number(const YAML::Node& node, std::string_view key) const;
  bool boolean(const YAML::Node& node, std::string_view key) const;
  std::vector<std::string> string_list(const YAML::Node& node, std::string_view key) const;

 private:
  void check_tags(const YAML::Node& node) const;

  std::string text_;
  std::string display_;
  YAML::Node root_;
};

// True for a plain (unquoted) scalar, which may be a number, boolean or null.
bool is_plain_scalar(const YAML::Node& node);
bool is_null_scalar(const YAML::Node& node);

}  // namespace dynamorph::migrations
