#include "migrations/state_table.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "dynamo/clock.h"
#include "dynamo/json.h"
#include "dynamo/write_fence.h"
#include "dynamo/redact.h"
#include "migrations/errors.h"

// Every write of this file is exempt from the client's write fence (dynamo/write_fence.h): the
// lease's renewal and release must go out, and the rest is either conditioned on the lock
// (version records, checkpoints: a ConditionCheck on owner and expiry) or on a segment lease's
// owner and counter, so a write sent after the lock was lost fails on the server.
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

pipeline::Counters counters_of(const Item& item, std::string_view name = "counters") {
  pipeline::Counters c;
  const auto* v = item.find(name);
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

AttributeValue cost_to_value(const CheckpointCost& c) {
  dynamo::Map m;
  m.set("writes", num(c.writes));
  m.set("transactions", num(c.transactions));
  m.set("wcu", num(c.wcu));
  return AttributeValue(std::move(m));
}

CheckpointCost cost_of(const Item& item) {
  CheckpointCost c;
  const auto* v = item.find("checkpoint_cost");
  if (!v || !v->is<dynamo::Map>()) return c;
  const auto& m = v->as<dynamo::Map>();
  c.writes = int_of(m, "writes");
  c.transactions = int_of(m, "transactions");
  c.wcu = double_of(m, "wcu");
  return c;
}

// The schema block as a map; lists keep the file's order (DynamoDB keeps no order in a map).
// Empty strings are left out, like everywhere in this table.
AttributeValue schema_to_value(const ModelSchema& s) {
  auto text = [](dynamo::Map& m, const char* name, const std::string& v) {
    if (!v.empty()) m.set(name, AttributeValue(v));
  };
  dynamo::List entities;
  for (const auto& e : s.entities) {
    dynamo::Map em;
    text(em, "name", e.name);
    text(em, "table", e.table);
    text(em, "description", e.description);
    dynamo::List keys, attributes;
    for (const auto& [a, pattern] : e.keys)
      keys.emplace_back(
          dynamo::Map{{"attribute", AttributeValue(a)}, {"pattern", AttributeValue(pattern)}});
    for (const auto& [a, type] : e.attributes)
      attributes.emplace_back(dynamo::Map{{"attribute", AttributeValue(a)},
                                          {"type", AttributeValue(std::string(type_word(type)))}});
    em.set("keys", AttributeValue(std::move(keys)));
    em.set("attributes", AttributeValue(std::move(attributes)));
    entities.emplace_back(std::move(em));
  }
  dynamo::Map m;
  text(m, "description", s.description);
  m.set("entities", AttributeValue(std::move(entities)));
  return AttributeValue(std::move(m));
}

std::optional<ModelSchema> schema_of(const Item& item) {
  const auto* v = item.find("schema");
  if (!v || !v->is<dynamo::Map>()) return std::nullopt;
  const auto& m = v->as<dynamo::Map>();
  auto list = [](const dynamo::Map& in, std::string_view name) -> const dynamo::List* {
    const auto* l = in.find(name);
    return l && l->is<dynamo::List>() ? &l->as<dynamo::List>() : nullptr;
  };
  ModelSchema s;
  s.description = str_of(m, "description");
  if (const auto* entities = list(m, "entities")) {
    for (const auto& ev : *entities) {
      if (!ev.is<dynamo::Map>()) continue;
      const auto& em = ev.as<dynamo::Map>();
      SchemaEntity e;
      e.name = str_of(em, "name");
      e.table = str_of(em, "table");
      e.description = str_of(em, "description");
      if (const auto* keys = list(em, "keys"))
        for (const auto& k : *keys)
          if (k.is<dynamo::Map>())
            e.keys.emplace_back(str_of(k.as<dynamo::Map>(), "attribute"),
                                str_of(k.as<dynamo::Map>(), "pattern"));
      if (const auto* attrs = list(em, "attributes"))
        for (const auto& a : *attrs)
          if (a.is<dynamo::Map>())
            if (auto t = dynamo::parse_type(str_of(a.as<dynamo::Map>(), "type")))
              e.attributes.emplace_back(str_of(a.as<dynamo::Map>(), "attribute"), *t);
      s.entities.push_back(std::move(e));
    }
  }
  return s;
}

// DynamoDB's price of one action in a transaction: 2 WCU per KB of the item, rounded up. The
// lock item a check reads is under 1 KB.
double transact_wcu(const Item& item) {
  return 2.0 * std::max(1.0, std::ceil(static_cast<double>(dynamo::item_size(item)) / 1024.0));
}
constexpr double kLockCheckWcu = 2.0;

// A transaction cancelled only because of a concurrent write (the lease's heartbeat touches the
// lock item every check reads) or throttling: nothing was applied, so it is sent again.
bool transient_cancel(const dynamo::ServiceError& e) {
  if (e.type != "TransactionCanceledException" || e.cancellation_reasons.empty()) return false;
  for (const auto& r : e.cancellation_reasons) {
    if (r != "None" && r != "TransactionConflict" && r != "ThrottlingError" &&
        r != "ProvisionedThroughputExceeded")
      return false;
  }
  return true;
}

// The server's limit on actions per transaction, when `e` is its refusal of a longer one:
// DynamoDB says "… at 'transactItems' failed to satisfy constraint: Member must have length less
// than or equal to 100", DynamoDB Local only "Member must have length less than or equal to 10".
std::optional<int> transaction_limit_in(const dynamo::ServiceError& e) {
  if (e.type != "ValidationException") return std::nullopt;
  constexpr std::string_view kSays = "Member must have length less than or equal to ";
  const auto at = e.message.find(kSays);
  if (at == std::string::npos) return std::nullopt;
  constexpr std::string_view kMember = " at 'transactItems'";
  const auto named = e.message.rfind(" at '", at);
  if (named != std::string::npos && e.message.compare(named, kMember.size(), kMember) != 0)
    return std::nullopt;  // another member's length (a name, a key): not the action count
  int n = 0;
  const char* first = e.message.data() + at + kSays.size();
  const char* last = e.message.data() + e.message.size();
  if (std::from_chars(first, last, n).ec != std::errc()) return std::nullopt;
  return n;
}

pipeline::SegmentCheckpoint checkpoint_of(const Item& i) {
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
  return cp;
}

SegmentLease lease_of(const Item& i) {
  SegmentLease l;
  l.checkpoint = checkpoint_of(i);
  l.total_segments = static_cast<int>(int_of(i, "total_segments"));
  l.owner = str_of(i, "owner");
  l.counter = int_of(i, "lease_counter");
  l.expires_at_ms = int_of(i, "expires_at");
  l.done_by = str_of(i, "done_by");
  l.error = str_of(i, "error");
  l.writes = int_of(i, "lease_writes");
  return l;
}

std::string checkpoint_prefix(std::int64_t version, std::string_view family) {
  return fmt::format("{}#{:020}#", family, version);
}
std::string checkpoint_step_prefix(std::int64_t version, Direction direction, int step,
                                   std::string_view family) {
  return fmt::format("{}{}#{:04}#", checkpoint_prefix(version, family), to_string(direction),
                     step);
}

std::string segment_sort_key(std::int64_t version, Direction direction, int step, int segment) {
  return fmt::format("{}{:06}", checkpoint_step_prefix(version, direction, step, kStepCheckpoints),
                     segment);
}

}  // namespace

