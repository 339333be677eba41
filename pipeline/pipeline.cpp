// The flow graph of one pipeline step (see pipeline.h for the contract):
//
//   requests ─▶ page_limiter ─▶ read_gateway ═(I/O or reader thread)═▶ process ─┬─▶ requests
//                    ▲                                          (next page)      │
//                    │                               write window ◀── writes ────┤
//                    │                  (outside the graph: sent, answered and   │
//                    │                   acknowledged on the I/O thread)          │
//                    └──────────── commit ◀── page complete ◀────────────────────┘
//                                  ack ─▶ reread_gateway ═▶ reprocess ─▶ writes
//
// The engine knows the three stage contracts only: a Source's partitions and their readers give
// the requests and parse the pages, the ItemProcessor runs where and the transforms, a Sink groups
// the decisions into writes, sends them and classifies the answers.
//
// Gateways are async_nodes: their bodies only hand the request to the client (or its timer, for
// throttling, or the reader thread, for local reads) and return; the completion puts the answer
// back into the graph. Writes do not pass through the graph (pipeline/write_window.h): their
// answers are acknowledged where they arrive, and only a completed page (or a re-read) goes back
// in, so that a TBB worker wakes once per page rather than once per write request. The page
// limiter, the byte budget and the write window bound what is in flight, so memory is
// O(in-flight). Commit is serial and orders pages per partition before saving a checkpoint.
#include "pipeline/pipeline.h"

#include <fmt/format.h>
#include <pthread.h>
#include <tbb/flow_graph.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "dynamo/clock.h"
#include "dynamo/errors.h"
#include "pipeline/rate_limiter.h"
#include "pipeline/write_meter.h"
#include "pipeline/write_window.h"
#include "stages/step_plan.h"

namespace dynamorph::pipeline {

namespace {

// Applies `f(mine, theirs)` to every counter of two Counters.
template <class F>
void each_counter(Counters& a, const Counters& b, F f) {
  for (const auto& field : kCounterFields) {
    if (field.count) {
      f(a.*field.count, b.*field.count);
    } else {
      f(a.*field.amount, b.*field.amount);
    }
  }
}

}  // namespace

Counters& Counters::operator+=(const Counters& o) {
  each_counter(*this, o, [](auto& x, auto y) { x += y; });
  return *this;
}

Counters& Counters::operator-=(const Counters& o) {
  each_counter(*this, o, [](auto& x, auto y) { x -= y; });
  return *this;
}

namespace {

namespace flow = tbb::flow;

void add_units(std::vector<double>& into, const std::vector<double>& units) {
  if (into.size() < units.size()) into.resize(units.size(), 0.0);
  for (std::size_t i = 0; i < units.size(); ++i) into[i] += units[i];
}
using dynamo::Item;
using stages::Decision;
using stages::WriteOp;

struct PageRequest {
  int partition = 0;
  std::int64_t seq = 0;
};

// One page from its answer to its commit. Counters are written by process (before any of the
// page's writes is sent) and then only by ack, one answer at a time; commit reads them after the
// last pending unit is released.
struct PageState {
  int partition = 0;
  std::int64_t seq = 0;
  std::optional<stages::ResumeToken>
      resume_token;             // where the partition goes on; nullopt: last page
  std::atomic<int> pending{1};  // writes + re-reads in flight, +1 while being processed
  std::atomic<bool> failed{false};
  // A write or re-read of it was not sent because the run was stopping: not a failure, but the
  // page is not fully written, so it is not checkpointed (a resumed run reads it again).
  std::atomic<bool> abandoned{false};
  bool ends_run = false;  // the partition stops here for this run (not done)
  std::int64_t bytes = 0;  // its response's size: held until it is committed (max_bytes_in_flight)
  Counters counters;
  double estimated_wcu = 0;
  std::vector<double> estimated_index_wcu;  // by the target's global index
  // Items skipped to the dead letters (on_item_error: skip), stored when the page commits.
  // Added by process, ack and the serial reprocess node, which may run at once.
  std::mutex dead_mutex;
  std::vector<DeadLetter> dead;
};
using PagePtr = std::shared_ptr<PageState>;

// A page as read: its bytes, or why it could not be read.
struct RawPage {
  PageRequest request;
  std::shared_ptr<stages::RawRead> read;  // null: failed with `error`
  std::string error;
};

struct WriteJob {
  PagePtr page;
  std::shared_ptr<WriteOp> op;
  bool reserved = false;  // its write capacity was reserved already (before its re-read)
};

struct WriteDone {
  PagePtr page;
  std::shared_ptr<WriteOp> op;
  std::shared_ptr<stages::WriteAnswer> answer;  // null: not sent, the run is stopping
};

struct ReRead {
  PagePtr page;
  Item scanned;  // what the failed write was based on
  int round = 0;
};

struct ReReadDone {
  ReRead job;
  std::shared_ptr<dynamo::Outcome<dynamo::RawResponse>> result;  // null: not sent, stopping
};

using ReadGateway = flow::async_node<PageRequest, RawPage>;
using ReReadGateway = flow::async_node<ReRead, ReReadDone>;
using ProcessNode = flow::multifunction_node<RawPage, std::tuple<PageRequest, PagePtr>>;
using ReprocessNode = flow::multifunction_node<ReReadDone, std::tuple<PagePtr>>;
using CommitNode = flow::multifunction_node<PagePtr, std::tuple<flow::continue_msg, PageRequest>>;

// Output ports, by name.
namespace process_port {
constexpr int next_page = 0, page_done = 1;
}
namespace reprocess_port {
constexpr int page_done = 0;
}
namespace commit_port {
constexpr int page_slot = 0, next_page = 1;  // next_page: sources with serial pages
}

// Runs sources' local reads (files, S3 objects): blocking I/O off the TBB workers and off the
// client's I/O thread. A few threads, so that several partitions read at once.
class LocalReader {
 public:
  explicit LocalReader(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        pthread_setname_np(pthread_self(), "dynamorph-read");
        loop();
      });
    }
  }
  ~LocalReader() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Workers' processor states, lent for one page at a time: each worker gets its own (a Lua VM, a
