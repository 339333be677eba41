#include "benchmark/bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "benchmark/bench_result.h"
#include "benchmark/recorder.h"
#include "benchmark/report.h"
#include "benchmark/synthetic.h"
#include "dynamo/aws_config.h"
#include "dynamo/client.h"
#include "dynamo/clock.h"
#include "migrations/dry_run.h"
#include "migrations/history.h"
#include "migrations/render.h"
#include "migrations/session.h"
#include "migrations/state_table.h"
#include "migrations/step_run.h"

namespace dynamorph::benchmark {

using migrations::ExitCode;

std::vector<int> parse_positive_list(const std::string& text, const std::string& flag) {
  std::vector<int> out;
  std::size_t i = 0;
  auto bad = [&] {
    return UsageError(fmt::format(
        "{}: expected a comma-separated list of positive integers like 1,2,4,8, got '{}'", flag,
        text));
  };
  if (text.empty()) throw bad();
  while (i <= text.size()) {
    std::size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    const std::string part = text.substr(i, j - i);
    if (part.empty() || part.size() > 7 ||
        part.find_first_not_of("0123456789") != std::string::npos)
      throw bad();
    const int n = std::stoi(part);
    if (n < 1) throw bad();
    out.push_back(n);
    i = j + 1;
  }
  return out;
}

namespace {

std::string random_suffix() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

// The totals a run has reached, read once a second for the time series.
struct Snapshot {
  std::int64_t items = 0, bytes = 0;
  double rcu = 0, wcu = 0;
};

// Ticks every 100 ms while a run goes: stops it at its deadline or on a signal, and once a
// second adds a point to the time series (and prints progress).
class RunClock {
 public:
  RunClock(std::function<Snapshot()> totals, const Recorder& recorder,
           const std::atomic<bool>& signal, double duration_s,
           std::function<void(const SeriesPoint&, std::int64_t)> on_point)
      : totals_(std::move(totals)),
        recorder_(recorder),
        signal_(signal),
        duration_s_(duration_s),
        on_point_(std::move(on_point)),
        start_(std::chrono::steady_clock::now()),
        throttled_last_(recorder.throttled()),
        thread_([this] { loop(); }) {}
  ~RunClock() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  const std::atomic<bool>& stop_flag() const { return stop_; }
  std::chrono::steady_clock::time_point start() const { return start_; }

  // Stops the clock; the last point covers the part of a second since the one before, up to
  // the run's final totals. A run always ends with at least one point (and one progress
  // event), however short it was.
  std::vector<SeriesPoint> finish(const Snapshot& final_totals) {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (series_.empty() || now_s() - last_t_ > 0.05) point(final_totals, now_s());
    return series_;
  }

 private:
  double now_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  void point(const Snapshot& now, double t) {
    const std::uint64_t throttled = recorder_.throttled();
    const double dt = t - last_t_;
    SeriesPoint p;
    p.t_s = t;
    if (dt > 0) {
      p.items_per_s = static_cast<double>(now.items - last_.items) / dt;
      p.mb_per_s = static_cast<double>(now.bytes - last_.bytes) / 1e6 / dt;
      p.rcu_per_s = (now.rcu - last_.rcu) / dt;
      p.wcu_per_s = (now.wcu - last_.wcu) / dt;
    }
    p.throttled = throttled - throttled_last_;
    series_.push_back(p);
    last_ = now;
    last_t_ = t;
    throttled_last_ = throttled;
    if (on_point_) on_point_(p, now.items);
  }

  void loop() {
    std::unique_lock lock(mutex_);
    int ticks = 0;
    while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return done_; })) {
      const double t = now_s();
      if (signal_.load() || (duration_s_ > 0 && t >= duration_s_)) stop_ = true;
      if (++ticks % 10 == 0) point(totals_(), t);
    }
  }

  std::function<Snapshot()> totals_;
  const Recorder& recorder_;
  const std::atomic<bool>& signal_;
  double duration_s_;
  std::function<void(const SeriesPoint&, std::int64_t)> on_point_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  // The series so far: written by the clock's thread, then by finish() after it has joined.
  std::vector<SeriesPoint> series_;
  Snapshot last_;
  double last_t_ = 0;
  std::uint64_t throttled_last_ = 0;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace

struct Bench::Impl {
  Bench& bench;
  const BenchOptions& o;
  migrations::Config config;
  Recorder recorder;
  std::unique_ptr<dynamo::Client> client;
  bool tty = false;
  std::vector<std::string> created;  // tables this bench made (deleted unless --keep)
  std::string now_iso = dynamo::now_iso();

  Impl(Bench& b, const BenchOptions& options)
      : bench(b), o(options), config(migrations::resolve_config(b.options_)) {
    client = migrations::connect(config, b.options_, recorder.hook());
    tty = ::isatty(STDERR_FILENO) != 0;
  }

  std::ostream& out() { return bench.out_; }
  std::ostream& err() { return bench.err_; }
  bool json() const { return bench.options_.json; }
  bool quiet() const { return bench.options_.verbosity < 0; }
  void say(const std::string& line) {
    if (!json() && !quiet()) out() << line << "\n";
  }

  // ---- progress --------------------------------------------------------------------------
  std::function<void(const SeriesPoint&, std::int64_t)> progress(const std::string& setting_name,
                                                                  int setting,
                                                                  std::int64_t expected) {
    return [this, setting_name, setting, expected](const SeriesPoint& p, std::int64_t items) {
      if (json()) {
        out() << progress_json(o.command, setting_name, setting, p, items) << "\n" << std::flush;
        return;
      }
      if (quiet() || !tty) return;
      std::string bar;
      if (expected > 0) {
        const int width = 24;
        const int fill = static_cast<int>(std::min<double>(
            width, static_cast<double>(items) * width / static_cast<double>(expected)));
        bar = "[" + std::string(static_cast<std::size_t>(fill), '#') +
              std::string(static_cast<std::size_t>(width - fill), '.') + "] ";
      }
      err() << fmt::format("\r  {}{}{:>10} items {:>8.0f} items/s {:>7.2f} MB/s {:>8.1f} RCU/s "
                           "{:>8.1f} WCU/s  ",
                           setting_name.empty() ? "" : fmt::format("{} {}: ", setting_name, setting),
                           bar, items, p.items_per_s, p.mb_per_s, p.rcu_per_s, p.wcu_per_s)
            << std::flush;
    };
  }
  void end_progress_line() {
    if (!json() && !quiet() && tty) err() << "\r" << std::string(100, ' ') << "\r" << std::flush;
  }

  // ---- one measured run ---------------------------------------------------------------------
  // `body` runs the work, stopping when the flag it is given is set, and returns its totals and
  // wall time.
  RunFigures measure(const std::string& setting_name, int setting, std::int64_t expected,
                     std::function<Snapshot()> live,
                     const std::function<Snapshot(const std::atomic<bool>&, double&)>& body) {
    recorder.reset();
    reset_peak_rss();
    const double cpu0 = process_cpu_seconds();
    const auto retries0 = client->stats().retries.load();
    RunFigures f;
    f.setting_name = setting_name;
    f.setting = setting;
    RunClock clock(std::move(live), recorder, bench.stop_, o.duration_s,
                   progress(setting_name, setting, expected));
    double wall = 0;
    const Snapshot fin = body(clock.stop_flag(), wall);
    f.series = clock.finish(fin);
    end_progress_line();
    f.items = fin.items;
    f.bytes = fin.bytes;
    f.rcu = fin.rcu;
    f.wcu = fin.wcu;
    f.wall_s = wall;
    for (const auto& [op, h] : recorder.latencies()) f.latency_ms[op] = summarize(h);
    f.throttled = recorder.throttled();
    f.retries = client->stats().retries.load() - retries0;
    f.client_cpu_s = process_cpu_seconds() - cpu0;
    f.peak_rss_mib = peak_rss_mib();
    return f;
  }