std::string_view to_string(VersionState state) {
  switch (state) {
    case VersionState::Running: return "running";
    case VersionState::Applied: return "applied";
    case VersionState::Failed: return "failed";
  }
  return "?";
}

std::string_view to_string(Direction direction) {
  return direction == Direction::Up ? "up" : "down";
}

std::optional<VersionState> parse_version_state(std::string_view word) {
  for (auto s : {VersionState::Running, VersionState::Applied, VersionState::Failed})
    if (word == to_string(s)) return s;
  return std::nullopt;
}

std::optional<Direction> parse_direction(std::string_view word) {
  for (auto d : {Direction::Up, Direction::Down})
    if (word == to_string(d)) return d;
  return std::nullopt;
}

CheckpointCost& CheckpointCost::operator+=(const CheckpointCost& o) {
  writes += o.writes;
  transactions += o.transactions;
  wcu += o.wcu;
  return *this;
}

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
  const dynamo::RequestScope unfenced(true);
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
  // A word this build does not know (a newer dynamorph wrote it, or a hand edit): the history
  // cannot be trusted, so nothing runs (exit 4).
  const auto state = parse_version_state(str_of(i, "state"));
  const auto direction = parse_direction(str_of(i, "direction"));
  if (!state || !direction)
    throw HistoryError(fmt::format(
        "version {} has state '{}', direction '{}' in the state table: not a state dynamorph "
        "knows (running, applied, failed; up, down); run the dynamorph that wrote it, or "
        "repair it with `dynamorph mark {} pending` (`mark {} applied` only if you know it "
        "finished)",
        r.version, str_of(i, "state"), str_of(i, "direction"), r.version, r.version));
  r.state = *state;
  r.direction = *direction;
  r.checksum = str_of(i, "checksum");
  r.started_at = str_of(i, "started_at");
  r.updated_at = str_of(i, "updated_at");
  r.finished_at = str_of(i, "finished_at");
  r.by = str_of(i, "by");
  r.error = str_of(i, "error");
  r.step = static_cast<int>(int_of(i, "step"));
  r.counters = counters_of(i);
  if (i.find("counters_before_step"))
    r.counters_before_step = counters_of(i, "counters_before_step");
  r.checkpoint_cost = cost_of(i);
  r.schema = schema_of(i);
  if (const auto* w = i.find("workers"); w && w->is<dynamo::Map>()) {
    for (const auto& [owner, v] : w->as<dynamo::Map>()) {
      if (!v.is<dynamo::Map>()) continue;
      const auto& s = v.as<dynamo::Map>();
      r.workers[owner] = {int_of(s, "segments"), int_of(s, "scanned"), int_of(s, "written")};
    }
  }
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
  const dynamo::RequestScope unfenced(true);
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
  const dynamo::RequestScope unfenced(true);
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
  const dynamo::RequestScope unfenced(true);
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

