#include "migrations/json_writer.h"

#include <fmt/format.h>

#include "dynamo/json.h"

namespace dynamorph::migrations {

void JsonObject::name(std::string_view name) {
  if (out_.size() > 1) out_ += ',';
  dynamo::write_json_string(out_, name);
  out_ += ':';
}

JsonObject& JsonObject::string(std::string_view n, std::string_view value) {
  name(n);
  dynamo::write_json_string(out_, value);
  return *this;
}

JsonObject& JsonObject::string_or_null(std::string_view n,
                                       const std::optional<std::string>& value) {
  return value ? string(n, std::string_view(*value)) : null(n);
}

JsonObject& JsonObject::integer(std::string_view n, std::int64_t value) {
  name(n);
  fmt::format_to(std::back_inserter(out_), "{}", value);
  return *this;
}

JsonObject& JsonObject::number(std::string_view n, double value, int decimals) {
  name(n);
  fmt::format_to(std::back_inserter(out_), "{:.{}f}", value, decimals);
  return *this;
}

JsonObject& JsonObject::boolean(std::string_view n, bool value) {
  name(n);
  out_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::null(std::string_view n) {
  name(n);
  out_ += "null";
  return *this;
}

JsonObject& JsonObject::object(std::string_view n, const JsonObject& value) {
  return raw(n, value.str());
}

JsonObject& JsonObject::raw(std::string_view n, std::string_view json) {
  name(n);
  out_ += json;
  return *this;
}

JsonArray& JsonArray::raw(std::string_view json) {
  if (out_.size() > 1) out_ += ',';
  out_ += json;
  return *this;
}

JsonArray& JsonArray::string(std::string_view value) {
  if (out_.size() > 1) out_ += ',';
  dynamo::write_json_string(out_, value);
  return *this;
}

}  // namespace dynamorph::migrations
