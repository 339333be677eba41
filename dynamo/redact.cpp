#include "dynamo/redact.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <vector>

#include "dynamo/sigv4.h"

namespace dynamorph::dynamo {
namespace {

constexpr std::size_t kShortestSecret = 4;

struct Secrets {
  std::mutex mutex;
  std::vector<std::string> values;  // longest first, so a token is masked before a part of it
};

Secrets& secrets() {
  static Secrets s;
  return s;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool starts_with_ci(std::string_view text, std::size_t at, std::string_view lowercase) {
  if (text.size() - at < lowercase.size()) return false;
  for (std::size_t i = 0; i < lowercase.size(); ++i) {
    if (lower(text[at + i]) != lowercase[i]) return false;
  }
  return true;
}

// A session token travels percent-encoded in a presigned URL's query: remember that form too.
std::string percent_encoded(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : value) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '_' || c == '.' || c == '~';
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[static_cast<unsigned char>(c) & 15];
    }
  }
  return out;
}

bool ends_value(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ';' || c == '&' ||
         c == '"' || c == '\'' || c == '<' || c == '>';
}

// How a signed request's secrets look in text. `to_line_end`: the whole rest of the line goes
// (an Authorization header's value has spaces and commas); otherwise only the value.
struct Shape {
  std::string_view name;  // lowercase
  bool to_line_end;
};
constexpr std::array<Shape, 6> kShapes{{
    {"authorization", true},
    {"aws_secret_access_key", true},
    {"aws_session_token", true},
    {"x-amz-security-token", false},
    {"x-amz-signature", false},
    {"signature", false},
}};

// After a shape's name: optional quote and blanks, then ':' or '='. Returns where the value
// starts, or npos when the name is only a word in a sentence.
std::size_t value_start(std::string_view text, std::size_t after_name) {
  std::size_t i = after_name;
  if (i < text.size() && text[i] == '"') ++i;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size() || (text[i] != ':' && text[i] != '=')) return std::string_view::npos;
  ++i;
  while (i < text.size() && (text[i] == ' ' || text[i] == '"')) ++i;
  return i;
}

// Masks every shape of kShapes in `text`.
std::string redact_shapes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    bool masked = false;
    for (const Shape& shape : kShapes) {
      if (!starts_with_ci(text, i, shape.name)) continue;
      const std::size_t start = value_start(text, i + shape.name.size());
      if (start == std::string_view::npos) continue;
      std::size_t end = start;
      if (shape.to_line_end) {
        while (end < text.size() && text[end] != '\n' && text[end] != '\r') ++end;
      } else if (text.substr(start).starts_with(kRedacted)) {
        end += kRedacted.size();  // a remembered secret, masked already: one mark for both
      } else {
        while (end < text.size() && !ends_value(text[end])) ++end;
      }
      out += kRedacted;
      i = end;
      masked = true;
      break;
    }
    if (!masked) out += text[i++];
  }
  return out;
}

}  // namespace

void remember_secret(std::string_view value) {
  if (value.size() < kShortestSecret) return;
  Secrets& s = secrets();
  std::lock_guard lock(s.mutex);
  for (std::string form : {std::string(value), percent_encoded(value)}) {
    if (std::find(s.values.begin(), s.values.end(), form) != s.values.end()) continue;
    s.values.push_back(std::move(form));
  }
  std::sort(s.values.begin(), s.values.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

void remember_secrets(const Credentials& credentials) {
  remember_secret(credentials.secret_access_key);
  remember_secret(credentials.session_token);
}

std::string redact(std::string_view text) {
  std::string out(text);
  {
    Secrets& s = secrets();
    std::lock_guard lock(s.mutex);
    for (const std::string& secret : s.values) {
      for (std::size_t at = out.find(secret); at != std::string::npos;
           at = out.find(secret, at + kRedacted.size())) {
        out.replace(at, secret.size(), kRedacted);
      }
    }
  }
  return redact_shapes(out);
}

}  // namespace dynamorph::dynamo