dynamo::Outcome<double> StateTable::send(std::vector<dynamo::TransactAction> actions) const {
  const dynamo::RequestScope unfenced(true);
  // Up to 8 tries, 10 ms to 0.5 s apart (full jitter): a heartbeat's conflict clears at once.
  thread_local std::minstd_rand rng{std::random_device{}()};
  for (int attempt = 1;; ++attempt) {
    auto r = client_.transact_write(actions);
    if (r || attempt == 8 || !transient_cancel(r.error())) return r;
    const int cap_ms = std::min(500, 10 << attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % static_cast<unsigned>(cap_ms)));
  }
}

void StateTable::write_failed(const dynamo::ServiceError& e, std::string_view what) const {
  if (!e.cancellation_reasons.empty() && e.cancellation_reasons.front() == "ConditionalCheckFailed")
    throw StepFailed(fmt::format(
        "lost the lock in {} (it expired or was taken over) while {}; stopped", name_, what));
  throw Error(fmt::format("{} in {}: {}", what, name_, e.to_string()));
}

void StateTable::transact(std::vector<dynamo::TransactAction> actions, std::string_view what) {
  auto r = send(std::move(actions));
  if (!r) write_failed(r.error(), what);
}

CheckpointCost StateTable::transact_chunked(std::vector<Planned> planned, const LockProof& proof,
                                            std::string_view what, const VersionRecord* record) {
  CheckpointCost cost;
  const std::size_t total = planned.size() + (record ? 1 : 0);
  std::size_t next = 0;
  while (next < total) {
    const auto per = static_cast<std::size_t>(transaction_limit() - 1);
    const std::size_t n = std::min(total - next, per);
    std::vector<dynamo::TransactAction> actions;
    actions.reserve(n + 1);
    actions.push_back(lock_check(proof));
    CheckpointCost chunk{0, 1, kLockCheckWcu};
    for (std::size_t k = next; k < next + n && k < planned.size(); ++k) {
      actions.push_back(planned[k].action);
      chunk.wcu += planned[k].wcu;
      chunk.writes += 1;
    }
    if (record && next + n == total) {
      // The record goes last and counts what this call spends, itself included.
      VersionRecord r = *record;
      r.checkpoint_cost += cost;
      r.checkpoint_cost += chunk;
      const double own = transact_wcu(version_put(r, proof).item);  // its figures hardly move it
      chunk.wcu += own;
      r.checkpoint_cost.wcu += own;
      actions.push_back(version_put(r, proof));
    }
    auto res = send(std::move(actions));
    if (!res) {
      // A server with a lower limit than assumed: learn it and send the rest in smaller chunks.
      // Only a limit that this transaction broke counts, so this cannot loop.
      const auto limit = transaction_limit_in(res.error());
      if (limit && *limit >= 2 && static_cast<std::size_t>(*limit) < n + 1) {
        int current = transaction_limit();
        while (*limit < current && !transaction_limit_.compare_exchange_weak(current, *limit)) {
        }
        continue;
      }
      write_failed(res.error(), what);
    }
    cost += chunk;
    next += n;
  }
  return cost;
}

