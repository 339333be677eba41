// Turns yaml-cpp's syntax errors ("illegal map value", "end of map not found") into words a
// new user can act on, by looking at the text around the error. Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dynamorph::migrations {

// The likely cause of a parse error at 0-based (line, column) with yaml-cpp's message, in one
// sentence naming lines 1-based ("YAML forbids tabs in indentation: line 3 column 1 has a tab;
// indent with spaces"); nothing when no common cause fits.
std::optional<std::string> explain_yaml_error(std::string_view text, int line, int column,
                                              std::string_view message);

// yaml-cpp accepts a quote left open at the end of the text (the rest of the file becomes one
// string): the 1-based line of such a quote and the sentence saying so.
std::optional<std::pair<int, std::string>> unclosed_quote_at_end(std::string_view text);

}  // namespace dynamorph::migrations
