// Dead letters: the items a step with `on_item_error: skip` could not write, kept per version
// in the project folder, .dynamorph/dead-letters/<version>.jsonl, one JSON object per line:
//
//   {"step":1,"key":{"pk":{"S":"a"}},"reason":"item {pk: a}: …","item":{…as read…},"at":"…"}
//
// `step` is the step's 1-based position in `up`. A line is appended (and fsynced) before the
// checkpoint of its page is saved, so after a crash the page is read again and its items may be
// appended again: readers keep one record per (step, key), the last. A torn last line (a crash
// mid-append) is ignored by readers and cut by the next writer. The folder is 0700 and the files
// 0600: they hold whole items. Main thread, except DeadLetterFile::append (the commit node).
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"
#include "pipeline/pipeline.h"

namespace dynamorph::migrations {

struct Config;

struct DeadLetterRecord {
  int step = 0;  // 1-based, in `up`
  dynamo::Item key;
  dynamo::Item item;
  std::string reason;
  std::string at;  // ISO-8601 UTC
};

// <the config file's folder, or .>/.dynamorph/dead-letters/<version>.jsonl
std::filesystem::path dead_letter_file(const Config& config, std::int64_t version);

// The file's records, one per (step, key), in the order first written; none when it does not
// exist. Throws UsageError naming file:line for a line that is not a record (other than a torn
// last one).
std::vector<DeadLetterRecord> read_dead_letters(const std::filesystem::path& file);

// The file exists, or a retry of it left a checkpoint (dead_letter_retry.h).
bool has_dead_letter_work(const std::filesystem::path& file);

// Replaces the file's records at once (a temporary file, fsync, rename); no records: removes it.
void write_dead_letters(const std::filesystem::path& file,
                        const std::vector<DeadLetterRecord>& records);

// One step's appender (pipeline::DeadLetterStore). Keys already in the file for this step are
// not appended again.
class DeadLetterFile final : public pipeline::DeadLetterStore {
 public:
  DeadLetterFile(std::filesystem::path file, int step);
  void append(const std::vector<pipeline::DeadLetter>& letters) override;
  const std::filesystem::path& path() const { return file_; }

 private:
  void open_once();  // reads the keys already there and cuts a torn last line

  std::filesystem::path file_;
  int step_;
  std::mutex mutex_;
  bool opened_ = false;
  std::set<std::string> known_;  // this step's keys in the file, serialized
};

}  // namespace dynamorph::migrations
