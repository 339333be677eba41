// The state table (DESIGN.md "migrations/"): one partition holding the lock item, one item per
// version and checkpoint items per version, direction, step and segment. Key: pk (S) = "dynamorph",
// sk (S) = "lock" | "version#<20 digits>" | "checkpoint#<20 digits>#<up|down>#<step>#<segment>".
// Every write made while a run holds the lock goes in a transaction with a ConditionCheck on the
// lock item, so a run that lost its lease cannot change the record. Thread-safe as Client is.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/client.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

struct VersionRecord {
  std::int64_t version = 0;
  std::string name;
  std::string state;      // running | applied | failed (pending = no record)
  std::string direction;  // up | down
  std::string checksum;
  std::string started_at, updated_at, finished_at;  // ISO-8601 UTC
  std::string by;                                   // lock owner id of the last writer
  std::string error;                                // last failure, one line
  int step = 0;  // index of the step in progress (or the number done when applied)
  pipeline::Counters counters;
};

struct LockRecord {
  std::string owner;  // host:pid:nonce
  std::string host;
  std::int64_t pid = 0;
  std::string acquired_at;
  std::int64_t expires_at_ms = 0;
};

// Who writes: the owner id whose lock every write is conditioned on.
struct LockProof {
  std::string owner;
};

class StateTable {
 public:
  StateTable(dynamo::Client& client, std::string physical_name);

  const std::string& name() const { return name_; }
  bool exists() const;
  // Creates the table (on demand) when absent and waits until it is ACTIVE.
  void ensure();

  // Every version record, in one paged Query. Empty when the table does not exist.
  std::map<std::int64_t, VersionRecord> read_versions() const;
  // Every version record and the lock, in one paged Query (for `status`).
  struct History {
    std::map<std::int64_t, VersionRecord> versions;
    std::optional<LockRecord> lock;
  };
  History read_history() const;
  std::optional<LockRecord> read_lock() const;

  // Lock item writes (the lease uses them).
  // Put when absent or expired; false when another owner holds it.
  bool try_put_lock(const LockRecord& lock, std::int64_t now_ms);
  // Extends the expiry; false when the item is no longer ours. Throws Error on other failures.
  bool extend_lock(const std::string& owner, std::int64_t expires_at_ms);
  // Deletes the lock if `owner` holds it (empty owner: whoever holds it).
  bool delete_lock(const std::string& owner);

  // Version and checkpoint writes, each conditional on `proof` still holding an unexpired lock.
  // Throw StepFailed naming the lost lock when the condition fails.
  void put_version(const VersionRecord& record, const LockProof& proof);
  void delete_version(std::int64_t version, const LockProof& proof);
  void put_checkpoints(std::int64_t version, const std::string& direction, int step,
                       const std::vector<std::pair<pipeline::SegmentCheckpoint, int>>& checkpoints,
                       const LockProof& proof);
  std::optional<pipeline::RunCheckpoint> load_checkpoints(std::int64_t version,
                                                          const std::string& direction,
                                                          int step) const;
  // Removes every checkpoint of a version (after it completes, or when it starts afresh).
  void delete_checkpoints(std::int64_t version, const LockProof& proof);

 private:
  [[noreturn]] void read_failed(const dynamo::ServiceError& e, std::string_view what) const;
  dynamo::TransactAction lock_check(const LockProof& proof) const;
  void transact(std::vector<dynamo::TransactAction> actions, std::string_view what);
  std::vector<dynamo::Item> query(const std::string& condition, const std::string& a,
                                  const std::string& b) const;
  std::vector<dynamo::Item> query_prefix(const std::string& prefix) const;

  dynamo::Client& client_;
  std::string name_;
};

std::string version_sort_key(std::int64_t version);

}  // namespace dynamorph::migrations
