// The flow graph of one pipeline step (see pipeline.h for the contract):
//
//   requests ─▶ page_limiter ─▶ scan_gateway ═(I/O thread)═▶ process ─┬─▶ requests (next page)
//                    ▲                                                ├─▶ writes ─▶ write_limiter ─▶ write_gateway ═▶ ack
//                    └──────────────── commit ◀── page complete ◀─────┴───────────────────────────────────────────┘
//                                                                     ack ─▶ reread_gateway ═▶ reprocess ─▶ writes
//
// Gateways are async_nodes: their bodies only hand the request to the client (or its timer, for
// throttling) and return; the client's completion callback puts the answer back into the graph.
// Limiters bound pages in flight (request to commit) and write requests in flight, so memory is
// O(in-flight). Commit is serial and orders pages per segment before saving a checkpoint.
#include "pipeline/pipeline.h"

#include <fmt/format.h>
#include <tbb/flow_graph.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "pipeline/rate_limiter.h"
#include "stages/item_processor.h"
#include "stages/write_builder.h"

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
using dynamo::Item;
using dynamo::Outcome;
using dynamo::RawResponse;
using dynamo::ServiceError;
using stages::Decision;
using stages::WriteOp;

std::string iso_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

struct PageRequest {
  int segment = 0;
  std::int64_t seq = 0;
  std::optional<Item> start_key;
};

// One page from its response to its commit. Counters are written by process (before any of the
// page's writes is sent) and then only by the serial ack/reprocess nodes; commit reads them
// after the last pending unit is released.
struct PageState {
  int segment = 0;
  std::int64_t seq = 0;
  std::optional<Item> resume_key;  // this page's LastEvaluatedKey; nullopt: last page
  std::atomic<int> pending{1};     // writes + re-reads in flight, +1 while being processed
  std::atomic<bool> failed{false};
  Counters counters;
  double estimated_wcu = 0;
};
using PagePtr = std::shared_ptr<PageState>;

struct RawPage {
  PageRequest request;
  std::shared_ptr<Outcome<RawResponse>> result;
};

struct WriteJob {
  PagePtr page;
  std::shared_ptr<WriteOp> op;
};

struct WriteDone {
  PagePtr page;
  std::shared_ptr<WriteOp> op;
  std::shared_ptr<ServiceError> error;  // null: success
  double consumed = 0;
  int throttled = 0;
  int attempts = 1;
};

struct ReRead {
  PagePtr page;
  Item scanned;  // what the failed write was based on
  int round = 0;
};

struct ReReadDone {
  ReRead job;
  std::shared_ptr<Outcome<std::optional<Item>>> result;
};

using ScanGateway = flow::async_node<PageRequest, RawPage>;
using WriteGateway = flow::async_node<WriteJob, WriteDone>;
using ReReadGateway = flow::async_node<ReRead, ReReadDone>;

class Run {
 public:
  Run(dynamo::Client& client, const stages::StepSpec& spec, CheckpointStore& store, const RunOptions& options,
      const stages::ItemProcessor& processor, std::int64_t table_items)
      : client_(client),
        spec_(spec),
        store_(store),
        options_(options),
        processor_(processor),
        table_items_(table_items),
        read_limiter_(options.max_rcu),
        write_limiter_(options.max_wcu),
        dry_(options.dry_run || spec.write.mode == stages::WriteMode::None) {
    ctx_.now_iso = options.now_iso.empty() ? iso_now() : options.now_iso;
  }

  RunResult run();

 private:
  // ---- bodies ------------------------------------------------------------------------------
  void send_scan(const PageRequest& request, ScanGateway::gateway_type& gateway);
  void process(const RawPage& raw, flow::multifunction_node<RawPage, std::tuple<PageRequest, WriteJob, PagePtr>>::output_ports_type& out);
  void send_write(const WriteJob& job, WriteGateway::gateway_type& gateway);
  void ack(const WriteDone& done, flow::multifunction_node<WriteDone, std::tuple<flow::continue_msg, PagePtr, ReRead, WriteJob>>::output_ports_type& out);
  void send_reread(const ReRead& job, ReReadGateway::gateway_type& gateway);
  void reprocess(const ReReadDone& done, flow::multifunction_node<ReReadDone, std::tuple<WriteJob, PagePtr>>::output_ports_type& out);
  void commit(const PagePtr& page, flow::multifunction_node<PagePtr, std::tuple<flow::continue_msg>>::output_ports_type& out);