// scratch buffer), none is shared, and there are never more than pages processed at once.
class StatePool {
 public:
  explicit StatePool(const stages::ItemProcessor& p) : p_(p) {}
  std::unique_ptr<stages::ItemProcessor::LocalState> take() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        auto s = std::move(free_.back());
        free_.pop_back();
        return s;
      }
    }
    return p_.make_local_state();
  }
  void give_back(std::unique_ptr<stages::ItemProcessor::LocalState> s) {
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(s));
  }

 private:
  const stages::ItemProcessor& p_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<stages::ItemProcessor::LocalState>> free_;
};

// The last step of an answer: after it the run may end, and its graph (on run()'s stack) be
// gone. Its own function, so that tests/tsan.supp can name it: the order it relies on (the
// graph's wait_for_all() returns only after the last release_wait()) lives in libtbb's
// atomics, which ThreadSanitizer cannot see, while the header code inlined here reads the graph.
[[gnu::noinline]] void release_graph_wait(flow::graph& graph) { graph.release_wait(); }

class Run {
 public:
  Run(dynamo::Client& client, const stages::StepPlan& plan, const stages::StepSpec& spec,
      CheckpointStore& store, const RunOptions& options)
      : client_(client),
        plan_(plan),
        spec_(spec),
        source_(*plan.source),
        processor_(*plan.processor),
        sink_(*plan.sink),
        store_(store),
        options_(options),
        read_limiter_(options.max_rcu),
        write_limiter_(options.max_wcu),
        dry_(options.dry_run || !plan.sink->sends()),
        states_(processor_) {}

  RunResult run(int requested_partitions);

 private:
  // ---- bodies ------------------------------------------------------------------------------
  void send_read(const PageRequest& request, ReadGateway::gateway_type& gateway);
  void read_page(const PageRequest& request, ReadGateway::gateway_type& gateway);
  void process(const RawPage& raw, ProcessNode::output_ports_type& out);
  // The write path runs outside the graph (pipeline/write_window.h): write() queues a job,
  // send_write() sends it when it has a slot, answered() (on the I/O thread, or wherever the
  // job was abandoned) frees the slot and acknowledges it; only a completed page or a re-read
  // goes back into the graph, a resend back into the window. Every send the window makes runs
  // inside something the calling thread waits for: a graph task (process, reprocess), or an
  // answer whose reservation (graph::reserve_wait) is released only after it, so the run is
  // never torn down under a window still sending.
  void write(WriteJob job) { writes_->push(std::move(job)); }
  void send_write(WriteJob&& job);
  void answered(const WriteDone& done);
  void ack(const WriteDone& done);
  void send_reread(const ReRead& job, ReReadGateway::gateway_type& gateway);
  void reprocess(const ReReadDone& done, ReprocessNode::output_ports_type& out);
  void commit(const PagePtr& page, CommitNode::output_ports_type& out);

  void fail(const std::string& message);
  bool stopping() const { return failed_.load() || (options_.stop && options_.stop->load()); }
  // Stopping, or this partition's lease is no longer ours (RunOptions::partition_held).
  bool stopping(int partition) const {
    return stopping() || (options_.partition_held && !options_.partition_held(partition));
  }
  // No further page of this partition is to be read: stopping, or draining.
  bool reading_stopped(int partition) const {
    return stopping(partition) || (options_.drain && options_.drain->load());
  }
  // Applies RunOptions::capacity_share to the caps the run started with.
  void apply_capacity_share();
  // Runs `go` at `at` (on the client's timer when that is later), or `abandon` as soon as the
  // run is stopping: a wait for capacity is cut into short slices, so that a stop never waits
  // for a reservation far ahead, whatever the rate cap.
  void when(int partition, std::chrono::steady_clock::time_point at, std::function<void()> go,
            std::function<void()> abandon);
  // Releases one pending unit of a page; true when the page is complete.
  static bool release(const PagePtr& page) {
    return page->pending.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }
  void add_ops(const PagePtr& page, std::vector<WriteOp>& ops, std::vector<WriteJob>& jobs);
  // on_item_error: skip. Puts one item in its page's dead letters, or fails the run once more
  // than max_item_errors items were skipped.
  void dead_letter(const PagePtr& page, const Item& scanned, const std::string& reason);
  // An op the server rejected for something in its items, when the step skips bad items: each
  // of its scanned items goes through the step again and is written on its own (nothing of the
  // op was applied), so that only the items at fault end in the dead letters.
  void isolate(const PagePtr& page, const WriteOp& op, std::vector<WriteJob>& jobs);
  bool skipping() const { return spec_.on_item_error == stages::OnItemError::Skip; }
  void maybe_sample(const Item& before, const Decision& d);
  ProgressEvent snapshot(bool final);
  std::string where(int partition) const {
    return fmt::format("reading {} (partition {})", source_.describe(), partition);
  }

  dynamo::Client& client_;
  const stages::StepPlan& plan_;
  const stages::StepSpec& spec_;
  const stages::Source& source_;
  const stages::ItemProcessor& processor_;
  const stages::Sink& sink_;
  CheckpointStore& store_;
  const RunOptions& options_;
  RateLimiter read_limiter_, write_limiter_;
  WriteMeter write_meter_;
  bool dry_;
  StatePool states_;
  double share_ = 1;  // the capacity share last applied (main thread only)
  int total_partitions_ = 1;
  // One reader per partition; partition p's is used by one thread at a time (next() in
  // send_read, parse() in process, in page order).
  std::vector<std::unique_ptr<stages::PartitionReader>> readers_;
  // Made when a source first asks for a local read; declared after readers_ so that its
  // threads are joined before the readers their jobs use are destroyed.
  std::unique_ptr<LocalReader> local_reader_;
  std::once_flag local_reader_once_;

