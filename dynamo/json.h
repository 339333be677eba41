// DynamoDB JSON codec. Writers append to a caller-owned (reused) buffer; readers parse with
// simdjson On-Demand using one parser per thread. All functions are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "dynamo/attribute_value.h"

namespace dynamorph::dynamo {

// ---- writing -------------------------------------------------------------------------------
void write_json_string(std::string& out, std::string_view s);  // quoted and escaped
void write_value(std::string& out, const AttributeValue& v);   // {"S":"x"}
void write_item(std::string& out, const Item& item);           // {"a":{"S":"x"},…}

// Appends the UTF-8 bytes of one code point (≤ U+10FFFF).
void append_utf8(std::string& out, char32_t code_point);
void base64_encode(std::string& out, std::string_view bytes);
// Appends the decoded bytes; false on malformed input.
bool base64_decode(std::string& out, std::string_view text);

// ---- reading -------------------------------------------------------------------------------
// Parse one item / value in DynamoDB JSON. Throws dynamorph::Error naming what is wrong.
Item parse_item(std::string_view json);
AttributeValue parse_value(std::string_view json);
// Parse `{"<member>":{…item…}}` — a line of a DynamoDB export is {"Item":{…}} — into the item.
// Another member, a missing one, or text after the object throws dynamorph::Error naming it.
Item parse_item_member(std::string_view json, std::string_view member);

// A flat JSON object whose members are strings, integers, or items in DynamoDB JSON (objects):
// the records of dynamorph's own JSON-lines files. Throws dynamorph::Error naming what is wrong.
struct PlainRecord {
  std::map<std::string, std::string, std::less<>> strings;
  std::map<std::string, std::int64_t, std::less<>> integers;
  std::map<std::string, Item, std::less<>> items;
};
PlainRecord parse_plain_record(std::string_view json);

// Ensures `buffer` can be handed to simdjson without a copy (capacity ≥ size + padding).
void pad_for_parsing(std::string& buffer);

}  // namespace dynamorph::dynamo
