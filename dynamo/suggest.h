// "did you mean …?" for names a user mistyped: the closest candidate by edit distance
// (insertions, deletions, substitutions and swaps of neighbours count one each), when it is
// close enough to be what was meant: at most 1 edit for names of up to 4 characters, 2 up to 8,
// 3 beyond. Case differences count as edits. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dynamorph::dynamo {

std::size_t edit_distance(std::string_view a, std::string_view b);
std::optional<std::string> nearest_name(std::string_view word,
                                        const std::vector<std::string>& candidates);
// " (did you mean 'x'?)", or "" when nothing is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace dynamorph::dynamo
