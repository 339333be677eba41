#include "stages/journal_sink.h"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::stages {
namespace {

// One page's file on its way to the store; the ops of the page wait for it.
struct PendingFile {
  std::mutex mutex;
  bool stored = false;
  std::string error;  // set: it could not be stored
  std::vector<std::function<void()>> waiting;

  // Runs `f` now if the file is stored (or failed), else once it is.
  void when_stored(std::function<void()> f) {
    {
      std::lock_guard lock(mutex);
      if (!stored) {
        waiting.push_back(std::move(f));
        return;
      }
    }
    f();
  }
  void finish(std::string why) {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard lock(mutex);
      stored = true;
      error = std::move(why);
      run.swap(waiting);
    }
    for (auto& f : run) f();
  }
  std::string failure() {
    std::lock_guard lock(mutex);
    return error;
  }
};

constexpr std::string_view kJournalFailed = "JournalWriteFailed";

// Threads that store files, in the order handed to them per thread.
class JournalWriter {
 public:
  JournalWriter(std::shared_ptr<JournalStore> store, int threads) : store_(std::move(store)) {
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { loop(); });
  }
  ~JournalWriter() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::string name, std::string bytes, std::shared_ptr<PendingFile> file) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(Job{std::move(name), std::move(bytes), std::move(file)});
    }
    cv_.notify_one();
  }

 private:
  struct Job {
    std::string name, bytes;
    std::shared_ptr<PendingFile> file;
  };
  void loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and every file handed over is stored
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      std::string error;
      try {
        store_->put(job.name, std::move(job.bytes));
      } catch (const std::exception& e) {
        error = e.what();
      }
      job.file->finish(std::move(error));
      lock.lock();
    }
  }
  std::shared_ptr<JournalStore> store_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

std::string signature(const JournalRecordView& r) {
  std::string s;
  dynamo::write_item(s, r.key);
  s += '|';
  s += r.before ? item_hash(*r.before) : "-";
  s += '|';
  s += r.after ? *r.after : "-";
  return s;
}

std::string signature(const JournalRecord& r) {
  return signature(
      JournalRecordView{r.key, r.before ? &*r.before : nullptr, r.after ? &*r.after : nullptr});
}

std::string run_name() {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::random_device rd;
  return fmt::format("{:013}{:04x}", ms, rd() & 0xffff);
}

class JournalSink;

class JournalPageState final : public SinkState {
 public:
  JournalPageState(const JournalSink& sink, std::unique_ptr<SinkState> inner, PageId page)
      : sink_(sink), inner_(std::move(inner)), page_(page) {}
  void add(const dynamo::Item& scanned, Decision&& decision, std::vector<WriteOp>& out,
           int conflict_round) override;
  void flush(std::vector<WriteOp>& out) override;

 private:
  const JournalSink& sink_;
  std::unique_ptr<SinkState> inner_;
  PageId page_;
  std::vector<WriteOp> held_;  // the page's ops, sent out by flush() with the page's file
  std::string text_;           // the page's records
  std::int64_t records_ = 0;
};

class JournalSink final : public Sink {
 public:
  JournalSink(std::unique_ptr<Sink> inner, JournalTarget target)
      : Sink(inner->processor()),
        inner_(std::move(inner)),
        target_(std::move(target)),
        run_(run_name()) {
    if (!target_.stats) target_.stats = std::make_shared<JournalStats>();
    if (!target_.store) return;
    read_uncommitted();
    std::string manifest;
    dynamo::Item m;
    m.set("table", processor_.target_table());
    m.set("copy", !processor_.same_table());
    m.set("run", run_);
    dynamo::write_item(manifest, m);
    manifest += '\n';
    target_.store->put(target_.step_prefix + std::string(kJournalManifest), std::move(manifest));
    writer_ = std::make_unique<JournalWriter>(target_.store, target_.writer_threads);
  }

  std::unique_ptr<SinkState> make_page_state() const override {
    return make_page_state_at(PageId{});
  }
  std::unique_ptr<SinkState> make_page_state_at(const PageId& page) const override {
    return std::make_unique<JournalPageState>(*this, inner_->make_page_state_at(page), page);
  }
  bool sends() const override { return inner_->sends(); }

  void send(dynamo::Client& client, WriteOp& op,
            std::function<void(WriteAnswer)> done) const override {
    auto file = std::static_pointer_cast<PendingFile>(op.wrapper_state);
    if (!file) return inner_->send(client, op, std::move(done));
    // The op (owned by the pipeline until `done` runs) is sent by whoever sees the file stored.
    file->when_stored([this, &client, &op, file, done = std::move(done)]() mutable {
      std::string why = file->failure();
      if (!why.empty()) {
        WriteAnswer a;
        a.error = std::make_shared<dynamo::ServiceError>();
        a.error->operation = "journal";
        a.error->type = std::string(kJournalFailed);
        a.error->message = std::move(why);
        a.error->http_status = -1;
        done(std::move(a));
        return;
      }
      inner_->send(client, op, std::move(done));
    });
  }