dynamo::TransactAction StateTable::version_put(const VersionRecord& v,
                                               const LockProof& proof) const {
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
  i.set("state", AttributeValue(std::string(to_string(v.state))));
  i.set("direction", AttributeValue(std::string(to_string(v.direction))));
  opt("checksum", v.checksum);
  i.set("step", num(static_cast<std::int64_t>(v.step)));
  opt("by", proof.owner);
  opt("started_at", v.started_at);
  opt("updated_at", v.updated_at);
  opt("finished_at", v.finished_at);
  opt("error", dynamo::redact(v.error));
  i.set("counters", counters_to_value(v.counters));
  if (v.counters_before_step)
    i.set("counters_before_step", counters_to_value(*v.counters_before_step));
  i.set("checkpoint_cost", cost_to_value(v.checkpoint_cost));
  if (v.schema) i.set("schema", schema_to_value(*v.schema));
  if (!v.workers.empty()) {
    dynamo::Map m;
    for (const auto& [owner, share] : v.workers) {
      dynamo::Map s;
      s.set("segments", num(share.segments));
      s.set("scanned", num(share.scanned));
      s.set("written", num(share.written));
      m.set(owner, AttributeValue(std::move(s)));
    }
    i.set("workers", AttributeValue(std::move(m)));
  }
  return put;
}

void StateTable::put_version(const VersionRecord& v, const LockProof& proof) {
  transact({lock_check(proof), version_put(v, proof)},
           fmt::format("recording version {}", v.version));
}

void StateTable::delete_version(std::int64_t version, const LockProof& proof) {
  dynamo::TransactAction del;
  del.kind = dynamo::TransactAction::Kind::Delete;
  del.table = name_;
  del.item = key(version_sort_key(version));
  transact({lock_check(proof), std::move(del)}, fmt::format("resetting version {}", version));
}

CheckpointCost StateTable::put_checkpoints(
    std::int64_t version, Direction direction, int step,
    const std::vector<std::pair<pipeline::SegmentCheckpoint, int>>& checkpoints,
    const LockProof& proof, const VersionRecord* record, std::string_view family) {
  const std::string prefix = checkpoint_step_prefix(version, direction, step, family);
  std::vector<Planned> planned;
  planned.reserve(checkpoints.size());
  for (const auto& entry : checkpoints) {
    // Named references, not a structured binding: clang before 16 cannot capture those.
    const pipeline::SegmentCheckpoint& cp = entry.first;
    const int total = entry.second;
    auto& next = planned.emplace_back(Planned{[&] {
      dynamo::TransactAction put;
      put.kind = dynamo::TransactAction::Kind::Put;
      put.table = name_;
      put.item = key(fmt::format("{}{:06}", prefix, cp.segment));  // segment_sort_key's shape
      put.item.set("segment", num(static_cast<std::int64_t>(cp.segment)));
      put.item.set("total_segments", num(static_cast<std::int64_t>(total)));
      put.item.set("pages", num(cp.pages));
      put.item.set("done", AttributeValue(cp.done));
      if (cp.resume_token) put.item.set("resume_token", AttributeValue(dynamo::Binary{*cp.resume_token}));
      put.item.set("counters", counters_to_value(cp.counters));
      return put;
    }()});
    next.wcu = transact_wcu(next.action.item);
  }
  return transact_chunked(std::move(planned), proof,
                          fmt::format("saving checkpoints of version {}", version), record);
}

std::optional<pipeline::RunCheckpoint> StateTable::load_checkpoints(std::int64_t version,
                                                                    Direction direction, int step,
                                                                    std::string_view family) const {
  auto items = query_prefix(checkpoint_step_prefix(version, direction, step, family));
  if (items.empty()) return std::nullopt;
  pipeline::RunCheckpoint run;
  for (const auto& i : items) {
    run.segments.push_back(checkpoint_of(i));
    run.total_segments = static_cast<int>(int_of(i, "total_segments"));
  }
  return run;
}

CheckpointCost StateTable::delete_checkpoints(std::int64_t version, const LockProof& proof,
                                              std::string_view family) {
  std::vector<Planned> planned;
  for (const auto& i : query_prefix(checkpoint_prefix(version, family))) {
    dynamo::TransactAction del;
    del.kind = dynamo::TransactAction::Kind::Delete;
    del.table = name_;
    del.item = key(str_of(i, "sk"));
    planned.push_back(Planned{std::move(del), transact_wcu(i)});
  }
  return transact_chunked(std::move(planned), proof,
                          fmt::format("clearing checkpoints of version {}", version));
}