  // Set by run() once the graph is built: what the write path, outside the graph, talks to.
  flow::graph* graph_ = nullptr;
  CommitNode* commit_node_ = nullptr;
  ReReadGateway* reread_gateway_ = nullptr;
  std::unique_ptr<WriteWindow<WriteJob>> writes_;
  std::mutex ack_mutex_;  // acknowledgements one at a time (a page's counters, classify())

  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::string error_;
  std::atomic<std::int64_t> capacity_unreadable_{0};
  std::atomic<std::int64_t> dead_letters_{0};  // skipped items, earlier runs' included

  // Commit state (serial commit node only, snapshot under mutex for progress).
  struct PartitionTrack {
    SegmentCheckpoint checkpoint;
    std::map<std::int64_t, PagePtr> waiting;  // completed, not yet committable
    bool blocked = false;                     // an earlier page failed
  };
  std::vector<PartitionTrack> partitions_;
  mutable std::mutex progress_mutex_;
  Counters committed_;
  std::atomic<std::int64_t> scanned_live_{0};
  // Items acknowledged, counted per write request as its answer comes (a BatchWriteItem of 25,
  // an UpdateItem), so progress moves between page commits; checkpoints still count whole pages.
  std::atomic<std::int64_t> written_live_{0};
  std::atomic<std::int64_t> bytes_live_{0};
  std::atomic<int> partitions_done_{0};
  // Pages requested and not yet through commit (or dropped unsent). The calling thread sleeps
  // until it reaches zero instead of waiting inside wait_for_all(), where it would spin
  // (sched_yield) for the whole run: most of a run is waiting on the network.
  std::atomic<std::int64_t> pages_open_{0};
  std::mutex drained_mutex_;
  std::condition_variable drained_cv_;
  void page_opened() { pages_open_.fetch_add(1, std::memory_order_relaxed); }
  void page_closed() {
    if (pages_open_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(drained_mutex_);
      drained_cv_.notify_all();
    }
  }
  // RunOptions::max_bytes_in_flight. A page read is admitted while less than the budget is
  // held, and books an estimate (the mean page so far; 1 MiB, DynamoDB's largest page, before
  // the first) until its answer says how big it is (settle); its bytes are held until it is
  // committed. A read that finds no room waits in held_back_, in order, and is sent by the
  // commit (or settle) that makes room: every page booked is eventually committed or dropped,
  // so a held-back read never waits for nothing. One read per partition is outstanding at a
  // time, so the estimate booked is kept per partition.
  bool admit(const PageRequest& request, ReadGateway::gateway_type& gateway);
  void settle(int partition, std::int64_t bytes);  // the read's real size (0: not read)
  void unhold(std::int64_t bytes);                  // a page committed
  void make_room(std::unique_lock<std::mutex>& lock);
  void book(int partition);  // books a read's estimate; hold_mutex_ held
  std::mutex hold_mutex_;
  std::int64_t booked_ = 0;  // held bytes plus the estimates of reads not yet answered
  std::int64_t held_ = 0, peak_held_ = 0, held_back_count_ = 0;
  std::int64_t seen_bytes_ = 0, seen_pages_ = 0;
  std::vector<std::int64_t> estimate_booked_;  // by partition
  std::deque<std::pair<PageRequest, ReadGateway::gateway_type*>> held_back_;

  std::int64_t resumed_scanned_ = 0;  // from checkpoints: not part of this run's rates
  Counters resumed_;
  std::chrono::steady_clock::time_point start_;

  double estimated_wcu_ = 0;  // commit node only
  std::vector<double> estimated_index_wcu_;  // commit node only

  std::mutex sample_mutex_;
  std::vector<ChangeSample> samples_;
};

void Run::fail(const std::string& message) {
  std::lock_guard lock(error_mutex_);
  if (error_.empty()) error_ = message;
  failed_ = true;
}

void Run::send_read(const PageRequest& request, ReadGateway::gateway_type& gateway) {
  if (reading_stopped(request.partition)) {  // not sent: resumes from its checkpoint
    page_closed();
    return;
  }
  if (admit(request, gateway)) read_page(request, gateway);
}

bool Run::admit(const PageRequest& request, ReadGateway::gateway_type& gateway) {
  std::lock_guard lock(hold_mutex_);
  const std::int64_t budget = options_.max_bytes_in_flight;
  if (budget > 0 && booked_ >= budget) {
    gateway.reserve_wait();  // released once make_room() has read it
    held_back_.emplace_back(request, &gateway);
    ++held_back_count_;
    return false;
  }
  book(request.partition);
  return true;
}

void Run::book(int partition) {
  const std::int64_t estimate = seen_pages_ ? seen_bytes_ / seen_pages_ : std::int64_t{1} << 20;
  estimate_booked_[static_cast<std::size_t>(partition)] = estimate;
  booked_ += estimate;
}

void Run::settle(int partition, std::int64_t bytes) {
  std::unique_lock lock(hold_mutex_);
  std::int64_t& estimate = estimate_booked_[static_cast<std::size_t>(partition)];
  booked_ += bytes - estimate;
  estimate = 0;
  held_ += bytes;
  peak_held_ = std::max(peak_held_, held_);
  if (bytes > 0) {
    seen_bytes_ += bytes;
    ++seen_pages_;
  }
  make_room(lock);
}

void Run::unhold(std::int64_t bytes) {
  std::unique_lock lock(hold_mutex_);
  booked_ -= bytes;
  held_ -= bytes;
  make_room(lock);
}

