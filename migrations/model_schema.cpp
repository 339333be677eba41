#include "migrations/model_schema.h"

#include <fmt/format.h>

#include <set>

#include "migrations/yaml_util.h"

namespace dynamorph::migrations {

std::string_view type_word(dynamo::AttrType type) {
  using T = dynamo::AttrType;
  switch (type) {
    case T::S: return "string";
    case T::N: return "number";
    case T::B: return "binary";
    case T::BOOL: return "boolean";
    case T::NUL: return "null";
    case T::M: return "map";
    case T::L: return "list";
    case T::SS: return "string_set";
    case T::NS: return "number_set";
    case T::BS: return "binary_set";
  }
  return "?";
}

std::vector<std::string> pattern_placeholders(std::string_view pattern, std::string* why) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '>') {
      if (why) *why = fmt::format("'>' at {} closes no '<'", i + 1);
      return {};
    }
    if (pattern[i] != '<') continue;
    const auto close = pattern.find_first_of("<>", i + 1);
    if (close == std::string_view::npos || pattern[close] == '<') {
      if (why) *why = fmt::format("'<' at {} is not closed by '>'", i + 1);
      return {};
    }
    if (close == i + 1) {
      if (why) *why = fmt::format("'<>' at {} names no attribute", i + 1);
      return {};
    }
    names.emplace_back(pattern.substr(i + 1, close - i - 1));
    i = close;
  }
  return names;
}

namespace {

using Keys = std::set<std::string, std::less<>>;

SchemaEntity entity(const YamlDoc& doc, const YAML::Node& n, std::string_view what) {
  if (!n.IsMap())
    doc.fail(n, fmt::format("{}: expected a map with name, keys and attributes", what));
  doc.check_map(n, what, Keys{"name", "table", "description", "keys", "attributes"});
  SchemaEntity e;
  if (!n["name"]) doc.fail(n, fmt::format("{}: 'name' is required", what));
  e.name = doc.string(n["name"], fmt::format("{}.name", what));
  if (e.name.empty()) doc.fail(n["name"], fmt::format("{}.name: must not be empty", what));
  const std::string label = fmt::format("entity {}", e.name);
  if (n["table"]) {
    e.table = doc.string(n["table"], fmt::format("{}.table", label));
    if (e.table.empty()) doc.fail(n["table"], fmt::format("{}.table: must not be empty", label));
  }
  if (n["description"]) e.description = doc.string(n["description"], label + ".description");
  if (const auto& attrs = n["attributes"]) {
    if (!attrs.IsMap())
      doc.fail(attrs, fmt::format("{}.attributes: expected a map of attribute: type", label));
    doc.check_keys_unique(attrs);
    for (const auto& kv : attrs) {
      const std::string name = kv.first.as<std::string>();
      const std::string word = doc.string(kv.second, fmt::format("{}.attributes.{}", label, name));
      auto type = dynamo::parse_type(word);
      if (!type)
        doc.fail(kv.second,
                 fmt::format("{}.attributes.{}: unknown type '{}' (string number binary boolean "
                             "null map list string_set number_set binary_set, or S N B …)",
                             label, name, word));
      e.attributes.emplace_back(name, *type);
    }
  }
  const auto& keys = n["keys"];
  if (!keys) doc.fail(n, fmt::format("{}: 'keys' is required (attribute: pattern)", label));
  if (!keys.IsMap() || keys.size() == 0)
    doc.fail(keys, fmt::format("{}.keys: expected a map of attribute: pattern, like "
                               "{{ PK: \"USER#<user_id>\" }}",
                               label));
  doc.check_keys_unique(keys);
  for (const auto& kv : keys) {
    const std::string name = kv.first.as<std::string>();
    const std::string what_key = fmt::format("{}.keys.{}", label, name);
    const std::string pattern = doc.string(kv.second, what_key);
    if (pattern.empty()) doc.fail(kv.second, what_key + ": must not be empty");
    std::string why;
    auto names = pattern_placeholders(pattern, &why);
    if (!why.empty()) doc.fail(kv.second, fmt::format("{}: {}", what_key, why));
    for (const auto& p : names) {
      bool known = false;
      for (const auto& [a, t] : e.attributes) known = known || a == p;
      if (!known)
        doc.fail(kv.second,
                 fmt::format("{}: <{}> is not among the entity's attributes", what_key, p));
    }
    e.keys.emplace_back(name, pattern);
  }
  return e;
}

}  // namespace

ModelSchema parse_model_schema(const YamlDoc& doc, const YAML::Node& node) {
  if (!node.IsMap()) doc.fail(node, "schema: expected a map with description and entities");
  doc.check_map(node, "schema", Keys{"description", "entities"});
  ModelSchema s;
  if (node["description"]) s.description = doc.string(node["description"], "schema.description");
  const auto& entities = node["entities"];
  if (!entities) doc.fail(node, "schema: 'entities' is required");
  if (!entities.IsSequence() || entities.size() == 0)
    doc.fail(entities, "schema.entities: expected a list of at least one entity");
  std::set<std::string> names;
  for (std::size_t i = 0; i < entities.size(); ++i) {
    const YAML::Node& n = entities[i];
    auto e = entity(doc, n, fmt::format("schema.entities[{}]", i));
    if (!names.insert(e.name).second)
      doc.fail(n["name"], fmt::format("schema: entity {} is described twice", e.name));
    s.entities.push_back(std::move(e));
  }
  return s;
}

}  // namespace dynamorph::migrations
