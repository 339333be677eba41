// The write fence: a deadline past which a client sends no write. A lease holder (the run lock)
// keeps moving it ahead while its lease is renewed; once the last renewal is older than the
// lease's safety margin, every write attempt — first tries and retries alike — fails as
// LockLost in Client::send, before it is signed or sent. The check is one atomic load against
// the clock, made right before each attempt, so no write leaves after the deadline whatever
// the thread that asked for it is doing.
//
// RequestScope marks the requests made on one thread while it lives: exempt from the fence
// (the state table's own requests: renewing the lease, releasing it, checkpoints conditioned
// on it) and, optionally, bounded by a deadline (no attempt starts, and none waits, past it).
// Thread-safe: the fence is atomics; a scope is the calling thread's own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace dynamorph::dynamo {

class WriteFence {
 public:
  static constexpr std::int64_t kOpen = std::numeric_limits<std::int64_t>::max();

  // Writes are refused from `epoch_ms` on (kOpen: never).
  void close_at(std::int64_t epoch_ms) { deadline_ms_.store(epoch_ms); }
  void open() { deadline_ms_.store(kOpen); }
  std::int64_t deadline_ms() const { return deadline_ms_.load(); }
  bool allows(std::int64_t now_ms) const { return now_ms < deadline_ms_.load(); }

  // Attempts refused so far, and the newest epoch ms at which a write attempt was let through
  // (0: none): what a test or the final message reports.
  std::uint64_t refused() const { return refused_.load(); }
  std::int64_t last_write_ms() const { return last_write_ms_.load(); }

  // One write attempt at `now_ms`: true if it may go (and is recorded), false if refused.
  bool admit(std::int64_t now_ms);

 private:
  std::atomic<std::int64_t> deadline_ms_{kOpen};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::int64_t> last_write_ms_{0};
};

// Operations that change data or schema (what the fence stops).
bool is_write_operation(std::string_view operation);

class RequestScope {
 public:
  // exempt: the fence does not apply; deadline: attempts are not started past it (none given:
  // the enclosing scope's, if any).
  explicit RequestScope(bool exempt,
                        std::optional<std::chrono::steady_clock::time_point> deadline = {});
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

  // The calling thread's innermost scope, if any.
  static const RequestScope* current();
  bool exempt() const { return exempt_; }
  const std::optional<std::chrono::steady_clock::time_point>& deadline() const {
    return deadline_;
  }

 private:
  bool exempt_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  const RequestScope* outer_;
};

}  // namespace dynamorph::dynamo
