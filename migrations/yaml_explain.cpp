#include "migrations/yaml_explain.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace dynamorph::migrations {
namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t nl = text.find('\n', start);
    std::string_view l = text.substr(start, nl == std::string_view::npos ? nl : nl - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    out.push_back(l);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return out;
}

int indent_of(std::string_view l) {
  int i = 0;
  while (i < static_cast<int>(l.size()) && l[i] == ' ') ++i;
  return i;
}

bool blank_or_comment(std::string_view l) {
  const int i = indent_of(l);
  return i == static_cast<int>(l.size()) || l[i] == '#';
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// `key: value` written back with the value quoted: double quotes unless it holds one.
std::string quoted(std::string_view key, std::string_view value) {
  std::string v;
  if (value.find_first_of("\"\\") == std::string_view::npos) {
    v = fmt::format("\"{}\"", value);
  } else {
    v = "'";
    for (char c : value) v += c == '\'' ? std::string("''") : std::string(1, c);
    v += "'";
  }
  return key.empty() ? v : fmt::format("{}: {}", key, v);
}

// "key: value" on one line, after the indentation and any "- " list markers.
struct KeyValue {
  std::string_view key;
  std::string_view value;
};

std::optional<KeyValue> key_value(std::string_view l) {
  std::size_t i = 0;
  for (;;) {
    while (i < l.size() && l[i] == ' ') ++i;
    if (i + 1 < l.size() && l[i] == '-' && l[i + 1] == ' ') {
      i += 2;
      continue;
    }
    break;
  }
  std::size_t k = i;
  while (k < l.size() && (std::isalnum(static_cast<unsigned char>(l[k])) || l[k] == '_' ||
                          l[k] == '-' || l[k] == '.'))
    ++k;
  if (k == i || k + 1 >= l.size() || l[k] != ':' || l[k + 1] != ' ') return std::nullopt;
  std::size_t v = k + 1;
  while (v < l.size() && l[v] == ' ') ++v;
  return KeyValue{l.substr(i, k - i), rtrim(l.substr(v))};
}

struct Open {
  char c = 0;
  int line = 0;  // 0-based
  int column = 0;
};

// What is open at a position: a quote, flow brackets, and the last quoted scalar that spanned
// lines (legal YAML, but in a migration file nearly always a quote left open).
struct Scan {
  std::optional<Open> quote;
  std::vector<Open> flow;
  std::optional<Open> flow_comment;  // a '#' that began a comment inside a flow collection
  std::optional<Open> multiline_quote;
  int multiline_quote_end = -1;
};

// True when the line ends with a block scalar header (`code: |`, `- >-`): the lines indented
// deeper after it are text (Lua code, say), whose quotes and brackets mean nothing to YAML.
bool opens_block_scalar(std::string_view l) {
  l = rtrim(l);
  std::size_t i = l.size();
  while (i > 0 &&
         (l[i - 1] == '-' || l[i - 1] == '+' || std::isdigit(static_cast<unsigned char>(l[i - 1]))))
    --i;
  if (i == 0 || (l[i - 1] != '|' && l[i - 1] != '>')) return false;
  --i;
  return i == 0 || (i >= 2 && l[i - 1] == ' ' && (l[i - 2] == ':' || l[i - 2] == '-')) ||
         static_cast<int>(i) == indent_of(l);
}

Scan scan_until(const std::vector<std::string_view>& lines, int line, int column) {
  Scan s;
  int block_parent = -1;  // indentation of the line that opened a block scalar
  for (int ln = 0; ln < static_cast<int>(lines.size()) && ln <= line; ++ln) {
    const std::string_view l = lines[ln];
    if (block_parent >= 0) {
      if (blank_or_comment(l) || indent_of(l) > block_parent) continue;
      block_parent = -1;
    }
    if (!s.quote && s.flow.empty() && opens_block_scalar(l)) block_parent = indent_of(l);
    const std::size_t end =
        ln == line ? std::min(l.size(), static_cast<std::size_t>(column)) : l.size();
    // The last significant character outside quotes decides whether a quote or bracket opens a
    // value (at the start of a line, after ": " or "- ", or after "{", "[", "," in a flow) or is
    // part of a plain scalar such as `name = 'bob'`.
    char prev = '\n';
    for (std::size_t i = 0; i < end; ++i) {
      const char c = l[i];
      if (s.quote) {
        bool closes = false;
        if (s.quote->c == '"') {
          if (c == '\\') {
            ++i;
            continue;
          }
          closes = c == '"';
        } else if (c == '\'') {
          if (i + 1 < l.size() && l[i + 1] == '\'') {
            ++i;
            continue;
          }
          closes = true;
        }
        if (closes) {
          if (s.quote->line != ln) {
            s.multiline_quote = s.quote;
            s.multiline_quote_end = ln;
          }
          s.quote.reset();
          prev = c;
        }
        continue;
      }
      if (c == ' ' || c == '\t') continue;
      const bool in_flow = !s.flow.empty();
      const bool value_start = prev == '\n' || prev == ':' || prev == '-' ||
                               (in_flow && (prev == '{' || prev == '[' || prev == ','));
      if (c == '#' && (i == 0 || l[i - 1] == ' ' || l[i - 1] == '\t' || (in_flow && value_start))) {
        if (in_flow) s.flow_comment = Open{'#', ln, static_cast<int>(i)};
        break;
      }
      const bool followed_by_space = i + 1 >= l.size() || l[i + 1] == ' ';
      if ((c == '"' || c == '\'') && value_start) {
        s.quote = Open{c, ln, static_cast<int>(i)};
      } else if ((c == '{' || c == '[') && (value_start || in_flow)) {
        s.flow.push_back(Open{c, ln, static_cast<int>(i)});
        prev = c;
        continue;
      } else if (in_flow && (c == '}' || c == ']')) {
        if (s.flow.back().c == (c == '}' ? '{' : '[')) s.flow.pop_back();
      }
      if (c == ':' && (followed_by_space || in_flow))
        prev = ':';
      else if (c == '-' && prev == '\n' && followed_by_space)
        prev = '-';
      else if (c == ',' && in_flow)
        prev = ',';
      else
        prev = 'x';
    }
  }
  return s;
}

const char* quote_name(char c) { return c == '"' ? "double quote" : "single quote"; }

std::optional<std::string> tab_in_indentation(const std::vector<std::string_view>& lines,
                                              int line) {
  for (int ln = 0; ln < static_cast<int>(lines.size()) && ln <= line; ++ln) {
    const std::string_view l = lines[ln];
    for (std::size_t i = 0; i < l.size() && (l[i] == ' ' || l[i] == '\t'); ++i) {
      if (l[i] == '\t')
        return fmt::format(
            "YAML forbids tabs in indentation: line {} column {} has a tab; indent with spaces",
            ln + 1, i + 1);
    }
  }
  return std::nullopt;
}

std::optional<std::string> unclosed(const Scan& s, int line, std::string_view message) {
  if (s.quote && s.quote->line < line)
    return fmt::format(
        "the {} opened at line {} column {} is never closed, so YAML reads everything after it "
        "as one string; close it on line {}",
        quote_name(s.quote->c), s.quote->line + 1, s.quote->column + 1, s.quote->line + 1);
  if (s.multiline_quote && s.multiline_quote_end <= line)
    return fmt::format(
        "the {} opened at line {} column {} is closed only on line {}, so YAML reads the lines "
        "between as one string; close it on line {}",
        quote_name(s.multiline_quote->c), s.multiline_quote->line + 1,
        s.multiline_quote->column + 1, s.multiline_quote_end + 1, s.multiline_quote->line + 1);
  if (message.find("flow") != std::string_view::npos && !s.flow.empty()) {
    const Open& o = s.flow.back();
    const char close = o.c == '{' ? '}' : ']';
    if (s.flow_comment && (s.flow_comment->line > o.line ||
                           (s.flow_comment->line == o.line && s.flow_comment->column > o.column)))
      return fmt::format(
          "the '{}' opened at line {} column {} is never closed: the '#' at line {} column {} "
          "starts a comment that hides the rest of the line; quote names like \"#n\"",
          o.c, o.line + 1, o.column + 1, s.flow_comment->line + 1, s.flow_comment->column + 1);
    return fmt::format("the '{}' opened at line {} column {} is never closed with '{}'", o.c,
                       o.line + 1, o.column + 1, close);
  }
  return std::nullopt;
}

std::optional<std::string> indicator_start(std::string_view l, int line, int column) {
  if (column < 0 || column >= static_cast<int>(l.size())) return std::nullopt;
  const char c = l[column];
  const char* why = nullptr;
  switch (c) {
    case '*': why = "YAML reads it as an alias"; break;
    case '&': why = "YAML reads it as an anchor"; break;
    case '!': why = "YAML reads it as a tag"; break;
    case '%': why = "YAML reads it as a directive"; break;
    case '@':
    case '`': why = "YAML reserves it"; break;
    default: return std::nullopt;
  }
  std::string fix;
  if (auto kv = key_value(l); kv && kv->value.data() == l.data() + column) {
    fix = quoted(kv->key, kv->value);
  } else {
    std::string_view rest = l.substr(column);
    rest = rtrim(rest.substr(0, rest.find_first_of(",}]")));
    fix = quoted("", rest);
  }
  return fmt::format("line {} column {}: a plain value cannot start with '{}' ({}); quote it: {}",
                     line + 1, column + 1, c, why, fix);
}

std::optional<std::string> colon_in_value(std::string_view l, int line) {
  auto kv = key_value(l);
  if (!kv || kv->value.empty() ||
      std::string_view("\"'{[|>").find(kv->value[0]) != std::string_view::npos)
    return std::nullopt;
  if (kv->value.find(": ") == std::string_view::npos && kv->value.back() != ':')
    return std::nullopt;
  return fmt::format(
      "line {}: the value of '{}' contains ': ', which YAML reads as a nested key; quote the "
      "whole value: {}",
      line + 1, kv->key, quoted(kv->key, kv->value));
}

std::optional<std::string> text_after_quote(std::string_view l, int line) {
  auto kv = key_value(l);
  if (!kv || kv->value.empty() || (kv->value[0] != '"' && kv->value[0] != '\''))
    return std::nullopt;
  const char q = kv->value[0];
  std::size_t i = 1;
  for (; i < kv->value.size(); ++i) {
    if (q == '"' && kv->value[i] == '\\') {
      ++i;
    } else if (kv->value[i] == q) {
      if (q == '\'' && i + 1 < kv->value.size() && kv->value[i + 1] == '\'') {
        ++i;
        continue;
      }
      break;
    }
  }
  if (i >= kv->value.size()) return std::nullopt;
  std::string_view after = kv->value.substr(i + 1);
  while (!after.empty() && after.front() == ' ') after.remove_prefix(1);
  if (after.empty() || after.front() == '#') return std::nullopt;
  return fmt::format(
      "line {}: text follows the closing quote of the value of '{}'; quote the whole value: {}",
      line + 1, kv->key, quoted(kv->key, kv->value));
}

std::optional<std::string> odd_indentation(const std::vector<std::string_view>& lines, int line) {
  if (line >= static_cast<int>(lines.size()) || blank_or_comment(lines[line])) return std::nullopt;
  const int indent = indent_of(lines[line]);
  std::vector<int> levels;
  int previous = -1;
  for (int ln = 0; ln < line; ++ln) {
    const std::string_view l = lines[ln];
    if (blank_or_comment(l)) continue;
    previous = ln;
    std::size_t i = indent_of(l);
    levels.push_back(static_cast<int>(i));
    while (i + 1 < l.size() && l[i] == '-' && l[i + 1] == ' ') {
      i += 2;
      while (i < l.size() && l[i] == ' ') ++i;
      levels.push_back(static_cast<int>(i));
    }
  }
  if (previous < 0 || std::find(levels.begin(), levels.end(), indent) != levels.end())
    return std::nullopt;
  return fmt::format(
      "line {} is indented {} spaces, a depth no line above it uses (line {} uses {}); indent "
      "the keys of one map, or the items of one list, by the same number of spaces",
      line + 1, indent, previous + 1, indent_of(lines[previous]));
}

}  // namespace

