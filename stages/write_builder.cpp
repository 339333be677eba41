#include "stages/write_builder.h"

#include <fmt/format.h>

#include <cmath>

#include "dynamo/json.h"

namespace dynamorph::stages {

using dynamo::AttributeValue;
using dynamo::BatchWriteEntry;
using dynamo::Item;
using dynamo::WireExpression;

namespace {

double units(const Item& item) { return std::ceil(static_cast<double>(dynamo::item_size(item)) / 1024.0); }

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

}  // namespace

WireExpression WriteBuilder::guard_condition(const Item& scanned, bool whole_item) const {
  WireExpression w;
  // Never recreate an item that was deleted meanwhile.
  w.names["#k"] = p_.target().partition_key.name;
  append_clause(w.text, "attribute_exists(#k)");
  if (p_.guarded()) {
    std::vector<std::string> attrs;
    if (whole_item || p_.reads_everything()) {
      for (const auto& [name, v] : scanned) attrs.push_back(name);
    } else {
      attrs = p_.reads();
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
  if (!p_.version_attribute().empty()) {
    w.names["#v"] = p_.version_attribute();
    w.values[":v"] = AttributeValue(dynamo::Number::from_decimal(dynamo::Decimal::from_int(p_.version())));
    append_clause(w.text, "(attribute_not_exists(#v) OR #v < :v)");
  }
  return w;
}

WireExpression WriteBuilder::update_expression(const Item& before, const Item& after) const {
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

void WriteBuilder::add_batch(std::vector<BatchWriteEntry> entries, bool may_clash, double wcu, int puts,
                             int deletes, std::vector<WriteOp>& out) {
  std::vector<std::string> keys;
  bool clash = false;
  if (may_clash || !open_keys_.empty()) {
    // Once a batch holds a key that may repeat, every later key is recorded too.
    for (const auto& e : entries) {
      Item key = e.kind == BatchWriteEntry::Kind::Put ? *p_.target_key(e.item) : e.item;
      keys.push_back(key_string(e.table, key));
      clash = clash || std::find(open_keys_.begin(), open_keys_.end(), keys.back()) != open_keys_.end();
    }
  }
  if (clash || open_batch_.batch.size() + entries.size() > 25) flush(out);
  for (auto& e : entries) open_batch_.batch.push_back(std::move(e));
  for (auto& k : keys) open_keys_.push_back(std::move(k));
  open_batch_.kind = WriteOp::Kind::Batch;
  open_batch_.wcu_estimate += wcu;
  open_batch_.puts += puts;
  open_batch_.deletes += deletes;
  ++open_batch_.item_count;
  if (open_batch_.batch.size() == 25) flush(out);
}

void WriteBuilder::add(const Item& scanned, Decision&& d, std::vector<WriteOp>& out, int conflict_round) {
  const std::string& table = p_.target_table();
  const std::string& source_table = p_.source().name;
  WriteMode mode = p_.mode();

  if (mode == WriteMode::Batch || (mode == WriteMode::Delete && !p_.guarded())) {
    if (d.kind == Decision::Kind::Delete) {
      add_batch({{source_table, BatchWriteEntry::Kind::Delete, p_.source_key(scanned)}}, false, units(scanned), 0, 1,
                out);
    } else if (d.key_changed) {
      // Put first, then delete the old key, in one request.
      double wcu = units(d.new_item) + units(scanned);
      add_batch({{table, BatchWriteEntry::Kind::Put, std::move(d.new_item)},
                 {table, BatchWriteEntry::Kind::Delete, p_.source_key(scanned)}},
                true, wcu, 1, 1, out);
    } else {
      double wcu = units(d.new_item);
      add_batch({{table, BatchWriteEntry::Kind::Put, std::move(d.new_item)}}, !p_.same_table(), wcu, 1, 0, out);
    }
    return;
  }

  if (mode == WriteMode::Update || mode == WriteMode::Delete) {
    WriteOp op;
    op.scanned.push_back(scanned);
    op.item_count = 1;
    op.conflict_round = conflict_round;
    if (d.kind == Decision::Kind::Delete) {
      op.kind = WriteOp::Kind::Delete;
      op.del = {source_table, p_.source_key(scanned), guard_condition(scanned, true)};
      op.deletes = 1;
      op.wcu_estimate = units(scanned);
    } else if (d.kind == Decision::Kind::Update) {
      op.kind = WriteOp::Kind::Update;
      op.update.table = table;
      op.update.key = *p_.target_key(scanned);
      op.update.update = update_expression(scanned, d.new_item);
      op.update.condition = guard_condition(scanned, false);
      op.updates = 1;
      op.wcu_estimate = units(d.new_item);
    } else {  // a copy into another table
      op.kind = WriteOp::Kind::Put;
      op.wcu_estimate = units(d.new_item);
      op.put = {table, std::move(d.new_item), {}};
      op.puts = 1;
    }
    out.push_back(std::move(op));
    return;
  }

  // Transact: each item's actions stay in one transaction.
  std::vector<dynamo::TransactAction> actions;
  int puts = 0, updates = 0, deletes = 0;
  double wcu = 0;
  if (d.kind == Decision::Kind::Update) {
    dynamo::TransactAction a;
    a.kind = dynamo::TransactAction::Kind::Update;
    a.table = table;
    a.item = *p_.target_key(scanned);
    a.update = update_expression(scanned, d.new_item);
    a.condition = guard_condition(scanned, false);
    actions.push_back(std::move(a));
    updates = 1;
    wcu = 2 * units(d.new_item);
  } else if (d.kind == Decision::Kind::Delete) {
    dynamo::TransactAction a;
    a.kind = dynamo::TransactAction::Kind::Delete;
    a.table = source_table;
    a.item = p_.source_key(scanned);
    a.condition = guard_condition(scanned, true);
    actions.push_back(std::move(a));
    deletes = 1;
    wcu = 2 * units(scanned);
  } else {
    dynamo::TransactAction put;
    put.kind = dynamo::TransactAction::Kind::Put;
    put.table = table;
    wcu = 2 * units(d.new_item);
    put.item = std::move(d.new_item);
    actions.push_back(std::move(put));
    puts = 1;
    if (d.key_changed) {
      dynamo::TransactAction del;
      del.kind = dynamo::TransactAction::Kind::Delete;
      del.table = table;
      del.item = p_.source_key(scanned);
      del.condition = guard_condition(scanned, true);
      actions.push_back(std::move(del));
      deletes = 1;
      wcu += 2 * units(scanned);
    }
  }
  if (!open_transact_.scanned.empty() &&
      (static_cast<int>(open_transact_.actions.size() + actions.size()) > transact_actions_ ||
       open_transact_.conflict_round != conflict_round)) {
    out.push_back(std::move(open_transact_));
    open_transact_ = WriteOp{};
  }
  open_transact_.kind = WriteOp::Kind::Transact;
  open_transact_.conflict_round = conflict_round;
  int owner = static_cast<int>(open_transact_.scanned.size());
  open_transact_.scanned.push_back(scanned);
  for (auto& a : actions) {
    open_transact_.actions.push_back(std::move(a));
    open_transact_.action_owner.push_back(owner);
  }
  ++open_transact_.item_count;
  open_transact_.puts += puts;
  open_transact_.updates += updates;
  open_transact_.deletes += deletes;
  open_transact_.wcu_estimate += wcu;
}

void WriteBuilder::flush(std::vector<WriteOp>& out) {
  if (!open_batch_.batch.empty()) {
    out.push_back(std::move(open_batch_));
    open_batch_ = WriteOp{};
    open_keys_.clear();
  }
  if (!open_transact_.actions.empty()) {
    out.push_back(std::move(open_transact_));
    open_transact_ = WriteOp{};
  }
}

}  // namespace dynamorph::stages
