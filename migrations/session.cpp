#include "migrations/session.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include "dynamo/client.h"
#include "dynamo/credentials.h"
#include "dynamo/json.h"
#include "migrations/checkpoint_store.h"
#include "dynamo/clock.h"
#include "migrations/lease.h"
#include "migrations/run_settings.h"
#include "migrations/schema_steps.h"
#include "migrations/state_table.h"
#include "pipeline/pipeline.h"
#include "pipeline/progress.h"

namespace dynamorph::migrations {
namespace {

std::string json_str(std::string_view s) {
  std::string out;
  dynamo::write_json_string(out, s);
  return out;
}

using pipeline::format_counters_json;
using pipeline::format_counters_text;

bool process_alive(std::int64_t pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;
}

std::string short_sum(const std::string& s) { return s.substr(0, 12); }

}  // namespace

// ---- the runner of one up/down: owns the state table, the lease, the loaded files ---------
struct Session::Impl {
  Session& s;
  std::vector<Migration> files;
  std::map<std::int64_t, const Migration*> by_version;
  std::unique_ptr<StateTable> state;
  std::map<std::int64_t, VersionRecord> records;

  explicit Impl(Session& session) : s(session) {}

  void index_files() {
    for (const auto& m : files) by_version[m.version] = &m;
  }

  // Drift and history checks shared by up, down and dry runs (exit 4).
  void check_history(bool allow_down_in_progress) {
    for (const auto& [v, r] : records) {
      auto it = by_version.find(v);
      if (it == by_version.end())
        throw HistoryError(
            fmt::format("version {} ({}) is recorded as {} in {} but has no file in {}", v, r.name,
                        r.state, state->name(), s.config_.migrations_dir));
      const Migration& m = *it->second;
      // A failed version may be fixed (its script, say) and resumed; what ran is not applied.
      if (r.checksum != m.checksum && r.state != "failed")
        throw HistoryError(
            fmt::format("{}: changed since it was {} (checksum {} → {}); restore the file, or "
                        "accept it with `dynamorph mark {} "
                        "applied`",
                        m.file, r.state == "applied" ? "applied" : "started", short_sum(r.checksum),
                        short_sum(m.checksum), v));
      if (!allow_down_in_progress && r.state != "applied" && r.direction == "down")
        throw HistoryError(
            fmt::format("version {} ({}) stopped while being rolled back ({}); finish it with "
                        "`dynamorph down`, or repair it with `dynamorph mark`",
                        v, m.file, r.state));
    }
  }

  const std::vector<Step>& steps_of(const Migration& m, const std::string& direction) {
    return direction == "up" ? m.up : *m.down;
  }

  pipeline::RunOptions run_options(const Migration& m, const UpOptions& o,
                                   const stages::StepSpec& spec) {
    pipeline::RunOptions r;
    const RunSettings settings =
        resolve_run_settings(s.config_, m, spec, SettingFlags{o.segments, o.max_wcu, o.max_rcu});
    r.segments = settings.segments;
    r.max_wcu = settings.max_wcu;
    r.max_rcu = settings.max_rcu;
    r.capacity_percent = o.capacity_percent;
    r.version = m.version;
    r.now_iso = s.now_iso_;
    r.stop = &s.stop_;
    r.dry_run = o.dry_run;
    if (o.dry_run) r.sample_changes = 3;
    if (s.options_.verbosity >= 0) {
      pipeline::ProgressStyle style;
      style.json = s.options_.json;
      style.tty = ::isatty(STDERR_FILENO) != 0;
      style.label = fmt::format("{} {}", m.version, m.name);
      r.progress = pipeline::make_progress_printer(style, s.out_, s.err_);
    }
    return r;
  }

  // The flag beats the file: the spec carries the segment count the settings resolved to.
  static stages::StepSpec with_segments(const stages::StepSpec& spec,
                                        const pipeline::RunOptions& ro) {
    stages::StepSpec copy = spec;
    if (copy.source.query_key.empty()) copy.source.segments = ro.segments;
    return copy;
  }

