// simdjson On-Demand readers for DynamoDB JSON, shared by the response parsers in dynamo/.
// Internal to dynamo/: callers elsewhere use json.h or the typed responses.
#pragma once

#include <simdjson.h>

#include "dynamo/attribute_value.h"

namespace dynamorph::dynamo::detail {

// The parser of the calling thread, reused across documents.
simdjson::ondemand::parser& thread_parser();

AttributeValue read_value(simdjson::ondemand::value v);
Item read_item(simdjson::ondemand::value v);
// Appends read values of an object onto `out`.
void read_item_into(simdjson::ondemand::object obj, Item& out);

// View the buffer as padded input (the buffer must have been padded with pad_for_parsing).
simdjson::padded_string_view padded(const std::string& buffer);

}  // namespace dynamorph::dynamo::detail
