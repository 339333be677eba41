#include "stages/step_spec.h"

namespace dynamorph::stages {

namespace {
constexpr std::string_view kModes[] = {"batch", "update", "transact", "delete", "none"};
}

std::string_view to_string(WriteMode m) { return kModes[static_cast<int>(m)]; }

std::optional<WriteMode> parse_write_mode(std::string_view s) {
  for (int i = 0; i < 5; ++i) {
    if (s == kModes[i]) return static_cast<WriteMode>(i);
  }
  return std::nullopt;
}

}  // namespace dynamorph::stages
