// libFuzzer target for the migration-file loader (migrations/migration_file.*).
//
// Input: a migration file's text. Its file name is "<version>_fuzz.yaml" with the digits after
// the first "version:" (so that most seeds load), in a scratch folder that holds a Lua file
// t.lua for `lua: {file: t.lua}`. Loading may only throw UsageError, whose one line names the
// file; a loaded migration describes every step, and loading the same text again gives the
// same checksum.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/errors.h"
#include "fuzz/fuzz_support.h"
#include "migrations/migration_file.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::migrations;

constexpr const char* kTarget = "migration_fuzz";

std::string file_name_for(const std::string& text) {
  std::string digits;
  if (const std::size_t at = text.find("version:"); at != std::string::npos) {
    std::size_t i = at + 8;
    while (i < text.size() && text[i] == ' ') ++i;
    while (i < text.size() && digits.size() < 20 && std::isdigit(static_cast<unsigned char>(text[i])))
      digits.push_back(text[i++]);
  }
  return (digits.empty() ? "1" : digits) + "_fuzz.yaml";
}

const std::string& folder() {
  static const std::string dir = [] {
    fuzz::write_file(fuzz::scratch_dir() + "/t.lua",
                     "function transform(item) item.n = {N = '1'} return item end\n");
    return fuzz::scratch_dir();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string file_name = file_name_for(text);
  const std::string display = folder() + "/" + file_name;
  const LoadOptions options{"ns-", "2026-12-03T08:00:00.000Z"};
  Migration m;
  try {
    m = parse_migration(text, display, file_name, options);
  } catch (const UsageError& e) {
    const std::string what = e.what();
    if (what.find(file_name) == std::string::npos)
      fuzz::finding(kTarget, "an error does not name the file: " + what);
    return 0;
  }
  for (const Step& s : m.up) (void)s.describe();
  if (m.down)
    for (const Step& s : *m.down) (void)s.describe();
  if (parse_migration(text, display, file_name, options).checksum != m.checksum)
    fuzz::finding(kTarget, "the same text gives another checksum");
  return 0;
}
