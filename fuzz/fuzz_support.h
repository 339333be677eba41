// Helpers shared by the libFuzzer targets: the input split into fields, findings that abort
// with one line, and a private scratch folder for targets that must go through files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace dynamorph::fuzz {

// Reads an input front to back: a byte at a time, or text up to a separator.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  // The next byte, 0 when the input is used up.
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // Text up to the next `separator` (dropped), or all that is left.
  std::string_view field(char separator) {
    const std::size_t at = rest_.find(separator);
    const std::string_view out = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return out;
  }
  std::string_view rest() {
    const std::string_view out = rest_;
    rest_ = {};
    return out;
  }

 private:
  std::string_view rest_;
};

[[noreturn]] inline void finding(const char* target, std::string_view what) {
  std::fprintf(stderr, "%s: %.*s\n", target, static_cast<int>(what.size()), what.data());
  std::abort();
}

// A folder of this process's own under $TMPDIR (or /tmp), made once and removed at exit (kept
// after a finding, which aborts).
const std::string& scratch_dir();

// Replaces `path` with `bytes`; a failure to write is a finding (the target cannot work).
void write_file(const std::string& path, std::string_view bytes);

}  // namespace dynamorph::fuzz
