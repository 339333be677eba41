#include "migrations/state_table.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "dynamo/clock.h"
#include "dynamo/json.h"
#include "migrations/errors.h"

namespace dynamorph::migrations {
namespace {

using dynamo::AttributeValue;
using dynamo::Item;
using dynamo::Number;

constexpr const char* kPartition = "dynamorph";

AttributeValue num(std::int64_t v) {
  return AttributeValue(Number::from_canonical(std::to_string(v)));
}
AttributeValue num(double v) {
  auto n = Number::parse(fmt::format("{:.6f}", v));
  return AttributeValue(n ? *n : Number());
}

std::string str_of(const Item& item, std::string_view name) {
  const auto* v = item.find(name);
  return v && v->is<std::string>() ? v->as<std::string>() : std::string();
}
std::int64_t int_of(const Item& item, std::string_view name) {
  const auto* v = item.find(name);
  if (!v || !v->is<Number>()) return 0;
  return std::stoll(v->as<Number>().text());
}
double double_of(const Item& item, std::string_view name) {
  const auto* v = item.find(name);
  if (!v || !v->is<Number>()) return 0;
  return std::stod(v->as<Number>().text());
}

Item key(std::string sk) {
  return Item{{"pk", AttributeValue(kPartition)}, {"sk", AttributeValue(std::move(sk))}};
}

AttributeValue counters_to_value(const pipeline::Counters& c) {
  dynamo::Map m;
  for (const auto& field : pipeline::kCounterFields) {
    m.set(field.name, field.count ? num(c.*field.count) : num(c.*field.amount));
  }
  return AttributeValue(std::move(m));
}

pipeline::Counters counters_of(const Item& item) {
  pipeline::Counters c;
  const auto* v = item.find("counters");
  if (!v || !v->is<dynamo::Map>()) return c;
  const auto& m = v->as<dynamo::Map>();
  for (const auto& field : pipeline::kCounterFields) {
    if (field.count) {
      c.*field.count = int_of(m, field.name);
    } else {
      c.*field.amount = double_of(m, field.name);
    }
  }
  return c;
}

std::string checkpoint_prefix(std::int64_t version) {
  return fmt::format("checkpoint#{:020}#", version);
}
std::string checkpoint_step_prefix(std::int64_t version, const std::string& direction, int step) {
  return fmt::format("{}{}#{:04}#", checkpoint_prefix(version), direction, step);
}

}  // namespace

std::string version_sort_key(std::int64_t version) {
  return fmt::format("version#{:020}", version);
}

void StateTable::read_failed(const dynamo::ServiceError& e, std::string_view what) const {
  // The state table is the first thing every command touches: a server that cannot be reached
  // or credentials it refuses are a configuration problem (exit 2), not a failed step.
  if (e.transport() || e.type == "UnrecognizedClientException" ||
      e.type == "InvalidSignatureException" || e.type == "AccessDeniedException" ||
      e.type == "MissingAuthenticationTokenException")
    throw ConfigError(
        fmt::format("{} {} at {}: {}", what, name_, client_.endpoint(), e.to_string()));
  throw Error(fmt::format("{} {}: {}", what, name_, e.to_string()));
}

StateTable::StateTable(dynamo::Client& client, std::string physical_name)
    : client_(client), name_(std::move(physical_name)) {}

bool StateTable::exists() const {
  auto d = client_.describe_table(name_);
  if (d) return true;
  if (d.error().type == "ResourceNotFoundException") return false;
  read_failed(d.error(), "state table");
}

void StateTable::ensure() {
  auto d = client_.describe_table(name_);
  if (!d) {
    if (d.error().type != "ResourceNotFoundException") read_failed(d.error(), "state table");
    dynamo::CreateTableRequest r;
    r.table = name_;
    r.partition_key = {"pk", dynamo::AttrType::S};
    r.sort_key = dynamo::KeyAttribute{"sk", dynamo::AttrType::S};
    auto c = client_.create_table(r);
    if (!c && c.error().type != "ResourceInUseException")
      throw Error(fmt::format("creating the state table {}: {}", name_, c.error().to_string()));
  } else if (d.value().status == "ACTIVE") {
    if (d.value().partition_key.name != "pk" || !d.value().sort_key ||
        d.value().sort_key->name != "sk")
      throw UsageError(
          fmt::format("table {} exists but is not a dynamorph state table (key is not pk, sk); "
                      "choose another state_table",
                      name_));
    return;
  }
  auto a = client_.wait_until_active(name_, std::chrono::seconds(300));
  if (!a)
    throw Error(fmt::format("waiting for the state table {}: {}", name_, a.error().to_string()));
}

std::vector<Item> StateTable::query(const std::string& condition, const std::string& a,
                                    const std::string& b) const {
  std::vector<Item> out;
  dynamo::QueryRequest q;
  q.table = name_;
  q.consistent_read = true;
  q.key_condition.text = condition;
  q.key_condition.values[":pk"] = AttributeValue(kPartition);
  q.key_condition.values[":a"] = AttributeValue(a);
  if (!b.empty()) q.key_condition.values[":b"] = AttributeValue(b);
  while (true) {
    auto p = client_.query(q);
    if (!p) {
      if (p.error().type == "ResourceNotFoundException") return out;
      read_failed(p.error(), "reading the state table");
    }
    for (auto& i : p.value().items) out.push_back(std::move(i));
    if (!p.value().last_evaluated_key) break;
    q.exclusive_start_key = std::move(p.value().last_evaluated_key);
  }
  return out;
}

std::vector<Item> StateTable::query_prefix(const std::string& prefix) const {
  return query("pk = :pk AND begins_with(sk, :a)", prefix, {});
}

namespace {

VersionRecord version_of(const Item& i) {
  VersionRecord r;
  r.version = int_of(i, "version");
  r.name = str_of(i, "name");
  r.state = str_of(i, "state");
  r.direction = str_of(i, "direction");
  r.checksum = str_of(i, "checksum");
  r.started_at = str_of(i, "started_at");
  r.updated_at = str_of(i, "updated_at");
  r.finished_at = str_of(i, "finished_at");
  r.by = str_of(i, "by");
  r.error = str_of(i, "error");
  r.step = static_cast<int>(int_of(i, "step"));
  r.counters = counters_of(i);
  return r;
}

LockRecord lock_of(const Item& i) {
  return LockRecord{str_of(i, "owner"), str_of(i, "host"), int_of(i, "pid"),
                    str_of(i, "acquired_at"), int_of(i, "expires_at")};
}

}  // namespace

std::map<std::int64_t, VersionRecord> StateTable::read_versions() const {
  std::map<std::int64_t, VersionRecord> out;
  for (const auto& i : query_prefix("version#")) {
    auto r = version_of(i);
    out[r.version] = std::move(r);
  }
  return out;
}

StateTable::History StateTable::read_history() const {
  // "lock" sorts after every "checkpoint#…" and before "version#…": one range skips checkpoints.
  History h;
  for (const auto& i : query("pk = :pk AND sk BETWEEN :a AND :b", "lock", "version#~")) {
    if (str_of(i, "sk") == "lock") {
      h.lock = lock_of(i);
    } else {
      auto r = version_of(i);
      h.versions[r.version] = std::move(r);
    }
  }
  return h;
}

std::optional<LockRecord> StateTable::read_lock() const {
  dynamo::GetItemRequest g;
  g.table = name_;
  g.key = key("lock");
  g.consistent_read = true;
  auto r = client_.get_item(g);
  if (!r) {
    if (r.error().type == "ResourceNotFoundException") return std::nullopt;
    read_failed(r.error(), "reading the lock in");
  }
  if (!r.value()) return std::nullopt;
  return lock_of(*r.value());
}

bool StateTable::try_put_lock(const LockRecord& lock, std::int64_t now_ms) {
  dynamo::PutItemRequest p;
  p.table = name_;
  p.item = key("lock");
  p.item.set("owner", AttributeValue(lock.owner));
  p.item.set("host", AttributeValue(lock.host));
  p.item.set("pid", num(lock.pid));
  p.item.set("acquired_at", AttributeValue(lock.acquired_at));
  p.item.set("expires_at", num(lock.expires_at_ms));
  p.condition.text = "attribute_not_exists(sk) OR expires_at < :now";
  p.condition.values[":now"] = num(now_ms);
  auto r = client_.put_item(p);
  if (r) return true;
  if (r.error().conditional_check_failed()) return false;
  throw Error(fmt::format("taking the lock in {}: {}", name_, r.error().to_string()));
}

bool StateTable::extend_lock(const std::string& owner, std::int64_t expires_at_ms) {
  dynamo::UpdateItemRequest u;
  u.table = name_;
  u.key = key("lock");
  u.update.text = "SET expires_at = :e";
  u.update.values[":e"] = num(expires_at_ms);
  u.condition.text = "#o = :o";
  u.condition.names["#o"] = "owner";
  u.condition.values[":o"] = AttributeValue(owner);
  auto r = client_.update_item(u);
  if (r) return true;
  if (r.error().conditional_check_failed()) return false;
  throw Error(fmt::format("renewing the lock in {}: {}", name_, r.error().to_string()));
}

bool StateTable::delete_lock(const std::string& owner) {
  dynamo::DeleteItemRequest d;
  d.table = name_;
  d.key = key("lock");
  if (!owner.empty()) {
    d.condition.text = "#o = :o";
    d.condition.names["#o"] = "owner";
    d.condition.values[":o"] = AttributeValue(owner);
  }
  auto r = client_.delete_item(d);
  if (r) return true;
  if (r.error().conditional_check_failed()) return false;
  throw Error(fmt::format("releasing the lock in {}: {}", name_, r.error().to_string()));
}

dynamo::TransactAction StateTable::lock_check(const LockProof& proof) const {
  dynamo::TransactAction a;
  a.kind = dynamo::TransactAction::Kind::ConditionCheck;
  a.table = name_;
  a.item = key("lock");
  a.condition.text = "#o = :o AND expires_at > :now";
  a.condition.names["#o"] = "owner";
  a.condition.values[":o"] = AttributeValue(proof.owner);
  a.condition.values[":now"] = num(dynamo::now_epoch_ms());
  return a;
}

void StateTable::transact(std::vector<dynamo::TransactAction> actions, std::string_view what) {
  auto r = client_.transact_write(std::move(actions));
  if (r) return;
  const auto& e = r.error();
  if (!e.cancellation_reasons.empty() && e.cancellation_reasons.front() == "ConditionalCheckFailed")
    throw StepFailed(fmt::format(
        "lost the lock in {} (it expired or was taken over) while {}; stopped", name_, what));
  throw Error(fmt::format("{} in {}: {}", what, name_, e.to_string()));
}

void StateTable::put_version(const VersionRecord& v, const LockProof& proof) {
  dynamo::TransactAction put;
  put.kind = dynamo::TransactAction::Kind::Put;
  put.table = name_;
  put.item = key(version_sort_key(v.version));
  auto& i = put.item;
  // Empty strings are left out: older DynamoDB Local versions reject them.
  auto opt = [&](const char* n, const std::string& s) {
    if (!s.empty()) i.set(n, AttributeValue(s));
  };
  i.set("version", num(v.version));
  opt("name", v.name);
  opt("state", v.state);
  opt("direction", v.direction);
  opt("checksum", v.checksum);
  i.set("step", num(static_cast<std::int64_t>(v.step)));
  opt("by", proof.owner);
  opt("started_at", v.started_at);
  opt("updated_at", v.updated_at);
  opt("finished_at", v.finished_at);
  opt("error", v.error);
  i.set("counters", counters_to_value(v.counters));
  transact({lock_check(proof), std::move(put)}, fmt::format("recording version {}", v.version));
}

void StateTable::delete_version(std::int64_t version, const LockProof& proof) {
  dynamo::TransactAction del;
  del.kind = dynamo::TransactAction::Kind::Delete;
  del.table = name_;
  del.item = key(version_sort_key(version));
  transact({lock_check(proof), std::move(del)}, fmt::format("resetting version {}", version));
}

void StateTable::put_checkpoints(
    std::int64_t version, const std::string& direction, int step,
    const std::vector<std::pair<pipeline::SegmentCheckpoint, int>>& checkpoints,
    const LockProof& proof) {
  const std::string prefix = checkpoint_step_prefix(version, direction, step);
  for (std::size_t start = 0; start < checkpoints.size(); start += 99) {
    std::vector<dynamo::TransactAction> actions{lock_check(proof)};
    for (std::size_t k = start; k < std::min(checkpoints.size(), start + 99); ++k) {
      const auto& [cp, total] = checkpoints[k];
      dynamo::TransactAction put;
      put.kind = dynamo::TransactAction::Kind::Put;
      put.table = name_;
      put.item = key(fmt::format("{}{:06}", prefix, cp.segment));
      put.item.set("segment", num(static_cast<std::int64_t>(cp.segment)));
      put.item.set("total_segments", num(static_cast<std::int64_t>(total)));
      put.item.set("pages", num(cp.pages));
      put.item.set("done", AttributeValue(cp.done));
      if (cp.resume_token) put.item.set("resume_token", AttributeValue(dynamo::Binary{*cp.resume_token}));
      put.item.set("counters", counters_to_value(cp.counters));
      actions.push_back(std::move(put));
    }
    transact(std::move(actions), fmt::format("saving checkpoints of version {}", version));
  }
}

std::optional<pipeline::RunCheckpoint> StateTable::load_checkpoints(std::int64_t version,
                                                                    const std::string& direction,
                                                                    int step) const {
  auto items = query_prefix(checkpoint_step_prefix(version, direction, step));
  if (items.empty()) return std::nullopt;
  pipeline::RunCheckpoint run;
  for (const auto& i : items) {
    pipeline::SegmentCheckpoint cp;
    cp.segment = static_cast<int>(int_of(i, "segment"));
    cp.pages = int_of(i, "pages");
    const auto* d = i.find("done");
    cp.done = d && d->is<bool>() && d->as<bool>();
    if (const auto* t = i.find("resume_token"); t && t->is<dynamo::Binary>()) {
      cp.resume_token = t->as<dynamo::Binary>().bytes;
    } else if (const auto* k = i.find("resume_key"); k && k->is<dynamo::Map>()) {
      // Written by dynamorph before tokens were opaque: a scan's LastEvaluatedKey, which is
      // what the scan and query sources' tokens hold (DynamoDB JSON).
      cp.resume_token.emplace();
      dynamo::write_item(*cp.resume_token, k->as<dynamo::Map>());
    }
    cp.counters = counters_of(i);
    run.total_segments = static_cast<int>(int_of(i, "total_segments"));
    run.segments.push_back(std::move(cp));
  }
  return run;
}

void StateTable::delete_checkpoints(std::int64_t version, const LockProof& proof) {
  auto items = query_prefix(checkpoint_prefix(version));
  for (std::size_t start = 0; start < items.size(); start += 99) {
    std::vector<dynamo::TransactAction> actions{lock_check(proof)};
    for (std::size_t k = start; k < std::min(items.size(), start + 99); ++k) {
      dynamo::TransactAction del;
      del.kind = dynamo::TransactAction::Kind::Delete;
      del.table = name_;
      del.item = key(str_of(items[k], "sk"));
      actions.push_back(std::move(del));
    }
    transact(std::move(actions), fmt::format("clearing checkpoints of version {}", version));
  }
}

}  // namespace dynamorph::migrations
