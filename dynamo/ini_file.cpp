#include "dynamo/ini_file.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "dynamo/errors.h"

namespace dynamorph::dynamo {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::size_t indent_of(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return n;
}

}  // namespace

const IniValue* IniSection::find(std::string_view key) const {
  for (const auto& [name, value] : entries) {
    if (name == key) return &value;
  }
  return nullptr;
}

const IniSection* IniFile::find(std::string_view section) const {
  for (const auto& s : sections_) {
    if (s.name == section) return &s;
  }
  return nullptr;
}

IniFile IniFile::parse(std::string_view text, std::string display_name) {
  IniFile file;
  file.display_name_ = std::move(display_name);
  const auto fail = [&](int line, std::string_view what) -> ConfigError {
    return ConfigError(fmt::format("{}:{}: {}", file.display_name_, line, what));
  };

  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // editors on Windows add a BOM
  IniSection* section = nullptr;
  IniValue* open_value = nullptr;  // the key an indented line would continue
  std::size_t open_indent = 0;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const std::size_t end = text.find('\n');
    const std::string_view raw = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;

    const std::size_t indent = indent_of(raw);
    if (open_value != nullptr && indent > open_indent) {
      open_value->value.push_back('\n');
      open_value->value.append(line);
      continue;
    }
    open_value = nullptr;

    if (line.front() == '[') {
      const std::size_t close = line.rfind(']');
      if (close == std::string_view::npos)
        throw fail(line_number, "section header has no closing ']'");
      const std::string_view rest = trim(line.substr(close + 1));
      if (!rest.empty() && rest.front() != '#' && rest.front() != ';') {
        throw fail(line_number, fmt::format("unexpected text after section header: '{}'", rest));
      }
      const std::string_view name = trim(line.substr(1, close - 1));
      if (name.empty()) throw fail(line_number, "empty section name '[]'");
      if (const IniSection* earlier = file.find(name)) {
        throw fail(line_number, fmt::format("section [{}] appears twice (first at line {})", name,
                                            earlier->line));
      }
      file.sections_.push_back(IniSection{std::string(name), line_number, {}});
      section = &file.sections_.back();
      continue;
    }

    const std::size_t delimiter = line.find_first_of("=:");
    if (delimiter == std::string_view::npos) {
      throw fail(line_number,
                 fmt::format("expected 'key = value' or '[section]', found '{}'", line));
    }
    const std::string key = lowercase(trim(line.substr(0, delimiter)));
    if (key.empty()) throw fail(line_number, "missing key before '='");
    if (section == nullptr) {
      throw fail(line_number, fmt::format("'{}' is outside of any [section]", key));
    }
    if (const IniValue* earlier = section->find(key)) {
      throw fail(line_number, fmt::format("'{}' appears twice in [{}] (first at line {})", key,
                                          section->name, earlier->line));
    }
    section->entries.emplace_back(
        key, IniValue{std::string(trim(line.substr(delimiter + 1))), line_number});
    open_value = &section->entries.back().second;
    open_indent = indent;
  }
  return file;
}

std::optional<IniFile> IniFile::load(const std::filesystem::path& path, std::string display_name) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) return std::nullopt;
  if (ec) {
    throw ConfigError(fmt::format("{}: cannot read: {}", display_name, ec.message()));
  }
  if (std::filesystem::is_directory(status)) {
    throw ConfigError(fmt::format("{}: is a directory, expected a file", display_name));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(fmt::format("{}: cannot read: {}", display_name, std::strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw ConfigError(fmt::format("{}: read failed", display_name));
  return parse(content.str(), std::move(display_name));
}

}  // namespace dynamorph::dynamo
