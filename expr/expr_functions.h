// Building blocks of the client-side extension functions: UTF-8 case mapping and slicing,
// ISO-8601 parsing, UUID and ULID generation. Thread-safe (ulid keeps per-thread state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dynamorph::expr::detail {

// Simple case mapping of ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters; other
// code points and invalid UTF-8 bytes are copied as they are. Appends to out.
void append_lower(std::string& out, std::string_view s);
void append_upper(std::string& out, std::string_view s);

// Without ASCII white space (space, \t, \n, \r, \f, \v) at both ends.
std::string_view trim_ascii(std::string_view s);

// The code points [start, start + count) of s (0-based, clamped to the string); count nullopt =
// to the end.
std::string_view utf8_slice(std::string_view s, std::uint64_t start,
                            std::optional<std::uint64_t> count);

// s with every occurrence of `from` replaced by `to` (none when `from` is empty); appends to out.
void append_replaced(std::string& out, std::string_view s, std::string_view from,
                     std::string_view to);

// The fields of s between occurrences of a non-empty `sep` (one field when sep never occurs);
// the views point into s. Replaces the contents of out.
void split_fields(std::vector<std::string_view>& out, std::string_view s, std::string_view sep);

// Milliseconds since 1970-01-01T00:00:00Z of YYYY-MM-DD or YYYY-MM-DD(T| )hh:mm[:ss[.f…]]
// followed by Z, ±hh:mm, ±hhmm, ±hh or nothing (UTC). nullopt when the text is none of these.
std::optional<std::int64_t> parse_epoch_ms(std::string_view iso);

std::string make_uuid();  // random (v4), lower case, 36 characters
std::string make_ulid();  // 26 characters, Crockford base32; monotonic within a thread

}  // namespace dynamorph::expr::detail
