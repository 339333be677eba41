#include "stages/write_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "dynamo/json.h"

namespace dynamorph::stages {

using dynamo::AttributeValue;
using dynamo::BatchWriteEntry;
using dynamo::Item;
using dynamo::WireExpression;

namespace {

std::string key_string(const std::string& table, const Item& key) {
  std::string s = table;
  s.push_back('\0');
  dynamo::write_item(s, key);
  return s;
}

void append_clause(std::string& text, std::string_view clause) {
  if (!text.empty()) text += " AND ";
  text += clause;
}

WriteAnswer failure(dynamo::ServiceError&& e) {
  WriteAnswer a;
  a.attempts = e.attempts;
  a.error = std::make_shared<dynamo::ServiceError>(std::move(e));
  return a;
}

}  // namespace

double write_units(const Item& item) {
  return std::ceil(static_cast<double>(dynamo::item_size(item)) / 1024.0);
}

namespace {

bool in_index(const dynamo::IndexDescription& g, const Item& item) {
  return item.find(g.partition_key.name) && (!g.sort_key || item.find(g.sort_key->name));
}

bool same_value(const Item& a, const Item& b, const std::string& name) {
  const auto* x = a.find(name);
  const auto* y = b.find(name);
  return (!x && !y) || (x && y && *x == *y);
}

// Whether `name` is in the index entry: keys always, the rest as the projection says.
bool projected(const dynamo::TableDescription& t, const dynamo::IndexDescription& g,
               const std::string& name) {
  if (t.is_key(name) || name == g.partition_key.name || (g.sort_key && name == g.sort_key->name))
    return true;
  switch (g.projection.kind) {
    case dynamo::Projection::Kind::All: return true;
    case dynamo::Projection::Kind::KeysOnly: return false;
    case dynamo::Projection::Kind::Include:
      return std::find(g.projection.non_key_attributes.begin(),
                       g.projection.non_key_attributes.end(),
                       name) != g.projection.non_key_attributes.end();
  }
  return false;
}

double entry_units(const dynamo::TableDescription& t, const dynamo::IndexDescription& g,
                   const Item& item) {
  std::size_t bytes = 0;
  for (const auto& [name, value] : item)
    if (projected(t, g, name)) bytes += name.size() + dynamo::value_size(value);
  return std::ceil(static_cast<double>(bytes) / 1024.0);
}

}  // namespace

std::vector<double> index_units(const ItemProcessor& p, const Item* before, const Item* after) {
  const auto& t = p.target();
  std::vector<double> units(t.global_indexes.size(), 0.0);
  for (std::size_t i = 0; i < t.global_indexes.size(); ++i) {
    const auto& g = t.global_indexes[i];
    const bool was = before && in_index(g, *before);
    const bool is = after && in_index(g, *after);
    if (was && is) {
      const bool key_same = same_value(*before, *after, g.partition_key.name) &&
                            (!g.sort_key || same_value(*before, *after, g.sort_key->name));
      if (!key_same) {
        units[i] = entry_units(t, g, *before) + entry_units(t, g, *after);
        continue;
      }
      bool changed = false;  // any projected attribute added, changed or removed
      for (const auto& [name, value] : *after)
        changed = changed || (projected(t, g, name) && !same_value(*before, *after, name));
      for (const auto& [name, value] : *before)
        changed = changed || (projected(t, g, name) && !after->find(name));
      if (changed) units[i] = entry_units(t, g, *after);
    } else if (is) {
      units[i] = entry_units(t, g, *after);
    } else if (was) {
      units[i] = entry_units(t, g, *before);
    }
  }
  return units;
}

WriteCost write_cost(const ItemProcessor& p, const Item* before, const Item* after,
                     double factor) {
  WriteCost c;
  c.wcu = factor * write_units(after ? *after : *before);
  if (!p.target().global_indexes.empty()) c.add_index(index_units(p, before, after));
  return c;
}

const Item* replaced(const ItemProcessor& p, const Item& scanned, const Item& item) {
  if (!p.same_table()) return nullptr;
  return p.same_target_key(scanned, item) ? &scanned : nullptr;
}

WireExpression guard_condition(const ItemProcessor& p, const Item& scanned, bool whole_item) {
  WireExpression w;
  // Never recreate an item that was deleted meanwhile.
  w.names["#k"] = p.target().partition_key.name;
  append_clause(w.text, "attribute_exists(#k)");
  if (p.guarded()) {
    std::vector<std::string> attrs;
    if (whole_item || p.reads_everything()) {
      for (const auto& [name, v] : scanned) attrs.push_back(name);
    } else {
      attrs = p.reads();
    }
    int i = 0;
    for (const auto& name : attrs) {
      std::string n = fmt::format("#g{}", i), v = fmt::format(":g{}", i);
      ++i;
      w.names[n] = name;
      if (const AttributeValue* val = scanned.find(name)) {
        append_clause(w.text, fmt::format("{} = {}", n, v));
        w.values[v] = *val;
      } else {
        append_clause(w.text, fmt::format("attribute_not_exists({})", n));
      }
    }
  }
  if (!p.version_attribute().empty()) {
    w.names["#v"] = p.version_attribute();
    w.values[":v"] =
        AttributeValue(dynamo::Number::from_decimal(dynamo::Decimal::from_int(p.version())));
    append_clause(w.text, "(attribute_not_exists(#v) OR #v < :v)");
  }
  return w;
}

WireExpression update_expression(const Item& before, const Item& after) {
  WireExpression w;
  std::string set, remove;
  int i = 0;
  for (const auto& [name, v] : after) {
    const AttributeValue* old = before.find(name);
    if (old && *old == v) continue;
    std::string n = fmt::format("#u{}", i), val = fmt::format(":u{}", i);
    ++i;
    w.names[n] = name;
    w.values[val] = v;
    set += set.empty() ? "SET " : ", ";
    set += fmt::format("{} = {}", n, val);
  }
  for (const auto& [name, v] : before) {
    if (after.find(name)) continue;
    std::string n = fmt::format("#u{}", i++);
    w.names[n] = name;
    remove += remove.empty() ? " REMOVE " : ", ";
    remove += n;
  }
  w.text = set + remove;
  return w;
}

WriteOp guarded_delete(const ItemProcessor& p, const Item& scanned, int conflict_round) {
  WriteOp op;
  op.scanned.push_back(scanned);
  op.item_count = 1;
  op.conflict_round = conflict_round;
  op.request =
      DeleteWrite{{p.source().name, p.source_key(scanned), guard_condition(p, scanned, true)}};
  op.deletes = 1;
  op.add_cost(write_cost(p, &scanned, nullptr));
  return op;
}

void BatchGrouper::add(std::vector<BatchWriteEntry> entries, bool may_clash, const WriteCost& cost,
                       int puts, int deletes, std::vector<WriteOp>& out, const Item* scanned) {
  std::vector<std::string> keys;
  bool clash = false;
  if (may_clash || !open_keys_.empty()) {
    // Once a batch holds a key that may repeat, every later key is recorded too.
    for (const auto& e : entries) {
      Item key = e.kind == BatchWriteEntry::Kind::Put ? *p_.target_key(e.item) : e.item;
      keys.push_back(key_string(e.table, key));
      clash =
          clash || std::find(open_keys_.begin(), open_keys_.end(), keys.back()) != open_keys_.end();
    }
  }
  if (clash || open_entries_.size() + entries.size() > 25) flush(out);
  for (auto& e : entries) open_entries_.push_back(std::move(e));
  for (auto& k : keys) open_keys_.push_back(std::move(k));
  open_.add_cost(cost);
  open_.puts += puts;
  open_.deletes += deletes;
  ++open_.item_count;
  if (scanned) open_.scanned.push_back(*scanned);
  if (open_entries_.size() >= 25) flush(out);
}

void BatchGrouper::flush(std::vector<WriteOp>& out) {
  if (open_entries_.empty()) return;
  // Written in a scratch buffer and copied once at its size (plus room for the
  // ReturnConsumedCapacity a metered send appends): the held body wastes no capacity.
  thread_local std::string scratch;
  scratch.clear();
  dynamo::write_batch_write(scratch, open_entries_, false);
  BatchWrite& batch = std::get<BatchWrite>(open_.request);
  batch.body.reserve(scratch.size() + dynamo::kReturnConsumedCapacityTotal.size());
  batch.body.append(scratch);
  open_entries_.clear();
  if (scratch.capacity() > (1 << 20)) std::string().swap(scratch);  // a batch of large items
  out.push_back(std::move(open_));
  open_ = WriteOp{};
  open_keys_.clear();
}

void add_batch_decision(const ItemProcessor& p, BatchGrouper& g, const Item& scanned, Decision&& d,
                        std::vector<WriteOp>& out) {
  const std::string& table = p.target_table();
  // Kept only when a rejected batch may have to be written item by item (on_item_error: skip).
  const Item* keep = p.skips_bad_items() ? &scanned : nullptr;
  if (d.kind == Decision::Kind::Delete) {
    g.add({{p.source().name, BatchWriteEntry::Kind::Delete, p.source_key(scanned)}}, false,
          write_cost(p, &scanned, nullptr), 0, 1, out, keep);
    return;
  }
  std::vector<BatchWriteEntry> entries;
  WriteCost cost;
  int puts = 0;
  if (d.kind == Decision::Kind::DeleteKeys) {
    int deletes = 0;
    for (auto& key : d.delete_keys) {
      cost.wcu += 1;  // the deleted item's size (and index entries) are not known here
      entries.push_back({table, BatchWriteEntry::Kind::Delete, std::move(key)});
      ++deletes;
    }
    g.add(std::move(entries), true, cost, 0, deletes, out);
    return;
  }
  auto put = [&](Item&& item) {
    cost += write_cost(p, replaced(p, scanned, item), &item);
    ++puts;
    entries.push_back({table, BatchWriteEntry::Kind::Put, std::move(item)});
  };
  if (d.kind == Decision::Kind::Many) {
    for (auto& item : d.items) put(std::move(item));
  } else {
    put(std::move(d.new_item));
  }
  int deletes = 0;
  if (d.key_changed) {  // the put(s) first, then the old key's delete, in one request
    cost += write_cost(p, &scanned, nullptr);
    entries.push_back({table, BatchWriteEntry::Kind::Delete, p.source_key(scanned)});
    deletes = 1;
  }
  for (auto& key : d.delete_keys) {  // a replay's targets of older images, with the put(s)
    cost.wcu += 1;
    entries.push_back({table, BatchWriteEntry::Kind::Delete, std::move(key)});
    ++deletes;
  }
  bool may_clash = d.key_changed || !p.same_table() || d.kind == Decision::Kind::Many;
  g.add(std::move(entries), may_clash, cost, puts, deletes, out, keep);
}

namespace {

class BatchPageState final : public SinkState {
 public:
  explicit BatchPageState(const ItemProcessor& p) : p_(p), grouper_(p) {}
  void add(const Item& scanned, Decision&& d, std::vector<WriteOp>& out, int) override {
    add_batch_decision(p_, grouper_, scanned, std::move(d), out);
  }
  void flush(std::vector<WriteOp>& out) override { grouper_.flush(out); }

