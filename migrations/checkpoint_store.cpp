#include "migrations/checkpoint_store.h"

#include <chrono>

namespace dynamorph::migrations {

StateCheckpointStore::StateCheckpointStore(StateTable& state, const Lease& lease,
                                           std::int64_t version, std::string direction, int step)
    : state_(state),
      lease_(lease),
      version_(version),
      direction_(std::move(direction)),
      step_(step) {
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
  return state_.load_checkpoints(version_, direction_, step_);
}

void StateCheckpointStore::save(const pipeline::SegmentCheckpoint& checkpoint, int total_segments) {
  std::lock_guard lk(mu_);
  pending_[checkpoint.segment] = {checkpoint, total_segments};
}

void StateCheckpointStore::write_pending(std::unique_lock<std::mutex>& lk) {
  if (pending_.empty() || error_) return;
  std::vector<std::pair<pipeline::SegmentCheckpoint, int>> batch;
  for (auto& [seg, cp] : pending_) batch.push_back(std::move(cp));
  pending_.clear();
  writing_ = true;
  lk.unlock();
  std::exception_ptr err;
  try {
    state_.put_checkpoints(version_, direction_, step_, batch, lease_.proof());
  } catch (...) {
    err = std::current_exception();  // handed to flush(), which rethrows it on the pipeline thread
  }
  lk.lock();
  writing_ = false;
  if (err && !error_) error_ = err;
}

void StateCheckpointStore::writer() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait_for(lk, std::chrono::seconds(1), [this] { return stopping_ || flush_requested_; });
    write_pending(lk);
    flush_requested_ = false;
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
