// CheckpointStore implementations that need no server: a local file (tests, ad-hoc runs) and
// nothing at all (dry runs, benchmarks). The file is rewritten whole (temp file + rename) on
// every save, so a crash at any moment leaves either the old or the new version.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "pipeline/pipeline.h"

namespace dynamorph::pipeline {
namespace {

constexpr const char* kHeader = "dynamorph-checkpoint 1";

class FileStore : public CheckpointStore {
 public:
  explicit FileStore(std::string path) : path_(std::move(path)) {}

  std::optional<RunCheckpoint> load() override {
    std::ifstream in(path_);
    if (!in) return std::nullopt;
    std::string line;
    if (!std::getline(in, line) || line != kHeader) {
      throw Error(fmt::format("{}:1: not a dynamorph checkpoint file", path_));
    }
    RunCheckpoint run;
    int line_no = 1;
    std::lock_guard lock(mutex_);
    while (std::getline(in, line)) {
      ++line_no;
      if (line.empty()) continue;
      std::istringstream fields(line);
      std::string word;
      fields >> word;
      if (word == "total_segments") {
        fields >> run.total_segments;
        continue;
      }
      SegmentCheckpoint cp;
      Counters& c = cp.counters;
      int done = 0;
      std::string key;
      if (!(fields >> cp.segment >> cp.pages >> done >> c.scanned >> c.matched >> c.written >> c.skipped >>
            c.conflicts >> c.failed >> c.retries >> c.consumed_rcu >> c.consumed_wcu >> c.puts >> c.updates >>
            c.deletes >> c.transactions)) {
        throw Error(fmt::format("{}:{}: malformed checkpoint line", path_, line_no));
      }
      cp.done = done != 0;
      std::getline(fields >> std::ws, key);
      // The token is base64 (opaque bytes); "-" is no token.
      if (!key.empty() && key != "-") {
        cp.resume_token.emplace();
        if (!dynamo::base64_decode(*cp.resume_token, key))
          throw Error(fmt::format("{}:{}: malformed resume token", path_, line_no));
      }
      segments_[cp.segment] = cp;
      run.segments.push_back(std::move(cp));
    }
    total_segments_ = run.total_segments;
    return run;
  }

  void save(const SegmentCheckpoint& checkpoint, int total_segments) override {
    std::lock_guard lock(mutex_);
    segments_[checkpoint.segment] = checkpoint;
    total_segments_ = total_segments;
    std::string text = fmt::format("{}\ntotal_segments {}\n", kHeader, total_segments_);
    for (const auto& [s, cp] : segments_) {
      const Counters& c = cp.counters;
      text += fmt::format("segment {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} ", cp.segment, cp.pages,
                          cp.done ? 1 : 0, c.scanned, c.matched, c.written, c.skipped, c.conflicts, c.failed,
                          c.retries, c.consumed_rcu, c.consumed_wcu, c.puts, c.updates, c.deletes, c.transactions);
      if (cp.resume_token) {
        dynamo::base64_encode(text, *cp.resume_token);
      } else {
        text += "-";
      }
      text += "\n";
    }
    std::string tmp = path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << text;
      if (!out.flush()) throw Error(fmt::format("cannot write checkpoint file {}", tmp));
    }
    // Resume tokens hold key values of the table: the owner's only, whatever the umask.
    std::error_code ec;
    std::filesystem::permissions(tmp, std::filesystem::perms::owner_read |
                                          std::filesystem::perms::owner_write, ec);
    if (ec) throw Error(fmt::format("cannot restrict checkpoint file {}: {}", tmp, ec.message()));
    if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
      throw Error(fmt::format("cannot replace checkpoint file {}", path_));
    }
  }

  void flush() override {}

 private:
  std::string path_;
  std::mutex mutex_;
  std::map<int, SegmentCheckpoint> segments_;
  int total_segments_ = 0;
};

class NullStore : public CheckpointStore {
 public:
  std::optional<RunCheckpoint> load() override { return std::nullopt; }
  void save(const SegmentCheckpoint&, int) override {}
  void flush() override {}
};

}  // namespace

std::unique_ptr<CheckpointStore> file_checkpoint_store(std::string path) {
  return std::make_unique<FileStore>(std::move(path));
}

std::unique_ptr<CheckpointStore> null_checkpoint_store() { return std::make_unique<NullStore>(); }

}  // namespace dynamorph::pipeline
