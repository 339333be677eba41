#include "migrations/worker.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "dynamo/clock.h"
#include "migrations/errors.h"
#include "migrations/metrics.h"
#include "migrations/render.h"
#include "pipeline/progress.h"
#include "stages/step_plan.h"

namespace dynamorph::migrations {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds renew_period(std::chrono::milliseconds ttl) {
  return std::max(std::chrono::milliseconds(100), ttl / 3);
}

std::string segment_list(const std::vector<int>& segments) {
  std::string out;
  for (int s : segments) out += (out.empty() ? "" : ", ") + std::to_string(s);
  return out;
}

}  // namespace

void bind_run_now(stages::StepSpec& spec, pipeline::RunOptions& ro, const std::string& loaded_now,
                  const std::string& run_now) {
  if (run_now.empty() || run_now == loaded_now) return;
  ro.now_iso = run_now;
  auto it = spec.values.find(":now");
  if (it != spec.values.end() && it->second == dynamo::AttributeValue(loaded_now))
    it->second = dynamo::AttributeValue(run_now);  // the loader's automatic :now (step_spec.h)
}

void sleep_unless_stopped(const std::atomic<bool>& stop, std::chrono::milliseconds d) {
  const auto until = Clock::now() + d;
  while (!stop.load() && Clock::now() < until)
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(50),
                                                          until - Clock::now()));
}

// ---- WorkerRegistration ----------------------------------------------------------------------

WorkerRegistration::WorkerRegistration(StateTable& state, std::string owner,
                                       std::chrono::milliseconds ttl)
    : state_(state), owner_(std::move(owner)), ttl_(ttl), joined_at_(dynamo::now_iso()) {
  state_.put_worker(WorkerRecord{owner_, dynamo::now_epoch_ms() + ttl_.count(), joined_at_});
  refresh();
  thread_ = std::thread([this] { heartbeat(); });
}

WorkerRegistration::~WorkerRegistration() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  try {
    state_.delete_worker(owner_);
  } catch (const Error& e) {
    std::fprintf(stderr, "warning: %s (the registration expires by itself)\n", e.what());
  }
}

int WorkerRegistration::refresh() {
  const std::int64_t now = dynamo::now_epoch_ms();
  int n = 0;
  bool me = false;
  for (const auto& w : state_.read_workers()) {
    if (w.expires_at_ms < now) {  // a dead worker's: nobody else removes it
      if (w.owner != owner_) state_.delete_worker(w.owner, now);
      continue;
    }
    ++n;
    me = me || w.owner == owner_;
  }
  if (!me) ++n;  // ours is being renewed right now
  live_.store(std::max(1, n), std::memory_order_relaxed);
  return live();
}

void WorkerRegistration::settle(const std::atomic<bool>& stop) {
  if (settled_) return;
  settled_ = true;
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  auto since = Clock::now();
  int seen = refresh();
  while (!stop.load() && Clock::now() < deadline &&
         Clock::now() - since < std::chrono::seconds(1)) {
    sleep_unless_stopped(stop, std::chrono::milliseconds(250));
    if (const int n = refresh(); n != seen) {
      seen = n;
      since = Clock::now();
    }
  }
}

void WorkerRegistration::heartbeat() {
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, renew_period(ttl_), [this] { return stopping_; })) {
    lk.unlock();
    try {
      const std::int64_t expires = dynamo::now_epoch_ms() + ttl_.count();
      if (!state_.extend_worker(owner_, expires))  // removed by hand: register again
        state_.put_worker(WorkerRecord{owner_, expires, joined_at_});
      refresh();
    } catch (const Error&) {
      // The network or the server: the next beat tries again; the count stays as it was.
    }
    lk.lock();
  }
}

// ---- LeaseCheckpointStore --------------------------------------------------------------------

LeaseCheckpointStore::LeaseCheckpointStore(StateTable& state, std::int64_t version,
                                           Direction direction, int step, std::string owner,
                                           std::chrono::milliseconds ttl,
                                           const std::vector<SegmentLease>& claimed)
    : state_(state),
      version_(version),
      direction_(direction),
      step_(step),
      owner_(std::move(owner)),
      ttl_(ttl) {
  for (const auto& l : claimed) total_ = std::max(total_, l.total_segments);
  held_.resize(static_cast<std::size_t>(std::max(total_, 1)));
  for (const auto& l : claimed) {
    if (l.checkpoint.segment < 0 || l.checkpoint.segment >= total_) continue;
    Held h;
    h.lease = l;
    h.expires_at_ms = l.expires_at_ms;
    h.held = std::make_shared<Flag>();
    h.held->expires_at_ms.store(l.expires_at_ms);
    held_[static_cast<std::size_t>(l.checkpoint.segment)] = h.held;
    segments_.emplace(l.checkpoint.segment, std::move(h));
  }
  thread_ = std::thread([this] { writer(); });
}

