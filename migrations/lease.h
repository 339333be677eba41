// The run lock as a lease (DESIGN.md "Lock"): taken with a conditional put (absent or expired),
// renewed by a background thread every third of the TTL, released conditionally on the owner.
// When renewal fails past expiry (or the item is no longer ours) the lease is lost: lost() turns
// true and the stop flag given at acquire is set, so the pipeline drains and the run exits 1.
// Thread-safe: lost() and proof() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "migrations/state_table.h"

namespace dynamorph::migrations {

struct OwnerId {
  std::string host;
  std::int64_t pid = 0;
  std::string nonce;
  std::string id() const;  // host:pid:nonce
};
OwnerId this_process_owner();

class Lease {
 public:
  // Throws LockHeld "the lock is held by host:pid (…) since …, until …".
  static std::unique_ptr<Lease> acquire(StateTable& state, std::chrono::milliseconds ttl,
                                        std::atomic<bool>* stop_on_loss);
  ~Lease();  // stops the heartbeat and releases the lock if still held
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  bool lost() const { return lost_.load(); }
  LockProof proof() const { return LockProof{owner_.id()}; }
  // Stops the heartbeat and deletes the lock item (only if still ours). Idempotent.
  void release();

 private:
  Lease(StateTable& state, OwnerId owner, std::chrono::milliseconds ttl, std::int64_t expires_at,
        std::atomic<bool>* stop_on_loss);
  void heartbeat();

  StateTable& state_;
  OwnerId owner_;
  std::chrono::milliseconds ttl_;
  std::int64_t expires_at_ms_;
  std::atomic<bool>* stop_on_loss_;
  std::atomic<bool> lost_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool released_ = false;
  std::thread thread_;
};

// One line for messages: "host:pid (owner id …) since <iso>, expires <iso>".
std::string describe_lock(const LockRecord& lock);

}  // namespace dynamorph::migrations