// ---- segment leases and workers ---------------------------------------------------------------

namespace {

// Whether an UpdateItem/DeleteItem went through: false when its condition failed; throws on
// any other failure.
bool conditional(const dynamo::Outcome<dynamo::WriteResult>& r, const std::string& table,
                 std::string_view what) {
  if (r) return true;
  if (r.error().conditional_check_failed()) return false;
  throw Error(fmt::format("{} in {}: {}", what, table, r.error().to_string()));
}

void held_by(dynamo::UpdateItemRequest& u, const std::string& owner, std::int64_t counter) {
  u.condition.text = "#o = :me AND lease_counter = :n";
  u.condition.names["#o"] = "owner";
  u.condition.values[":me"] = AttributeValue(owner);
  u.condition.values[":n"] = num(counter);
}

}  // namespace

std::vector<SegmentLease> StateTable::read_segment_leases(std::int64_t version,
                                                          Direction direction, int step) const {
  std::vector<SegmentLease> out;
  for (const auto& i : query_prefix(checkpoint_step_prefix(version, direction, step,
                                                           kStepCheckpoints)))
    out.push_back(lease_of(i));
  return out;
}

std::optional<SegmentLease> StateTable::claim_segment(std::int64_t version, Direction direction,
                                                      int step, int segment,
                                                      const std::string& owner,
                                                      std::int64_t now_ms,
                                                      std::int64_t expires_at_ms) {
  const dynamo::RequestScope unfenced(true);
  dynamo::UpdateItemRequest u;
  u.table = name_;
  u.key = key(segment_sort_key(version, direction, step, segment));
  u.update.text =
      "SET #o = :me, expires_at = :e, lease_counter = if_not_exists(lease_counter, :zero) + :one "
      "ADD lease_writes :one";
  u.condition.text =
      "attribute_exists(sk) AND done = :no AND attribute_not_exists(#err) AND "
      "(attribute_not_exists(#o) OR #o = :me OR expires_at < :now)";
  u.update.names["#o"] = "owner";
  u.condition.names["#o"] = "owner";
  u.condition.names["#err"] = "error";
  u.update.values[":me"] = AttributeValue(owner);
  u.update.values[":e"] = num(expires_at_ms);
  u.update.values[":zero"] = num(std::int64_t{0});
  u.update.values[":one"] = num(std::int64_t{1});
  u.condition.values[":no"] = AttributeValue(false);
  u.condition.values[":me"] = AttributeValue(owner);
  u.condition.values[":now"] = num(now_ms);
  u.return_values = "ALL_NEW";
  auto r = client_.update_item(u);
  if (!conditional(r, name_, fmt::format("claiming segment {} of version {}", segment, version)))
    return std::nullopt;
  if (!r.value().attributes)
    throw Error(fmt::format("claiming segment {} of version {} in {}: the answer has no item",
                            segment, version, name_));
  return lease_of(*r.value().attributes);
}

bool StateTable::save_segment(std::int64_t version, Direction direction, int step,
                              const pipeline::SegmentCheckpoint& cp, const std::string& owner,
                              std::int64_t counter, std::int64_t expires_at_ms) {
  const dynamo::RequestScope unfenced(true);
  dynamo::UpdateItemRequest u;
  u.table = name_;
  u.key = key(segment_sort_key(version, direction, step, cp.segment));
  std::string set = "SET pages = :p, done = :d, counters = :c, expires_at = :e";
  u.update.values[":p"] = num(cp.pages);
  u.update.values[":d"] = AttributeValue(cp.done);
  u.update.values[":c"] = counters_to_value(cp.counters);
  u.update.values[":e"] = num(expires_at_ms);
  if (cp.done) {
    set += ", done_by = :me";
    u.update.values[":me"] = AttributeValue(owner);
  }
  if (cp.resume_token) {
    set += ", resume_token = :t";
    u.update.values[":t"] = AttributeValue(dynamo::Binary{*cp.resume_token});
  }
  u.update.text = set + " ADD lease_writes :one";
  u.update.values[":one"] = num(std::int64_t{1});
  if (!cp.resume_token) u.update.text += " REMOVE resume_token";
  held_by(u, owner, counter);
  return conditional(client_.update_item(u), name_,
                     fmt::format("saving segment {} of version {}", cp.segment, version));
}

