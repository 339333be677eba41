// libFuzzer target for the dynamorph.yaml loader (migrations/config.*).
//
// Input: one byte choosing the environment asked for (% 4: none, dev, prod, staging), then the
// file's text, written to a scratch file that load_config reads. Loading may only throw
// UsageError, whose one line names the file; a loaded config has a non-empty state table and a
// positive lock TTL that format_duration and parse_duration carry unchanged (to the millisecond).
#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/errors.h"
#include "fuzz/fuzz_support.h"
#include "migrations/config.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::migrations;

constexpr const char* kTarget = "config_fuzz";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  static const char* const kEnvironments[] = {"", "dev", "prod", "staging"};
  const std::string environment = kEnvironments[in.byte() % 4];
  static const std::string path = fuzz::scratch_dir() + "/dynamorph.yaml";
  fuzz::write_file(path, in.rest());
  Config c;
  try {
    c = load_config(path, environment.empty() ? std::nullopt : std::optional(environment));
  } catch (const UsageError& e) {
    const std::string what = e.what();
    if (what.find("dynamorph.yaml") == std::string::npos)
      fuzz::finding(kTarget, "an error does not name the file: " + what);
    return 0;
  }
  if (c.state_table.empty()) fuzz::finding(kTarget, "an empty state table was accepted");
  if (c.lock_ttl.count() <= 0) fuzz::finding(kTarget, "a lock TTL that is not positive was accepted");
  const auto again = parse_duration(format_duration(c.lock_ttl));
  if (!again || *again != c.lock_ttl)
    fuzz::finding(kTarget, "format_duration of the lock TTL does not parse back to it");
  return 0;
}
