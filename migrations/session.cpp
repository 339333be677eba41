#include "migrations/session.h"

#include <fmt/format.h>
#include <signal.h>

#include <set>

#include "dynamo/client.h"
#include "dynamo/clock.h"
#include "dynamo/credentials.h"
#include "dynamo/json.h"
#include "migrations/dead_letter_retry.h"
#include "migrations/dead_letters.h"
#include "migrations/dry_run.h"
#include "migrations/history.h"
#include "migrations/journal_run.h"
#include "migrations/json_writer.h"
#include "migrations/lease.h"
#include "migrations/preflight.h"
#include "migrations/render.h"
#include "migrations/runner.h"
#include "migrations/worker.h"
#include "migrations/state_table.h"
#include "migrations/verify.h"
#include "stages/stream_source.h"

namespace dynamorph::migrations {
namespace {

bool process_alive(std::int64_t pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;
}

// One status row: what the files and the records say together about a version.
StatusRow status_row(std::int64_t v, const Migration* m, const VersionRecord* rec, bool& problem) {
  StatusRow row;
  row.version = v;
  row.name = m ? m->name : rec->name;
  row.word = rec ? to_string(rec->state) : "pending";
  std::string& note = row.note;
  auto add = [&note](const std::string& s) { note += (note.empty() ? "" : "; ") + s; };
  if (!m) {
    note = "file missing";
    problem = true;
  } else if (rec && rec->checksum != m->checksum && rec->state == VersionState::Failed) {
    note = fmt::format("{} changed since it failed (checksum {} → {}); `up` resumes with it",
                       m->file, short_sum(rec->checksum), short_sum(m->checksum));
  } else if (rec && rec->checksum != m->checksum) {
    if (rec->state == VersionState::Applied) row.word = "drift";
    note = fmt::format("{} changed since {} (checksum {} → {})", m->file,
                       rec->state == VersionState::Applied ? "applied" : "started",
                       short_sum(rec->checksum), short_sum(m->checksum));
    problem = true;
  }
  if (rec && rec->state != VersionState::Applied && rec->direction == Direction::Down)
    add("going down");
  if (rec && rec->state == VersionState::Failed && !rec->error.empty()) add(rec->error);
  if (m && rec && rec->state == VersionState::Running &&
      (rec->direction == Direction::Up || m->down) &&
      rec->step >= static_cast<int>(steps_of(*m, rec->direction).size()))
    add(fmt::format("every step is done, checkpoints are left to clear: `dynamorph {}` finishes it",
                    to_string(rec->direction)));
  if (rec) {
    row.when = rec->state == VersionState::Applied && !rec->finished_at.empty() ? rec->finished_at
                                                                                : rec->updated_at;
    row.recorded_checksum = rec->checksum;
    row.step = rec->step;
    row.counters = rec->counters;
    row.checkpoints = rec->checkpoint_cost;
    row.workers = rec->workers;
    row.schema = rec->schema;
  }
  if (m) {
    row.file = m->file;
    row.checksum = m->checksum;
    if (!rec) row.schema = m->schema;  // pending: what it will record
  }
  return row;
}

// A `follow: stream` step's replay as its positions say: lag and changes applied.
std::optional<FollowStatus> follow_status(const StateTable& state, const Migration& m) {
  for (int i = 0; i < static_cast<int>(m.up.size()); ++i) {
    if (!is_follow_step(m.up[static_cast<std::size_t>(i)])) continue;
    auto cps = state.load_checkpoints(m.version, Direction::Up, i, kFollowCheckpoints);
    if (!cps) return std::nullopt;
    FollowStatus f;
    f.step = i + 1;
    std::int64_t oldest = -1;
    for (const auto& cp : cps->segments) {
      f.applied += cp.counters.written;
      const std::int64_t at = cp.resume_token ? stages::stream_token_applied_until_ms(*cp.resume_token) : 0;
      oldest = oldest < 0 ? at : std::min(oldest, at);
    }
    if (oldest > 0)
      f.lag_s = std::max<double>(0, static_cast<double>(dynamo::now_epoch_ms() - oldest) / 1000.0);
    return f;
  }
  return std::nullopt;
}

}  // namespace

Config resolve_config(const GlobalOptions& options) {
  std::optional<std::string> env = options.env;
  if (!env) {
    if (auto e = dynamo::system_getenv("DYNAMORPH_ENV")) env = *e;
  }
  Config config = load_config(options.config, env);
  if (options.table_namespace) config.table_namespace = *options.table_namespace;
  if (options.migrations_dir) config.migrations_dir = *options.migrations_dir;
  if (options.region) config.region = options.region;
  if (options.endpoint) config.endpoint = options.endpoint;
  return config;
}

std::unique_ptr<dynamo::Client> connect(
    const Config& config, const GlobalOptions& options,
    std::function<void(const dynamo::AttemptRecord&)> on_attempt) {
  dynamo::ClientOptions o;
  o.region = dynamo::resolve_region(config.region, dynamo::system_getenv, options.profile);
  o.endpoint = dynamo::resolve_endpoint(config.endpoint, o.region);
  o.transport.allow_insecure_http = config.allow_insecure_http;
  dynamo::check_plain_http(o.endpoint, "the DynamoDB endpoint", o.transport.allow_insecure_http);
  o.transport.ca_bundle =
      dynamo::resolve_ca_bundle(dynamo::system_getenv, options.profile).value_or("");
  dynamo::CredentialSources src;
  src.profile = options.profile;
  o.credentials = dynamo::default_credentials_chain(src);
  o.on_attempt = std::move(on_attempt);
  o.retry.reconnect_for = config.reconnect_for;
  return std::make_unique<dynamo::Client>(std::move(o));
}

Session::Session(GlobalOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), config_(resolve_config(options_)), out_(out), err_(err) {
  now_iso_ = dynamo::now_iso();
  render_ = std::make_unique<Renderer>(options_, out_, err_);
}

Session::~Session() = default;

std::vector<Migration> Session::load() {
  return load_migrations(config_.migrations_dir,
                         LoadOptions{config_.table_namespace, now_iso_, config_.path_roots()});
}

dynamo::Client& Session::client() {
  if (!client_) client_ = connect(config_, options_);
  return *client_;
}

StepContext Session::step_context() {
  return StepContext{config_, now_iso_, stop_, client(), *render_};
}

ExitCode Session::status() {
  History history(load());
  StateTable state(client(), config_.physical(config_.state_table));
  auto recorded = state.read_history();
  history.records = std::move(recorded.versions);
  bool problem = false;
  std::set<std::int64_t> versions;
  for (const auto& m : history.files()) versions.insert(m.version);
  for (const auto& [v, r] : history.records) versions.insert(v);
  render_->status_header();
  for (auto v : versions) {
    auto r = history.records.find(v);
    StatusRow row =
        status_row(v, history.file(v), r == history.records.end() ? nullptr : &r->second, problem);
    if (const Migration* m = history.file(v); m && r != history.records.end())
      row.follow = follow_status(state, *m);
    const auto letters = dead_letter_file(config_, v);
    row.dead_letters = static_cast<std::int64_t>(read_dead_letters(letters).size());
    if (row.dead_letters > 0) row.dead_letter_file = letters.string();
    render_->status_row(row);
  }
  if (const auto& lock = recorded.lock)
    render_->status_lock(*lock, lock->expires_at_ms < dynamo::now_epoch_ms());
  return problem ? ExitCode::History : ExitCode::Ok;
}

ExitCode Session::up(const UpOptions& o) {
  if (o.retry_dead_letters) return retry_dead_letters(o);
  History history(load());
  if (o.to && !history.file(*o.to))
    throw UsageError(fmt::format("--to {}: no migration file has this version in {}", *o.to,
                                 config_.migrations_dir));
  StateTable state(client(), config_.physical(config_.state_table));
  if (o.worker && !o.dry_run && config_.journal)
    throw UsageError(
        "--worker: a run with `journal:` set cannot be shared by workers yet (each worker's "
        "before-images would need their own manifest); run it without --worker");
  // Everything that can be refused is refused before the first write (the state table, the
  // lock): the files against the records as they are now, and the plan's steps.
  if (state.exists()) history.records = state.read_versions();
  history.check(false, state.name(), config_.migrations_dir);
  if (o.dry_run) {  // reads only: never creates the state table, never takes the lock
    const bool ok =
        DryRunPlanner(step_context(), state.transaction_limit()).plan(history.up_plan(o.to), o);
    if (stop_.load()) return ExitCode::Interrupted;
    return ok ? ExitCode::Ok : ExitCode::Usage;  // what the real run answers: a plan-time refusal
  }
  preflight(step_context(), history.up_plan(o.to), history, o);
  state.ensure();
  if (o.worker) return up_worker(o, history, state);
  auto lease = Lease::acquire(state, o.lock_ttl.value_or(config_.lock_ttl), &stop_);
  history.records = state.read_versions();
  history.check(false, state.name(), config_.migrations_dir);
  const Plan plan = history.up_plan(o.to);
  if (plan.empty()) render_->result("up to date: nothing to apply");
  const std::int64_t newest_applied = history.newest_applied();
  for (const auto& [m, dir] : plan)
    if (m->version < newest_applied)
      render_->info(
          fmt::format("note: {} is older than the applied {}; it is applied now, in version order",
                      m->file, newest_applied));
  VersionRunner runner(step_context(), state, *lease);
  return apply_plan(plan, history, runner, *lease, o);
}

ExitCode Session::retry_dead_letters(const UpOptions& o) {
  History history(load());
  std::vector<const Migration*> todo;
  std::set<std::int64_t> versions;
  for (const auto& m : history.files()) {
    if (has_dead_letter_work(dead_letter_file(config_, m.version))) {
      todo.push_back(&m);
      versions.insert(m.version);
    }
  }
  if (todo.empty()) {
    render_->result("no dead letters to retry");
    return ExitCode::Ok;
  }
  StateTable state(client(), config_.physical(config_.state_table));
  if (!state.exists())
    throw UsageError(fmt::format("--retry-dead-letters: {} has dead letters, but {} does not "
                                 "exist: nothing was applied here",
                                 dead_letter_file(config_, todo.front()->version).string(),
                                 state.name()));
  // Refused before the lock is taken: a version not applied is finished by `up` first.
  auto check = [&] {
    history.records = state.read_versions();
    history.check(false, state.name(), config_.migrations_dir, versions);
    for (const Migration* m : todo) {
      auto r = history.records.find(m->version);
      if (r == history.records.end() || r->second.state != VersionState::Applied)
        throw UsageError(fmt::format(
            "--retry-dead-letters: version {} is {}; `dynamorph up` finishes it first, then its "
            "dead letters can be retried",
            m->version, r == history.records.end() ? "pending" : to_string(r->second.state)));
    }
  };
  check();
  auto lease = Lease::acquire(state, o.lock_ttl.value_or(config_.lock_ttl), &stop_);
  check();
  std::int64_t remaining = 0;
  std::string first_reason;
  for (const Migration* m : todo) {
    render_->info(fmt::format("retrying the dead letters of {} {} ({})", m->version, m->name,
                              m->file));
    RetryOutcome r = migrations::retry_dead_letters(step_context(), *m, o);
    if (lease->lost())
      throw StepFailed(fmt::format("lost the lock in {} while retrying dead letters of version {}",
                                   state.name(), m->version));
    if (r.interrupted) {
      render_->info("interrupted: `dynamorph up --retry-dead-letters` resumes the retry");
      return ExitCode::Interrupted;
    }
    VersionRecord rec = history.records.at(m->version);
    rec.checksum = m->checksum;  // the fixed file is the one now applied
    rec.counters.written += r.written;
    rec.counters.dead_letters = r.remaining;
    rec.updated_at = dynamo::now_iso();
    state.put_version(rec, lease->proof());
    render_->result(fmt::format("  version {}: {} dead letter{} retried, {} written, {} still "
                                "failing",
                                m->version, r.retried, r.retried == 1 ? "" : "s", r.written,
                                r.remaining));
    remaining += r.remaining;
    if (first_reason.empty()) first_reason = r.first_reason;
  }
  lease->release();
  if (remaining > 0)
    throw StepFailed(fmt::format("{} dead letter{} still cannot be written (the first: {}); they "
                                 "stay in .dynamorph/dead-letters/",
                                 remaining, remaining == 1 ? "" : "s", first_reason));
  return ExitCode::Ok;
}

ExitCode Session::apply_plan(const Plan& plan, const History& history, VersionRunner& runner,
                             Lease& lease, const UpOptions& o) {
  for (const auto& [m, dir] : plan) {
    if (stop_.load() && !lease.lost()) {
      render_->info("interrupted before the next version");
      return ExitCode::Interrupted;
    }
    auto r = history.records.find(m->version);
    std::optional<VersionRecord> existing;
    if (r != history.records.end()) existing = r->second;
    auto code = runner.run(*m, Direction::Up, o, existing);
    if (code != ExitCode::Ok) return code;
  }
  lease.release();
  return ExitCode::Ok;
}

ExitCode Session::up_worker(const UpOptions& o, History& history, StateTable& state) {
  const auto ttl = o.lock_ttl.value_or(config_.lock_ttl);
  WorkerRegistration registration(state, this_process_owner().id(), ttl);
  WorkerContext w{client(), state, registration, stop_, *render_};
  render_->info(fmt::format("worker {} joined ({} live worker{})", registration.owner(),
                            registration.live(), registration.live() == 1 ? "" : "s"));
  bool said_waiting = false;
  while (true) {
    if (stop_.load()) {
      render_->info("interrupted: this worker's leases are released; the others go on");
      return ExitCode::Interrupted;
    }
    std::unique_ptr<Lease> lease;
    try {
      lease = Lease::acquire(state, ttl, &stop_);
    } catch (const LockHeld&) {
    }
    history.records = state.read_versions();
    history.check(false, state.name(), config_.migrations_dir);
    const Plan plan = history.up_plan(o.to);
    if (lease && plan.empty()) {  // the run is over (this worker took the lock after it)
      lease->release();
      render_->result("up to date: every version is applied");
      return ExitCode::Ok;
    }
    if (lease) {  // the coordinator: the run goes on from the records, as a single `up` would
      render_->info("this worker holds the lock: it coordinates");
      VersionRunner runner(step_context(), state, *lease, &w);
      return apply_plan(plan, history, runner, *lease, o);
    }
    if (plan.empty()) {
      render_->result("up to date: every version is applied");
      return ExitCode::Ok;
    }
    // A failure recorded after this worker joined is this run's: every worker exits 1. An
    // older one is resumed by whoever coordinates now.
    const PlannedVersion* running = nullptr;
    for (const auto& pv : plan) {
      auto r = history.records.find(pv.migration->version);
      if (r == history.records.end()) continue;
      const VersionRecord& rec = r->second;
      if (rec.state == VersionState::Failed && rec.updated_at >= registration.joined_at())
        throw StepFailed(fmt::format("version {} failed: {}", rec.version, rec.error));
      if (rec.state == VersionState::Running && rec.direction == Direction::Up && !running)
        running = &pv;
    }
    WorkerStepResult::Outcome outcome = WorkerStepResult::Outcome::NotReady;
    if (running) {
      const Migration& m = *running->migration;
      const VersionRecord& rec = history.records.at(m.version);
      const auto& steps = steps_of(m, Direction::Up);
      if (rec.step < static_cast<int>(steps.size())) {
        const Step& step = steps[static_cast<std::size_t>(rec.step)];
        if (const auto* p = std::get_if<PipelineStep>(&step.body)) {
          const StepContext ctx = step_context();
          auto ro = step_run_options(ctx, m, o, p->spec);
          auto spec = with_segments(p->spec, ro);
          bind_run_now(spec, ro, now_iso_, rec.started_at);
          WorkerStepResult r = work_on_step(w, spec, ro, m.version, Direction::Up, rec.step);
          outcome = r.outcome;
          if (r.outcome == WorkerStepResult::Outcome::Failed && r.own)
            throw StepFailed(fmt::format("{}: pipeline failed: {}", step.where, r.error));
          if (r.outcome == WorkerStepResult::Outcome::Stopped) continue;  // said at the top
          if (r.outcome == WorkerStepResult::Outcome::Done && r.segments_run > 0)
            render_->detail(fmt::format("  version {} step {}: this worker's segments are done; "
                                        "waiting for the coordinator",
                                        m.version, rec.step + 1));
        }
      }
    }
    if (outcome != WorkerStepResult::Outcome::Done && !said_waiting) {
      render_->detail("  waiting for the coordinator (schema steps, the next step's leases)");
      said_waiting = true;
    }
    sleep_unless_stopped(stop_, std::chrono::milliseconds(500));
  }
}

ExitCode Session::down(const DownOptions& o) {
  History history(load());
  if (o.to && o.steps) throw UsageError("down: give --to or --steps, not both");
  if (o.steps && *o.steps < 1) throw UsageError("--steps: must be at least 1");
  StateTable state(client(), config_.physical(config_.state_table));
  const bool exists = state.exists();
  if (exists) history.records = state.read_versions();
  if (o.dry_run) {
    history.check(true, state.name(), config_.migrations_dir);
    UpOptions uo;
    uo.dry_run = true;
    const bool ok = DryRunPlanner(step_context(), state.transaction_limit())
                        .plan(history.down_plan(o.to, o.steps, config_.journal), uo);
    if (stop_.load()) return ExitCode::Interrupted;
    return ok ? ExitCode::Ok : ExitCode::Usage;
  }
  if (!exists) {
    render_->result("nothing to roll back: no state table yet");
    return ExitCode::Ok;
  }
  // Everything that can be refused is refused before the lock is taken (nothing written): the
  // files against the records, a version without down steps and without a journal, the steps.
  history.check(true, state.name(), config_.migrations_dir);
  UpOptions uo;
  preflight(step_context(), history.down_plan(o.to, o.steps, config_.journal), history, uo);
  std::shared_ptr<stages::JournalStore> journal;
  if (config_.journal) {
    std::vector<std::pair<const Migration*, std::string>> blockers;
    for (const auto& [m, dir] : history.down_plan(o.to, o.steps, config_.journal)) {
      if (m->down) continue;
      if (!journal) journal = stages::JournalStore::open(*config_.journal, client());
      if (!has_journal(*journal, *m, history.records.at(m->version)))
        blockers.emplace_back(m, fmt::format("version {} has no down steps and no journal in {} "
                                             "(it ran without one)",
                                             m->version, journal->describe()));
    }
    History::refuse_down(blockers);
  }
  auto lease = Lease::acquire(state, config_.lock_ttl, &stop_);
  history.records = state.read_versions();
  history.check(true, state.name(), config_.migrations_dir);
  const Plan plan = history.down_plan(o.to, o.steps, config_.journal);
  if (plan.empty()) render_->result("nothing to roll back");
  VersionRunner runner(step_context(), state, *lease);
  for (const auto& [m, dir] : plan) {
    if (stop_.load() && !lease->lost()) return ExitCode::Interrupted;
    std::optional<VersionRecord> existing = history.records.at(m->version);
    ExitCode code;
    if (m->down) {
      code = runner.run(*m, Direction::Down, uo, existing);
    } else {
      if (!journal) journal = stages::JournalStore::open(*config_.journal, client());
      code = JournalRestorer(step_context(), state, *lease, journal).run(*m, *existing, o.force);
    }
    if (code != ExitCode::Ok) return code;
  }
  lease->release();
  return ExitCode::Ok;
}

ExitCode Session::verify(const VerifyOptions& o) {
  History history(load());
  StateTable state(client(), config_.physical(config_.state_table));
  if (state.exists()) history.records = state.read_versions();
  std::vector<const Migration*> versions;
  if (o.version) {
    const Migration* m = history.file(*o.version);
    if (!m)
      throw UsageError(fmt::format("verify {}: no migration file has this version in {}",
                                   *o.version, config_.migrations_dir));
    auto r = history.records.find(*o.version);
    if (r == history.records.end() || r->second.state != VersionState::Applied)
      throw UsageError(fmt::format("verify {}: {} is not applied (`dynamorph status` shows it)",
                                   *o.version, m->file));
    versions.push_back(m);
  } else {
    for (const auto& [v, r] : history.records)
      if (r.state == VersionState::Applied && history.file(v)) versions.push_back(history.file(v));
  }
  if (versions.empty()) render_->result("nothing to verify: no version is applied");
  std::int64_t issues = 0;
  Verifier verifier(step_context());
  for (const Migration* m : versions) {
    for (const auto& v : verifier.verify(*m)) {
      issues += v.issues();
      if (options_.json) {
        JsonArray diffs;
        for (const auto& d : v.differences) {
          std::string q;
          dynamo::write_json_string(q, d);
          diffs.raw(q);
        }
        JsonObject j;
        j.string("event", "verify_step")
            .integer("version", v.version)
            .integer("step", v.step)
            .string("kind", v.copy ? "copy" : "in_place")
            .string("source", v.source)
            .string("target", v.target)
            .integer("checked", v.checked)
            .integer("pending", v.pending)
            .integer("missing", v.missing)
            .integer("extra", v.extra)
            .integer("different", v.different)
            .raw("differences", diffs.str());
        out_ << j.str() << "\n";
        continue;
      }
      if (v.copy)
        render_->result(
            fmt::format("verify {} step {} ({}): copy {} → {}: {} items read, {} missing, "
                        "{} extra, {} different",
                        v.version, v.step, v.where, v.source, v.target, v.checked, v.missing,
                        v.extra, v.different));
      else
        render_->result(
            fmt::format("verify {} step {} ({}): in place on {}: {} items read, {} still "
                        "to change",
                        v.version, v.step, v.where, v.target, v.checked, v.pending));
      for (const auto& d : v.differences) render_->result("  - " + d);
    }
    if (stop_.load()) return ExitCode::Interrupted;
  }
  if (options_.json) {
    JsonObject j;
    j.string("event", "verify").integer("issues", issues);
    out_ << j.str() << "\n";
  } else {
    render_->result(issues == 0 ? std::string("verify: everything holds")
                                : fmt::format("verify: {} issues", issues));
  }
  return issues == 0 ? ExitCode::Ok : ExitCode::StepFailed;
}

ExitCode Session::unlock(bool force) {
  StateTable state(client(), config_.physical(config_.state_table));
  auto lock = state.read_lock();
  if (!lock) {
    render_->result(fmt::format("no lock is held in {}", state.name()));
    return ExitCode::Ok;
  }
  const bool expired = lock->expires_at_ms < dynamo::now_epoch_ms();
  const bool dead_here = lock->host == this_process_owner().host && !process_alive(lock->pid);
  if (!expired && !dead_here && !force)
    // Never "--force" as the way out: two live runs on one version is what the lock prevents.
    throw LockHeld(fmt::format(
        "the lock in {} is held by {}, which may still be running; wait for it (a dead run's "
        "lease ends at {}, then `dynamorph unlock` frees it), or use `dynamorph unlock --force` "
        "only once you know process {} on {} is gone",
        state.name(), describe_lock(*lock), dynamo::iso_utc(lock->expires_at_ms), lock->pid,
        lock->host));
  if (!state.delete_lock(lock->owner)) {
    render_->info(
        "the lock changed hands meanwhile; run `dynamorph unlock` again to see who holds it");
    return ExitCode::LockHeld;
  }
  render_->result(fmt::format("released the lock of {} ({})", describe_lock(*lock),
                            expired     ? "expired"
                            : dead_here ? "its process is gone"
                                        : "forced"));
  return ExitCode::Ok;
}

ExitCode Session::mark(std::int64_t version, const std::string& word) {
  if (word != "applied" && word != "pending")
    throw UsageError(fmt::format("mark: state must be applied or pending, got '{}'", word));
  History history(load());
  StateTable state(client(), config_.physical(config_.state_table));
  const Migration* m = history.file(version);
  if (word == "applied" && !m)
    throw UsageError(fmt::format("mark: no migration file has version {} in {}", version,
                                 config_.migrations_dir));
  state.ensure();
  auto lease = Lease::acquire(state, config_.lock_ttl, &stop_);
  // A record this build cannot read (an unknown state word) is what mark repairs: it is
  // rewritten (applied) or deleted (pending), so that refusal must not stop mark itself.
  std::map<std::int64_t, VersionRecord> records;
  bool unreadable = false;
  try {
    records = state.read_versions();
  } catch (const HistoryError&) {
    unreadable = true;
  }
  // Checkpoints first: a crash while clearing them leaves the record as it was, and running
  // mark again finishes.
  state.delete_checkpoints(version, lease->proof());
  if (word == "pending") state.delete_checkpoints(version, lease->proof(), kFollowCheckpoints);
  if (word == "applied") {
    VersionRecord rec;
    auto r = records.find(version);
    if (r != records.end()) rec = r->second;
    rec.version = version;
    rec.name = m->name;
    rec.checksum = m->checksum;
    rec.state = VersionState::Applied;
    rec.direction = Direction::Up;
    rec.step = static_cast<int>(m->up.size());
    rec.schema = m->schema;
    rec.error.clear();
    rec.updated_at = rec.finished_at = dynamo::now_iso();
    if (rec.started_at.empty()) rec.started_at = rec.updated_at;
    state.put_version(rec, lease->proof());
  } else {
    if (records.contains(version) || unreadable) state.delete_version(version, lease->proof());
  }
  render_->result(fmt::format("marked {} {}", version, word));
  lease->release();
  return ExitCode::Ok;
}

ExitCode Session::follow(std::optional<std::int64_t> version, const UpOptions& o) {
  History history(load());
  const Migration* m = nullptr;
  if (version) {
    m = history.file(*version);
    if (!m)
      throw UsageError(fmt::format("follow: no migration file has version {} in {}", *version,
                                   config_.migrations_dir));
    if (std::none_of(m->up.begin(), m->up.end(), is_follow_step))
      throw UsageError(fmt::format(
          "follow: version {} ({}) has no `follow: stream` step: only a copy into another table "
          "follows its source's stream (an in-place step has nothing to follow)",
          *version, m->file));
  }
  StateTable state(client(), config_.physical(config_.state_table));
  if (state.exists()) history.records = state.read_versions();
  if (!m) {
    for (const auto& f : history.files()) {
      auto r = history.records.find(f.version);
      if (r != history.records.end() && r->second.state == VersionState::Applied &&
          std::any_of(f.up.begin(), f.up.end(), is_follow_step))
        m = &f;
    }
    if (!m)
      throw UsageError("follow: no applied version has a `follow: stream` step; give VERSION, or "
                       "run `dynamorph up` first");
  }
  auto r = history.records.find(m->version);
  if (r == history.records.end() || r->second.state != VersionState::Applied)
    throw UsageError(fmt::format("follow: version {} is not applied yet: `dynamorph up` backfills "
                                 "and catches up first",
                                 m->version));
  auto lease = Lease::acquire(state, o.lock_ttl.value_or(config_.lock_ttl), &stop_);
  VersionRunner runner(step_context(), state, *lease);
  auto code = runner.follow(*m, o);
  lease->release();
  return code;
}

}  // namespace dynamorph::migrations
