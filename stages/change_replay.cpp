#include "stages/change_replay.h"

#include <fmt/format.h>

#include <algorithm>

#include "dynamo/errors.h"
#include "stages/stream_source.h"

namespace dynamorph::stages {

using dynamo::Item;

void check_replay_plan(const StepSpec& spec, const ItemProcessor& p,
                       const dynamo::TableDescription& source) {
  if (p.same_table())
    throw UsageError(fmt::format(
        "{}: follow: stream copies into another table; set write.table to a table other than "
        "'{}' (an in-place step has nothing to follow)",
        spec.label, source.name));
  if (spec.write.mode != WriteMode::Batch)
    throw UsageError(fmt::format(
        "{}: follow: stream replays changes as puts and deletes in mode 'batch'; write.mode '{}' "
        "is not supported with it",
        spec.label, to_string(spec.write.mode)));
  const std::string view = require_stream_view(source, spec.label);
  if (view == "NEW_AND_OLD_IMAGES") return;
  // NEW_IMAGE: a REMOVE or an item that stops matching carries no old image, so the target
  // item to delete is found from the source key alone. Sound only when the target's key is the
  // source's key, untouched by the transforms.
  const auto& t = p.target();
  std::vector<std::string> target_keys{t.partition_key.name};
  if (t.sort_key) target_keys.push_back(t.sort_key->name);
  bool from_source_key = !p.may_change_key();
  for (const auto& k : target_keys) from_source_key = from_source_key && source.is_key(k);
  if (!from_source_key)
    throw UsageError(fmt::format(
        "{}: the target key of table '{}' ({}) is {} the source key of '{}', so replaying a "
        "change must delete the target item its old image made, and table '{}''s stream has "
        "NEW_IMAGE only; enable it with view: new_and_old_images (enable_stream)",
        spec.label, t.name, fmt::join(target_keys, ", "),
        p.may_change_key() ? "computed by the transform, not" : "not", source.name, source.name));
}

Decision ItemProcessor::process_change(const Change& change, LocalState& state) const {
  Decision out;
  std::vector<Item> put_keys;
  if (change.new_image) {
    Decision d = process(*change.new_image, state);
    switch (d.kind) {
      case Decision::Kind::Error: return d;
      case Decision::Kind::Put:
      case Decision::Kind::Update:  // a copy writes whole items
        put_keys.push_back(*target_key(d.new_item));
        out.kind = Decision::Kind::Put;
        out.new_item = std::move(d.new_item);
        break;
      case Decision::Kind::Many:
        for (const auto& i : d.items) put_keys.push_back(*target_key(i));
        out.kind = Decision::Kind::Many;
        out.items = std::move(d.items);
        break;
      default: break;  // not matched, skipped: the target must not hold it
    }
  }
  // Every target an older image made, unless the new image makes it again.
  std::vector<Item> candidates;
  if (change.with_old_images) {
    for (const auto& old : change.old_images) {
      Decision d = process(old, state);
      if (d.kind == Decision::Kind::Put || d.kind == Decision::Kind::Update) {
        candidates.push_back(*target_key(d.new_item));
      } else if (d.kind == Decision::Kind::Many) {
        for (const auto& i : d.items) candidates.push_back(*target_key(i));
      }
    }
  } else if (auto k = target_key(change.keys)) {
    candidates.push_back(std::move(*k));  // the target key is the source key (plan check)
  }
  for (auto& k : candidates) {
    if (std::find(put_keys.begin(), put_keys.end(), k) != put_keys.end()) continue;
    if (std::find(out.delete_keys.begin(), out.delete_keys.end(), k) != out.delete_keys.end())
      continue;
    out.delete_keys.push_back(std::move(k));
  }
  if (out.kind == Decision::Kind::NotMatched && !out.delete_keys.empty())
    out.kind = Decision::Kind::DeleteKeys;
  return out;
}

}  // namespace dynamorph::stages