bool StateTable::extend_segment(std::int64_t version, Direction direction, int step, int segment,
                                const std::string& owner, std::int64_t counter,
                                std::int64_t expires_at_ms) {
  const dynamo::RequestScope unfenced(true);
  dynamo::UpdateItemRequest u;
  u.table = name_;
  u.key = key(segment_sort_key(version, direction, step, segment));
  u.update.text = "SET expires_at = :e ADD lease_writes :one";
  u.update.values[":e"] = num(expires_at_ms);
  u.update.values[":one"] = num(std::int64_t{1});
  held_by(u, owner, counter);
  return conditional(client_.update_item(u), name_,
                     fmt::format("renewing the lease of segment {} of version {}", segment,
                                 version));
}

bool StateTable::release_segment(std::int64_t version, Direction direction, int step,
                                 int segment, const std::string& owner, std::int64_t counter,
                                 const std::string& error) {
  const dynamo::RequestScope unfenced(true);
  dynamo::UpdateItemRequest u;
  u.table = name_;
  u.key = key(segment_sort_key(version, direction, step, segment));
  // No owner: free (an empty string would do for DynamoDB, not for every DynamoDB Local).
  u.update.text = "SET expires_at = :zero REMOVE #o ADD lease_writes :one";
  u.update.names["#o"] = "owner";
  u.update.values[":zero"] = num(std::int64_t{0});
  u.update.values[":one"] = num(std::int64_t{1});
  if (!error.empty()) {
    u.update.text = "SET expires_at = :zero, #err = :err REMOVE #o ADD lease_writes :one";
    u.update.names["#err"] = "error";
    u.update.values[":err"] = AttributeValue(dynamo::redact(error));
  }
  held_by(u, owner, counter);
  return conditional(client_.update_item(u), name_,
                     fmt::format("releasing segment {} of version {}", segment, version));
}

void StateTable::clear_segment_errors(std::int64_t version, Direction direction, int step) {
  const dynamo::RequestScope unfenced(true);
  for (const auto& l : read_segment_leases(version, direction, step)) {
    if (l.error.empty()) continue;
    dynamo::UpdateItemRequest u;
    u.table = name_;
    u.key = key(segment_sort_key(version, direction, step, l.checkpoint.segment));
    u.update.text = "REMOVE #err";
    u.update.names["#err"] = "error";
    conditional(client_.update_item(u), name_,
                fmt::format("clearing the failure of segment {} of version {}",
                            l.checkpoint.segment, version));
  }
}

void StateTable::put_worker(const WorkerRecord& w) {
  const dynamo::RequestScope unfenced(true);
  dynamo::PutItemRequest p;
  p.table = name_;
  p.item = key("worker#" + w.owner);
  p.item.set("owner", AttributeValue(w.owner));
  p.item.set("expires_at", num(w.expires_at_ms));
  p.item.set("joined_at", AttributeValue(w.joined_at));
  auto r = client_.put_item(p);
  if (!r)
    throw Error(fmt::format("registering worker {} in {}: {}", w.owner, name_,
                            r.error().to_string()));
}

bool StateTable::extend_worker(const std::string& owner, std::int64_t expires_at_ms) {
  const dynamo::RequestScope unfenced(true);
  dynamo::UpdateItemRequest u;
  u.table = name_;
  u.key = key("worker#" + owner);
  u.update.text = "SET expires_at = :e";
  u.update.values[":e"] = num(expires_at_ms);
  u.condition.text = "attribute_exists(sk)";
  return conditional(client_.update_item(u), name_, fmt::format("renewing worker {}", owner));
}

bool StateTable::delete_worker(const std::string& owner,
                               std::optional<std::int64_t> expired_before) {
  const dynamo::RequestScope unfenced(true);
  dynamo::DeleteItemRequest d;
  d.table = name_;
  d.key = key("worker#" + owner);
  if (expired_before) {
    d.condition.text = "expires_at < :t";
    d.condition.values[":t"] = num(*expired_before);
  }
  return conditional(client_.delete_item(d), name_, fmt::format("removing worker {}", owner));
}

std::vector<WorkerRecord> StateTable::read_workers() const {
  std::vector<WorkerRecord> out;
  for (const auto& i : query_prefix("worker#"))
    out.push_back(WorkerRecord{str_of(i, "owner"), int_of(i, "expires_at"),
                               str_of(i, "joined_at")});
  return out;
}

}  // namespace dynamorph::migrations