  void fail(const std::string& message);
  bool stopping() const { return failed_.load() || (options_.stop && options_.stop->load()); }
  // Releases one pending unit of a page; true when the page is complete.
  static bool release(const PagePtr& page) { return page->pending.fetch_sub(1, std::memory_order_acq_rel) == 1; }
  void add_ops(const PagePtr& page, std::vector<WriteOp>& ops, std::vector<WriteJob>& jobs);
  void maybe_sample(const Item& before, const Decision& d);
  ProgressEvent snapshot(bool final);

  dynamo::Client& client_;
  const stages::StepSpec& spec_;
  CheckpointStore& store_;
  const RunOptions& options_;
  const stages::ItemProcessor& processor_;
  std::int64_t table_items_;
  RateLimiter read_limiter_, write_limiter_;
  bool dry_;
  dynamo::expr::EvalContext ctx_;
  int total_segments_ = 1;
  bool query_ = false;
  int page_size_ = 0;  // Limit per Scan/Query

  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::string error_;

  // Commit state (serial commit node only, snapshot under mutex for progress).
  struct SegmentTrack {
    SegmentCheckpoint checkpoint;
    std::map<std::int64_t, PagePtr> waiting;  // completed, not yet committable
    bool blocked = false;                     // an earlier page failed
  };
  std::vector<SegmentTrack> segments_;
  mutable std::mutex progress_mutex_;
  Counters committed_;
  std::atomic<std::int64_t> scanned_live_{0};
  std::atomic<int> segments_done_{0};
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
  std::int64_t resumed_scanned_ = 0;  // from checkpoints: not part of this run's rates
  Counters resumed_;
  std::chrono::steady_clock::time_point start_;

  double estimated_wcu_ = 0;  // commit node only

  std::mutex sample_mutex_;
  std::vector<ChangeSample> samples_;
};

// A transaction cancelled only because of a concurrent transaction or throttling (no failed
// condition): nothing was applied and trying again is right.
bool transient_cancel(const ServiceError& e) {
  if (e.type != "TransactionCanceledException" || e.cancellation_reasons.empty()) return false;
  for (const auto& r : e.cancellation_reasons) {
    if (r != "None" && r != "TransactionConflict" && r != "ThrottlingError" &&
        r != "ProvisionedThroughputExceeded") {
      return false;
    }
  }
  return true;
}

void Run::fail(const std::string& message) {
  std::lock_guard lock(error_mutex_);
  if (error_.empty()) error_ = message;
  failed_ = true;
}

void Run::send_scan(const PageRequest& request, ScanGateway::gateway_type& gateway) {
  if (stopping()) {  // not sent: the segment resumes from its last checkpoint
    page_closed();
    return;
  }
  std::string body;
  if (query_) {
    dynamo::QueryRequest q;
    q.table = spec_.source.table;
    q.index = spec_.source.index;
    q.key_condition = processor_.key_condition();
    q.filter = processor_.server_filter();
    q.limit = page_size_;
    q.exclusive_start_key = request.start_key;
    q.consistent_read = spec_.source.consistent_read;
    q.scan_forward = spec_.source.scan_forward;
    dynamo::write_query(body, q);
  } else {
    dynamo::ScanRequest s;
    s.table = spec_.source.table;
    s.index = spec_.source.index;
    s.segment = request.segment;
    s.total_segments = total_segments_;
    s.filter = processor_.server_filter();
    s.limit = page_size_;
    s.exclusive_start_key = request.start_key;
    s.consistent_read = spec_.source.consistent_read;
    dynamo::write_scan(body, s);
  }
  gateway.reserve_wait();
  auto at = read_limiter_.reserve(0);
  auto go = [this, &gateway, request, body = std::move(body), op = query_ ? "Query" : "Scan"]() mutable {
    client_.call_async(op, std::move(body), [this, &gateway, request](Outcome<RawResponse> r) {
      RawPage raw{request, std::make_shared<Outcome<RawResponse>>(std::move(r))};
      gateway.try_put(raw);
      gateway.release_wait();
    });
  };
  if (at <= std::chrono::steady_clock::now()) {
    go();
  } else {
    client_.schedule(at, std::move(go));
  }
}

