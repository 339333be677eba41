#include "migrations/verify.h"

#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "dynamo/client.h"
#include "dynamo/json.h"
#include "migrations/errors.h"
#include "pipeline/rate_limiter.h"
#include "stages/journal.h"
#include "stages/sink.h"

namespace dynamorph::migrations {
namespace {

using dynamo::Item;

using stages::key_text;

Item key_of(const dynamo::TableDescription& t, const Item& item) {
  Item k;
  if (const auto* v = item.find(t.partition_key.name)) k.set(t.partition_key.name, *v);
  if (t.sort_key)
    if (const auto* v = item.find(t.sort_key->name)) k.set(t.sort_key->name, *v);
  return k;
}

struct TargetEntry {
  TargetEntry(std::string h, Item k) : hash(std::move(h)), key(std::move(k)) {}
  std::string hash;
  Item key;
  mutable std::atomic<bool> seen{false};
};

// What a copy's target holds, and what the source pass found against it. expect() runs on TBB
// workers (the map is only read there; counters are atomic, the first findings under a mutex).
struct CopyCheck {
  dynamo::TableDescription target;
  std::unordered_map<std::string, TargetEntry> items;
  std::atomic<std::int64_t> missing{0}, different{0};
  std::mutex mutex;
  struct Finding {
    std::string kind;  // "missing", "different"
    Item expected;
  };
  std::vector<Finding> first;  // ≤ 5

  void expect(const Item& item) {
    auto it = items.find(key_text(target, item));
    if (it == items.end()) {
      ++missing;
      note("missing", item);
      return;
    }
    it->second.seen.store(true, std::memory_order_relaxed);
    if (it->second.hash != stages::item_hash(item)) {
      ++different;
      note("different", item);
    }
  }
  void note(const char* kind, const Item& item) {
    std::lock_guard lock(mutex);
    if (first.size() < 5) first.push_back({kind, item});
  }
};

class CollectState final : public stages::SinkState {
 public:
  CollectState(CopyCheck& check, std::unique_ptr<stages::SinkState> inner)
      : check_(check), inner_(std::move(inner)) {}
  void add(const Item& scanned, stages::Decision&& d, std::vector<stages::WriteOp>& out,
           int round) override {
    using K = stages::Decision::Kind;
    if (d.kind == K::Put || d.kind == K::Update) check_.expect(d.new_item);
    if (d.kind == K::Many)
      for (const auto& item : d.items) check_.expect(item);
    inner_->add(scanned, std::move(d), out, round);
  }
  void flush(std::vector<stages::WriteOp>& out) override { inner_->flush(out); }

 private:
  CopyCheck& check_;
  std::unique_ptr<stages::SinkState> inner_;
};

// Around the dry run's sink: every item the step would write is compared with the target.
class CollectSink final : public stages::Sink {
 public:
  CollectSink(std::unique_ptr<stages::Sink> inner, CopyCheck& check)
      : Sink(inner->processor()), inner_(std::move(inner)), check_(check) {}
  std::unique_ptr<stages::SinkState> make_page_state() const override {
    return std::make_unique<CollectState>(check_, inner_->make_page_state());
  }
  bool sends() const override { return false; }
  void send(dynamo::Client& client, stages::WriteOp& op,
            std::function<void(stages::WriteAnswer)> done) const override {
    inner_->send(client, op, std::move(done));
  }
  stages::Verdict classify(const stages::WriteOp& op, const stages::WriteAnswer& a,
                           int rounds) const override {
    return inner_->classify(op, a, rounds);
  }