 private:
  const ItemProcessor& p_;
  BatchGrouper grouper_;
};

}  // namespace

std::unique_ptr<SinkState> make_batch_page_state(const ItemProcessor& p) {
  return std::make_unique<BatchPageState>(p);
}

void send_write_request(dynamo::Client& client, WriteOp& op,
                        std::function<void(WriteAnswer)> done) {
  const bool meter = op.meter;
  auto single = [done, meter](dynamo::Outcome<dynamo::RawResponse> r) {
    if (!r) return done(failure(std::move(r.error())));
    WriteAnswer a;
    a.throttled = r.value().throttled;
    a.attempts = r.value().attempts;
    if (meter) {
      try {
        a.consumed_wcu = dynamo::parse_consumed_total(r.value().body);
        a.metered = true;
      } catch (const std::exception&) {
        a.capacity_unreadable = true;  // the write succeeded; only its cost is unknown
      }
    }
    done(std::move(a));
  };
  std::string body;
  std::visit(
      [&](auto& req) {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, BatchWrite>) {
          // The body is not needed after sending: a failed batch fails the run or is
          // rebuilt item by item from the op's scanned items (on_item_error: skip).
          client.batch_write_body_async(
              std::move(req.body),
              [done, meter](dynamo::Outcome<dynamo::BatchWriteSummary> r) {
                if (!r) return done(failure(std::move(r.error())));
                WriteAnswer a;
                a.consumed_wcu = r.value().consumed_capacity;
                a.metered = meter;
                a.throttled = r.value().throttled;
                a.attempts = r.value().requests;
                done(std::move(a));
              },
              meter);
        } else if constexpr (std::is_same_v<T, UpdateWrite>) {
          req.request.return_consumed_capacity = meter;
          dynamo::write_update_item(body, req.request);
          client.call_async("UpdateItem", std::move(body), single);
        } else if constexpr (std::is_same_v<T, PutWrite>) {
          req.request.return_consumed_capacity = meter;
          dynamo::write_put_item(body, req.request);
          client.call_async("PutItem", std::move(body), single);
        } else if constexpr (std::is_same_v<T, DeleteWrite>) {
          req.request.return_consumed_capacity = meter;
          dynamo::write_delete_item(body, req.request);
          client.call_async("DeleteItem", std::move(body), single);
        } else {
          client.transact_write_async(req.actions, {}, [done](dynamo::Outcome<double> r) {
            if (!r) return done(failure(std::move(r.error())));
            WriteAnswer a;
            a.consumed_wcu = r.value();
            a.metered = true;
            done(std::move(a));
          });
        }
      },
      op.request);
}

std::string still_conflicting(const ItemProcessor& p, const Item& scanned, int rounds) {
  return fmt::format("item {}: still conflicting after {} re-reads (the item keeps changing)",
                     dynamo::to_debug_string(p.source_key(scanned)), rounds);
}

Verdict batch_verdict(const ItemProcessor& p, const WriteOp& op, const WriteAnswer& a) {
  Verdict v;
  if (!a.error) {
    v.written = op.item_count;
  } else {
    v.failed = op.item_count;
    v.error = fmt::format("writing to '{}': {}", p.target_table(), a.error->to_string());
    v.item_rejected = a.error->item_rejected();
  }
  return v;
}

Verdict single_verdict(const ItemProcessor& p, const WriteOp& op, const WriteAnswer& a,
                       int max_rounds) {
  if (!a.error || !a.error->conditional_check_failed()) return batch_verdict(p, op, a);
  // The guard failed: somebody changed the item since it was scanned. Re-read and redo it.
  Verdict v;
  v.conflicts = 1;
  if (op.conflict_round >= max_rounds) {
    v.failed = 1;
    v.error = still_conflicting(p, op.scanned.front(), op.conflict_round);
  } else {
    v.reread.push_back(0);
  }
  return v;
}

}  // namespace dynamorph::stages
