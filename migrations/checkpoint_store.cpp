#include "migrations/checkpoint_store.h"

#include <chrono>

#include "dynamo/clock.h"

namespace dynamorph::migrations {

StateCheckpointStore::StateCheckpointStore(StateTable& state, const Lease& lease,
                                           std::int64_t version, Direction direction, int step,
                                           std::optional<VersionRecord> record,
                                           std::string_view family)
    : state_(state),
      lease_(lease),
      version_(version),
      direction_(direction),
      step_(step),
      record_(std::move(record)),
      family_(family) {
  if (record_ && !record_->counters_before_step) record_.reset();
  thread_ = std::thread([this] { writer(); });
}

StateCheckpointStore::~StateCheckpointStore() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::optional<pipeline::RunCheckpoint> StateCheckpointStore::load() {
  {
    std::lock_guard lk(mu_);
    if (loaded_) return *loaded_;
  }
  auto run = state_.load_checkpoints(version_, direction_, step_, family_);
  std::lock_guard lk(mu_);
  stored_.clear();
  if (run) {
    for (const auto& cp : run->segments) stored_[cp.segment] = cp.counters;
  }
  if (pending_.empty()) loaded_ = run;
  return run;
}

void StateCheckpointStore::save(const pipeline::SegmentCheckpoint& checkpoint, int total_segments) {
  std::lock_guard lk(mu_);
  pending_[checkpoint.segment] = {checkpoint, total_segments};
  loaded_.reset();
}

CheckpointCost StateCheckpointStore::cost() const {
  std::lock_guard lk(mu_);
  return cost_;
}

void StateCheckpointStore::write_pending(std::unique_lock<std::mutex>& lk) {
  if (pending_.empty() || error_) return;
  std::vector<std::pair<pipeline::SegmentCheckpoint, int>> batch;
  batch.reserve(pending_.size());
  for (auto& [seg, cp] : pending_) batch.push_back(std::move(cp));
  pending_.clear();
  std::optional<VersionRecord> record;
  if (record_) {
    record = record_;
    auto latest = stored_;  // O(segments), once a round
    for (const auto& [cp, total] : batch) latest[cp.segment] = cp.counters;
    record->counters = *record->counters_before_step;
    for (const auto& [seg, c] : latest) record->counters += c;
    record->checkpoint_cost += cost_;  // put_checkpoints adds this round's
    record->updated_at = dynamo::now_iso();
  }
  writing_ = true;
  lk.unlock();
  std::exception_ptr err;
  CheckpointCost spent;
  try {
    spent = state_.put_checkpoints(version_, direction_, step_, batch, lease_.proof(),
                                   record ? &*record : nullptr, family_);
  } catch (...) {
    err = std::current_exception();  // handed to flush(), which rethrows it on the pipeline thread
  }
  lk.lock();
  writing_ = false;
  if (err) {
    if (!error_) error_ = err;
    return;
  }
  cost_ += spent;
  for (const auto& [cp, total] : batch) stored_[cp.segment] = cp.counters;
}

void StateCheckpointStore::writer() {
  std::unique_lock lk(mu_);
  auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (true) {
    cv_.wait_until(lk, next, [this] { return stopping_ || flush_requested_; });
    // Rounds start a second apart (or back to back when one takes longer): each segment is
    // written at most once per round.
    next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    // Taken before the write: a flush() asked for while this round is on the wire (its
    // checkpoints saved after the round took the batch) sets the flag again and gets a round
    // of its own at once, not at the next tick a second later.
    flush_requested_ = false;
    write_pending(lk);
    cv_.notify_all();
    if (stopping_) break;
  }
}

void StateCheckpointStore::flush() {
  std::unique_lock lk(mu_);
  flush_requested_ = true;
  cv_.notify_all();
  cv_.wait(lk, [this] { return (!flush_requested_ && !writing_ && pending_.empty()) || error_; });
  if (error_) std::rethrow_exception(error_);
}

}  // namespace dynamorph::migrations
