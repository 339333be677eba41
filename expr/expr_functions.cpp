#include "expr/expr_functions.h"

#include "dynamo/json.h"

// date.h's parser trips false -Wmaybe-uninitialized / -Wstringop-overflow in g++ 12 once
// inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include <date/date.h>
#include <sys/random.h>
#include <uuid/uuid.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>

namespace dynamorph::expr::detail {
namespace {

// Decodes one code point at s[i]; returns its length, or 0 for an invalid sequence.
std::size_t decode(std::string_view s, std::size_t i, char32_t& cp) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  std::size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  char32_t v = c & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3F);
  }
  cp = v;
  return len;
}

char32_t lower_of(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0xC0) return c;
  if (c <= 0xDE) return c == 0xD7 ? c : c + 32;
  if (c >= 0x100 && c <= 0x137) return c == 0x130 ? U'i' : (c % 2 == 0 ? c + 1 : c);
  if (c >= 0x139 && c <= 0x148) return c % 2 == 1 ? c + 1 : c;
  if (c >= 0x14A && c <= 0x177) return c % 2 == 0 ? c + 1 : c;
  if (c == 0x178) return 0xFF;
  if (c >= 0x179 && c <= 0x17E) return c % 2 == 1 ? c + 1 : c;
  if (c == 0x386) return 0x3AC;  // Greek with tonos
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

char32_t upper_of(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0xB5) return c;
  if (c == 0xB5) return 0x39C;
  if (c >= 0xE0 && c <= 0xFE) return c == 0xF7 ? c : c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0x131) return U'I';
  if (c >= 0x100 && c <= 0x137) return c % 2 == 1 ? c - 1 : c;
  if (c >= 0x139 && c <= 0x148) return c % 2 == 0 ? c - 1 : c;
  if (c >= 0x14A && c <= 0x177) return c % 2 == 1 ? c - 1 : c;
  if (c >= 0x179 && c <= 0x17E) return c % 2 == 0 ? c - 1 : c;
  if (c == 0x17F) return U'S';
  if (c == 0x3AC) return 0x386;  // Greek with tonos
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x3B1 && c <= 0x3C9) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

template <class Map>
void append_mapped(std::string& out, std::string_view s, Map map) {
  out.reserve(out.size() + s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t ascii = i;  // fast path: a run of ASCII maps byte for byte
    while (ascii < s.size() && static_cast<unsigned char>(s[ascii]) < 0x80) ++ascii;
    if (ascii > i) {
      const std::size_t at = out.size();
      out.resize(at + (ascii - i));
      char* p = out.data() + at;
      for (; i < ascii; ++i) *p++ = static_cast<char>(map(static_cast<unsigned char>(s[i])));
      continue;
    }
    char32_t cp;
    std::size_t len = decode(s, i, cp);
    if (len == 0) {
      out.push_back(s[i++]);
      continue;
    }
    char32_t m = map(cp);
    if (m == cp)
      out.append(s.substr(i, len));
    else
      dynamo::append_utf8(out, m);
    i += len;
  }
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "Z", "+hh:mm", "+hhmm", "+hh" → minutes east of UTC.
std::optional<int> parse_offset(std::string_view s) {
  if (s == "Z" || s == "z") return 0;
  if (s.size() < 3 || (s[0] != '+' && s[0] != '-')) return std::nullopt;
  int sign = s[0] == '-' ? -1 : 1;
  std::string_view hh = s.substr(1, 2), mm;
  if (s.size() == 3) {
    mm = "00";
  } else if (s.size() == 6 && s[3] == ':') {
    mm = s.substr(4, 2);
  } else if (s.size() == 5) {
    mm = s.substr(3, 2);
  } else {
    return std::nullopt;
  }
  if (!all_digits(hh) || !all_digits(mm)) return std::nullopt;
  int h = (hh[0] - '0') * 10 + (hh[1] - '0'), m = (mm[0] - '0') * 10 + (mm[1] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return sign * (h * 60 + m);
}

template <class TimePoint>
bool parse_with(const std::string& text, const char* format, TimePoint& tp) {
  // One stream per thread: constructing one (locale and all) costs more than the parse.
  thread_local std::istringstream in;
  in.clear();
  in.str(text);
  in >> date::parse(format, tp);
  return !in.fail() && in.peek() == std::char_traits<char>::eof();
}

void fill_random(unsigned char* out, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out + got, n - got, 0);
    if (r > 0) got += static_cast<std::size_t>(r);
  }
}

}  // namespace

