// The run lock as a lease (DESIGN.md "Lock"): taken with a conditional put (absent or expired),
// renewed by a background thread every third of the TTL, released conditionally on the owner.
//
// Writes stop a safety margin (a third of the TTL) before the lease could expire: the lease
// closes the client's write fence (dynamo/write_fence.h) at expiry minus the margin, counted
// from the time each renewal was sent, and moves it on with every renewal. Past it the client
// refuses every data write attempt (LockLost, nothing sent), whether or not this thread has
// noticed. A renewal never waits past the fence either (its requests are bounded by it), so a
// hanging endpoint cannot hold the heartbeat. When renewal has not succeeded by the fence (or
// the item is no longer ours) the lease is lost: lost() turns true and the stop flag given at
// acquire is set, so the run stops and exits 1.
// Thread-safe: lost() and proof() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "dynamo/write_fence.h"
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

  // True once renewal failed, or once the fence's time has come (even before the heartbeat
  // thread notices).
  bool lost() const;
  // The time writes stop (epoch ms): the lease's expiry less the safety margin.
  std::int64_t write_deadline_ms() const;
  std::chrono::milliseconds safety_margin() const { return ttl_ / 3; }
  LockProof proof() const { return LockProof{owner_.id()}; }
  // Stops the heartbeat and deletes the lock item (only if still ours). Idempotent.
  void release();

 private:
  Lease(StateTable& state, OwnerId owner, std::chrono::milliseconds ttl, std::int64_t expires_at,
        std::atomic<bool>* stop_on_loss);
  void heartbeat();
  // Renews once; the new expiry, nullopt when the lock is no longer ours (throws Error when the
  // renewal could not be made by the fence).
  std::optional<std::int64_t> renew();
  void lose();

  StateTable& state_;
  OwnerId owner_;
  std::chrono::milliseconds ttl_;
  std::int64_t expires_at_ms_;  // the heartbeat thread's
  dynamo::WriteFence& fence_;
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