void Run::maybe_sample(const Item& before, const Decision& d) {
  if (options_.sample_changes <= 0) return;
  std::lock_guard lock(sample_mutex_);
  if (static_cast<int>(samples_.size()) >= options_.sample_changes) return;
  ChangeSample s{before, std::nullopt};
  if (d.kind != Decision::Kind::Delete) s.after = d.new_item;
  samples_.push_back(std::move(s));
}

void Run::add_ops(const PagePtr& page, std::vector<WriteOp>& ops, std::vector<WriteJob>& jobs) {
  for (auto& op : ops) {
    page->counters.puts += op.puts;
    page->counters.updates += op.updates;
    page->counters.deletes += op.deletes;
    if (op.kind == WriteOp::Kind::Transact) ++page->counters.transactions;
    page->estimated_wcu += op.wcu_estimate;
    if (dry_) continue;
    page->pending.fetch_add(1, std::memory_order_relaxed);
    jobs.push_back({page, std::make_shared<WriteOp>(std::move(op))});
  }
  ops.clear();
}

void Run::process(const RawPage& raw,
                  flow::multifunction_node<RawPage, std::tuple<PageRequest, WriteJob, PagePtr>>::output_ports_type& out) {
  auto& result = *raw.result;
  auto page = std::make_shared<PageState>();
  page->segment = raw.request.segment;
  page->seq = raw.request.seq;
  if (!result) {
    fail(fmt::format("reading '{}' (segment {}): {}", spec_.source.table, raw.request.segment, result.error().to_string()));
    page->failed = true;
    if (release(page)) std::get<2>(out).try_put(page);
    return;
  }
  dynamo::Page parsed;
  try {
    parsed = dynamo::parse_page(result.value().body);
  } catch (const std::exception& ex) {
    fail(fmt::format("reading '{}' (segment {}): {}", spec_.source.table, raw.request.segment, ex.what()));
    page->failed = true;
    if (release(page)) std::get<2>(out).try_put(page);
    return;
  }
  read_limiter_.record(0, parsed.consumed_capacity, result.value().throttled > 0);
  page->resume_key = parsed.last_evaluated_key;
  page->counters.scanned = parsed.scanned_count;
  page->counters.consumed_rcu = parsed.consumed_capacity;
  page->counters.retries = result.value().attempts - 1;
  scanned_live_.fetch_add(parsed.scanned_count, std::memory_order_relaxed);

  // The next page of this segment is requested before this one is transformed, so reading
  // overlaps with CPU work and writing.
  if (parsed.last_evaluated_key && !stopping()) {
    page_opened();
    std::get<0>(out).try_put(PageRequest{raw.request.segment, raw.request.seq + 1, parsed.last_evaluated_key});
  }

  stages::WriteBuilder builder(processor_);
  std::vector<WriteOp> ops;
  std::vector<WriteJob> jobs;
  Counters& c = page->counters;
  for (const Item& item : parsed.items) {
    Decision d = processor_.process(item, ctx_);
    switch (d.kind) {
      case Decision::Kind::NotMatched: continue;
      case Decision::Kind::Skipped: ++c.matched; ++c.skipped; continue;
      case Decision::Kind::Unchanged: ++c.matched; ++c.skipped; continue;
      case Decision::Kind::Error:
        ++c.matched;
        ++c.failed;
        page->failed = true;
        fail(d.error);
        continue;
      default: break;
    }
    ++c.matched;
    maybe_sample(item, d);  // before the builder takes d's new item
    builder.add(item, std::move(d), ops);
  }
  builder.flush(ops);
  if (page->failed) {
    ops.clear();  // this page's writes never go out: the run stops before it is committed
  }
  add_ops(page, ops, jobs);
  for (auto& j : jobs) std::get<1>(out).try_put(j);
  if (release(page)) std::get<2>(out).try_put(page);
}

