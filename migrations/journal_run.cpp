#include "migrations/journal_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <thread>

#include "dynamo/client.h"
#include "dynamo/clock.h"
#include "dynamo/json.h"
#include "migrations/checkpoint_store.h"

namespace dynamorph::migrations {
namespace {

using dynamo::Item;
using stages::JournalRecord;

int pipeline_steps(const Migration& m) {
  int n = 0;
  for (const auto& s : m.up) n += std::holds_alternative<PipelineStep>(s.body);
  return n;
}

// What one step's journal holds: its target table, and its files per partition, oldest first.
struct StepJournal {
  bool found = false;
  std::string table;
  std::map<int, std::vector<std::string>> files;
};

StepJournal read_step_journal(stages::JournalStore& store, const std::string& prefix) {
  StepJournal j;
  for (const auto& name : store.list(prefix)) {
    const std::string_view rel = std::string_view(name).substr(prefix.size());
    if (rel == stages::kJournalManifest) {
      auto text = store.get(name);
      if (!text) continue;
      std::string line = *text;
      while (!line.empty() && line.back() == '\n') line.pop_back();
      dynamo::pad_for_parsing(line);
      Item manifest = dynamo::parse_item(line);
      if (const auto* t = manifest.find("table"); t && t->is<std::string>())
        j.table = t->as<std::string>();
      j.found = true;
    } else if (auto f = stages::parse_journal_file_name(rel)) {
      j.files[f->segment].push_back(name);
    }
  }
  for (auto& [seg, names] : j.files) std::sort(names.begin(), names.end());
  return j;
}

using stages::key_text;

// Every attribute of `current` still holds its value (the item a restore replaces is the one it
// read); for an absent item, that it is still absent.
dynamo::WireExpression still(const dynamo::TableDescription& t,
                             const std::optional<Item>& current) {
  dynamo::WireExpression w;
  if (!current) {
    w.names["#k"] = t.partition_key.name;
    w.text = "attribute_not_exists(#k)";
    return w;
  }
  int i = 0;
  for (const auto& [name, value] : *current) {
    const std::string n = fmt::format("#r{}", i), v = fmt::format(":r{}", i);
    ++i;
    w.names[n] = name;
    w.values[v] = value;
    if (!w.text.empty()) w.text += " AND ";
    w.text += fmt::format("{} = {}", n, v);
  }
  return w;
}

class StepRestore {
 public:
  static constexpr std::size_t kPerTransaction = 10;

  StepRestore(dynamo::Client& client, stages::JournalStore& store, dynamo::TableDescription table,
              bool force, StateCheckpointStore& checkpoints, const std::atomic<bool>& stop)
      : client_(client),
        store_(store),
        table_(std::move(table)),
        force_(force),
        checkpoints_(checkpoints),
        stop_(stop) {}

  // Restores every partition; false when stopped (checkpoints saved so far).
  bool run(const StepJournal& journal, const std::optional<pipeline::RunCheckpoint>& resumed) {
    int total = journal.files.empty() ? 1 : journal.files.rbegin()->first + 1;
    std::map<int, pipeline::SegmentCheckpoint> from;
    if (resumed)
      for (const auto& cp : resumed->segments) from[cp.segment] = cp;
    std::vector<int> segments;
    for (const auto& [seg, names] : journal.files) segments.push_back(seg);
    std::atomic<std::size_t> next{0};
    std::mutex error_mutex;
    std::string error;
    auto worker = [&] {
      for (std::size_t i; (i = next.fetch_add(1)) < segments.size();) {
        const int seg = segments[i];
        pipeline::SegmentCheckpoint cp;
        cp.segment = seg;
        if (auto f = from.find(seg); f != from.end()) cp = f->second;
        try {
          restore_partition(journal.files.at(seg), cp, total);
        } catch (const std::exception& e) {
          std::lock_guard lock(error_mutex);
          if (error.empty()) error = e.what();
          failed_ = true;
        }
      }
    };
    const int threads = std::clamp(static_cast<int>(segments.size()), 1, 8);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    checkpoints_.flush();
    if (!error.empty()) throw StepFailed(error);
    return !stopped_.load();
  }

  RestoreCounts counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
  }
  std::vector<std::string> changed_keys() const {
    std::lock_guard lock(mutex_);
    return changed_keys_;
  }

