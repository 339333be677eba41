// The optional `schema:` block of a migration file: a model change documented with its version
// (entities, their key patterns, their attributes), which may need no data step at all. The
// loader validates it (file:line errors); the version's record keeps it; `status --json` shows
// it. Plain values; parsing happens on the main thread at plan time.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamo/attribute_value.h"

namespace YAML {
class Node;
}

namespace dynamorph::migrations {

class YamlDoc;

struct SchemaEntity {
  std::string name;
  std::string table;  // as written in the file (no namespace); empty: not said
  std::string description;
  // attribute → pattern, in file order: {"PK", "USER#<user_id>"}; every <name> is an attribute.
  std::vector<std::pair<std::string, std::string>> keys;
  std::vector<std::pair<std::string, dynamo::AttrType>> attributes;  // in file order
  bool operator==(const SchemaEntity&) const = default;
};

struct ModelSchema {
  std::string description;
  std::vector<SchemaEntity> entities;
  bool operator==(const ModelSchema&) const = default;
};

// The long name of a type: string number binary boolean null map list string_set number_set
// binary_set.
std::string_view type_word(dynamo::AttrType type);

// The <name> placeholders of a key pattern, in order; `why` set (and empty result) when the
// pattern is malformed (an unclosed '<', an empty or nested name).
std::vector<std::string> pattern_placeholders(std::string_view pattern, std::string* why);

// Reads and checks a `schema:` node; UsageError naming file:line on any problem.
ModelSchema parse_model_schema(const YamlDoc& doc, const YAML::Node& node);

}  // namespace dynamorph::migrations