LeaseCheckpointStore::~LeaseCheckpointStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<pipeline::RunCheckpoint> LeaseCheckpointStore::load() {
  pipeline::RunCheckpoint run;
  run.total_segments = total_;
  std::lock_guard lk(mu_);
  for (const auto& [s, h] : segments_) run.segments.push_back(h.lease.checkpoint);
  return run;
}

void LeaseCheckpointStore::save(const pipeline::SegmentCheckpoint& checkpoint, int) {
  std::lock_guard lk(mu_);
  auto it = segments_.find(checkpoint.segment);
  if (it == segments_.end() || !it->second.held->held.load()) return;  // not ours (any more)
  it->second.pending = checkpoint;
}

bool LeaseCheckpointStore::held(int segment) const {
  if (segment < 0 || segment >= static_cast<int>(held_.size())) return false;
  const auto& h = held_[static_cast<std::size_t>(segment)];
  return h && h->held.load(std::memory_order_relaxed) &&
         dynamo::now_epoch_ms() < h->expires_at_ms.load(std::memory_order_relaxed);
}

int LeaseCheckpointStore::lost() const {
  std::lock_guard lk(mu_);
  int n = 0;
  for (const auto& [s, h] : segments_) n += !held(s) && !h.done;
  return n;
}

void LeaseCheckpointStore::writer() {
  const auto period = renew_period(ttl_);
  auto next_renew = Clock::now() + period;
  std::unique_lock lk(mu_);
  while (true) {
    const auto wake = std::min(Clock::now() + std::chrono::seconds(1), next_renew);
    cv_.wait_until(lk, wake, [this] { return stopping_ || flush_requested_; });
    const bool renew = Clock::now() >= next_renew;
    write_round(lk, renew);
    if (renew) next_renew = Clock::now() + period;
    ++rounds_;
    flush_requested_ = false;
    cv_.notify_all();  // flush() waits for a round to end
    if (stopping_) return;
  }
}

// Under `lk`; unlocks while it writes.
void LeaseCheckpointStore::write_round(std::unique_lock<std::mutex>& lk, bool renew_all) {
  struct Job {
    int segment;
    std::int64_t counter;
    std::optional<pipeline::SegmentCheckpoint> cp;  // absent: a renewal
  };
  std::vector<Job> jobs;
  const std::int64_t start_ms = dynamo::now_epoch_ms();
  for (auto& [s, h] : segments_) {
    if (!h.held->held.load() || h.done) continue;
    if (start_ms >= h.expires_at_ms) {  // not renewed in time (paused?): another may own it now
      h.held->held.store(false);
      h.pending.reset();
      continue;
    }
    if (h.pending) {
      jobs.push_back({s, h.lease.counter, std::move(h.pending)});
      h.pending.reset();
    } else if (renew_all) {
      jobs.push_back({s, h.lease.counter, std::nullopt});
    }
  }
  if (jobs.empty()) return;
  writing_ = true;
  lk.unlock();
  struct Answer {
    bool ok = false, failed = false;  // failed: not known (network, server)
    std::int64_t expires = 0;
  };
  std::vector<Answer> answers(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    const std::int64_t expires = dynamo::now_epoch_ms() + ttl_.count();
    try {
      answers[i].ok = j.cp ? state_.save_segment(version_, direction_, step_, *j.cp, owner_,
                                                 j.counter, expires)
                           : state_.extend_segment(version_, direction_, step_, j.segment, owner_,
                                                   j.counter, expires);
      answers[i].expires = expires;
    } catch (const Error&) {
      answers[i].failed = true;
    }
  }
  lk.lock();
  writing_ = false;
  const std::int64_t now = dynamo::now_epoch_ms();
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    Held& h = segments_.at(jobs[i].segment);
    if (answers[i].failed) {
      // Not written: tried again next round, unless a newer checkpoint came meanwhile; given up
      // once the lease has expired (another worker may own the segment by now).
      if (jobs[i].cp && !h.pending) h.pending = std::move(jobs[i].cp);
      if (now >= h.expires_at_ms) h.held->held.store(false);
      continue;
    }
    if (!answers[i].ok) {  // taken over: stop at once, write nothing more
      h.held->held.store(false);
      h.pending.reset();
      continue;
    }
    h.expires_at_ms = answers[i].expires;
    h.held->expires_at_ms.store(answers[i].expires);
    if (jobs[i].cp) {
      h.lease.checkpoint = *jobs[i].cp;
      h.done = jobs[i].cp->done;
    }
  }
}

