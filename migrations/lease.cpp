#include "migrations/lease.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
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
      fence_(state.client().write_fence()),
      stop_on_loss_(stop_on_loss) {
  fence_.close_at(expires_at - safety_margin().count());
  thread_ = std::thread([this] { heartbeat(); });
}

Lease::~Lease() { release(); }

bool Lease::lost() const { return lost_.load() || !fence_.allows(dynamo::now_epoch_ms()); }

std::int64_t Lease::write_deadline_ms() const { return fence_.deadline_ms(); }

std::optional<std::int64_t> Lease::renew() {
  // Sent from `now`, so the lease the server grants ends no earlier than now + ttl.
  const std::int64_t now = dynamo::now_epoch_ms();
  const auto left = std::chrono::milliseconds(fence_.deadline_ms() - now);
  const dynamo::RequestScope bounded(true, std::chrono::steady_clock::now() + left);
  if (!state_.extend_lock(owner_.id(), now + ttl_.count())) return std::nullopt;
  return now + ttl_.count();
}

void Lease::lose() {
  lost_.store(true);
  if (stop_on_loss_) stop_on_loss_->store(true);
}

void Lease::heartbeat() {
  const auto period = std::max(std::chrono::milliseconds(100), ttl_ / 3);
  auto wait = period;
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (cv_.wait_for(lk, wait, [this] { return stopping_; })) break;
    lk.unlock();
    std::optional<std::int64_t> renewed;
    bool definitely_lost = false;
    try {
      renewed = renew();
      definitely_lost = !renewed;
    } catch (const Error&) {
      // The network or the server: retry soon, give up at the fence.
    }
    const std::int64_t now = dynamo::now_epoch_ms();
    if (renewed && fence_.allows(now)) {
      expires_at_ms_ = *renewed;
      fence_.close_at(*renewed - safety_margin().count());
      wait = period;
    } else if (definitely_lost || !fence_.allows(now)) {
      // Past the fence writes have been refused already; a renewal that came back this late
      // does not undo that, so the run stops either way.
      lose();
      lk.lock();
      break;
    } else {
      const auto to_fence = std::chrono::milliseconds(fence_.deadline_ms() - now);
      wait = std::clamp(to_fence, std::chrono::milliseconds(1),
                        std::max(std::chrono::milliseconds(100), period / 4));
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
  if (lost()) return;  // the fence stays closed: nothing more is written by this process
  fence_.open();
  try {
    state_.delete_lock(owner_.id());
  } catch (const Error& e) {
    std::fprintf(stderr, "warning: %s (the lease expires by itself)\n", e.what());
  }
}

}  // namespace dynamorph::migrations
