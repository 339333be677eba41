#include "migrations/lease.h"

#include <fmt/format.h>
#include <unistd.h>

#include <random>

#include "dynamo/clock.h"
#include "migrations/errors.h"

namespace dynamorph::migrations {

std::string OwnerId::id() const { return fmt::format("{}:{}:{}", host, pid, nonce); }

OwnerId this_process_owner() {
  static const OwnerId owner = [] {
    OwnerId o;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown-host");
    o.host = host;
    o.pid = ::getpid();
    std::random_device rd;
    o.nonce = fmt::format("{:08x}", rd());
    return o;
  }();
  return owner;
}

std::string describe_lock(const LockRecord& lock) {
  return fmt::format("{}:{} (owner {}) since {}, lease until {}", lock.host, lock.pid, lock.owner,
                     lock.acquired_at, dynamo::iso_utc(lock.expires_at_ms));
}

std::unique_ptr<Lease> Lease::acquire(StateTable& state, std::chrono::milliseconds ttl,
                                      std::atomic<bool>* stop_on_loss) {
  const OwnerId owner = this_process_owner();
  const std::int64_t now = dynamo::now_epoch_ms();
  LockRecord rec{owner.id(), owner.host, owner.pid, dynamo::iso_utc(now), now + ttl.count()};
  if (!state.try_put_lock(rec, now)) {
    auto held = state.read_lock();
    if (!held) {  // released between our put and the read: one more try
      if (!state.try_put_lock(rec, dynamo::now_epoch_ms()))
        throw LockHeld(fmt::format("the lock in {} is held by another run", state.name()));
    } else {
      throw LockHeld(fmt::format(
          "the lock in {} is held by {}; wait for it, or `dynamorph unlock` if that run is dead",
          state.name(), describe_lock(*held)));
    }
  }
  return std::unique_ptr<Lease>(new Lease(state, owner, ttl, rec.expires_at_ms, stop_on_loss));
}

Lease::Lease(StateTable& state, OwnerId owner, std::chrono::milliseconds ttl,
             std::int64_t expires_at, std::atomic<bool>* stop_on_loss)
    : state_(state),
      owner_(std::move(owner)),
      ttl_(ttl),
      expires_at_ms_(expires_at),
      stop_on_loss_(stop_on_loss) {
  thread_ = std::thread([this] { heartbeat(); });
}

Lease::~Lease() { release(); }

void Lease::heartbeat() {
  const auto period = std::max(std::chrono::milliseconds(100), ttl_ / 3);
  auto wait = period;
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (cv_.wait_for(lk, wait, [this] { return stopping_; })) break;
    lk.unlock();
    const std::int64_t now = dynamo::now_epoch_ms();
    bool ok = false;
    bool definitely_lost = false;
    try {
      ok = state_.extend_lock(owner_.id(), now + ttl_.count());
      definitely_lost = !ok;
    } catch (const Error&) {
      ok = false;  // the network or the server: retry soon, give up once past expiry
    }
    if (ok) {
      expires_at_ms_ = now + ttl_.count();
      wait = period;
    } else if (definitely_lost || dynamo::now_epoch_ms() >= expires_at_ms_) {
      lost_.store(true);
      if (stop_on_loss_) stop_on_loss_->store(true);
      lk.lock();
      break;
    } else {
      wait = std::max(std::chrono::milliseconds(100), period / 4);
    }
    lk.lock();
  }
}

void Lease::release() {
  {
    std::lock_guard lk(mu_);
    if (released_) return;
    released_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!lost_.load()) {
    try {
      state_.delete_lock(owner_.id());
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: %s (the lease expires by itself)\n", e.what());
    }
  }
}

}  // namespace dynamorph::migrations