 private:
  void restore_partition(const std::vector<std::string>& files, pipeline::SegmentCheckpoint cp,
                         int total) {
    if (cp.done) {
      add_counts(cp.counters);
      return;
    }
    std::set<std::string> seen;  // keys restored from a newer record of this partition
    add_counts(cp.counters);
    for (std::size_t idx = 0; idx < files.size(); ++idx) {
      const std::string& name = files[files.size() - 1 - idx];  // newest first
      auto bytes = store_.get(name);
      if (!bytes) throw Error(fmt::format("journal file {}/{} is gone", store_.describe(), name));
      const std::string what = fmt::format("{}/{}", store_.describe(), name);
      auto records = stages::parse_records(stages::gzip_decompress(*bytes, what), what);
      std::vector<JournalRecord> todo;
      for (auto it = records.rbegin(); it != records.rend(); ++it) {
        if (!seen.insert(key_text(table_, it->key)).second) continue;
        todo.push_back(std::move(*it));
      }
      if (static_cast<std::int64_t>(idx) < cp.pages) continue;  // restored before a stop
      if (stop_.load() || failed_.load()) {
        stopped_ = true;
        return;
      }
      pipeline::Counters c = restore(todo);
      cp.counters += c;
      add_counts(c);
      cp.pages = static_cast<std::int64_t>(idx) + 1;
      cp.resume_token = std::to_string(cp.pages);
      cp.done = idx + 1 == files.size();
      checkpoints_.save(cp, total);
    }
  }

  // One file's records (each key once): read what the items are now, then put back each one
  // that is still what the migration wrote, several in one transaction (10: what every server
  // takes; DynamoDB Local refuses more).
  pipeline::Counters restore(const std::vector<JournalRecord>& records) {
    pipeline::Counters c;
    for (std::size_t at = 0; at < records.size(); at += 100) {
      const std::size_t end = std::min(records.size(), at + 100);
      dynamo::BatchGetRequest get;
      get.table = table_.name;
      get.consistent_read = true;
      for (std::size_t i = at; i < end; ++i) get.keys.push_back(records[i].key);
      auto now = client_.batch_get(get);
      if (!now) throw Error(fmt::format("reading {}: {}", table_.name, now.error().to_string()));
      std::map<std::string, Item> current;
      for (auto& item : now.value()) current.emplace(key_text(table_, item), std::move(item));
      std::vector<Restore> todo;
      for (std::size_t i = at; i < end; ++i) {
        const JournalRecord& r = records[i];
        ++c.matched;
        std::optional<Item> cur;
        if (auto f = current.find(key_text(table_, r.key)); f != current.end()) cur = f->second;
        const std::optional<std::string> cur_hash =
            cur ? std::optional(stages::item_hash(*cur)) : std::nullopt;
        const std::optional<std::string> before_hash =
            r.before ? std::optional(stages::item_hash(*r.before)) : std::nullopt;
        if (cur_hash == before_hash) {
          ++c.skipped;  // as it was before the migration already
          continue;
        }
        if (cur_hash != r.after && !force_) {
          changed(c, r.key);
          continue;
        }
        todo.push_back(Restore{&r, std::move(cur)});
      }
      for (std::size_t t = 0; t < todo.size(); t += kPerTransaction)
        write_together(
            std::span(todo).subspan(t, std::min<std::size_t>(kPerTransaction, todo.size() - t)), c);
    }
    return c;
  }

  struct Restore {
    const JournalRecord* record;
    std::optional<Item> current;  // as read just before
  };

  dynamo::WireExpression condition(const Restore& r) const {
    return force_ ? dynamo::WireExpression{} : still(table_, r.current);
  }

  // One transaction; when it is cancelled, the items whose condition failed changed between our
  // read and our write, and the others are written one by one.
  void write_together(std::span<const Restore> group, pipeline::Counters& c) {
    std::vector<dynamo::TransactAction> actions;
    for (const auto& r : group) {
      dynamo::TransactAction a;
      a.table = table_.name;
      a.condition = condition(r);
      if (r.record->before) {
        a.kind = dynamo::TransactAction::Kind::Put;
        a.item = *r.record->before;
      } else {
        a.kind = dynamo::TransactAction::Kind::Delete;
        a.item = r.record->key;
      }
      actions.push_back(std::move(a));
    }
    auto res = client_.transact_write(std::move(actions));
    if (res) {
      c.written += static_cast<std::int64_t>(group.size());
      return;
    }
    const auto& e = res.error();
    if (e.type != "TransactionCanceledException")
      throw Error(
          fmt::format("restoring {} items in {}: {}", group.size(), table_.name, e.to_string()));
    for (std::size_t i = 0; i < group.size(); ++i) {
      const bool failed_check = i < e.cancellation_reasons.size() &&
                                e.cancellation_reasons[i] == "ConditionalCheckFailed";
      if (failed_check || !write(group[i]))
        changed(c, group[i].record->key);
      else
        ++c.written;
    }
  }

