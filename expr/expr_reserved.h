// DynamoDB's reserved words. Thread-safe (constant data).
#pragma once

#include <string_view>

namespace dynamorph::expr::detail {

// Case-insensitive: "Data", "STATUS" and "name" are reserved.
bool is_reserved_word(std::string_view name);

}  // namespace dynamorph::expr::detail