 private:
  std::unique_ptr<stages::Sink> inner_;
  CopyCheck& check_;
};

pipeline::RunOptions dry_options(const StepContext& ctx, const Migration& m,
                                 const stages::StepSpec& spec) {
  UpOptions o;
  o.dry_run = true;
  pipeline::RunOptions ro = step_run_options(ctx, m, o, spec);
  ro.progress = nullptr;
  ro.sample_changes = 0;
  return ro;
}

}  // namespace

std::string attribute_diff(const Item& before, const std::optional<Item>& after) {
  if (!after) return "deleted";
  std::string out;
  auto add = [&out](const std::string& name, const dynamo::AttributeValue* a,
                    const dynamo::AttributeValue* b) {
    if (!out.empty()) out += "; ";
    out += fmt::format("{}: {} → {}", name, a ? dynamo::to_debug_string(*a) : "(absent)",
                       b ? dynamo::to_debug_string(*b) : "(absent)");
  };
  for (const auto& [name, v] : before) {
    const auto* w = after->find(name);
    if (!w || !(*w == v)) add(name, &v, w);
  }
  for (const auto& [name, w] : *after)
    if (!before.find(name)) add(name, nullptr, &w);
  return out.empty() ? "no difference" : out;
}

std::vector<VerifyStep> Verifier::verify(const Migration& m) {
  std::vector<VerifyStep> out;
  for (std::size_t i = 0; i < m.up.size(); ++i) {
    const Step& step = m.up[i];
    const auto* p = std::get_if<PipelineStep>(&step.body);
    if (!p) continue;
    const auto& spec = p->spec;
    const bool is_copy = !spec.write.table.empty() && spec.write.table != spec.source.table;
    try {
      out.push_back(is_copy ? copy(m, static_cast<int>(i), step, spec)
                            : in_place(m, static_cast<int>(i), step, spec));
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      throw StepFailed(fmt::format("{}: verify: {}", step.where, e.what()));
    }
  }
  return out;
}

VerifyStep Verifier::in_place(const Migration& m, int index, const Step& step,
                              const stages::StepSpec& spec) {
  VerifyStep v;
  v.version = m.version;
  v.step = index + 1;
  v.where = step.where;
  v.source = v.target = spec.source.table;
  auto described = ctx_.client.describe_table(spec.source.table);
  if (!described) throw Error(described.error().to_string());
  auto ro = dry_options(ctx_, m, spec);
  ro.sample_changes = 5;
  auto store = pipeline::null_checkpoint_store();
  auto r = pipeline::run_pipeline(ctx_.client, with_segments(spec, ro), *store, ro);
  if (r.status == pipeline::RunResult::Status::Failed)
    throw StepFailed(fmt::format("{}: verify: {}", step.where, r.error));
  v.checked = r.counters.scanned;
  v.pending = r.counters.matched - r.counters.skipped;
  for (const auto& s : r.samples) {
    if (v.differences.size() >= 5) break;
    v.differences.push_back(fmt::format(
        "still to change {}: {}", dynamo::to_debug_string(key_of(described.value(), s.before)),
        attribute_diff(s.before, s.after)));
  }
  return v;
}

VerifyStep Verifier::copy(const Migration& m, int index, const Step& step,
                          const stages::StepSpec& spec) {
  VerifyStep v;
  v.version = m.version;
  v.step = index + 1;
  v.where = step.where;
  v.copy = true;
  v.source = spec.source.table.empty() ? spec.source.export_location : spec.source.table;
  v.target = spec.write.table;
  auto described = ctx_.client.describe_table(spec.write.table);
  if (!described) throw Error(described.error().to_string());
  CopyCheck check;
  check.target = described.value();

  // The target, every segment at once: key → hash of the item, within the run's read cap.
  auto ro = dry_options(ctx_, m, spec);
  const int segments = std::max(1, ro.segments);
  pipeline::RateLimiter reads(ro.max_rcu);
  std::mutex mu;
  std::string error;
  std::vector<std::thread> scans;
  for (int s = 0; s < segments; ++s) {
    scans.emplace_back([&, s] {
      dynamo::ScanRequest req;
      req.table = spec.write.table;
      req.segment = s;
      req.total_segments = segments;
      req.limit = ro.default_page_size;
      while (!ctx_.stop.load()) {
        std::this_thread::sleep_until(reads.reserve_estimated());  // a thread of our own
        auto page = ctx_.client.scan(req);
        reads.record_estimated(page ? page.value().consumed_capacity : 0, false);
        if (!page) {
          std::lock_guard lock(mu);
          if (error.empty()) error = page.error().to_string();
          return;
        }
        {
          std::lock_guard lock(mu);
          for (const auto& item : page.value().items)
            check.items.try_emplace(key_text(check.target, item), stages::item_hash(item),
                                    key_of(check.target, item));
        }
        if (!page.value().last_evaluated_key) return;
        req.exclusive_start_key = page.value().last_evaluated_key;
      }
    });
  }
  for (auto& t : scans) t.join();
  if (!error.empty()) throw Error(fmt::format("scanning {}: {}", spec.write.table, error));

  // The source through the step, each item it would write compared with the target's.
  ro.wrap_sink = [&check](std::unique_ptr<stages::Sink> inner) -> std::unique_ptr<stages::Sink> {
    return std::make_unique<CollectSink>(std::move(inner), check);
  };
  auto store = pipeline::null_checkpoint_store();
  auto r = pipeline::run_pipeline(ctx_.client, with_segments(spec, ro), *store, ro);
  if (r.status == pipeline::RunResult::Status::Failed)
    throw StepFailed(fmt::format("{}: verify: {}", step.where, r.error));
  v.checked = r.counters.scanned;
  v.missing = check.missing.load();
  v.different = check.different.load();
  for (const auto& f : check.first) {
    if (f.kind == "missing") {
      v.differences.push_back(
          fmt::format("missing {}", dynamo::to_debug_string(key_of(check.target, f.expected))));
      continue;
    }
    auto now = ctx_.client.get_item(
        dynamo::GetItemRequest{spec.write.table, key_of(check.target, f.expected), true});
    std::optional<Item> actual;
    if (now && now.value()) actual = *now.value();
    v.differences.push_back(
        fmt::format("different {}: {}", dynamo::to_debug_string(key_of(check.target, f.expected)),
                    actual ? attribute_diff(*actual, f.expected) : "gone meanwhile"));
  }
  for (const auto& [k, e] : check.items) {
    if (e.seen.load()) continue;
    ++v.extra;
    if (v.differences.size() < 5)
      v.differences.push_back(fmt::format("extra {}", dynamo::to_debug_string(e.key)));
  }
  return v;
}

}  // namespace dynamorph::migrations