  bool write(const Restore& r) {
    dynamo::WireExpression cond = condition(r);
    const JournalRecord& rec = *r.record;
    dynamo::Outcome<dynamo::WriteResult> res =
        rec.before ? client_.put_item(dynamo::PutItemRequest{table_.name, *rec.before, cond})
                   : client_.delete_item(dynamo::DeleteItemRequest{table_.name, rec.key, cond});
    if (res) return true;
    if (res.error().type == "ConditionalCheckFailedException") return false;
    throw Error(fmt::format("restoring {} in {}: {}", dynamo::to_debug_string(rec.key), table_.name,
                            res.error().to_string()));
  }

  void changed(pipeline::Counters& c, const Item& key) {
    ++c.conflicts;
    std::lock_guard lock(mutex_);
    if (changed_keys_.size() < 10) changed_keys_.push_back(dynamo::to_debug_string(key));
  }
  void add_counts(const pipeline::Counters& c) {
    std::lock_guard lock(mutex_);
    counts_.records += c.matched;
    counts_.restored += c.written;
    counts_.already += c.skipped;
    counts_.changed += c.conflicts;
  }

  dynamo::Client& client_;
  stages::JournalStore& store_;
  dynamo::TableDescription table_;
  bool force_;
  StateCheckpointStore& checkpoints_;
  const std::atomic<bool>& stop_;
  std::atomic<bool> stopped_{false}, failed_{false};
  mutable std::mutex mutex_;
  RestoreCounts counts_;
  std::vector<std::string> changed_keys_;
};

}  // namespace

stages::SinkWrapper up_journal(std::shared_ptr<stages::JournalStore> store, const Migration& m,
                               int index, const VersionRecord& record,
                               const std::optional<pipeline::RunCheckpoint>& checkpoint,
                               std::shared_ptr<stages::JournalStats> stats) {
  stages::JournalTarget t;
  t.store = std::move(store);
  t.step_prefix = stages::journal_step_prefix(m.version, record.started_at, index + 1);
  if (checkpoint)
    for (const auto& cp : checkpoint->segments) t.committed_pages[cp.segment] = cp.pages;
  t.stats = std::move(stats);
  return stages::journal_sink_wrapper(std::move(t));
}

bool has_journal(stages::JournalStore& store, const Migration& m, const VersionRecord& record) {
  for (std::size_t i = 0; i < m.up.size(); ++i) {
    if (!std::holds_alternative<PipelineStep>(m.up[i].body)) continue;
    const std::string prefix =
        stages::journal_step_prefix(m.version, record.started_at, static_cast<int>(i) + 1);
    if (store.get(prefix + std::string(stages::kJournalManifest))) return true;
  }
  return false;
}

JournalRestorer::JournalRestorer(StepContext context, StateTable& state, Lease& lease,
                                 std::shared_ptr<stages::JournalStore> store)
    : ctx_(context), state_(state), lease_(lease), store_(std::move(store)) {}

