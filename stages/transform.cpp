#include "stages/transform.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dynamo/errors.h"
#include "stages/registry.h"
#include "stages/rename_attribute.h"

namespace dynamorph::stages {
namespace {

Registry<std::string, StageFactory>& registry() {
  static Registry<std::string, StageFactory> r([](auto& r) {
    // One line per C++ stage built into dynamorph.
    r.add("rename_attribute", make_rename_attribute);
  });
  return r;
}

}  // namespace

void register_stage(std::string name, StageFactory factory) {
  registry().add(std::move(name), std::move(factory));
}

std::vector<std::string> registered_stages() { return registry().keys(); }

std::unique_ptr<Transform> make_stage(const std::string& name, const StageContext& context) {
  StageFactory factory = registry().find(name);
  if (!factory) {
    auto known = registered_stages();
    throw UsageError(fmt::format(
        "{}: unknown stage '{}' (registered: {})", context.label, name,
        known.empty() ? std::string("none") : fmt::format("{}", fmt::join(known, ", "))));
  }
  return factory(context);
}

}  // namespace dynamorph::stages
