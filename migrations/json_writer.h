// One writer for the JSON lines dynamorph prints (`--json`): an object built field by field, in
// the order the fields are added, with strings escaped by dynamo's codec and numbers in fixed
// formats. Values already encoded elsewhere (pipeline counters) go in as raw JSON.
// A plain value; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynamorph::migrations {

class JsonObject {
 public:
  JsonObject& string(std::string_view name, std::string_view value);
  JsonObject& string_or_null(std::string_view name, const std::optional<std::string>& value);
  JsonObject& integer(std::string_view name, std::int64_t value);
  // Fixed notation with `decimals` digits after the point (0: none).
  JsonObject& number(std::string_view name, double value, int decimals);
  JsonObject& boolean(std::string_view name, bool value);
  JsonObject& null(std::string_view name);
  JsonObject& object(std::string_view name, const JsonObject& value);
  JsonObject& raw(std::string_view name, std::string_view json);  // an encoded JSON value

  // "{…}"
  std::string str() const { return out_ + "}"; }

 private:
  void name(std::string_view name);

  std::string out_ = "{";
};

// A JSON array of encoded values.
class JsonArray {
 public:
  JsonArray& raw(std::string_view json);
  JsonArray& object(const JsonObject& value) { return raw(value.str()); }
  JsonArray& string(std::string_view value);
  std::string str() const { return out_ + "]"; }

 private:
  std::string out_ = "[";
};

}  // namespace dynamorph::migrations