void Run::make_room(std::unique_lock<std::mutex>& lock) {
  std::vector<std::pair<PageRequest, ReadGateway::gateway_type*>> ready;
  while (!held_back_.empty() && booked_ < options_.max_bytes_in_flight) {
    ready.push_back(held_back_.front());
    held_back_.pop_front();
    book(ready.back().first.partition);
  }
  lock.unlock();
  for (auto& [request, gateway] : ready) {
    read_page(request, *gateway);
    gateway->release_wait();
  }
}

void Run::read_page(const PageRequest& request, ReadGateway::gateway_type& gateway) {
  if (reading_stopped(request.partition)) {  // held back, and stopped meanwhile
    settle(request.partition, 0);
    page_closed();
    return;
  }
  stages::ReadRequest read = readers_[static_cast<std::size_t>(request.partition)]->next();
  gateway.reserve_wait();
  auto answer = [&gateway, request](RawPage raw) {
    raw.request = request;
    gateway.try_put(raw);
    gateway.release_wait();
  };
  if (read.local) {
    std::call_once(local_reader_once_, [this] {
      local_reader_ = std::make_unique<LocalReader>(std::min(4, total_partitions_));
    });
    local_reader_->post([answer, local = std::move(read.local)] {
      RawPage raw;
      try {
        raw.read = std::make_shared<stages::RawRead>(local());
      } catch (const std::exception& e) {
        raw.error = e.what();
      }
      answer(std::move(raw));
    });
    return;
  }
  auto go = [this, answer, op = std::move(read.operation), body = std::move(read.body)]() mutable {
    client_.call_async(op, std::move(body), [answer](dynamo::Outcome<dynamo::RawResponse> r) {
      RawPage raw;
      if (!r) {
        raw.error = r.error().to_string();
      } else {
        auto& v = r.value();
        raw.read = std::make_shared<stages::RawRead>(
            stages::RawRead{std::move(v.body), v.attempts, v.throttled});
      }
      answer(std::move(raw));
    });
  };
  auto at = source_.consumes_read_capacity() ? read_limiter_.reserve_estimated()
                                             : std::chrono::steady_clock::now();
  when(request.partition, at, std::move(go),
       [this, &gateway, partition = request.partition] {  // not sent: resumes from its checkpoint
         settle(partition, 0);
         page_closed();
         gateway.release_wait();
       });
}

void Run::when(int partition, std::chrono::steady_clock::time_point at, std::function<void()> go,
               std::function<void()> abandon) {
  constexpr auto kSlice = std::chrono::milliseconds(100);
  if (stopping(partition)) return abandon();
  auto now = std::chrono::steady_clock::now();
  if (at <= now) return go();
  client_.schedule(std::min(at, now + kSlice), [this, partition, at, go = std::move(go),
                                                abandon = std::move(abandon)]() mutable {
    when(partition, at, std::move(go), std::move(abandon));
  });
}

void Run::apply_capacity_share() {
  if (!options_.capacity_share) return;
  const double share = std::clamp(options_.capacity_share(), 1e-3, 1.0);
  if (share == share_) return;
  share_ = share;
  if (options_.max_rcu > 0) read_limiter_.set_cap(options_.max_rcu * share);
  if (options_.max_wcu > 0) write_limiter_.set_cap(options_.max_wcu * share);
}

void Run::maybe_sample(const Item& before, const Decision& d) {
  if (options_.sample_changes <= 0) return;
  std::lock_guard lock(sample_mutex_);
  if (static_cast<int>(samples_.size()) >= options_.sample_changes) return;
  ChangeSample s{before, std::nullopt};
  if (d.kind == Decision::Kind::Many) {
    for (const auto& item : d.items) samples_.push_back({before, item});
    return;
  }
  if (d.kind != Decision::Kind::Delete) s.after = d.new_item;
  samples_.push_back(std::move(s));
}

void Run::add_ops(const PagePtr& page, std::vector<WriteOp>& ops, std::vector<WriteJob>& jobs) {
  for (auto& op : ops) {
    page->counters.puts += op.puts;
    page->counters.updates += op.updates;
    page->counters.deletes += op.deletes;
    if (op.transaction()) ++page->counters.transactions;
    page->estimated_wcu += op.wcu_estimate;
    add_units(page->estimated_index_wcu, op.index_wcu);
    if (dry_) continue;
    page->pending.fetch_add(1, std::memory_order_relaxed);
    jobs.push_back({page, std::make_shared<WriteOp>(std::move(op))});
  }
  ops.clear();
}

void Run::dead_letter(const PagePtr& page, const Item& scanned, const std::string& reason) {
  {
    std::lock_guard lock(page->dead_mutex);
    page->dead.push_back(DeadLetter{processor_.source_key(scanned), scanned, reason});
    ++page->counters.dead_letters;
  }
  const std::int64_t total = dead_letters_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (spec_.max_item_errors > 0 && total > spec_.max_item_errors) {
    page->failed = true;
    fail(fmt::format("{}: {} items could not be written, more than max_item_errors {}; the "
                     "last: {}",
                     spec_.label, total, spec_.max_item_errors, reason));
  }
}

void Run::isolate(const PagePtr& page, const WriteOp& op, std::vector<WriteJob>& jobs) {
  auto state = states_.take();
  for (const Item& scanned : op.scanned) {
    Decision d = processor_.process(scanned, *state);
    if (d.kind == Decision::Kind::Error) {
      dead_letter(page, scanned, d.error);
      continue;
    }
    if (d.kind != Decision::Kind::Put && d.kind != Decision::Kind::Update &&
        d.kind != Decision::Kind::Delete && d.kind != Decision::Kind::Many)
      continue;  // counted when first planned; nothing to write now (a transform that changed)
    auto sink_state = sink_.make_page_state_at(stages::PageId{page->partition, page->seq});
    std::vector<WriteOp> ops;
    sink_state->add(scanned, std::move(d), ops, op.conflict_round);
    sink_state->flush(ops);
    // Counted already when first planned: only the writes themselves go out again.
    for (auto& one : ops) {
      page->pending.fetch_add(1, std::memory_order_relaxed);
      jobs.push_back(WriteJob{page, std::make_shared<WriteOp>(std::move(one))});
    }
  }
  states_.give_back(std::move(state));
}