  // Runs one version in one direction, from record.step on. Returns Interrupted or Ok; throws on
  // failure (the record says failed).
  ExitCode run_version(const Migration& m, const std::string& direction, const UpOptions& o,
                       Lease& lease, std::optional<VersionRecord> existing) {
    const auto& steps = steps_of(m, direction);
    VersionRecord rec;
    const bool resume =
        existing && existing->direction == direction && existing->state != "applied";
    if (resume) {
      rec = *existing;
      rec.checksum = m.checksum;  // a failed version may resume with a fixed file
      s.info(fmt::format("{} {} {} ({}): resuming at step {} of {}",
                         direction == "up" ? "applying" : "reverting", m.version, m.name, m.file,
                         rec.step + 1, steps.size()));
    } else {
      rec.version = m.version;
      rec.name = m.name;
      rec.checksum = m.checksum;
      rec.direction = direction;
      rec.started_at = dynamo::now_iso();
      rec.step = 0;
      state->delete_checkpoints(m.version, lease.proof());
      s.info(fmt::format("{} {} {} ({})", direction == "up" ? "applying" : "reverting", m.version,
                         m.name, m.file));
    }
    if (s.options_.json)
      s.out_ << fmt::format(
          "{{\"event\":\"version_start\",\"version\":{},\"name\":{},\"direction\":\"{}\",\"step\":{"
          "}}}\n",
          m.version, json_str(m.name), direction, rec.step);
    rec.state = "running";
    rec.error.clear();
    rec.updated_at = dynamo::now_iso();
    state->put_version(rec, lease.proof());
    const bool fresh = !existing;

    for (int i = rec.step; i < static_cast<int>(steps.size()); ++i) {
      const Step& step = steps[i];
      if (rec.step != i) {
        rec.step = i;
        rec.updated_at = dynamo::now_iso();
        state->put_version(rec, lease.proof());
      }
      s.info(fmt::format("  step {}/{}: {}", i + 1, steps.size(), step.describe()));
      bool finished = true;
      try {
        if (const auto* p = std::get_if<PipelineStep>(&step.body)) {
          StateCheckpointStore store(*state, lease, m.version, direction, i);
          // The record holds earlier steps' counters plus this step's as checkpointed; a resumed
          // step's result includes its checkpointed part again, so take that out first.
          pipeline::Counters earlier = rec.counters;
          if (auto cp = store.load()) {
            for (const auto& seg : cp->segments) earlier -= seg.counters;
          }
          auto ro = run_options(m, o, p->spec);
          auto r = pipeline::run_pipeline(s.client(), with_segments(p->spec, ro), store, ro);
          store.flush();
          rec.counters = earlier;
          rec.counters += r.counters;
          if (r.status == pipeline::RunResult::Status::Failed)
            throw StepFailed(fmt::format("{}: pipeline failed: {}", step.where, r.error));
          if (r.status == pipeline::RunResult::Status::Stopped) finished = false;
          s.detail(fmt::format("  {}", format_counters_text(r.counters)));
        } else {
          finished = run_schema_step(
              s.client(), step, [this](const std::string& l) { s.info(l); }, s.stop_);
        }
        if (lease.lost())
          throw StepFailed(
              fmt::format("lost the lock in {} (the lease could not be renewed); stopped during {}",
                          state->name(), step.where));
      } catch (const UsageError& e) {
        // Plan-time refusal before anything of this step was written.
        if (fresh && i == 0 && !lease.lost())
          state->delete_version(m.version, lease.proof());
        else
          mark_failed(rec, lease, e.what());
        throw;
      } catch (const StepFailed& e) {
        if (!lease.lost()) mark_failed(rec, lease, e.what());
        throw;
      } catch (const Error& e) {
        std::string msg = fmt::format("{}: {}: {}", step.where, step.kind, e.what());
        if (!lease.lost()) mark_failed(rec, lease, msg);
        throw StepFailed(msg);
      }
      if (!finished) {
        rec.updated_at = dynamo::now_iso();
        state->put_version(rec, lease.proof());
        s.info(
            fmt::format("interrupted: version {} stopped at step {} ({}); checkpoints saved, "
                        "`dynamorph {}` resumes it",
                        m.version, i + 1, step.where, direction));
        return ExitCode::Interrupted;
      }
    }
    if (direction == "up") {
      rec.state = "applied";
      rec.step = static_cast<int>(steps.size());
      rec.finished_at = rec.updated_at = dynamo::now_iso();
      state->put_version(rec, lease.proof());
    } else {
      state->delete_version(m.version, lease.proof());
    }
    state->delete_checkpoints(m.version, lease.proof());
    s.info(
        fmt::format("  {} {} {}", direction == "up" ? "applied" : "reverted", m.version, m.name));
    if (s.options_.json)
      s.out_ << fmt::format(
          "{{\"event\":\"version_done\",\"version\":{},\"direction\":\"{}\",\"counters\":{}}}\n",
          m.version, direction, format_counters_json(rec.counters));
    return ExitCode::Ok;
  }