void LeaseCheckpointStore::flush() {
  // Asks for rounds until nothing is left to write: a checkpoint saved while a round was
  // writing is written by the next one.
  std::unique_lock lk(mu_);
  while (true) {
    bool pending = writing_;
    for (const auto& [s, h] : segments_) pending = pending || (h.pending && h.held->held.load());
    if (!pending) return;
    flush_requested_ = true;
    cv_.notify_all();
    const std::uint64_t round = rounds_;
    cv_.wait(lk, [&] { return rounds_ != round; });
  }
}

void LeaseCheckpointStore::release_all(const std::string& error) {
  flush();
  std::lock_guard lk(mu_);
  for (auto& [s, h] : segments_) {
    if (h.done || !h.held->held.load()) continue;
    h.held->held.store(false);
    try {
      state_.release_segment(version_, direction_, step_, s, owner_, h.lease.counter, error);
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: %s (the lease expires by itself)\n", e.what());
    }
  }
}

// ---- the step ----------------------------------------------------------------------------------

namespace {

// Which segments to try, in order: ours (kept over a drain), free, expired.
std::vector<const SegmentLease*> claim_order(const std::vector<SegmentLease>& leases,
                                             const std::string& me, std::int64_t now_ms) {
  std::vector<const SegmentLease*> mine, free, expired;
  for (const auto& l : leases) {
    if (l.checkpoint.done || !l.error.empty()) continue;
    if (l.owner == me) {
      mine.push_back(&l);
    } else if (l.owner.empty()) {
      free.push_back(&l);
    } else if (l.expires_at_ms < now_ms) {
      expired.push_back(&l);
    }
  }
  mine.insert(mine.end(), free.begin(), free.end());
  mine.insert(mine.end(), expired.begin(), expired.end());
  return mine;
}

// While a batch runs: every third of the TTL (at least every 0.5 s) looks for segments another
// worker left (free, or expired) that this worker's share has room for, and then sets `drain`.
class SegmentWatch {
 public:
  SegmentWatch(WorkerContext& w, std::int64_t version, Direction direction, int step,
               const std::vector<int>& segments, std::atomic<bool>& drain)
      : thread_([this, &w, version, direction, step, held = static_cast<int>(segments.size()),
                 &drain] {
          const auto period =
              std::max(std::chrono::milliseconds(500), w.registration.ttl() / 3);
          std::unique_lock lk(mu_);
          while (!cv_.wait_for(lk, period, [this] { return done_; })) {
            lk.unlock();
            try {
              const auto leases = w.state.read_segment_leases(version, direction, step);
              int total = 0, left = 0;
              const std::int64_t now = dynamo::now_epoch_ms();
              for (const auto& l : leases) {
                total = std::max(total, l.total_segments);
                if (l.owner != w.registration.owner() && l.claimable(now)) ++left;
              }
              const int live = w.registration.live();
              if (left > 0 && held < (total + live - 1) / live) {
                drain.store(true);
                return;
              }
            } catch (const Error&) {
              // The network or the server: the next look tries again.
            }
            lk.lock();
          }
        }) {}
  ~SegmentWatch() { stop(); }
  void stop() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace

int prepare_step_leases(dynamo::Client& client, StateTable& state, const LockProof& proof,
                        const stages::StepSpec& spec, const pipeline::RunOptions& ro,
                        std::int64_t version, Direction direction, int step) {
  auto leases = state.read_segment_leases(version, direction, step);
  int total = 0;
  for (const auto& l : leases) total = std::max(total, l.total_segments);
  if (total == 0) {
    stages::StepPlan plan = stages::plan_step(
        client, spec, stages::PlanOptions{version, ro.now_iso, ro.default_page_size});
    const int requested = spec.source.segments > 0 ? spec.source.segments : ro.segments;
    total = std::max(1, plan.source->partitions(requested));
  }
  std::set<int> have;
  for (const auto& l : leases) have.insert(l.checkpoint.segment);
  std::vector<std::pair<pipeline::SegmentCheckpoint, int>> fresh;
  for (int s = 0; s < total; ++s) {
    if (have.count(s)) continue;  // a coordinator before this one made it (and maybe ran it)
    pipeline::SegmentCheckpoint cp;
    cp.segment = s;
    fresh.emplace_back(std::move(cp), total);
  }
  if (!fresh.empty()) state.put_checkpoints(version, direction, step, fresh, proof);
  state.clear_segment_errors(version, direction, step);
  return total;
}

WorkerStepResult work_on_step(WorkerContext& w, const stages::StepSpec& spec,
                              const pipeline::RunOptions& ro, std::int64_t version,
                              Direction direction, int step) {
  WorkerStepResult result;
  const std::string& me = w.registration.owner();
  while (true) {
    if (w.stop.load()) {
      result.outcome = WorkerStepResult::Outcome::Stopped;
      return result;
    }
    auto leases = w.state.read_segment_leases(version, direction, step);
    int total = 0, done = 0;
    for (const auto& l : leases) {
      total = std::max(total, l.total_segments);
      done += l.checkpoint.done;
      if (!l.error.empty()) {
        result.outcome = WorkerStepResult::Outcome::Failed;
        result.error = l.error;
        return result;
      }
    }
    if (leases.empty() || static_cast<int>(leases.size()) < total) {
      result.outcome = WorkerStepResult::Outcome::NotReady;  // the coordinator is creating them
      return result;
    }
    if (done == total) {
      result.outcome = WorkerStepResult::Outcome::Done;
      return result;
    }

    // Claim: this worker's own unfinished segments (kept over a drain) first, then free ones,
    // then expired ones; at most a share.
    w.registration.settle(w.stop);
    const int live = w.registration.refresh();
    const int share = (total + live - 1) / live;
    std::vector<const SegmentLease*> candidates = claim_order(leases, me, dynamo::now_epoch_ms());
    std::vector<SegmentLease> claimed;
    for (const SegmentLease* l : candidates) {
      if (static_cast<int>(claimed.size()) >= share || w.stop.load()) break;
      const std::int64_t at = dynamo::now_epoch_ms();
      if (auto c = w.state.claim_segment(version, direction, step, l->checkpoint.segment, me, at,
                                         at + w.registration.ttl().count()))
        claimed.push_back(std::move(*c));
    }
    if (claimed.empty()) {  // the others hold the rest: wait at the barrier, steal what expires
      sleep_unless_stopped(w.stop, std::chrono::milliseconds(500));
      continue;
    }

    std::vector<int> segments;
    for (const auto& c : claimed) segments.push_back(c.checkpoint.segment);
    w.render.detail(fmt::format("  worker {}: segment{} {} of {} ({} live worker{})", me,
                                segments.size() == 1 ? "" : "s", segment_list(segments), total,
                                live, live == 1 ? "" : "s"));
    LeaseCheckpointStore store(w.state, version, direction, step, me, w.registration.ttl(),
                               claimed);
    const metrics::Labels labels{{"version", std::to_string(version)},
                                 {"step", std::to_string(step + 1)}};
    metrics::registry().set_gauge("dynamorph_leases_held", labels,
                                  static_cast<double>(claimed.size()));
    struct Zero {  // whatever happens below: no lease is held once this batch is over
      const metrics::Labels& labels;
      ~Zero() { metrics::registry().set_gauge("dynamorph_leases_held", labels, 0); }
    } zero{labels};
    // While the batch runs, segments another worker left (released on its stop, or expired on
    // its death) are taken up by draining: no new page is read, every page read is finished,
    // and the next claim takes this worker's own segments up again with the others'.
    std::atomic<bool> drain{false};
    SegmentWatch watch(w, version, direction, step, segments, drain);
    pipeline::RunOptions mine = ro;
    mine.only_partitions = segments;
    mine.partition_held = [&store](int p) { return store.held(p); };
    mine.capacity_share = [&w] { return 1.0 / std::max(1, w.registration.live()); };
    mine.drain = &drain;
    pipeline::RunResult r;
    try {
      r = pipeline::run_pipeline(w.client, spec, store, mine);
      watch.stop();
      store.flush();
    } catch (const std::exception& e) {
      watch.stop();
      store.release_all(e.what());
      throw;
    }
    if (r.status == pipeline::RunResult::Status::Failed) {
      store.release_all(r.error);
      result.outcome = WorkerStepResult::Outcome::Failed;
      result.error = r.error;
      result.own = true;
      return result;
    }
    const int lost = store.lost();
    const bool drained = drain.load() && !w.stop.load();
    // Stopped or lost: the others take what is left at once. Drained: kept for the next claim.
    if (!drained) store.release_all();
    result.segments_run += static_cast<int>(segments.size()) - lost;
    if (lost > 0)
      w.render.warning(fmt::format("worker {}: lost the lease of {} segment{} (taken over after "
                                   "it expired); stopped {} at once",
                                   me, lost, lost == 1 ? "" : "s", lost == 1 ? "it" : "them"));
    if (drained)
      w.render.detail(fmt::format("  worker {}: another worker left segments; taking them up",
                                  me));
    if (r.status == pipeline::RunResult::Status::Stopped && w.stop.load()) {
      result.outcome = WorkerStepResult::Outcome::Stopped;
      return result;
    }
  }
}

}  // namespace dynamorph::migrations