  // ---- tables ------------------------------------------------------------------------------
  std::optional<dynamo::TableDescription> describe(const std::string& table) {
    auto d = client->describe_table(table);
    if (d) return d.value();
    if (d.error().type == "ResourceNotFoundException") return std::nullopt;
    throw Error(fmt::format("DescribeTable {}: {}", table, d.error().to_string()));
  }

  void create_bench_table(const std::string& table) {
    auto c = client->create_table(bench_table_request(table));
    if (!c) throw Error(fmt::format("CreateTable {}: {}", table, c.error().to_string()));
    created.push_back(table);
    auto a = client->wait_until_active(table, std::chrono::seconds(120));
    if (!a) throw Error(fmt::format("table {} did not become active: {}", table, a.error().to_string()));
  }

  void drop_created() {
    if (o.keep) {
      for (const auto& t : created) say(fmt::format("kept table {} (--keep)", t));
      return;
    }
    for (const auto& t : created) {
      auto d = client->delete_table(t);
      if (!d && d.error().type != "ResourceNotFoundException") {
        err() << fmt::format("dynamorph: warning: could not delete bench table {}: {}\n", t,
                             d.error().to_string());
        continue;
      }
      (void)client->wait_until_deleted(t, std::chrono::seconds(60));
      if (!json() && !quiet()) out() << "deleted bench table " << t << "\n";
    }
    created.clear();
  }

  void check_bench_keys(const dynamo::TableDescription& d, const std::string& flag) {
    if (d.partition_key.name != kPartitionKey || d.partition_key.type != dynamo::AttrType::S ||
        !d.sort_key || d.sort_key->name != kSortKey || d.sort_key->type != dynamo::AttrType::S)
      throw UsageError(fmt::format(
          "{} {}: a bench table has the key pk (string) + sk (string); this one has {}", flag,
          d.name, d.partition_key.name + (d.sort_key ? " + " + d.sort_key->name : "")));
  }

  bool holds_items(const std::string& table) {
    dynamo::ScanRequest s;
    s.table = table;
    s.limit = 1;
    auto page = client->scan(s);
    if (!page) throw Error(fmt::format("Scan {}: {}", table, page.error().to_string()));
    return !page.value().items.empty() || page.value().last_evaluated_key.has_value();
  }

