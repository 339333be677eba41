#include "stages/item_processor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "stages/lua_transform.h"
#include "stages/update_transform.h"

namespace dynamorph::stages {

using dynamo::AttributeValue;
using dynamo::Item;

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

ItemProcessor::ItemProcessor(const StepSpec& spec, const StepExpressions& expressions,
                             const dynamo::TableDescription& source,
                             const dynamo::TableDescription& target, std::int64_t version,
                             const std::string& now_iso)
    : source_(source),
      target_(target),
      mode_(spec.write.mode),
      same_table_(source.name == target.name),
      version_attribute_(spec.write.version_attribute),
      skips_bad_items_(spec.on_item_error == OnItemError::Skip),
      version_(version),
      expressions_(expressions) {
  ctx_.eval.now_iso = now_iso;
  ctx_.version = version;
  ctx_.values = &spec.values;
  if (expressions_.where) {
    where_ = &*expressions_.where;
    for (const auto& p : where_->reads()) {
      if (const auto* n = std::get_if<std::string>(&p.elements.front())) add_unique(reads_, *n);
    }
  }
  std::vector<std::string> target_keys = key_names(target_);
  for (std::size_t i = 0; i < spec.transform.size(); ++i) {
    const auto& t = spec.transform[i];
    std::unique_ptr<Transform> stage;
    if (i < expressions_.updates.size() && expressions_.updates[i]) {
      stage = std::make_unique<UpdateTransform>(*expressions_.updates[i]);
    } else if (!t.lua.empty()) {
      stage = make_lua_transform(t.lua, fmt::format("{}: transform[{}]", spec.label, i));
    } else {
      StageContext c{fmt::format("{}: transform[{}]", spec.label, i), &expressions_.placeholders,
                     now_iso, t.args};
      stage = make_stage(t.stage, c);
    }
    for (const auto& r : stage->reads()) add_unique(reads_, r);
    reads_everything_ = reads_everything_ || stage->reads_everything();
    // Unknown writes (Lua) may change the key: process() finds out per item, and refuses it in
    // update mode then; only a known key write is refused at plan time.
    auto w = stage->writes();
    if (!w) {
      may_change_key_ = true;
      spare_slots_ += 4;
    } else {
      spare_slots_ += w->size();
      for (const auto& name : *w) {
        if (std::find(target_keys.begin(), target_keys.end(), name) != target_keys.end())
          may_change_key_ = writes_key_ = true;
      }
    }
    transforms_.push_back(std::move(stage));
  }

  // Guard defaults and what each mode allows.
  Guard g = spec.write.guard;
  if (g == Guard::Default)
    g = (mode_ == WriteMode::Update || mode_ == WriteMode::Transact) ? Guard::Unchanged
                                                                     : Guard::None;
  guarded_ = g == Guard::Unchanged;
  if (guarded_ && mode_ == WriteMode::Batch) {
    throw UsageError(
        fmt::format("{}: write.guard 'unchanged' is not possible with mode 'batch' "
                    "(BatchWriteItem has no conditions); use mode 'update' or 'transact'",
                    spec.label));
  }
  if (mode_ == WriteMode::Update && writes_key_ && same_table_) {
    throw UsageError(
        fmt::format("{}: the transform changes a key attribute of table '{}' ({}), which mode "
                    "'update' cannot do; use mode 'transact' (atomic delete + put) or 'batch'",
                    spec.label, target_.name, fmt::format("{}", fmt::join(target_keys, ", "))));
  }
  if (mode_ == WriteMode::Delete && !same_table_) {
    throw UsageError(
        fmt::format("{}: mode 'delete' deletes from the source table; write.table must be "
                    "empty or '{}'",
                    spec.label, source_.name));
  }
  if (same_table_ && writes_key_ && version_attribute_.empty() && !where_) {
    warnings_.push_back(
        fmt::format("{}: the transform changes the key but has neither version_attribute nor "
                    "where: items it writes may be scanned again and transformed twice",
                    spec.label));
  }
}

std::unique_ptr<ItemProcessor::LocalState> ItemProcessor::make_local_state() const {
  auto state = std::make_unique<LocalState>();
  for (const auto& t : transforms_) state->transforms.push_back(t->make_local_state());
  return state;
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

bool ItemProcessor::has_target_key(const Item& item) const {
  return item.find(target_.partition_key.name) &&
         (!target_.sort_key || item.find(target_.sort_key->name));
}

bool ItemProcessor::same_target_key(const Item& a, const Item& b) const {
  auto same = [&](const std::string& name) {
    const AttributeValue* x = a.find(name);
    const AttributeValue* y = b.find(name);
    return x && y && *x == *y;
  };
  return same(target_.partition_key.name) && (!target_.sort_key || same(target_.sort_key->name));
}

Item ItemProcessor::source_key(const Item& item) const {
  Item key;
  if (const AttributeValue* pk = item.find(source_.partition_key.name))
    key.append(source_.partition_key.name, *pk);
  if (source_.sort_key) {
    if (const AttributeValue* sk = item.find(source_.sort_key->name))
      key.append(source_.sort_key->name, *sk);
  }
  return key;
}

bool ItemProcessor::finish_item(Item& item, const Item& scanned, Decision& d) const {
  if (!version_attribute_.empty()) {
    item.set(version_attribute_,
             AttributeValue(dynamo::Number::from_decimal(dynamo::Decimal::from_int(version_))));
  }
  if (!has_target_key(item)) {
    d.kind = Decision::Kind::Error;
    d.error =
        fmt::format("item {}: after the transform it has no key for table '{}' (needs {}{})",
                    dynamo::to_debug_string(source_key(scanned)), target_.name,
                    target_.partition_key.name,
                    target_.sort_key ? " and " + target_.sort_key->name : std::string());
    return false;
  }
  // DynamoDB refuses an item over 400 KB (names and values, as item_size counts them): said
  // here, with the item's key, rather than as a batch's ValidationException.
  constexpr std::size_t kMaxItemBytes = 400 * 1024;
  if (const std::size_t size = dynamo::item_size(item); size > kMaxItemBytes) {
    d.kind = Decision::Kind::Error;
    d.error = fmt::format("item {}: {} bytes after the transform, over DynamoDB's item limit of "
                          "400 KB ({} bytes)",
                          dynamo::to_debug_string(source_key(scanned)), size, kMaxItemBytes);
    return false;
  }
  return true;
}

Decision ItemProcessor::process(const Item& scanned, LocalState& state) const {
  Decision d;
  if (where_ && !where_->evaluate(scanned, ctx_.eval)) return d;  // NotMatched
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
  // Room for what the chain may add, so that a SET of a new attribute does not move the item.
  d.new_item.reserve(scanned.size() + spare_slots_);
  d.new_item = scanned;
  for (std::size_t i = 0; i < transforms_.size(); ++i) {
    TransformResult r = transforms_[i]->apply(d.new_item, state.transforms[i].get(), ctx_);
    switch (r.kind) {
      case TransformResult::Kind::Keep:
      case TransformResult::Kind::Changed: continue;
      case TransformResult::Kind::Skip: d.kind = Decision::Kind::Skipped; return d;
      case TransformResult::Kind::Delete:
        // A copy never deletes from its source: an item the transform drops is not copied.
        d.kind = same_table_ ? Decision::Kind::Delete : Decision::Kind::Skipped;
        return d;
      case TransformResult::Kind::Error:
        d.kind = Decision::Kind::Error;
        d.error = fmt::format("item {}: {}: {}", dynamo::to_debug_string(source_key(scanned)),
                              transforms_[i]->describe(), r.error);
        return d;
      case TransformResult::Kind::Many: {
        if (mode_ == WriteMode::Update) {
          d.kind = Decision::Kind::Error;
          d.error = fmt::format(
              "item {}: {} made {} items, which mode 'update' cannot write; use 'batch' or "
              "'transact'",
              dynamo::to_debug_string(source_key(scanned)), transforms_[i]->describe(),
              r.items.size());
          return d;
        }
        d.key_changed = same_table_;
        for (auto& item : r.items) {
          if (!finish_item(item, scanned, d)) return d;
          if (same_table_ && same_target_key(item, scanned)) d.key_changed = false;
        }
        d.kind = Decision::Kind::Many;
        d.items = std::move(r.items);
        d.new_item = Item{};
        return d;
      }
    }
  }
  if (same_table_ && d.new_item == scanned) {
    d.kind = Decision::Kind::Unchanged;
    return d;
  }
  if (!finish_item(d.new_item, scanned, d)) return d;
  if (same_table_) d.key_changed = !same_target_key(d.new_item, scanned);
  if (d.key_changed && mode_ == WriteMode::Update) {
    d.kind = Decision::Kind::Error;
    d.error =
        fmt::format("item {}: the transform changed its key, which mode 'update' cannot write",
                    dynamo::to_debug_string(source_key(scanned)));
    return d;
  }
  d.kind = (same_table_ && !d.key_changed &&
            (mode_ == WriteMode::Update || mode_ == WriteMode::Transact))
               ? Decision::Kind::Update
               : Decision::Kind::Put;
  return d;
}

}  // namespace dynamorph::stages