void Run::send_write(const WriteJob& job, WriteGateway::gateway_type& gateway) {
  gateway.reserve_wait();
  auto at = write_limiter_.reserve(job.op->wcu_estimate);
  auto finish = [this, &gateway, job](std::shared_ptr<ServiceError> error, double consumed, int throttled, int attempts) {
    write_limiter_.record(job.op->wcu_estimate, error ? job.op->wcu_estimate : consumed, throttled > 0);
    gateway.try_put(WriteDone{job.page, job.op, std::move(error), consumed, throttled, attempts});
    gateway.release_wait();
  };
  auto single = [finish](Outcome<RawResponse> r) {
    if (!r) return finish(std::make_shared<ServiceError>(std::move(r.error())), 0, 0, r.error().attempts);
    double consumed = 0;
    try {
      consumed = dynamo::parse_consumed_total(r.value().body);
    } catch (const std::exception&) {
    }
    finish(nullptr, consumed, r.value().throttled, r.value().attempts);
  };
  auto go = [this, job, finish, single]() {
    WriteOp& op = *job.op;
    std::string body;
    switch (op.kind) {
      case WriteOp::Kind::Batch:
        // The entries are not needed after sending: a failed batch stops the run, it is never
        // rebuilt from them.
        client_.batch_write_async(std::move(op.batch), [finish](Outcome<dynamo::BatchWriteSummary> r) {
          if (!r) return finish(std::make_shared<ServiceError>(std::move(r.error())), 0, 0, r.error().attempts);
          finish(nullptr, r.value().consumed_capacity, r.value().throttled, r.value().requests);
        });
        return;
      case WriteOp::Kind::Update:
        dynamo::write_update_item(body, op.update);
        client_.call_async("UpdateItem", std::move(body), single);
        return;
      case WriteOp::Kind::Put:
        dynamo::write_put_item(body, op.put);
        client_.call_async("PutItem", std::move(body), single);
        return;
      case WriteOp::Kind::Delete:
        dynamo::write_delete_item(body, op.del);
        client_.call_async("DeleteItem", std::move(body), single);
        return;
      case WriteOp::Kind::Transact:
        client_.transact_write_async(op.actions, {}, [finish](Outcome<double> r) {
          if (!r) return finish(std::make_shared<ServiceError>(std::move(r.error())), 0, 0, r.error().attempts);
          finish(nullptr, r.value(), 0, 1);
        });
        return;
    }
  };
  if (at <= std::chrono::steady_clock::now()) {
    go();
  } else {
    client_.schedule(at, go);
  }
}

void Run::ack(const WriteDone& done,
              flow::multifunction_node<WriteDone, std::tuple<flow::continue_msg, PagePtr, ReRead, WriteJob>>::output_ports_type& out) {
  std::get<0>(out).try_put(flow::continue_msg());  // one write request fewer in flight
  const PagePtr& page = done.page;
  const WriteOp& op = *done.op;
  Counters& c = page->counters;
  c.retries += std::max(0, done.attempts - 1);
  if (!done.error) {
    c.written += op.items();
    c.consumed_wcu += done.consumed;
  } else if (done.error->conditional_check_failed()) {
    // A guard failed: somebody changed the item since it was scanned. Re-read and redo the
    // items concerned; in a cancelled transaction the others are simply sent again.
    std::vector<bool> conflicted(op.scanned.size(), op.kind != WriteOp::Kind::Transact);
    if (op.kind == WriteOp::Kind::Transact) {
      const auto& reasons = done.error->cancellation_reasons;
      for (std::size_t i = 0; i < reasons.size() && i < op.action_owner.size(); ++i) {
        if (reasons[i] == "ConditionalCheckFailed") conflicted[static_cast<std::size_t>(op.action_owner[i])] = true;
      }
    }
    WriteOp resend = op;
    resend.actions.clear();
    resend.action_owner.clear();
    resend.scanned.clear();
    resend.puts = resend.updates = resend.deletes = resend.item_count = 0;
    for (std::size_t i = 0; i < op.scanned.size(); ++i) {
      if (conflicted[i]) {
        ++c.conflicts;
        if (op.conflict_round >= options_.max_conflict_retries) {
          ++c.failed;
          page->failed = true;
          fail(fmt::format("item {}: still conflicting after {} re-reads (the item keeps changing)",
                           dynamo::to_debug_string(processor_.source_key(op.scanned[i])), op.conflict_round));
          continue;
        }
        page->pending.fetch_add(1, std::memory_order_relaxed);
        std::get<2>(out).try_put(ReRead{page, op.scanned[i], op.conflict_round + 1});
      } else {
        int owner = static_cast<int>(resend.scanned.size());
        resend.scanned.push_back(op.scanned[i]);
        ++resend.item_count;
        for (std::size_t a = 0; a < op.actions.size(); ++a) {
          if (op.action_owner[a] != static_cast<int>(i)) continue;
          resend.actions.push_back(op.actions[a]);
          resend.action_owner.push_back(owner);
        }
      }
    }
    if (!resend.actions.empty()) {
      page->pending.fetch_add(1, std::memory_order_relaxed);
      std::get<3>(out).try_put(WriteJob{page, std::make_shared<WriteOp>(std::move(resend))});
    }
  } else if (transient_cancel(*done.error) && op.conflict_round < options_.max_conflict_retries) {
    // Cancelled for another transaction in flight on the same item, or capacity: nothing of it
    // was applied, so the same actions go again (a new token: it is a new attempt).
    ++c.retries;
    WriteOp again = op;
    ++again.conflict_round;
    page->pending.fetch_add(1, std::memory_order_relaxed);
    std::get<3>(out).try_put(WriteJob{page, std::make_shared<WriteOp>(std::move(again))});
  } else {
    c.failed += op.items();
    page->failed = true;
    fail(fmt::format("writing to '{}': {}", processor_.target_table(), done.error->to_string()));
  }
  if (release(page)) std::get<1>(out).try_put(page);
}