  void mark_failed(VersionRecord& rec, Lease& lease, const std::string& error) {
    rec.state = "failed";
    rec.error = error;
    rec.updated_at = dynamo::now_iso();
    try {
      state->put_version(rec, lease.proof());
    } catch (const Error& e) {
      s.err_ << "warning: could not record the failure: " << e.what() << "\n";
    }
  }

  // ---- dry run ------------------------------------------------------------------------------
  void dry_run(const std::vector<std::pair<const Migration*, std::string>>& plan,
               const UpOptions& o) {
    std::set<std::string> created, deleted;
    auto table_exists = [&](const std::string& t) {
      if (deleted.contains(t)) return false;
      auto d = s.client().describe_table(t);
      if (d) return true;
      if (d.error().type == "ResourceNotFoundException") return false;
      throw Error(fmt::format("DescribeTable {}: {}", t, d.error().to_string()));
    };
    std::ostringstream discard;  // --json: only the JSON events
    std::ostream& text = s.options_.json ? static_cast<std::ostream&>(discard) : s.out_;
    if (plan.empty()) text << "dry run: nothing to do\n";
    for (const auto& [m, direction] : plan) {
      const auto& steps = steps_of(*m, direction);
      text << fmt::format("dry run: would {} {} {} ({})\n", direction == "up" ? "apply" : "revert",
                          m->version, m->name, m->file);
      for (std::size_t i = 0; i < steps.size(); ++i) {
        const Step& step = steps[i];
        text << fmt::format("  step {}/{}: {} ({})\n", i + 1, steps.size(), step.describe(),
                            step.where);
        if (const auto* p = std::get_if<PipelineStep>(&step.body)) {
          const std::string& src = p->spec.source.table;
          if (created.contains(src) || !table_exists(src)) {
            if (created.contains(src))
              text << fmt::format(
                  "    source table {} is created by an earlier step: nothing to scan yet\n", src);
            else
              text << fmt::format(
                  "    warning: source table {} does not exist: `{}` would fail here\n", src,
                  direction);
            continue;
          }
          auto store = pipeline::null_checkpoint_store();
          UpOptions dry = o;
          dry.dry_run = true;
          pipeline::RunResult r;
          try {
            auto ro = run_options(*m, dry, p->spec);
            r = pipeline::run_pipeline(s.client(), with_segments(p->spec, ro), *store, ro);
          } catch (const UsageError&) {
            throw;
          } catch (const Error& e) {
            throw StepFailed(fmt::format("{}: pipeline (dry run): {}", step.where, e.what()));
          }
          if (r.status == pipeline::RunResult::Status::Failed)
            throw StepFailed(fmt::format("{}: pipeline (dry run): {}", step.where, r.error));
          const auto& c = r.counters;
          double wcu = r.estimated_wcu;
          text << fmt::format("    scanned {}, matched {}\n", c.scanned, c.matched);
          text << fmt::format(
              "    would write: {} puts, {} updates, {} deletes, {} transactions; estimated {:.0f} "
              "WCU\n",
              c.puts, c.updates, c.deletes, c.transactions, wcu);
          for (const auto& sample : r.samples) {
            text << "    - before: " << dynamo::to_debug_string(sample.before) << "\n";
            text << "      after:  "
                 << (sample.after ? dynamo::to_debug_string(*sample.after) : "(deleted)") << "\n";
          }
          if (s.options_.json)
            s.out_ << fmt::format(
                "{{\"event\":\"dry_run_step\",\"version\":{},\"step\":{},\"counters\":{},"
                "\"estimated_wcu\":{:.0f}}}\n",
                m->version, i + 1, format_counters_json(c), wcu);
        } else if (const auto* ct = std::get_if<CreateTableStep>(&step.body)) {
          const std::string& t = ct->request.table;
          deleted.erase(t);
          if (!created.contains(t) && table_exists(t))
            text << fmt::format("    table {} exists already (accepted if identical)\n", t);
          else
            created.insert(t);  // does not exist now; a real run would create it
        } else if (const auto* dt = std::get_if<DeleteTableStep>(&step.body)) {
          if (!created.contains(dt->table) && !table_exists(dt->table))
            text << fmt::format("    table {} does not exist (nothing to do)\n", dt->table);
          created.erase(dt->table);
          deleted.insert(dt->table);
        }
      }
    }
    text << "dry run: nothing was written\n";
  }
};

// ---- Session ----------------------------------------------------------------------------------

Session::Session(GlobalOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {
  std::optional<std::string> env = options_.env;
  if (!env) {
    if (auto e = dynamo::system_getenv("DYNAMORPH_ENV")) env = *e;
  }
  config_ = load_config(options_.config, env);
  if (options_.table_namespace) config_.table_namespace = *options_.table_namespace;
  if (options_.migrations_dir) config_.migrations_dir = *options_.migrations_dir;
  if (options_.region) config_.region = options_.region;
  if (options_.endpoint) config_.endpoint = options_.endpoint;
  now_iso_ = dynamo::now_iso();
}

Session::~Session() = default;

void Session::info(const std::string& line) {
  if (options_.verbosity >= 0 && !options_.json) out_ << line << "\n" << std::flush;
}
void Session::detail(const std::string& line) {
  if (options_.verbosity > 0 && !options_.json) out_ << line << "\n" << std::flush;
}

std::vector<Migration> Session::load() {
  return load_migrations(config_.migrations_dir, LoadOptions{config_.table_namespace, now_iso_});
}

dynamo::Client& Session::client() {
  if (client_) return *client_;
  dynamo::ClientOptions o;
  o.region = dynamo::resolve_region(config_.region, dynamo::system_getenv, options_.profile);
  o.endpoint = dynamo::resolve_endpoint(config_.endpoint, o.region);
  dynamo::CredentialSources src;
  src.profile = options_.profile;
  o.credentials = dynamo::default_credentials_chain(src);
  client_ = std::make_unique<dynamo::Client>(std::move(o));
  return *client_;
}

ExitCode Session::status() {
  Impl impl(*this);
  impl.files = load();
  impl.index_files();
  StateTable state(client(), config_.physical(config_.state_table));
  auto history = state.read_history();
  impl.records = std::move(history.versions);
  bool problem = false;
  std::set<std::int64_t> versions;
  for (const auto& m : impl.files) versions.insert(m.version);
  for (const auto& [v, r] : impl.records) versions.insert(v);
  if (!options_.json)
    out_ << fmt::format("{:<16} {:<28} {:<8} {:<25} {}\n", "VERSION", "NAME", "STATE", "WHEN",
                        "COUNTERS");
  for (auto v : versions) {
    auto f = impl.by_version.find(v);
    auto r = impl.records.find(v);
    const Migration* m = f == impl.by_version.end() ? nullptr : f->second;
    const VersionRecord* rec = r == impl.records.end() ? nullptr : &r->second;
    std::string name = m ? m->name : rec->name;
    std::string word = rec ? rec->state : "pending";
    std::string note;
    if (!m) {
      word = rec->state;
      note = "file missing";
      problem = true;
    } else if (rec && rec->checksum != m->checksum && rec->state == "failed") {
      note = fmt::format("{} changed since it failed (checksum {} → {}); `up` resumes with it",
                         m->file, short_sum(rec->checksum), short_sum(m->checksum));
    } else if (rec && rec->checksum != m->checksum) {
      if (rec->state == "applied") word = "drift";
      note = fmt::format("{} changed since {} (checksum {} → {})", m->file,
                         rec->state == "applied" ? "applied" : "started", short_sum(rec->checksum),
                         short_sum(m->checksum));
      problem = true;
    }
    if (rec && rec->state != "applied" && rec->direction == "down")
      note += (note.empty() ? "" : "; ") + std::string("going down");
    if (rec && rec->state == "failed" && !rec->error.empty())
      note += (note.empty() ? "" : "; ") + rec->error;
    std::string when =
        rec ? (rec->state == "applied" && !rec->finished_at.empty() ? rec->finished_at
                                                                    : rec->updated_at)
            : "";
    if (options_.json) {
      out_ << fmt::format(
          "{{\"version\":{},\"name\":{},\"state\":\"{}\",\"when\":{},\"file\":{},\"checksum\":{},"
          "\"recorded_checksum\":{},\"step\":{},\"counters\":{},\"note\":{}}}\n",
          v, json_str(name), word, rec ? json_str(when) : "null", m ? json_str(m->file) : "null",
          m ? json_str(m->checksum) : "null", rec ? json_str(rec->checksum) : "null",
          rec ? rec->step : 0, format_counters_json(rec ? rec->counters : pipeline::Counters{}),
          json_str(note));
    } else {
      out_ << fmt::format("{:<16} {:<28} {:<8} {:<25} {}{}\n", v, name, word,
                          when.empty() ? "-" : when,
                          format_counters_text(rec ? rec->counters : pipeline::Counters{}),
                          note.empty() ? "" : "  (" + note + ")");
    }
  }
  if (!options_.json) {
    if (const auto& lock = history.lock) {
      out_ << fmt::format("lock: held by {}{}\n", describe_lock(*lock),
                          lock->expires_at_ms < dynamo::now_epoch_ms() ? " (expired)" : "");
    }
  }
  return problem ? ExitCode::History : ExitCode::Ok;
}

ExitCode Session::up(const UpOptions& o) {
  Impl impl(*this);
  impl.files = load();
  impl.index_files();
  if (o.to && !impl.by_version.contains(*o.to))
    throw UsageError(fmt::format("--to {}: no migration file has this version in {}", *o.to,
                                 config_.migrations_dir));
  impl.state = std::make_unique<StateTable>(client(), config_.physical(config_.state_table));
  auto pending_plan = [&]() {
    std::vector<std::pair<const Migration*, std::string>> plan;
    for (const auto& m : impl.files) {
      if (o.to && m.version > *o.to) break;
      auto r = impl.records.find(m.version);
      if (r != impl.records.end() && r->second.state == "applied") continue;
      plan.emplace_back(&m, "up");
    }
    return plan;
  };
  if (o.dry_run) {  // reads only: never creates the state table, never takes the lock
    if (impl.state->exists()) impl.records = impl.state->read_versions();
    impl.check_history(false);
    impl.dry_run(pending_plan(), o);
    return stop_.load() ? ExitCode::Interrupted : ExitCode::Ok;
  }
  impl.state->ensure();
  auto lease = Lease::acquire(*impl.state, o.lock_ttl.value_or(config_.lock_ttl), &stop_);
  impl.records = impl.state->read_versions();
  impl.check_history(false);
  auto plan = pending_plan();
  if (plan.empty()) info("up to date: nothing to apply");
  const std::int64_t newest_applied = [&] {
    std::int64_t n = -1;
    for (const auto& [v, r] : impl.records)
      if (r.state == "applied") n = std::max(n, v);
    return n;
  }();
  for (const auto& [m, dir] : plan)
    if (m->version < newest_applied)
      info(fmt::format("note: {} is older than the applied {}; it is applied now, in version order",
                       m->file, newest_applied));
  for (const auto& [m, dir] : plan) {
    if (stop_.load() && !lease->lost()) {
      info("interrupted before the next version");
      return ExitCode::Interrupted;
    }
    auto r = impl.records.find(m->version);
    std::optional<VersionRecord> existing;
    if (r != impl.records.end()) existing = r->second;
    auto code = impl.run_version(*m, "up", o, *lease, existing);
    if (code != ExitCode::Ok) return code;
  }
  lease->release();
  return ExitCode::Ok;
}

ExitCode Session::down(const DownOptions& o) {
  Impl impl(*this);
  impl.files = load();
  impl.index_files();
  if (o.to && o.steps) throw UsageError("down: give --to or --steps, not both");
  if (o.steps && *o.steps < 1) throw UsageError("--steps: must be at least 1");
  impl.state = std::make_unique<StateTable>(client(), config_.physical(config_.state_table));
  const bool exists = impl.state->exists();
  if (exists) impl.records = impl.state->read_versions();
  auto plan_of = [&]() {
    std::vector<std::pair<const Migration*, std::string>> plan;
    for (auto it = impl.records.rbegin(); it != impl.records.rend(); ++it) {
      const auto& [v, r] = *it;
      if (o.to && v <= *o.to) break;
      if (!o.to && static_cast<int>(plan.size()) >= o.steps.value_or(1)) break;
      plan.emplace_back(impl.by_version.at(v), "down");
    }
    for (const auto& [m, d] : plan)
      if (!m->down)
        throw UsageError(fmt::format(
            "{}: version {} has no down steps, so it cannot be rolled back (nothing was "
            "changed)",
            m->file, m->version));
    return plan;
  };
  if (o.dry_run) {
    impl.check_history(true);
    UpOptions uo;
    uo.dry_run = true;
    impl.dry_run(plan_of(), uo);
    return stop_.load() ? ExitCode::Interrupted : ExitCode::Ok;
  }
  if (!exists) {
    info("nothing to roll back: no state table yet");
    return ExitCode::Ok;
  }
  auto lease = Lease::acquire(*impl.state, config_.lock_ttl, &stop_);
  impl.records = impl.state->read_versions();
  impl.check_history(true);
  auto plan = plan_of();
  if (plan.empty()) info("nothing to roll back");
  UpOptions uo;
  for (const auto& [m, dir] : plan) {
    if (stop_.load() && !lease->lost()) return ExitCode::Interrupted;
    std::optional<VersionRecord> existing = impl.records.at(m->version);
    auto code = impl.run_version(*m, "down", uo, *lease, existing);
    if (code != ExitCode::Ok) return code;
  }
  lease->release();
  return ExitCode::Ok;
}

ExitCode Session::unlock(bool force) {
  StateTable state(client(), config_.physical(config_.state_table));
  auto lock = state.read_lock();
  if (!lock) {
    info(fmt::format("no lock is held in {}", state.name()));
    return ExitCode::Ok;
  }
  const bool expired = lock->expires_at_ms < dynamo::now_epoch_ms();
  const bool dead_here = lock->host == this_process_owner().host && !process_alive(lock->pid);
  if (!expired && !dead_here && !force)
    throw LockHeld(
        fmt::format("the lock in {} is held by {}, which may still be running; `dynamorph unlock "
                    "--force` frees it anyway",
                    state.name(), describe_lock(*lock)));
  if (!state.delete_lock(lock->owner)) {
    info("the lock changed hands meanwhile; run `dynamorph unlock` again to see who holds it");
    return ExitCode::LockHeld;
  }
  info(fmt::format("released the lock of {} ({})", describe_lock(*lock),
                   expired     ? "expired"
                   : dead_here ? "its process is gone"
                               : "forced"));
  return ExitCode::Ok;
}

ExitCode Session::mark(std::int64_t version, const std::string& word) {
  if (word != "applied" && word != "pending")
    throw UsageError(fmt::format("mark: state must be applied or pending, got '{}'", word));
  Impl impl(*this);
  impl.files = load();
  impl.index_files();
  StateTable state(client(), config_.physical(config_.state_table));
  auto f = impl.by_version.find(version);
  if (word == "applied" && f == impl.by_version.end())
    throw UsageError(fmt::format("mark: no migration file has version {} in {}", version,
                                 config_.migrations_dir));
  state.ensure();
  auto lease = Lease::acquire(state, config_.lock_ttl, &stop_);
  auto records = state.read_versions();
  if (word == "applied") {
    VersionRecord rec;
    auto r = records.find(version);
    if (r != records.end()) rec = r->second;
    const Migration& m = *f->second;
    rec.version = version;
    rec.name = m.name;
    rec.checksum = m.checksum;
    rec.state = "applied";
    rec.direction = "up";
    rec.step = static_cast<int>(m.up.size());
    rec.error.clear();
    rec.updated_at = rec.finished_at = dynamo::now_iso();
    if (rec.started_at.empty()) rec.started_at = rec.updated_at;
    state.put_version(rec, lease->proof());
  } else {
    if (records.contains(version)) state.delete_version(version, lease->proof());
  }
  state.delete_checkpoints(version, lease->proof());
  info(fmt::format("marked {} {}", version, word));
  lease->release();
  return ExitCode::Ok;
}

}  // namespace dynamorph::migrations
