// An expression as sent to DynamoDB: its text plus exactly the #names and :values it uses.
#pragma once

#include <map>
#include <string>

#include "dynamo/attribute_value.h"

namespace dynamorph::dynamo {

struct WireExpression {
  std::string text;
  std::map<std::string, std::string> names;      // "#n" -> "name"
  std::map<std::string, AttributeValue> values;  // ":v" -> value
  bool empty() const { return text.empty(); }
};

}  // namespace dynamorph::dynamo
