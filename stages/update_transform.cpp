#include "stages/update_transform.h"

namespace dynamorph::stages {
namespace {

std::vector<std::string> top_level(const std::vector<expr::Path>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    if (p.elements.empty()) continue;
    const auto* name = std::get_if<std::string>(&p.elements.front());
    if (name && std::find(out.begin(), out.end(), *name) == out.end()) out.push_back(*name);
  }
  return out;
}

}  // namespace

TransformResult UpdateTransform::apply(dynamo::Item& item, TransformState*,
                                       const TransformContext& ctx) const {
  if (auto err = update_.apply(item, ctx.eval)) return TransformResult::fail(std::move(*err));
  return TransformResult::changed();
}

std::vector<std::string> UpdateTransform::reads() const { return top_level(update_.reads()); }

std::optional<std::vector<std::string>> UpdateTransform::writes() const {
  return top_level(update_.writes());
}

}  // namespace dynamorph::stages