void Run::process(const RawPage& raw, ProcessNode::output_ports_type& out) {
  auto page = std::make_shared<PageState>();
  page->partition = raw.request.partition;
  page->seq = raw.request.seq;
  page->bytes = raw.read ? static_cast<std::int64_t>(raw.read->body.size()) : 0;
  settle(page->partition, page->bytes);
  auto give_up = [&](const std::string& why) {
    fail(fmt::format("{}: {}", where(page->partition), why));
    page->failed = true;
    if (release(page)) std::get<process_port::page_done>(out).try_put(page);
  };
  if (!raw.read) return give_up(raw.error);
  const int throttled = raw.read->throttled, attempts = raw.read->attempts;
  stages::SourcePage parsed;
  try {
    parsed = readers_[static_cast<std::size_t>(page->partition)]->parse(std::move(*raw.read));
  } catch (const std::exception& ex) {
    return give_up(ex.what());
  }
  if (source_.consumes_read_capacity())
    read_limiter_.record_estimated(parsed.consumed_rcu, throttled > 0);
  page->resume_token = std::move(parsed.next);
  page->ends_run = parsed.ends_run && page->resume_token;
  page->counters.scanned = parsed.examined;
  page->counters.consumed_rcu = parsed.consumed_rcu;
  page->counters.retries = attempts - 1;
  scanned_live_.fetch_add(parsed.examined, std::memory_order_relaxed);
  if (options_.measure_bytes) {
    std::int64_t bytes = 0;
    for (const Item& item : parsed.items) bytes += static_cast<std::int64_t>(dynamo::item_size(item));
    bytes_live_.fetch_add(bytes, std::memory_order_relaxed);
  }

  // The next page of this partition is requested before this one is transformed, so reading
  // overlaps with CPU work and writing.
  if (page->resume_token && !page->ends_run && !reading_stopped(page->partition) &&
      !source_.serial_pages()) {
    page_opened();
    std::get<process_port::next_page>(out).try_put(PageRequest{page->partition, page->seq + 1});
  }

  auto state = states_.take();
  auto sink_state = sink_.make_page_state_at(stages::PageId{page->partition, page->seq});
  std::vector<WriteOp> ops;
  std::vector<WriteJob> jobs;
  Counters& c = page->counters;
  auto decide = [&](const Item& item, Decision&& d) {
    switch (d.kind) {
      case Decision::Kind::NotMatched: return;
      case Decision::Kind::Skipped:
        ++c.matched;
        ++c.skipped;
        return;
      case Decision::Kind::Unchanged:
        ++c.matched;
        ++c.skipped;
        return;
      case Decision::Kind::Error:
        ++c.matched;
        if (skipping()) return dead_letter(page, item, d.error);
        ++c.failed;
        page->failed = true;
        fail(d.error);
        return;
      default: break;
    }
    ++c.matched;
    maybe_sample(item, d);  // before the sink takes d's items
    sink_state->add(item, std::move(d), ops, 0);
  };
  for (const Item& item : parsed.items) decide(item, processor_.process(item, *state));
  for (const stages::Change& change : parsed.changes)
    decide(change.new_image ? *change.new_image : change.keys,
           processor_.process_change(change, *state));
  sink_state->flush(ops);
  states_.give_back(std::move(state));
  if (page->failed) {
    ops.clear();  // this page's writes never go out: the run stops before it is committed
  }
  add_ops(page, ops, jobs);
  for (auto& j : jobs) write(std::move(j));
  if (release(page)) std::get<process_port::page_done>(out).try_put(page);
}

void Run::send_write(WriteJob&& job) {
  if (graph_->is_cancelled()) {  // a node body threw: the run is over, nothing more is sent
    writes_->release();
    return;
  }
  graph_->reserve_wait();  // until answered(): wait_for_all() waits for the answer too
  auto at = job.reserved ? std::chrono::steady_clock::now()
                         : write_limiter_.reserve(job.op->wcu_estimate);
  // Runs here or, when capacity says later, on the I/O thread's timer: either way no exception
  // may leave it (the window and the transport's loop would be left mid-way).
  auto go = [this, job]() {
    job.op->meter = write_meter_.sample() || job.op->transaction();  // every request counted
    try {
      sink_.send(client_, *job.op, [this, job](stages::WriteAnswer a) {
        const double estimate = job.op->wcu_estimate;
        if (!a.error) {
          if (a.metered) {
            write_meter_.observe(estimate, a.consumed_wcu);
          } else {
            a.consumed_wcu = write_meter_.cost(estimate);  // not asked, or unreadable
          }
        }
        write_limiter_.record(estimate, a.error ? estimate : a.consumed_wcu, a.throttled > 0);
        answered(
            WriteDone{job.page, job.op, std::make_shared<stages::WriteAnswer>(std::move(a))});
      });
    } catch (const std::exception& e) {  // not sent: the run fails, the page is not committed
      fail(fmt::format("{}: sending a write: {}", spec_.label, e.what()));
      job.page->failed = true;
      answered(WriteDone{job.page, job.op, nullptr});
    }
  };
  when(job.page->partition, at, std::move(go), [this, job] {  // stopping: not sent
    answered(WriteDone{job.page, job.op, nullptr});
  });
}

void Run::answered(const WriteDone& done) {
  writes_->release();  // one write request fewer in flight: the next waiting one goes now
  ack(done);
  release_graph_wait(*graph_);
}