void Run::send_reread(const ReRead& job, ReReadGateway::gateway_type& gateway) {
  gateway.reserve_wait();
  dynamo::GetItemRequest g{spec_.source.table, processor_.source_key(job.scanned), true};
  std::string body;
  dynamo::write_get_item(body, g);
  client_.call_async("GetItem", std::move(body), [&gateway, job](Outcome<RawResponse> r) {
    std::shared_ptr<Outcome<std::optional<Item>>> result;
    if (!r) {
      result = std::make_shared<Outcome<std::optional<Item>>>(std::move(r.error()));
    } else {
      result = std::make_shared<Outcome<std::optional<Item>>>(dynamo::parse_get_item(r.value().body));
    }
    gateway.try_put(ReReadDone{job, std::move(result)});
    gateway.release_wait();
  });
}

void Run::reprocess(const ReReadDone& done,
                    flow::multifunction_node<ReReadDone, std::tuple<WriteJob, PagePtr>>::output_ports_type& out) {
  const PagePtr& page = done.job.page;
  auto& r = *done.result;
  if (!r) {
    page->failed = true;
    fail(fmt::format("re-reading item {} after a conflict: {}",
                     dynamo::to_debug_string(processor_.source_key(done.job.scanned)), r.error().to_string()));
  } else if (r.value()) {
    // The item as it is now goes through the step again (it may no longer match, or be done).
    Decision d = processor_.process(*r.value(), ctx_);
    if (d.kind == Decision::Kind::Error) {
      page->failed = true;
      fail(d.error);
    } else if (d.kind == Decision::Kind::Put || d.kind == Decision::Kind::Update || d.kind == Decision::Kind::Delete) {
      stages::WriteBuilder builder(processor_);
      std::vector<WriteOp> ops;
      std::vector<WriteJob> jobs;
      builder.add(*r.value(), std::move(d), ops, done.job.round);
      builder.flush(ops);
      // Counted already when first planned: only the writes themselves go out again.
      for (auto& op : ops) {
        page->pending.fetch_add(1, std::memory_order_relaxed);
        jobs.push_back({page, std::make_shared<WriteOp>(std::move(op))});
      }
      for (auto& j : jobs) std::get<0>(out).try_put(j);
    }
  }  // else: deleted meanwhile, nothing left to do
  if (release(page)) std::get<1>(out).try_put(page);
}