  Verdict classify(const WriteOp& op, const WriteAnswer& answer, int max_rounds) const override {
    if (answer.error && answer.error->type == kJournalFailed) {
      Verdict v;
      v.failed = op.item_count;
      v.error = fmt::format(
          "the journal could not keep the before-images, so nothing of this page "
          "was written: {}",
          answer.error->message);
      return v;
    }
    return inner_->classify(op, answer, max_rounds);
  }
  ReadRequest reread(const dynamo::Item& scanned) const override { return inner_->reread(scanned); }
  std::optional<dynamo::Item> parse_reread(const std::string& body) const override {
    return inner_->parse_reread(body);
  }

  // Called by a page state's flush(): counts the page's records and, with a store, hands them
  // over; returns the file the page's ops wait for (null: nothing to wait for).
  std::shared_ptr<PendingFile> submit(const PageId& page, const std::string& text,
                                      std::int64_t records) const {
    std::string bytes = gzip_compress(text);
    target_.stats->records += records;
    target_.stats->bytes += static_cast<std::int64_t>(bytes.size());
    target_.stats->files += 1;
    if (!writer_) return nullptr;
    auto file = std::make_shared<PendingFile>();
    writer_->post(journal_file_name(target_.step_prefix, page.partition, page.seq, run_,
                                    files_.fetch_add(1, std::memory_order_relaxed)),
                  std::move(bytes), file);
    return file;
  }
  // True when a resumed run's record was written already by the run before it.
  bool written_before(const PageId& page, const JournalRecordView& r) const {
    if (uncommitted_.empty()) return false;
    auto it = uncommitted_.find(page.partition);
    if (it == uncommitted_.end() || !it->second.contains(signature(r))) return false;
    target_.stats->deduplicated += 1;
    return true;
  }

 private:
  // The records of every page the checkpoints do not cover yet.
  void read_uncommitted() {
    for (const auto& name : target_.store->list(target_.step_prefix)) {
      auto f = parse_journal_file_name(std::string_view(name).substr(target_.step_prefix.size()));
      if (!f) continue;
      auto c = target_.committed_pages.find(f->segment);
      if (c != target_.committed_pages.end() && f->seq < c->second) continue;
      auto bytes = target_.store->get(name);
      if (!bytes) continue;
      const std::string what = fmt::format("{}/{}", target_.store->describe(), name);
      for (const auto& r : parse_records(gzip_decompress(*bytes, what), what))
        uncommitted_[f->segment].insert(signature(r));
    }
  }

  std::unique_ptr<Sink> inner_;
  JournalTarget target_;
  std::string run_;
  std::map<int, std::set<std::string>> uncommitted_;
  mutable std::atomic<std::int64_t> files_{0};
  std::unique_ptr<JournalWriter> writer_;  // last: its threads stop first
};

void JournalPageState::add(const dynamo::Item& scanned, Decision&& decision,
                           std::vector<WriteOp>& out, int conflict_round) {
  (void)out;  // the page's ops leave with its file, in flush()
  journal_records(sink_.processor(), scanned, decision, [this](const JournalRecordView& r) {
    if (sink_.written_before(page_, r)) return;
    append_record(text_, r);
    ++records_;
  });
  inner_->add(scanned, std::move(decision), held_, conflict_round);
}

void JournalPageState::flush(std::vector<WriteOp>& out) {
  inner_->flush(held_);
  std::shared_ptr<PendingFile> file;
  if (records_ > 0) file = sink_.submit(page_, text_, records_);
  for (auto& op : held_) {
    if (file) op.wrapper_state = file;
    out.push_back(std::move(op));
  }
  held_.clear();
  text_.clear();
  records_ = 0;
}

}  // namespace

void journal_records(const ItemProcessor& p, const dynamo::Item& scanned, const Decision& d,
                     const std::function<void(const JournalRecordView&)>& record) {
  const bool in_place = p.same_table();
  const dynamo::Item none;
  auto written = [&](const dynamo::Item& item, bool same_key) {
    const auto key = p.target_key(item);
    const std::string hash = item_hash(item);
    record(JournalRecordView{key ? *key : none, in_place && same_key ? &scanned : nullptr, &hash});
  };
  auto deleted_old = [&] {
    const auto key = p.target_key(scanned);
    record(JournalRecordView{key ? *key : none, in_place ? &scanned : nullptr, nullptr});
  };
  switch (d.kind) {
    case Decision::Kind::Put:
    case Decision::Kind::Update:
      written(d.new_item, !d.key_changed);
      if (d.key_changed) deleted_old();
      break;
    case Decision::Kind::Delete: deleted_old(); break;
    case Decision::Kind::Many: {
      for (const auto& item : d.items) written(item, p.same_target_key(item, scanned));
      if (d.key_changed) deleted_old();
      break;
    }
    default: break;
  }
}

SinkWrapper journal_sink_wrapper(JournalTarget target) {
  return [target = std::move(target)](std::unique_ptr<Sink> inner) -> std::unique_ptr<Sink> {
    return std::make_unique<JournalSink>(std::move(inner), target);
  };
}

}  // namespace dynamorph::stages