void Run::ack(const WriteDone& done) {
  const PagePtr& page = done.page;
  if (!done.answer) {
    page->abandoned = true;
    if (release(page)) commit_node_->try_put(page);
    return;
  }
  std::vector<WriteJob> jobs;
  std::vector<ReRead> rereads;
  try {
    std::lock_guard lock(ack_mutex_);
    const WriteOp& op = *done.op;
    const stages::WriteAnswer& a = *done.answer;
    Counters& c = page->counters;
    c.retries += std::max(0, a.attempts - 1);
    if (!a.error) c.consumed_wcu += a.consumed_wcu;
    if (a.capacity_unreadable) capacity_unreadable_.fetch_add(1, std::memory_order_relaxed);
    stages::Verdict v = sink_.classify(op, a, options_.max_conflict_retries);
    if (!v.error.empty() && v.item_rejected && skipping()) {
      if (op.scanned.size() == 1) {
        dead_letter(page, op.scanned.front(), v.error);
      } else {
        isolate(page, op, jobs);
      }
      v.error.clear();
      v.failed = 0;
    }
    c.written += v.written;
    written_live_.fetch_add(v.written, std::memory_order_relaxed);
    c.conflicts += v.conflicts;
    c.failed += v.failed;
    c.retries += v.retries;
    for (int i : v.reread) {
      page->pending.fetch_add(1, std::memory_order_relaxed);
      rereads.push_back(
          ReRead{page, op.scanned[static_cast<std::size_t>(i)], op.conflict_round + 1});
    }
    if (v.resend) {
      page->pending.fetch_add(1, std::memory_order_relaxed);
      jobs.push_back(WriteJob{page, std::make_shared<WriteOp>(std::move(*v.resend))});
    }
    if (!v.error.empty()) {
      page->failed = true;
      fail(v.error);
    }
  } catch (const std::exception& e) {  // what was queued above still goes out and comes back
    page->failed = true;
    fail(fmt::format("{}: acknowledging a write: {}", spec_.label, e.what()));
  }
  for (auto& j : jobs) write(std::move(j));
  for (auto& r : rereads) reread_gateway_->try_put(std::move(r));
  if (release(page)) commit_node_->try_put(page);
}

void Run::send_reread(const ReRead& job, ReReadGateway::gateway_type& gateway) {
  gateway.reserve_wait();
  // The write that follows the re-read is paid for now, and the read waits for the capacity
  // instead of the write: under a rate cap the item is then read right before it is written,
  // and another writer has the least time to change it again.
  auto at = write_limiter_.reserve(stages::write_units(job.scanned));
  auto go = [this, &gateway, job] {
    stages::ReadRequest r = sink_.reread(job.scanned);
    client_.call_async(
        r.operation, std::move(r.body), [&gateway, job](dynamo::Outcome<dynamo::RawResponse> r) {
          gateway.try_put(ReReadDone{
              job, std::make_shared<dynamo::Outcome<dynamo::RawResponse>>(std::move(r))});
          gateway.release_wait();
        });
  };
  when(job.page->partition, at, std::move(go), [&gateway, job] {  // stopping: not re-read
    gateway.try_put(ReReadDone{job, nullptr});
    gateway.release_wait();
  });
}

void Run::reprocess(const ReReadDone& done, ReprocessNode::output_ports_type& out) {
  const PagePtr& page = done.job.page;
  if (!done.result) {
    page->abandoned = true;
    if (release(page)) std::get<reprocess_port::page_done>(out).try_put(page);
    return;
  }
  auto& r = *done.result;
  std::optional<Item> now;
  if (r) {
    try {
      now = sink_.parse_reread(r.value().body);
    } catch (const std::exception& e) {
      page->failed = true;
      fail(fmt::format("re-reading item {} after a conflict: {}",
                       dynamo::to_debug_string(processor_.source_key(done.job.scanned)), e.what()));
    }
  } else {
    page->failed = true;
    fail(fmt::format("re-reading item {} after a conflict: {}",
                     dynamo::to_debug_string(processor_.source_key(done.job.scanned)),
                     r.error().to_string()));
  }
  if (now) {
    // The item as it is now goes through the step again (it may no longer match, or be done).
    auto state = states_.take();
    Decision d = processor_.process(*now, *state);
    states_.give_back(std::move(state));
    if (d.kind == Decision::Kind::Error) {
      if (skipping()) {
        dead_letter(page, *now, d.error);
      } else {
        page->failed = true;
        fail(d.error);
      }
    } else if (d.kind == Decision::Kind::Put || d.kind == Decision::Kind::Update ||
               d.kind == Decision::Kind::Delete || d.kind == Decision::Kind::Many) {
      auto sink_state = sink_.make_page_state_at(stages::PageId{page->partition, page->seq});
      std::vector<WriteOp> ops;
      sink_state->add(*now, std::move(d), ops, done.job.round);
      sink_state->flush(ops);
      // Counted already when first planned: only the writes themselves go out again.
      for (auto& op : ops) {
        page->pending.fetch_add(1, std::memory_order_relaxed);
        write(WriteJob{page, std::make_shared<WriteOp>(std::move(op)), true});
      }
    }
  }  // else: deleted meanwhile, nothing left to do
  if (release(page)) std::get<reprocess_port::page_done>(out).try_put(page);
}