  // ---- the cost check before touching AWS ---------------------------------------------------
  void confirm(double rcu, double wcu, const std::string& what) {
    if (dynamo::loopback_endpoint(client->endpoint())) return;
    const double usd = config.prices.cost(rcu, wcu);
    const std::string line = fmt::format(
        "bench {} against {} will {}: about {:.0f} RCU and {:.0f} WCU, ${:.4f} on demand ({} "
        "prices as of {})",
        o.command, client->endpoint(), what, rcu, wcu, usd, config.prices.region,
        config.prices.as_of);
    err() << line << "\n";
    if (o.yes) return;
    if (!::isatty(STDIN_FILENO))
      throw UsageError(fmt::format(
          "bench {}: {} is not a loopback endpoint and there is no terminal to ask: pass --yes "
          "to accept the cost above",
          o.command, client->endpoint()));
    err() << "go on? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes")
      throw UsageError(fmt::format("bench {}: not confirmed; nothing was done", o.command));
  }

  // ---- the estimate and the output ----------------------------------------------------------
  ExitCode finish(BenchResult& r, std::int64_t table_items, double measured_items) {
    choose_best(r);
    const RunFigures& b = r.best_run();
    migrations::Measured m{static_cast<std::int64_t>(measured_items), b.wall_s, b.rcu, b.wcu};
    r.prices = config.prices;
    r.estimate = migrations::estimate_full_run(table_items, m, o.max_rcu, o.max_wcu, config.prices);
    if (json())
      out() << result_json(r) << "\n";
    else
      out() << result_text(r);  // the result is printed even with -q: it is what was asked for
    if (o.report) {
      std::ofstream f(*o.report, std::ios::binary);
      if (!f) throw UsageError(fmt::format("--report {}: cannot write", *o.report));
      f << report_html(r);
      if (!f.flush()) throw Error(fmt::format("--report {}: write failed", *o.report));
      if (!json()) out() << "report: " << *o.report << "\n";
    }
    return ExitCode::Ok;
  }

  ExitCode interrupted() {
    end_progress_line();
    err() << "dynamorph: bench " << o.command << " interrupted\n";
    drop_created();
    return ExitCode::Interrupted;
  }

  // ---- bench seed ---------------------------------------------------------------------------
  ExitCode seed() {
    if (o.items <= 0) throw UsageError("bench seed: --items N is required (N > 0)");
    const std::string table =
        o.table ? config.physical(*o.table) : config.physical("dynamorph_bench_" + random_suffix());
    confirm(0, static_cast<double>(o.items) * std::ceil(o.item_bytes / 1024.0),
            fmt::format("write {} items into {}", o.items, table));
    std::optional<dynamo::TableDescription> existing = describe(table);
    if (existing) {
      check_bench_keys(*existing, "bench seed --table");
      if (holds_items(table))
        throw UsageError(fmt::format(
            "bench seed --table {}: the table holds items; a benchmark never writes over data "
            "it did not create (name a new or empty table)",
            table));
    }
    const int in_flight = o.in_flight.empty() ? 16 : o.in_flight.front();
    if (!existing) create_bench_table(table);
    BenchResult r;
    r.bench = "seed";
    r.target = table;
    r.main_operation = "BatchWriteItem";
    WriteLoadOptions wo;
    wo.kind = WriteKind::Batch;
    wo.table = table;
    wo.items = o.items;
    wo.item_bytes = o.item_bytes;
    wo.in_flight = in_flight;
    wo.max_wcu = o.max_wcu;
    bool stopped = false;
    r.runs.push_back(write_run(wo, "in_flight", in_flight, stopped));
    if (stopped) return interrupted();
    created.clear();  // a seeded table is the point: it stays
    r.notes.push_back(fmt::format("table {} holds {} synthetic items of about {} bytes", table,
                                  r.runs[0].items, o.item_bytes));
    return finish(r, o.items, static_cast<double>(r.runs[0].items));
  }

  RunFigures write_run(WriteLoadOptions wo, const std::string& setting_name, int setting,
                       bool& stopped) {
    WriteLoad* current = nullptr;
    std::mutex m;
    auto live = [&]() -> Snapshot {
      std::lock_guard lock(m);
      if (!current) return {};
      auto t = current->totals();
      return {t.items, t.bytes, 0, t.wcu};
    };
    RunFigures f = measure(setting_name, setting, wo.items, live,
                           [&](const std::atomic<bool>& stop, double& wall) -> Snapshot {
                             wo.stop = &stop;
                             WriteLoad load(*client, wo);
                             {
                               std::lock_guard lock(m);
                               current = &load;
                             }
                             WriteLoadResult res = load.run();
                             {
                               std::lock_guard lock(m);
                               current = nullptr;
                             }
                             if (!res.error.empty())
                               throw Error(fmt::format("{} into {}: {}", operation_of(wo.kind),
                                                       wo.table, res.error));
                             stopped = res.stopped;
                             wall = res.wall_s;
                             return {res.totals.items, res.totals.bytes, 0, res.totals.wcu};
                           });
    return f;
  }

  // ---- bench write --------------------------------------------------------------------------
  ExitCode write() {
    const std::int64_t items = o.items > 0 ? o.items : 20000;
    const std::vector<int> sweep = o.in_flight.empty() ? std::vector<int>{4, 16, 64} : o.in_flight;
    const std::string scratch = config.physical("dynamorph_bench_" + random_suffix());
    const double per_item =
        std::ceil(o.item_bytes / 1024.0) * (o.mode == WriteKind::Transact ? 2 : 1);
    // Asked before any request: with --table, emptying it again costs one more pass.
    confirm(0, static_cast<double>(items) * per_item * static_cast<double>(sweep.size() + (o.table ? 1 : 0)),
            fmt::format("write {} items {} times into {}", items, sweep.size(),
                        o.table ? config.physical(*o.table) : scratch));
    std::string table;
    bool lent = false;  // an existing empty table the user named: emptied again afterwards
    if (o.table) {
      table = config.physical(*o.table);
      if (auto d = describe(table)) {
        check_bench_keys(*d, "bench write --table");
        if (holds_items(table))
          throw UsageError(fmt::format(
              "bench write --table {}: the table holds items; a benchmark never writes over "
              "data it did not create (name an empty table, or leave --table out for a scratch "
              "one)",
              table));
        lent = true;
      }
    } else {
      table = scratch;
    }
    if (!lent) create_bench_table(table);
    BenchResult r;
    r.bench = "write";
    r.target = fmt::format("{} ({} mode, {} items of about {} bytes)", table, to_string(o.mode),
                           items, o.item_bytes);
    r.main_operation = std::string(operation_of(o.mode));
    bool stopped = false;
    for (int n : sweep) {
      WriteLoadOptions wo;
      wo.kind = o.mode;
      wo.table = table;
      wo.items = items;
      wo.item_bytes = o.item_bytes;
      wo.in_flight = n;
      wo.max_wcu = o.max_wcu;
      r.runs.push_back(write_run(wo, "in_flight", n, stopped));
      if (stopped) break;
    }
    if (lent && !o.keep) {  // put the table back as it was lent: empty
      WriteLoadOptions wo;
      wo.kind = WriteKind::Delete;
      wo.table = table;
      wo.items = items;
      wo.item_bytes = o.item_bytes;
      wo.in_flight = 16;
      WriteLoad(*client, wo).run();
    }
    if (stopped) return interrupted();
    drop_created();
    return finish(r, items, static_cast<double>(items));
  }

  // ---- bench scan ---------------------------------------------------------------------------
  ExitCode scan() {
    if (!o.table) throw UsageError("bench scan: --table T is required");
    const std::string table = config.physical(*o.table);
    auto d = describe(table);
    if (!d) throw UsageError(fmt::format("bench scan --table {}: no such table", table));
    const std::vector<int> sweep =
        o.segments.empty() ? std::vector<int>{1, 2, 4, 8, 16, 32} : o.segments;
    confirm(static_cast<double>(d->size_bytes) / 4096.0 / 2.0 * static_cast<double>(sweep.size()),
            0, fmt::format("scan {} ({} items, {} bytes) {} times", table, d->item_count,
                           d->size_bytes, sweep.size()));
    BenchResult r;
    r.bench = "scan";
    r.target = fmt::format("{} ({} items, {:.1f} MB by DescribeTable)", table, d->item_count,
                           static_cast<double>(d->size_bytes) / 1e6);
    r.main_operation = "Scan";
    for (int segments : sweep) {
      stages::StepSpec spec;
      spec.label = "bench scan";
      spec.source.table = table;
      spec.source.segments = segments;
      spec.write.mode = stages::WriteMode::None;
      pipeline::RunOptions ro;
      if (o.page_size >= 0) ro.default_page_size = o.page_size;  // 0: 1 MB pages
      pipeline::RunResult result;
      RunFigures f = pipeline_run("segments", segments, d->item_count, spec, ro, result);
      r.runs.push_back(std::move(f));
      if (bench.stop_.load()) return interrupted();
    }
    if (o.duration_s > 0)
      r.notes.push_back(fmt::format("each setting scanned for at most {:g} s", o.duration_s));
    if (o.page_size >= 0)
      r.notes.push_back(o.page_size == 0 ? "pages of 1 MB (Limit unset)"
                                         : fmt::format("pages of at most {} items", o.page_size));
    return finish(r, d->item_count, static_cast<double>(best_items(r)));
  }

  static std::int64_t best_items(BenchResult& r) {
    choose_best(r);
    return r.runs.empty() ? 0 : r.best_run().items;
  }

  // Runs one pipeline step with the none writer and measures it.
  RunFigures pipeline_run(const std::string& setting_name, int setting, std::int64_t expected,
                          const stages::StepSpec& spec, pipeline::RunOptions ro,
                          pipeline::RunResult& result) {
    std::mutex m;
    pipeline::ProgressEvent last;
    auto live = [&]() -> Snapshot {
      std::lock_guard lock(m);
      return {last.counters.scanned, last.item_bytes, last.counters.consumed_rcu, 0};
    };
    return measure(setting_name, setting, expected, live,
                   [&](const std::atomic<bool>& stop, double& wall) -> Snapshot {
                     ro.segments = spec.source.segments > 0 ? spec.source.segments : ro.segments;
                     ro.dry_run = true;
                     ro.measure_bytes = true;
                     if (o.max_rcu > 0) ro.max_rcu = o.max_rcu;
                     ro.stop = &stop;
                     ro.now_iso = now_iso;
                     ro.progress = [&](const pipeline::ProgressEvent& e) {
                       std::lock_guard lock(m);
                       last = e;
                     };
                     auto store = pipeline::null_checkpoint_store();
                     result = pipeline::run_pipeline(*client, spec, *store, ro);
                     if (result.status == pipeline::RunResult::Status::Failed)
                       throw migrations::StepFailed(
                           fmt::format("{}: {}", spec.label, result.error));
                     wall = result.wall_s;
                     return {result.counters.scanned, result.item_bytes,
                             result.counters.consumed_rcu, result.estimated_wcu};
                   });
  }

  // ---- bench migrate ------------------------------------------------------------------------
  ExitCode migrate() {
    migrations::History history(migrations::load_migrations(
        config.migrations_dir,
        migrations::LoadOptions{config.table_namespace, now_iso, config.path_roots()}));
    const migrations::Migration* m = nullptr;
    auto has_pipeline = [](const migrations::Migration& mig) {
      for (const auto& s : mig.up)
        if (std::holds_alternative<migrations::PipelineStep>(s.body)) return true;
      return false;
    };
    if (o.version) {
      m = history.file(*o.version);
      if (!m)
        throw UsageError(fmt::format("bench migrate {}: no migration file has this version in {}",
                                     *o.version, config.migrations_dir));
      if (!has_pipeline(*m))
        throw UsageError(fmt::format("bench migrate {}: {} has no pipeline step to measure",
                                     *o.version, m->file));
    } else {
      migrations::StateTable state(*client, config.physical(config.state_table));
      if (state.exists()) history.records = state.read_versions();  // reads only
      for (const auto& planned : history.up_plan(std::nullopt)) {
        if (has_pipeline(*planned.migration)) {
          m = planned.migration;
          break;
        }
      }
      if (!m)
        throw UsageError(
            "bench migrate: no pending version has a pipeline step (name one: bench migrate "
            "VERSION)");
    }
    // The source tables, checked before anything runs.
    std::int64_t table_items = 0;
    double table_bytes = 0;
    for (const auto& s : m->up) {
      const auto* p = std::get_if<migrations::PipelineStep>(&s.body);
      if (!p || p->spec.source.table.empty()) continue;
      auto d = describe(p->spec.source.table);
      if (!d)
        throw UsageError(fmt::format("bench migrate {}: {}: source table {} does not exist",
                                     m->version, s.where, p->spec.source.table));
      table_items += d->item_count;
      table_bytes += static_cast<double>(d->size_bytes);
    }
    const std::vector<int> sweep = o.segments.empty() ? std::vector<int>{config.segments} : o.segments;
    const double share = o.sample_percent ? *o.sample_percent / 100.0 : 1.0;
    confirm(table_bytes / 4096.0 / 2.0 * share * static_cast<double>(sweep.size()), 0,
            fmt::format("read the sources of {} {} {} times", m->version, m->name, sweep.size()));

    migrations::Renderer render(bench.options_, out(), err());
    migrations::StepContext ctx{config, now_iso, bench.stop_, *client, render};
    BenchResult r;
    r.bench = "migrate";
    r.target = fmt::format("{} {} ({}), writes counted, not sent", m->version, m->name, m->file);
    r.main_operation = "Scan";
    std::vector<double> extrapolated_items;  // per run: the whole table's items
    for (int segments : sweep) {
      RunFigures total;
      total.setting_name = "segments";
      total.setting = segments;
      double whole = 0;
      for (const auto& s : m->up) {
        const auto* p = std::get_if<migrations::PipelineStep>(&s.body);
        if (!p) continue;
        migrations::UpOptions uo;
        uo.dry_run = true;
        uo.segments = segments;
        if (o.max_rcu > 0) uo.max_rcu = o.max_rcu;
        if (o.max_wcu > 0) uo.max_wcu = o.max_wcu;
        pipeline::RunOptions ro = migrations::step_run_options(ctx, *m, uo, p->spec);
        stages::StepSpec spec = migrations::with_segments(p->spec, ro);
        const bool sampled = o.sample_percent && migrations::sample_run(spec, ro, *o.sample_percent, std::random_device{}());
        pipeline::RunResult result;
        RunFigures f = pipeline_run("segments", segments, 0, spec, ro, result);
        double items_here = static_cast<double>(result.counters.scanned);
        if (sampled) {
          migrations::DryRunStep step;
          step.counters = result.counters;
          auto sm = migrations::sampled_counts(result, ro.only_partitions, spec.source.segments,
                                               *o.sample_percent, step);
          items_here = sm.scanned.value;
          r.notes.push_back(fmt::format(
              "{}: sampled {} of {} segments: the whole table has {:.0f} ± {:.0f} items, {:.0f} "
              "± {:.0f} of them matched (99% interval)",
              s.where, sm.segments_read, sm.segments_total, sm.scanned.value,
              sm.scanned.plus_minus, sm.matched.value, sm.matched.plus_minus));
        }
        whole += items_here;
        total.items += f.items;
        total.bytes += f.bytes;
        total.wall_s += f.wall_s;
        total.rcu += f.rcu;
        total.wcu += f.wcu;
        for (auto& [op, l] : f.latency_ms) total.latency_ms[op] = l;
        total.throttled += f.throttled;
        total.retries += f.retries;
        total.client_cpu_s += f.client_cpu_s;
        total.peak_rss_mib = std::max(total.peak_rss_mib, f.peak_rss_mib);
        for (auto pt : f.series) total.series.push_back(pt);
        total.matched += result.counters.matched;
        total.puts += result.counters.puts;
        total.updates += result.counters.updates;
        total.deletes += result.counters.deletes;
        total.transactions += result.counters.transactions;
        if (bench.stop_.load()) return interrupted();
      }
      r.runs.push_back(std::move(total));
      extrapolated_items.push_back(whole);
    }
    choose_best(r);
    r.notes.push_back(
        "reads are real, writes are counted and sized, never sent: WCU/s is what the writes "
        "would consume at this read rate");
    const double whole = extrapolated_items.at(r.best);
    return finish(r, std::llround(whole), static_cast<double>(r.best_run().items));
  }
};

Bench::Bench(migrations::GlobalOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {}

Bench::~Bench() = default;

ExitCode Bench::run(const BenchOptions& options) {
  Impl impl(*this, options);
  try {
    if (options.command == "seed") return impl.seed();
    if (options.command == "scan") return impl.scan();
    if (options.command == "write") return impl.write();
    if (options.command == "migrate") return impl.migrate();
  } catch (...) {
    impl.end_progress_line();
    impl.drop_created();  // a failed bench leaves no scratch table behind either
    throw;
  }
  throw UsageError("bench: expected seed, scan, write or migrate");
}

}  // namespace dynamorph::benchmark
