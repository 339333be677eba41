#include "stages/rename_attribute.h"

#include <fmt/format.h>

#include "dynamo/errors.h"

namespace dynamorph::stages {
namespace {

class RenameAttribute final : public Transform {
 public:
  RenameAttribute(std::string from, std::string to, bool overwrite)
      : from_(std::move(from)), to_(std::move(to)), overwrite_(overwrite) {}

  TransformResult apply(dynamo::Item& item, TransformState*,
                        const TransformContext&) const override {
    const dynamo::AttributeValue* v = item.find(from_);
    if (!v) return TransformResult::keep();
    if (item.find(to_) && !overwrite_)
      return TransformResult::fail(
          fmt::format("rename_attribute: '{}' exists already (set overwrite: true)", to_));
    dynamo::AttributeValue moved = *v;
    item.erase(from_);
    item.set(to_, std::move(moved));
    return TransformResult::changed();
  }
  std::vector<std::string> reads() const override { return {from_, to_}; }
  std::optional<std::vector<std::string>> writes() const override {
    return std::vector<std::string>{from_, to_};
  }
  std::string describe() const override {
    return fmt::format("stage rename_attribute {} -> {}", from_, to_);
  }

 private:
  std::string from_, to_;
  bool overwrite_;
};

std::string string_arg(const StageContext& c, const char* name) {
  auto it = c.args.find(name);
  if (it == c.args.end())
    throw UsageError(fmt::format("{}: rename_attribute: args.{} is required", c.label, name));
  if (!it->second.is<std::string>() || it->second.as<std::string>().empty())
    throw UsageError(
        fmt::format("{}: rename_attribute: args.{} must be a non-empty string", c.label, name));
  return it->second.as<std::string>();
}

}  // namespace

std::unique_ptr<Transform> make_rename_attribute(const StageContext& context) {
  for (const auto& [name, value] : context.args) {
    if (name != "from" && name != "to" && name != "overwrite")
      throw UsageError(
          fmt::format("{}: rename_attribute: unknown arg '{}' (expected from, to, overwrite)",
                      context.label, name));
  }
  bool overwrite = false;
  if (auto it = context.args.find("overwrite"); it != context.args.end()) {
    if (!it->second.is<bool>())
      throw UsageError(
          fmt::format("{}: rename_attribute: args.overwrite must be true or false", context.label));
    overwrite = it->second.as<bool>();
  }
  std::string from = string_arg(context, "from"), to = string_arg(context, "to");
  if (from == to)
    throw UsageError(
        fmt::format("{}: rename_attribute: from and to are both '{}'", context.label, from));
  return std::make_unique<RenameAttribute>(std::move(from), std::move(to), overwrite);
}

}  // namespace dynamorph::stages