// Lambdas rather than function pointers, so that the mapping inlines into the loop.
void append_lower(std::string& out, std::string_view s) {
  append_mapped(out, s, [](char32_t c) { return lower_of(c); });
}
void append_upper(std::string& out, std::string_view s) {
  append_mapped(out, s, [](char32_t c) { return upper_of(c); });
}

std::string_view trim_ascii(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  std::size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  std::size_t e = s.find_last_not_of(kSpace);
  return s.substr(b, e - b + 1);
}

void append_replaced(std::string& out, std::string_view s, std::string_view from,
                     std::string_view to) {
  if (from.empty()) {
    out.append(s);
    return;
  }
  std::size_t at = 0;
  for (;;) {
    std::size_t hit = s.find(from, at);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(at, hit - at));
    out.append(to);
    at = hit + from.size();
  }
  out.append(s.substr(at));
}

void split_fields(std::vector<std::string_view>& out, std::string_view s, std::string_view sep) {
  out.clear();
  for (;;) {
    std::size_t hit = s.find(sep);
    if (hit == std::string_view::npos) {
      out.push_back(s);
      return;
    }
    out.push_back(s.substr(0, hit));
    s.remove_prefix(hit + sep.size());
  }
}

std::string_view utf8_slice(std::string_view s, std::uint64_t start,
                            std::optional<std::uint64_t> count) {
  auto advance = [&](std::size_t i, std::uint64_t n) {
    while (i < s.size() && n > 0) {
      ++i;
      while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
      --n;
    }
    return i;
  };
  std::size_t b = advance(0, start);
  std::size_t e = count ? advance(b, *count) : s.size();
  return s.substr(b, e - b);
}

std::optional<std::int64_t> parse_epoch_ms(std::string_view iso) {
  using namespace std::chrono;
  if (iso.size() < 10 || iso.size() > 64) return std::nullopt;
  if (iso.size() == 10) {
    date::sys_days day;
    if (!parse_with(std::string(iso), "%Y-%m-%d", day)) return std::nullopt;
    return duration_cast<milliseconds>(day.time_since_epoch()).count();
  }
  if (iso[10] != 'T' && iso[10] != 't' && iso[10] != ' ') return std::nullopt;
  std::size_t zone = iso.find_first_of("Zz+-", 11);
  std::string local(iso.substr(0, zone));
  local[10] = 'T';
  int offset_minutes = 0;
  if (zone != std::string_view::npos) {
    std::optional<int> off = parse_offset(iso.substr(zone));
    if (!off) return std::nullopt;
    offset_minutes = *off;
  }
  date::sys_time<nanoseconds> tp;
  // %S reads fractional seconds down to the time point's precision.
  std::size_t colons = std::count(local.begin(), local.end(), ':');
  if (!parse_with(local, colons == 1 ? "%Y-%m-%dT%H:%M" : "%Y-%m-%dT%H:%M:%S", tp)) {
    return std::nullopt;
  }
  auto ms = floor<milliseconds>(tp) - minutes(offset_minutes);
  return ms.time_since_epoch().count();
}

std::string make_uuid() {
  uuid_t u;
  uuid_generate_random(u);
  char text[37];
  uuid_unparse_lower(u, text);
  return std::string(text, 36);
}

std::string make_ulid() {
  __extension__ typedef unsigned __int128 U128;
  thread_local std::uint64_t last_ms = 0;
  thread_local U128 last_random = 0;  // 80 bits used
  auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  constexpr U128 kRandomMask = (static_cast<U128>(1) << 80) - 1;
  if (now <= last_ms) {
    // Same (or an earlier) millisecond: keep the time and count up, so order follows creation.
    last_random = (last_random + 1) & kRandomMask;
    if (last_random == 0) ++last_ms;
  } else {
    unsigned char bytes[10];
    fill_random(bytes, sizeof bytes);
    U128 r = 0;
    for (unsigned char b : bytes) r = (r << 8) | b;
    last_random = r;
    last_ms = now;
  }
  U128 v = (static_cast<U128>(last_ms & ((1ULL << 48) - 1)) << 80) | last_random;
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kAlphabet[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
}

}  // namespace dynamorph::expr::detail
