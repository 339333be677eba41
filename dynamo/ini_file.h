// Parser for the AWS shared config and credentials files: the INI dialect of Python's
// configparser that the AWS CLI reads. Thread-safe: an IniFile is immutable once parsed.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dynamorph::dynamo {

struct IniValue {
  std::string value;
  int line = 0;  // 1-based line of the key
};

struct IniSection {
  std::string name;  // between the brackets, trimmed: "default", "profile dev"
  int line = 0;
  std::vector<std::pair<std::string, IniValue>> entries;  // keys lowercased, in file order

  const IniValue* find(std::string_view key) const;
};

class IniFile {
 public:
  // Rules: '#' and ';' start comment lines; "key = value" or "key: value" (keys are
  // case-insensitive, values kept verbatim after trimming, '#' included); a line indented
  // deeper than its key continues that key's value (nested settings such as "s3 =").
  // Throws ConfigError "<display_name>:<line>: <what>" for a malformed line, a key outside
  // any section, or a section or key given twice.
  static IniFile parse(std::string_view text, std::string display_name);

  // std::nullopt when the file does not exist; ConfigError when it exists but cannot be read.
  static std::optional<IniFile> load(const std::filesystem::path& path, std::string display_name);

  // How the file is named in messages: the path as the user wrote it (e.g. "~/.aws/config").
  const std::string& display_name() const { return display_name_; }
  const std::vector<IniSection>& sections() const { return sections_; }
  const IniSection* find(std::string_view section) const;

 private:
  std::string display_name_;
  std::vector<IniSection> sections_;
};

}  // namespace dynamorph::dynamo
