#include "stages/item_processor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::stages {

using dynamo::AttributeValue;
using dynamo::Item;
namespace expr = dynamo::expr;

namespace {

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

std::vector<std::string> key_names(const dynamo::TableDescription& t) {
  std::vector<std::string> k{t.partition_key.name};
  if (t.sort_key) k.push_back(t.sort_key->name);
  return k;
}

}  // namespace

ItemProcessor::ItemProcessor(const StepSpec& spec, const dynamo::TableDescription& source,
                             const dynamo::TableDescription& target, std::int64_t version,
                             const std::string& now_iso)
    : source_(source),
      target_(target),
      mode_(spec.write.mode),
      same_table_(source.name == target.name),
      version_attribute_(spec.write.version_attribute),
      version_(version) {
  expr::Placeholders ph{spec.names, spec.values};
  ph.values.emplace(":now", AttributeValue(now_iso));  // unless the step has its own
  expr::PlaceholderUsage usage;
  auto where_at = [&](const Expression& e) { return e.label.empty() ? spec.label : e.label; };

  if (!spec.source.filter.empty()) {
    auto c = expr::Condition::compile(spec.source.filter.text, ph, expr::Dialect::Server,
                                      where_at(spec.source.filter), &usage);
    server_filter_ = c.to_wire();
  }
  if (!spec.source.query_key.empty()) {
    auto c = expr::Condition::compile(spec.source.query_key.text, ph, expr::Dialect::Server,
                                      where_at(spec.source.query_key), &usage);
    key_condition_ = c.to_wire();
  }
  if (!spec.where.empty()) {
    where_ = expr::Condition::compile(spec.where.text, ph, expr::Dialect::Client, where_at(spec.where), &usage);
    for (const auto& p : where_->reads()) {
      if (const auto* n = std::get_if<std::string>(&p.elements.front())) add_unique(reads_, *n);
    }
  }
  std::vector<std::string> target_keys = key_names(target_);
  for (std::size_t i = 0; i < spec.transform.size(); ++i) {
    const auto& t = spec.transform[i];
    std::unique_ptr<TransformStage> stage;
    if (!t.update.empty()) {
      stage = std::make_unique<UpdateTransform>(
          expr::Update::compile(t.update.text, ph, expr::Dialect::Client, where_at(t.update), &usage));
    } else {
      stage = make_stage(t.stage, t.args, fmt::format("{}: transform[{}]", spec.label, i));
    }
    for (const auto& r : stage->reads()) add_unique(reads_, r);
    reads_everything_ = reads_everything_ || stage->reads_everything();
    auto w = stage->writes();
    if (!w) {
      may_change_key_ = true;
    } else {
      for (const auto& name : *w) {
        if (std::find(target_keys.begin(), target_keys.end(), name) != target_keys.end()) may_change_key_ = true;
      }
    }
    transforms_.push_back(std::move(stage));
  }
  usage.check_all_used(expr::Placeholders{spec.names, spec.values}, spec.label);

  // Guard defaults and what each mode allows.
  Guard g = spec.write.guard;
  if (g == Guard::Default) g = (mode_ == WriteMode::Update || mode_ == WriteMode::Transact) ? Guard::Unchanged : Guard::None;
  guarded_ = g == Guard::Unchanged;
  if (guarded_ && mode_ == WriteMode::Batch) {
    throw UsageError(fmt::format("{}: write.guard 'unchanged' is not possible with mode 'batch' "
                                 "(BatchWriteItem has no conditions); use mode 'update' or 'transact'", spec.label));
  }
  if (mode_ == WriteMode::Update && may_change_key_ && same_table_) {
    throw UsageError(fmt::format("{}: the transform changes a key attribute of table '{}' ({}), which mode "
                                 "'update' cannot do; use mode 'transact' (atomic delete + put) or 'batch'",
                                 spec.label, target_.name, fmt::format("{}", fmt::join(target_keys, ", "))));
  }
  if (mode_ == WriteMode::Delete && !same_table_) {
    throw UsageError(fmt::format("{}: mode 'delete' deletes from the source table; write.table must be "
                                 "empty or '{}'", spec.label, source_.name));
  }
  if (same_table_ && may_change_key_ && version_attribute_.empty() && !where_) {
    warnings_.push_back(fmt::format("{}: the transform changes the key but has neither version_attribute nor "
                                    "where: items it writes may be scanned again and transformed twice",
                                    spec.label));
  }
}

std::optional<Item> ItemProcessor::target_key(const Item& item) const {
  Item key;
  const AttributeValue* pk = item.find(target_.partition_key.name);
  if (!pk) return std::nullopt;
  key.append(target_.partition_key.name, *pk);
  if (target_.sort_key) {
    const AttributeValue* sk = item.find(target_.sort_key->name);
    if (!sk) return std::nullopt;
    key.append(target_.sort_key->name, *sk);
  }
  return key;
}

Item ItemProcessor::source_key(const Item& item) const {
  Item key;
  if (const AttributeValue* pk = item.find(source_.partition_key.name)) key.append(source_.partition_key.name, *pk);
  if (source_.sort_key) {
    if (const AttributeValue* sk = item.find(source_.sort_key->name)) key.append(source_.sort_key->name, *sk);
  }
  return key;
}

Decision ItemProcessor::process(const Item& scanned, const expr::EvalContext& ctx) const {
  Decision d;
  if (where_ && !where_->evaluate(scanned, ctx)) return d;  // NotMatched
  if (!version_attribute_.empty()) {
    if (const AttributeValue* v = scanned.find(version_attribute_)) {
      if (const auto* n = v->get_if<dynamo::Number>()) {
        if (n->value() >= dynamo::Decimal::from_int(version_)) {
          d.kind = Decision::Kind::Skipped;
          return d;
        }
      }
    }
  }
  if (mode_ == WriteMode::Delete) {
    d.kind = Decision::Kind::Delete;
    return d;
  }
  d.new_item = scanned;
  for (const auto& t : transforms_) {
    if (auto err = t->apply(d.new_item, ctx)) {
      d.kind = Decision::Kind::Error;
      d.error = fmt::format("item {}: {}: {}", dynamo::to_debug_string(source_key(scanned)), t->describe(), *err);
      return d;
    }
  }
  if (same_table_ && d.new_item == scanned) {
    d.kind = Decision::Kind::Unchanged;
    return d;
  }
  if (!version_attribute_.empty()) {
    d.new_item.set(version_attribute_, AttributeValue(dynamo::Number::from_decimal(dynamo::Decimal::from_int(version_))));
  }
  auto new_key = target_key(d.new_item);
  if (!new_key) {
    d.kind = Decision::Kind::Error;
    d.error = fmt::format("item {}: after the transform it has no key for table '{}' (needs {}{})",
                          dynamo::to_debug_string(source_key(scanned)), target_.name, target_.partition_key.name,
                          target_.sort_key ? " and " + target_.sort_key->name : std::string());
    return d;
  }
  if (same_table_) {
    auto old_key = target_key(scanned);
    d.key_changed = !old_key || !(*old_key == *new_key);
  }
  if (d.key_changed && mode_ == WriteMode::Update) {
    d.kind = Decision::Kind::Error;
    d.error = fmt::format("item {}: the transform changed its key, which mode 'update' cannot write",
                          dynamo::to_debug_string(source_key(scanned)));
    return d;
  }
  d.kind = (same_table_ && !d.key_changed && (mode_ == WriteMode::Update || mode_ == WriteMode::Transact))
               ? Decision::Kind::Update
               : Decision::Kind::Put;
  return d;
}

}  // namespace dynamorph::stages
