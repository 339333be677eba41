#include "expr/expr_lexer.h"

#include <fmt/format.h>

#include "dynamo/errors.h"

namespace dynamorph::expr::detail {
namespace {

bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word(char c) { return is_alpha(c) || is_digit(c) || c == '_'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::uint32_t column_of(std::string_view text, std::size_t offset) {
  std::uint32_t col = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++col;
  }
  return col;
}

void fail_at(std::string_view label, std::string_view text, std::size_t offset,
             const std::string& message) {
  throw UsageError(fmt::format("{}: column {}: {}", label, column_of(text, offset), message));
}

std::string describe(std::string_view text, const Token& t) {
  if (t.kind == Tok::End) return "the end of the expression";
  std::string_view s = text.substr(t.offset, t.length);
  if (s.size() > 40) return fmt::format("'{}…'", s.substr(0, 40));
  return fmt::format("'{}'", s);
}

std::vector<Token> tokenize(std::string_view text, std::string_view label) {
  std::vector<Token> out;
  out.reserve(text.size() / 2 + 2);
  std::vector<std::uint32_t> open;  // indexes of unmatched '('
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto push = [&](Tok kind, std::size_t start, std::size_t len) {
    out.push_back(
        Token{kind, static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(len), 0, {}});
  };
  while (i < n) {
    char c = text[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    std::size_t start = i;
    if (is_alpha(c)) {
      while (i < n && is_word(text[i])) ++i;
      push(Tok::Name, start, i - start);
    } else if (c == '#' || c == ':') {
      ++i;
      while (i < n && is_word(text[i])) ++i;
      if (i == start + 1) {
        fail_at(label, text, start, fmt::format("expected a placeholder name after '{}'", c));
      }
      push(c == '#' ? Tok::NamePh : Tok::ValuePh, start, i - start);
    } else if (is_digit(c)) {
      while (i < n && is_digit(text[i])) ++i;
      if (i + 1 < n && text[i] == '.' && is_digit(text[i + 1])) {
        ++i;
        while (i < n && is_digit(text[i])) ++i;
      }
      if (i < n && (text[i] == 'e' || text[i] == 'E')) {
        std::size_t j = i + 1;
        if (j < n && (text[j] == '+' || text[j] == '-')) ++j;
        if (j < n && is_digit(text[j])) {
          i = j;
          while (i < n && is_digit(text[i])) ++i;
        }
      }
      push(Tok::Number, start, i - start);
    } else if (c == '\'') {
      std::string value;
      ++i;
      for (;;) {
        if (i >= n) fail_at(label, text, start, "unterminated string literal");
        if (text[i] == '\'') {
          if (i + 1 < n && text[i + 1] == '\'') {
            value.push_back('\'');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        value.push_back(text[i++]);
      }
      push(Tok::String, start, i - start);
      out.back().value = std::move(value);
    } else {
      Tok kind;
      std::size_t len = 1;
      switch (c) {
        case '(': kind = Tok::LParen; break;
        case ')': kind = Tok::RParen; break;
        case '[': kind = Tok::LBracket; break;
        case ']': kind = Tok::RBracket; break;
        case '.': kind = Tok::Dot; break;
        case ',': kind = Tok::Comma; break;
        case '=': kind = Tok::Eq; break;
        case '+': kind = Tok::Plus; break;
        case '-': kind = Tok::Minus; break;
        case '<':
          if (i + 1 < n && text[i + 1] == '>') {
            kind = Tok::Ne;
            len = 2;
          } else if (i + 1 < n && text[i + 1] == '=') {
            kind = Tok::Le;
            len = 2;
          } else {
            kind = Tok::Lt;
          }
          break;
        case '>':
          if (i + 1 < n && text[i + 1] == '=') {
            kind = Tok::Ge;
            len = 2;
          } else {
            kind = Tok::Gt;
          }
          break;
        case '!':
          if (i + 1 < n && text[i + 1] == '=') {
            fail_at(label, text, start, "unexpected '!='; DynamoDB writes 'not equal' as '<>'");
          }
          [[fallthrough]];
        default: {
          // Show the whole UTF-8 sequence of the offending character.
          std::size_t len8 = 1;
          while (start + len8 < n &&
                 (static_cast<unsigned char>(text[start + len8]) & 0xC0) == 0x80) {
            ++len8;
          }
          if (c == '"') {
            fail_at(label, text, start,
                    "unexpected '\"'; attribute names go in #name placeholders and strings in "
                    ":value placeholders (or 'single quotes' in client-side expressions)");
          }
          fail_at(label, text, start,
                  fmt::format("unexpected character '{}'", text.substr(start, len8)));
        }
      }
      i += len;
      push(kind, start, len);
      if (kind == Tok::LParen) {
        open.push_back(static_cast<std::uint32_t>(out.size() - 1));
      } else if (kind == Tok::RParen && !open.empty()) {
        out[open.back()].match = static_cast<std::uint32_t>(out.size() - 1);
        open.pop_back();
      }
    }
  }
  push(Tok::End, n, 0);
  return out;
}

}  // namespace dynamorph::expr::detail
