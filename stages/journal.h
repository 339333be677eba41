// The before-image journal (DESIGN.md "journal"): what a pipeline step changed, one record per
// changed item of the target table (its key, the item as scanned before the change, a hash of
// the item written), in gzip'd JSON lines, one file per page of a partition. Here: the records,
// their hash, their file names, and the store the files live in (a local folder or
// s3://bucket/prefix). The sink wrapper that writes them is journal_sink.h; `down` and the tests
// read them back.
//
// Threading: the functions are pure and thread-safe. A JournalStore is thread-safe; its calls
// block on disk or network, so they run on the journal's writer threads or the main thread,
// never on a TBB worker or the client's I/O thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/requests.h"

namespace dynamorph::dynamo {
class Client;
}

namespace dynamorph::stages {

// A hash of an item that ignores the order of its attributes and of its sets' members (numbers
// are canonical text already): 32 hex digits of its SHA-256.
std::string item_hash(const dynamo::Item& item);

// An item's key as text, in the table's key order ("pk value|sk value"): a map key for
// comparing items of one table (journal restores, verify).
std::string key_text(const dynamo::TableDescription& table, const dynamo::Item& item);

// One changed item of the target table.
struct JournalRecord {
  dynamo::Item key;                    // the target table's key of the item
  std::optional<dynamo::Item> before;  // as scanned before the change; nullopt: it did not exist
  std::optional<std::string> after;    // item_hash of what was written; nullopt: it was deleted
};

// A record as pointers into the items it is made from, so that writing one copies no item.
struct JournalRecordView {
  const dynamo::Item& key;
  const dynamo::Item* before;  // null: it did not exist
  const std::string* after;    // null: it was deleted
};

// One line, '\n' included:
// {"k":{"M":key},"b":{"M":item}|{"NULL":true},"a":{"S":hash}|{"NULL":true}} (DynamoDB JSON, so that
// one codec reads every byte dynamorph keeps).
void append_record(std::string& out, const JournalRecordView& record);
void append_record(std::string& out, const JournalRecord& record);
// Throws dynamorph::Error naming what is wrong.
JournalRecord parse_record(std::string_view line);
// Every record of a file's text (decompressed); `what` names the file in errors ("file:line").
std::vector<JournalRecord> parse_records(std::string_view text, std::string_view what);

std::string gzip_compress(std::string_view text);
// Throws dynamorph::Error naming `what` on corrupt or truncated data.
std::string gzip_decompress(std::string_view bytes, std::string_view what);

// The folder of one step of one run of a version, relative to the journal's root:
// "<version>/<epoch>/step-<NN>/" where epoch tells this run of `up` from an earlier one of the
// same version (made from the version record's start time) and NN is the 1-based index of the
// step in `up`.
std::string journal_step_prefix(std::int64_t version, std::string_view started_at, int step);
// "<step prefix>seg-<SSSSS>/<run>-p<seq, 12 digits>-<n, 8 digits>.jsonl.gz": the records of page
// `seq` of partition `segment`, written by run `run` (a name that sorts by the run's start
// time) as its n-th file. Within a partition, names sort in the order their records were made:
// a resumed run's files after the earlier run's, whatever pages they hold.
std::string journal_file_name(std::string_view step_prefix, int segment, std::int64_t seq,
                              std::string_view run, std::int64_t n);
struct JournalFileName {
  int segment = 0;
  std::int64_t seq = 0;
};
// A name relative to the step prefix ("seg-00003/p…"); nullopt for other files (step.json).
std::optional<JournalFileName> parse_journal_file_name(std::string_view relative);
// The step's manifest: written before its first record, so that `down` knows the step had a
// journal even when it changed nothing.
inline constexpr std::string_view kJournalManifest = "step.json";

// Where the files live. put() is durable when it returns.
class JournalStore {
 public:
  virtual ~JournalStore() = default;
  // A local folder (created when missing) or s3://bucket/prefix, whose S3 client takes the
  // region and credentials of `client`. Throws UsageError for a malformed s3:// URL.
  static std::shared_ptr<JournalStore> open(const std::string& location, dynamo::Client& client);

  // Local: written beside, fsynced, renamed into place, folder fsynced. S3: an acknowledged
  // PutObject. Replaces an object of the same name. Throws dynamorph::Error.
  virtual void put(const std::string& name, std::string bytes) = 0;
  // Every name under `prefix` (relative to the root), sorted.
  virtual std::vector<std::string> list(const std::string& prefix) = 0;
  // nullopt: no such file.
  virtual std::optional<std::string> get(const std::string& name) = 0;
  virtual std::string describe() const = 0;  // the location, for messages
};

}  // namespace dynamorph::stages
