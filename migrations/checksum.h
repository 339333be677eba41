// Migration checksums: SHA-256 of the file text with CRLF (and lone CR) normalized to LF, so a
// checkout on another OS does not look like a change. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace dynamorph::migrations {

std::string normalize_line_endings(std::string_view text);
// Lower-case hex SHA-256 of normalize_line_endings(text).
std::string checksum(std::string_view text);

}  // namespace dynamorph::migrations
