#include "stages/transform_stage.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <mutex>

#include "dynamo/errors.h"

namespace dynamorph::stages {
namespace {

std::vector<std::string> top_level(const std::vector<dynamo::expr::Path>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    if (p.elements.empty()) continue;
    const auto* name = std::get_if<std::string>(&p.elements.front());
    if (name && std::find(out.begin(), out.end(), *name) == out.end()) out.push_back(*name);
  }
  return out;
}

struct Registry {
  std::mutex mutex;
  std::map<std::string, StageFactory> factories;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

std::vector<std::string> UpdateTransform::reads() const { return top_level(update_.reads()); }

std::optional<std::vector<std::string>> UpdateTransform::writes() const {
  return top_level(update_.writes());
}

void register_stage(std::string name, StageFactory factory) {
  std::lock_guard lock(registry().mutex);
  registry().factories[std::move(name)] = std::move(factory);
}

std::vector<std::string> registered_stages() {
  std::lock_guard lock(registry().mutex);
  std::vector<std::string> names;
  for (const auto& [n, f] : registry().factories) names.push_back(n);
  return names;
}

std::unique_ptr<TransformStage> make_stage(const std::string& name,
                                           const std::map<std::string, std::string>& args,
                                           std::string_view label) {
  StageFactory factory;
  {
    std::lock_guard lock(registry().mutex);
    auto it = registry().factories.find(name);
    if (it != registry().factories.end()) factory = it->second;
  }
  if (!factory) {
    auto known = registered_stages();
    throw UsageError(fmt::format("{}: unknown stage '{}' (registered: {})", label, name,
                                 known.empty() ? std::string("none") : fmt::format("{}", fmt::join(known, ", "))));
  }
  return factory(args);
}

}  // namespace dynamorph::stages
