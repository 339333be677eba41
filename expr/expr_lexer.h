// Tokenizer of DynamoDB expressions (plus the client-side literals) and the compile-error helper
// that turns a byte offset into "<label>: column <n>: …". Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dynamorph::expr::detail {

enum class Tok : std::uint8_t {
  End,
  Name,
  NamePh,
  ValuePh,
  Number,
  String,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Dot,
  Comma,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  Plus,
  Minus,
};

struct Token {
  Tok kind;
  std::uint32_t offset;     // bytes into the text
  std::uint32_t length;     // bytes
  std::uint32_t match = 0;  // LParen: index of the matching RParen; 0 when unbalanced
  std::string value;        // String: the decoded literal
};

// 1-based column of a byte offset, counting UTF-8 code points.
std::uint32_t column_of(std::string_view text, std::size_t offset);

// Throws UsageError "<label>: column <col>: <message>".
[[noreturn]] void fail_at(std::string_view label, std::string_view text, std::size_t offset,
                          const std::string& message);

// Splits text into tokens ending with one End token; throws UsageError on a character that
// starts no token or an unterminated string literal.
std::vector<Token> tokenize(std::string_view text, std::string_view label);

// The source text of a token, for messages ("'<>'", "the end of the expression").
std::string describe(std::string_view text, const Token& t);

}  // namespace dynamorph::expr::detail