ExitCode JournalRestorer::run(const Migration& m, VersionRecord rec, bool force) {
  const bool resume = rec.direction == Direction::Down && rec.state != VersionState::Applied;
  if (!resume) {
    rec.direction = Direction::Down;
    rec.step = 0;
    rec.counters = pipeline::Counters{};
    rec.counters_before_step = pipeline::Counters{};
    rec.checkpoint_cost = state_.delete_checkpoints(m.version, lease_.proof());
  }
  // started_at stays the start of the `up` run: it names the journal's folder.
  rec.checksum = m.checksum;
  ctx_.render.version_start(m, Direction::Down, rec, resume);
  ctx_.render.info(fmt::format("  no down steps: restoring the journal in {} ({} pipeline step{})",
                               store_->describe(), pipeline_steps(m),
                               pipeline_steps(m) == 1 ? "" : "s"));
  rec.state = VersionState::Running;
  rec.error.clear();
  rec.updated_at = dynamo::now_iso();
  state_.put_version(rec, lease_.proof());

  RestoreCounts total;
  std::vector<std::string> changed_keys;
  const int n = static_cast<int>(m.up.size());
  for (int pos = 0; pos < n; ++pos) {
    const int i = n - 1 - pos;  // newest step first
    const Step& step = m.up[static_cast<std::size_t>(i)];
    if (!std::holds_alternative<PipelineStep>(step.body)) continue;
    const std::string prefix = stages::journal_step_prefix(m.version, rec.started_at, i + 1);
    StepJournal journal = read_step_journal(*store_, prefix);
    if (!journal.found) {
      ctx_.render.warning(fmt::format("{}: step {} has no journal in {}: left as it is", step.where,
                                      i + 1, store_->describe()));
      continue;
    }
    StateCheckpointStore checkpoints(state_, lease_, m.version, Direction::Down, i);
    auto resumed = pos < rec.step ? checkpoints.load() : std::nullopt;
    if (pos < rec.step && !resumed) continue;  // restored before a stop, checkpoints cleared
    auto table = ctx_.client.describe_table(journal.table);
    if (!table)
      throw StepFailed(
          fmt::format("{}: restoring the journal: {}", step.where, table.error().to_string()));
    std::int64_t files = 0;
    for (const auto& [seg, names] : journal.files) files += static_cast<std::int64_t>(names.size());
    ctx_.render.info(fmt::format("  step {} ({}): {} journal files in {} partitions", i + 1,
                                 journal.table, files, journal.files.size()));
    StepRestore restore(ctx_.client, *store_, table.value(), force, checkpoints, ctx_.stop);
    bool finished = false;
    try {
      finished = restore.run(journal, checkpoints.load());
    } catch (const StepFailed& e) {
      rec.state = VersionState::Failed;
      rec.error = fmt::format("{}: restoring the journal: {}", step.where, e.what());
      rec.updated_at = dynamo::now_iso();
      state_.put_version(rec, lease_.proof());
      throw StepFailed(rec.error);
    }
    rec.checkpoint_cost += checkpoints.cost();
    const RestoreCounts c = restore.counts();
    total.records += c.records;
    total.restored += c.restored;
    total.already += c.already;
    total.changed += c.changed;
    for (auto& k : restore.changed_keys())
      if (changed_keys.size() < 10) changed_keys.push_back(std::move(k));
    ctx_.render.info(fmt::format(
        "  step {}: {} records: {} restored, {} as before already, {} changed since (left alone)",
        i + 1, c.records, c.restored, c.already, c.changed));
    if (!finished) {
      rec.step = pos;
      rec.updated_at = dynamo::now_iso();
      state_.put_version(rec, lease_.proof());
      ctx_.render.info(
          fmt::format("interrupted: the journal of version {} is partly restored; "
                      "checkpoints saved, `dynamorph down` resumes it",
                      m.version));
      return ExitCode::Interrupted;
    }
    rec.step = pos + 1;
    rec.counters.written += c.restored;
    rec.counters.skipped += c.already;
    rec.counters.conflicts += c.changed;
    rec.updated_at = dynamo::now_iso();
    state_.put_version(rec, lease_.proof());
  }
  rec.checkpoint_cost += state_.delete_checkpoints(m.version, lease_.proof());
  if (total.changed > 0 && !force) {
    ctx_.render.info(fmt::format(
        "  {} items changed since version {} wrote them, left as they are{}:", total.changed,
        m.version, total.changed > 10 ? " (the first 10)" : ""));
    for (const auto& k : changed_keys) ctx_.render.info(fmt::format("    {}", k));
    // Everything else is restored; a `down --force` starts over (restored items are found as
    // before already) and puts these back too.
    rec.state = VersionState::Failed;
    rec.step = 0;
    rec.error = fmt::format(
        "{}: {} items were changed since version {} wrote them and were left as they are; "
        "`dynamorph down --force` restores them too, overwriting those later changes",
        m.file, total.changed, m.version);
    rec.updated_at = dynamo::now_iso();
    state_.put_version(rec, lease_.proof());
    throw StepFailed(rec.error);
  }
  state_.delete_version(m.version, lease_.proof());
  ctx_.render.version_done(m, Direction::Down, rec);
  return ExitCode::Ok;
}

}  // namespace dynamorph::migrations