void Run::commit(const PagePtr& page, CommitNode::output_ports_type& out) {
  struct Closer {  // whatever happens below, this page is through
    Run* run;
    ~Closer() { run->page_closed(); }
  } closer{this};
  unhold(page->bytes);
  PartitionTrack& track = partitions_[static_cast<std::size_t>(page->partition)];
  track.waiting.emplace(page->seq, page);
  // Commit every page that is next in order; a failed or abandoned page blocks its partition.
  while (!track.blocked) {
    auto it = track.waiting.find(track.checkpoint.pages);
    if (it == track.waiting.end()) break;
    PagePtr p = it->second;
    track.waiting.erase(it);
    std::get<commit_port::page_slot>(out).try_put(
        flow::continue_msg());  // one page fewer in flight
    if (p->failed || p->abandoned ||
        (options_.partition_held && !options_.partition_held(p->partition))) {
      track.blocked = true;  // a lost lease: its new owner commits from the last checkpoint
      break;
    }
    // Durable before the checkpoint that covers them (DeadLetterStore).
    if (!p->dead.empty() && options_.dead_letters && !dry_) {
      try {
        options_.dead_letters->append(p->dead);
      } catch (const std::exception& e) {
        fail(fmt::format("{}: storing {} dead letters: {}", spec_.label, p->dead.size(), e.what()));
        track.blocked = true;
        break;
      }
    }
    track.checkpoint.pages = p->seq + 1;
    track.checkpoint.resume_token = p->resume_token;
    track.checkpoint.done = !p->resume_token;
    if (track.checkpoint.done || p->ends_run)
      partitions_done_.fetch_add(1, std::memory_order_relaxed);
    track.checkpoint.counters += p->counters;
    {
      std::lock_guard lock(progress_mutex_);
      committed_ += p->counters;
    }
    estimated_wcu_ += p->estimated_wcu;
    add_units(estimated_index_wcu_, p->estimated_index_wcu);
    if (!dry_) store_.save(track.checkpoint, total_partitions_);
    // Serial pages: the partition's next page is read now that this one is written.
    if (source_.serial_pages() && p->resume_token && !p->ends_run &&
        !reading_stopped(p->partition)) {
      page_opened();
      std::get<commit_port::next_page>(out).try_put(PageRequest{p->partition, p->seq + 1});
    }
  }
  // A blocked partition's later pages are never committed: their slots go back now, or pages of
  // the other partitions (a worker's, whose leases are still held) would wait for them forever.
  if (track.blocked) {
    for (std::size_t i = 0; i < track.waiting.size(); ++i)
      std::get<commit_port::page_slot>(out).try_put(flow::continue_msg());
    track.waiting.clear();
  }
}

ProgressEvent Run::snapshot(bool final) {
  ProgressEvent e;
  {
    std::lock_guard lock(progress_mutex_);
    e.counters = committed_;
  }
  // Live progress counts pages read but not yet committed; the final figures are what the
  // checkpoints hold, so that a resumed run continues exactly from them.
  if (!final) {
    e.counters.scanned = std::max(e.counters.scanned, scanned_live_.load());
    e.counters.written = std::max(e.counters.written, written_live_.load());
  }
  e.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  e.items_per_s = e.elapsed_s > 0
                      ? static_cast<double>(scanned_live_.load() - resumed_scanned_) / e.elapsed_s
                      : 0;
  e.rcu_per_s =
      e.elapsed_s > 0 ? (e.counters.consumed_rcu - resumed_.consumed_rcu) / e.elapsed_s : 0;
  e.wcu_per_s =
      e.elapsed_s > 0 ? (e.counters.consumed_wcu - resumed_.consumed_wcu) / e.elapsed_s : 0;
  e.table_items = source_.estimated_items();
  e.item_bytes = bytes_live_.load(std::memory_order_relaxed);
  e.segments_total = total_partitions_;
  e.segments_done = partitions_done_.load(std::memory_order_relaxed);
  e.resumed = resumed_;
  e.lag_s = source_.lag_s();
  e.final = final;
  return e;
}