void Run::commit(const PagePtr& page, flow::multifunction_node<PagePtr, std::tuple<flow::continue_msg>>::output_ports_type& out) {
  struct Closer {  // whatever happens below, this page is through
    Run* run;
    ~Closer() { run->page_closed(); }
  } closer{this};
  SegmentTrack& track = segments_[static_cast<std::size_t>(page->segment)];
  track.waiting.emplace(page->seq, page);
  // Commit every page that is next in order; a failed page blocks its segment for good.
  while (!track.blocked) {
    auto it = track.waiting.find(track.checkpoint.pages);
    if (it == track.waiting.end()) break;
    PagePtr p = it->second;
    track.waiting.erase(it);
    std::get<0>(out).try_put(flow::continue_msg());  // one page fewer in flight
    if (p->failed) {
      track.blocked = true;
      break;
    }
    track.checkpoint.pages = p->seq + 1;
    track.checkpoint.resume_key = p->resume_key;
    track.checkpoint.done = !p->resume_key;
    if (track.checkpoint.done) segments_done_.fetch_add(1, std::memory_order_relaxed);
    track.checkpoint.counters += p->counters;
    {
      std::lock_guard lock(progress_mutex_);
      committed_ += p->counters;
    }
    estimated_wcu_ += p->estimated_wcu;
    if (!dry_) store_.save(track.checkpoint, total_segments_);
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
  if (!final) e.counters.scanned = std::max(e.counters.scanned, scanned_live_.load());
  e.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  e.items_per_s = e.elapsed_s > 0 ? static_cast<double>(scanned_live_.load() - resumed_scanned_) / e.elapsed_s : 0;
  e.rcu_per_s = e.elapsed_s > 0 ? (e.counters.consumed_rcu - resumed_.consumed_rcu) / e.elapsed_s : 0;
  e.wcu_per_s = e.elapsed_s > 0 ? (e.counters.consumed_wcu - resumed_.consumed_wcu) / e.elapsed_s : 0;
  e.table_items = table_items_;
  e.segments_total = total_segments_;
  e.segments_done = segments_done_.load(std::memory_order_relaxed);
  e.final = final;
  return e;
}

RunResult Run::run() {
  query_ = !spec_.source.query_key.empty();
  page_size_ = spec_.source.page_size > 0 ? spec_.source.page_size : options_.default_page_size;
  auto loaded = store_.load();
  Counters resumed;
  if (loaded && loaded->total_segments > 0) {
    total_segments_ = loaded->total_segments;  // checkpoints belong to the count they started with
  } else {
    total_segments_ = query_ ? 1 : std::max(1, spec_.source.segments > 0 ? spec_.source.segments : options_.segments);
  }
  segments_.resize(static_cast<std::size_t>(total_segments_));
  for (int s = 0; s < total_segments_; ++s) segments_[static_cast<std::size_t>(s)].checkpoint.segment = s;
  if (loaded) {
    for (const auto& cp : loaded->segments) {
      if (cp.segment < 0 || cp.segment >= total_segments_) continue;
      segments_[static_cast<std::size_t>(cp.segment)].checkpoint = cp;
      resumed += cp.counters;
    }
  }
  committed_ = resumed;
  resumed_ = resumed;
  resumed_scanned_ = resumed.scanned;
  scanned_live_ = resumed.scanned;
  for (const auto& t : segments_) segments_done_ += t.checkpoint.done;

  int max_pages = options_.max_pages_in_flight > 0 ? options_.max_pages_in_flight : 2 * total_segments_;
  max_pages = std::max(max_pages, 1);
  int max_writes = std::max(1, options_.max_writes_in_flight);

  flow::graph g;
  flow::queue_node<PageRequest> requests(g);
  flow::limiter_node<PageRequest> page_limiter(g, static_cast<std::size_t>(max_pages));
  ScanGateway scan_gateway(g, flow::unlimited, [this](const PageRequest& r, ScanGateway::gateway_type& gw) { send_scan(r, gw); });
  flow::multifunction_node<RawPage, std::tuple<PageRequest, WriteJob, PagePtr>> process_node(
      g, flow::unlimited, [this](const RawPage& raw, auto& out) { process(raw, out); });
  flow::queue_node<WriteJob> writes(g);
  flow::limiter_node<WriteJob> write_limiter(g, static_cast<std::size_t>(max_writes));
  WriteGateway write_gateway(g, flow::unlimited, [this](const WriteJob& j, WriteGateway::gateway_type& gw) { send_write(j, gw); });
  flow::multifunction_node<WriteDone, std::tuple<flow::continue_msg, PagePtr, ReRead, WriteJob>> ack_node(
      g, flow::serial, [this](const WriteDone& d, auto& out) { ack(d, out); });
  ReReadGateway reread_gateway(g, flow::unlimited, [this](const ReRead& r, ReReadGateway::gateway_type& gw) { send_reread(r, gw); });
  flow::multifunction_node<ReReadDone, std::tuple<WriteJob, PagePtr>> reprocess_node(
      g, flow::serial, [this](const ReReadDone& d, auto& out) { reprocess(d, out); });
  flow::multifunction_node<PagePtr, std::tuple<flow::continue_msg>> commit_node(
      g, flow::serial, [this](const PagePtr& p, auto& out) { commit(p, out); });

  flow::make_edge(requests, page_limiter);
  flow::make_edge(page_limiter, scan_gateway);
  flow::make_edge(scan_gateway, process_node);
  flow::make_edge(flow::output_port<0>(process_node), requests);
  flow::make_edge(flow::output_port<1>(process_node), writes);
  flow::make_edge(flow::output_port<2>(process_node), commit_node);
  flow::make_edge(writes, write_limiter);
  flow::make_edge(write_limiter, write_gateway);
  flow::make_edge(write_gateway, ack_node);
  flow::make_edge(flow::output_port<0>(ack_node), write_limiter.decrementer());
  flow::make_edge(flow::output_port<1>(ack_node), commit_node);
  flow::make_edge(flow::output_port<2>(ack_node), reread_gateway);
  flow::make_edge(flow::output_port<3>(ack_node), writes);
  flow::make_edge(reread_gateway, reprocess_node);
  flow::make_edge(flow::output_port<0>(reprocess_node), writes);
  flow::make_edge(flow::output_port<1>(reprocess_node), commit_node);
  flow::make_edge(flow::output_port<0>(commit_node), page_limiter.decrementer());

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

  for (const auto& track : segments_) {
    const auto& cp = track.checkpoint;
    if (cp.done) continue;
    page_opened();
    requests.try_put(PageRequest{cp.segment, cp.pages, cp.resume_key});
  }
  {
    std::unique_lock lock(drained_mutex_);
    // A node body that throws cancels the graph: then wait_for_all() below rethrows.
    while (!drained_cv_.wait_for(lock, std::chrono::milliseconds(200),
                                 [this] { return pages_open_.load(std::memory_order_acquire) == 0; })) {
      if (g.is_cancelled()) break;
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
  if (!dry_) store_.flush();
  if (crashed) std::rethrow_exception(crashed);

  RunResult result;
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  ProgressEvent last = snapshot(true);
  int done_segments = last.segments_done;
  result.counters = last.counters;
  result.samples = std::move(samples_);
  result.estimated_wcu = estimated_wcu_;
  if (failed_) {
    result.status = RunResult::Status::Failed;
    result.error = error_;
  } else if (done_segments < total_segments_) {
    result.status = RunResult::Status::Stopped;
  }
  if (options_.progress) options_.progress(last);
  return result;
}

std::string describe_missing(const dynamo::ServiceError& e, std::string_view table, std::string_view role,
                             std::string_view label) {
  if (e.type == "ResourceNotFoundException") {
    return fmt::format("{}: {} table '{}' does not exist", label, role, table);
  }
  return fmt::format("{}: DescribeTable '{}': {}", label, table, e.to_string());
}

}  // namespace

RunResult run_pipeline(dynamo::Client& client, const stages::StepSpec& spec, CheckpointStore& checkpoints,
                       const RunOptions& options) {
  auto source = client.describe_table(spec.source.table);
  if (!source) throw UsageError(describe_missing(source.error(), spec.source.table, "source", spec.label));
  dynamo::TableDescription target_desc = source.value();
  std::string target = spec.write.table.empty() ? spec.source.table : spec.write.table;
  if (target != spec.source.table) {
    auto t = client.describe_table(target);
    if (!t) throw UsageError(describe_missing(t.error(), target, "target", spec.label));
    target_desc = t.value();
  }
  RunOptions effective = options;
  if (effective.now_iso.empty()) effective.now_iso = iso_now();
  stages::ItemProcessor processor(spec, source.value(), target_desc, options.version, effective.now_iso);

  if (options.capacity_percent > 0) {
    const auto& p = source.value().provisioned;
    const auto& tp = target_desc.provisioned;
    if (!p && options.max_rcu <= 0) {
      // On-demand: no provisioned figure to take a share of; the limiter starts unlimited and
      // adapts to throttling.
    } else if (p && options.max_rcu <= 0) {
      effective.max_rcu = static_cast<double>(p->read) * options.capacity_percent / 100.0;
    }
    if (tp && options.max_wcu <= 0) effective.max_wcu = static_cast<double>(tp->write) * options.capacity_percent / 100.0;
  }
  Run run(client, spec, checkpoints, effective, processor, source.value().item_count);
  return run.run();
}

}  // namespace dynamorph::pipeline