std::optional<std::string> explain_yaml_error(std::string_view text, int line, int column,
                                              std::string_view message) {
  const std::vector<std::string_view> lines = split_lines(text);
  if (line < 0) return std::nullopt;
  if (auto why = tab_in_indentation(lines, line)) return why;
  if (auto why = unclosed(scan_until(lines, line, column), line, message)) return why;
  if (line >= static_cast<int>(lines.size())) return std::nullopt;
  const std::string_view l = lines[line];
  if (auto why = indicator_start(l, line, column)) return why;
  if (message == "illegal map value")
    if (auto why = colon_in_value(l, line)) return why;
  if (auto why = text_after_quote(l, line)) return why;
  return odd_indentation(lines, line);
}

std::optional<std::pair<int, std::string>> unclosed_quote_at_end(std::string_view text) {
  const std::vector<std::string_view> lines = split_lines(text);
  const int last = static_cast<int>(lines.size()) - 1;
  const Scan s = scan_until(lines, last, static_cast<int>(lines[last].size()));
  if (!s.quote) return std::nullopt;
  return std::pair{s.quote->line + 1,
                   fmt::format("the {} opened at line {} column {} is never closed, so YAML reads "
                               "the rest of the file as one string; close it on line {}",
                               quote_name(s.quote->c), s.quote->line + 1, s.quote->column + 1,
                               s.quote->line + 1)};
}

}  // namespace dynamorph::migrations