RunResult Run::run(int requested_partitions) {
  auto loaded = store_.load();
  Counters resumed;
  if (loaded && loaded->total_segments > 0) {
    total_partitions_ =
        loaded->total_segments;  // checkpoints belong to the count they started with
  } else {
    total_partitions_ = std::max(1, source_.partitions(requested_partitions));
  }
  partitions_.resize(static_cast<std::size_t>(total_partitions_));
  for (int s = 0; s < total_partitions_; ++s)
    partitions_[static_cast<std::size_t>(s)].checkpoint.segment = s;
  if (!options_.only_partitions.empty()) {
    for (auto& t : partitions_) t.checkpoint.done = true;
    for (int p : options_.only_partitions) {
      if (p >= 0 && p < total_partitions_)
        partitions_[static_cast<std::size_t>(p)].checkpoint.done = false;
    }
  }
  if (loaded) {
    for (const auto& cp : loaded->segments) {
      if (cp.segment < 0 || cp.segment >= total_partitions_) continue;
      partitions_[static_cast<std::size_t>(cp.segment)].checkpoint = cp;
      resumed += cp.counters;
    }
  }
  readers_.resize(static_cast<std::size_t>(total_partitions_));
  estimate_booked_.assign(static_cast<std::size_t>(total_partitions_), 0);
  for (const auto& t : partitions_) {
    if (!t.checkpoint.done) {
      readers_[static_cast<std::size_t>(t.checkpoint.segment)] =
          source_.open(t.checkpoint.segment, total_partitions_, t.checkpoint.resume_token);
    }
  }
  committed_ = resumed;
  resumed_ = resumed;
  resumed_scanned_ = resumed.scanned;
  scanned_live_ = resumed.scanned;
  written_live_ = resumed.written;
  dead_letters_ = resumed.dead_letters;
  for (const auto& t : partitions_) partitions_done_ += t.checkpoint.done;

  int max_pages =
      options_.max_pages_in_flight > 0 ? options_.max_pages_in_flight : 2 * total_partitions_;
  max_pages = std::max(max_pages, 1);
  int max_writes = std::max(1, options_.max_writes_in_flight);

  flow::graph g;
  flow::queue_node<PageRequest> requests(g);
  flow::limiter_node<PageRequest> page_limiter(g, static_cast<std::size_t>(max_pages));
  ReadGateway read_gateway(
      g, flow::unlimited,
      [this](const PageRequest& r, ReadGateway::gateway_type& gw) { send_read(r, gw); });
  ProcessNode process_node(g, flow::unlimited,
                           [this](const RawPage& raw, auto& out) { process(raw, out); });
  ReReadGateway reread_gateway(
      g, flow::unlimited,
      [this](const ReRead& r, ReReadGateway::gateway_type& gw) { send_reread(r, gw); });
  ReprocessNode reprocess_node(g, flow::serial,
                               [this](const ReReadDone& d, auto& out) { reprocess(d, out); });
  CommitNode commit_node(g, flow::serial, [this](const PagePtr& p, auto& out) { commit(p, out); });
  graph_ = &g;
  commit_node_ = &commit_node;
  reread_gateway_ = &reread_gateway;
  writes_ = std::make_unique<WriteWindow<WriteJob>>(
      static_cast<std::size_t>(max_writes), [this](WriteJob&& j) { send_write(std::move(j)); });

  flow::make_edge(requests, page_limiter);
  flow::make_edge(page_limiter, read_gateway);
  flow::make_edge(read_gateway, process_node);
  flow::make_edge(flow::output_port<process_port::next_page>(process_node), requests);
  flow::make_edge(flow::output_port<process_port::page_done>(process_node), commit_node);
  flow::make_edge(reread_gateway, reprocess_node);
  flow::make_edge(flow::output_port<reprocess_port::page_done>(reprocess_node), commit_node);
  flow::make_edge(flow::output_port<commit_port::page_slot>(commit_node),
                  page_limiter.decrementer());
  flow::make_edge(flow::output_port<commit_port::next_page>(commit_node), requests);

  start_ = std::chrono::steady_clock::now();
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool finished = false;
  std::thread reporter;
  if (options_.progress) {
    reporter = std::thread([&] {
      std::unique_lock lock(done_mutex);
      while (!done_cv.wait_for(lock, std::chrono::seconds(1), [&] { return finished; })) {
        options_.progress(snapshot(false));
      }
    });
  }

  apply_capacity_share();
  for (const auto& track : partitions_) {
    const auto& cp = track.checkpoint;
    if (cp.done) continue;
    page_opened();
    requests.try_put(PageRequest{cp.segment, cp.pages});
  }
  {
    std::unique_lock lock(drained_mutex_);
    // A node body that throws cancels the graph: then wait_for_all() below rethrows.
    while (!drained_cv_.wait_for(lock, std::chrono::milliseconds(200), [this] {
      return pages_open_.load(std::memory_order_acquire) == 0;
    })) {
      if (g.is_cancelled()) break;
      apply_capacity_share();
    }
  }
  std::exception_ptr crashed;
  try {
    g.wait_for_all();  // only stragglers (limiter decrements) are left by now
  } catch (...) {
    crashed = std::current_exception();  // a node body threw: rethrown after cleanup below
  }
  {
    std::lock_guard lock(done_mutex);
    finished = true;
  }
  done_cv.notify_all();
  if (reporter.joinable()) reporter.join();
  local_reader_.reset();
  if (!dry_) store_.flush();
  if (crashed) std::rethrow_exception(crashed);

  RunResult result;
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  ProgressEvent last = snapshot(true);
  result.counters = last.counters;
  result.item_bytes = last.item_bytes;
  for (const auto& t : partitions_) result.partition_counters.push_back(t.checkpoint.counters);
  result.samples = std::move(samples_);
  result.estimated_wcu = estimated_wcu_;
  result.write_requests = write_meter_.requests();
  result.metered_write_requests = write_meter_.metered();
  {
    std::lock_guard lock(hold_mutex_);
    result.peak_bytes_in_flight = peak_held_;
    result.reads_held_back = held_back_count_;
  }
  const auto& indexes = processor_.target().global_indexes;
  for (std::size_t i = 0; i < estimated_index_wcu_.size() && i < indexes.size(); ++i)
    result.estimated_index_wcu.emplace_back(indexes[i].name, estimated_index_wcu_[i]);
  result.warnings = plan_.warnings;
  if (auto n = capacity_unreadable_.load()) {
    result.warnings.push_back(
        fmt::format("{} write answers had no readable ConsumedCapacity: their WCU are "
                    "estimated from the item sizes",
                    n));
  }
  if (failed_) {
    result.status = RunResult::Status::Failed;
    result.error = error_;
  } else if (last.segments_done < total_partitions_) {
    result.status = RunResult::Status::Stopped;
  }
  if (options_.progress) options_.progress(last);
  return result;
}

}  // namespace

RunResult run_pipeline(dynamo::Client& client, const stages::StepSpec& spec,
                       CheckpointStore& checkpoints, const RunOptions& options) {
  RunOptions effective = options;
  if (effective.now_iso.empty()) effective.now_iso = dynamo::now_iso();
  stages::StepPlan plan = stages::plan_step(
      client, spec,
      stages::PlanOptions{options.version, effective.now_iso, options.default_page_size});
  if (options.wrap_sink) plan.sink = options.wrap_sink(std::move(plan.sink));

  if (options.capacity_percent > 0) {
    // On-demand tables have no provisioned figure to take a share of: the limiter starts
    // unlimited there and adapts to throttling.
    const auto& read = plan.source->table();
    if (read && read->provisioned && plan.source->consumes_read_capacity() && options.max_rcu <= 0)
      effective.max_rcu =
          static_cast<double>(read->provisioned->read) * options.capacity_percent / 100.0;
    if (plan.target.provisioned && options.max_wcu <= 0)
      effective.max_wcu =
          static_cast<double>(plan.target.provisioned->write) * options.capacity_percent / 100.0;
  }
  int requested = spec.source.segments > 0 ? spec.source.segments : options.segments;
  Run run(client, plan, spec, checkpoints, effective);
  return run.run(requested);
}

}  // namespace dynamorph::pipeline
