#include "benchmark/bench_result.h"

#include <fmt/format.h>

#include <algorithm>

#include "migrations/json_writer.h"

namespace dynamorph::benchmark {

using migrations::JsonArray;
using migrations::JsonObject;

LatencySummary summarize(const LatencyHistogram& us) {
  LatencySummary s;
  s.count = us.count();
  s.p50 = us.percentile(50) / 1000.0;
  s.p90 = us.percentile(90) / 1000.0;
  s.p99 = us.percentile(99) / 1000.0;
  s.p999 = us.percentile(99.9) / 1000.0;
  s.max = static_cast<double>(us.max()) / 1000.0;
  return s;
}

void choose_best(BenchResult& r) {
  if (r.runs.empty()) return;
  double top = 0;
  for (const auto& run : r.runs) top = std::max(top, run.items_per_s());
  r.best = 0;
  bool found = false;
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    if (r.runs[i].items_per_s() < top * 0.97) continue;
    if (!found || r.runs[i].setting < r.runs[r.best].setting) r.best = i;
    found = true;
  }
}

namespace {

JsonObject figures_json(const RunFigures& f, bool with_series) {
  JsonObject o;
  if (!f.setting_name.empty()) o.integer(f.setting_name, f.setting);
  o.integer("items", f.items)
      .integer("bytes", f.bytes)
      .number("wall_s", f.wall_s, 3)
      .number("items_per_s", f.items_per_s(), 1)
      .number("mb_per_s", f.mb_per_s(), 3)
      .number("rcu", f.rcu, 1)
      .number("wcu", f.wcu, 1)
      .number("rcu_per_s", f.rcu_per_s(), 1)
      .number("wcu_per_s", f.wcu_per_s(), 1);
  JsonObject lat;
  for (const auto& [op, s] : f.latency_ms) {
    JsonObject l;
    l.integer("count", static_cast<std::int64_t>(s.count))
        .number("p50", s.p50, 3)
        .number("p90", s.p90, 3)
        .number("p99", s.p99, 3)
        .number("p999", s.p999, 3)
        .number("max", s.max, 3);
    lat.object(op, l);
  }
  o.object("latency_ms", lat)
      .integer("throttled", static_cast<std::int64_t>(f.throttled))
      .integer("retries", static_cast<std::int64_t>(f.retries))
      .number("client_cpu_s", f.client_cpu_s, 3)
      .number("peak_rss_mib", f.peak_rss_mib, 1);
  if (f.matched || f.puts || f.updates || f.deletes || f.transactions) {
    o.integer("matched", f.matched)
        .integer("puts", f.puts)
        .integer("updates", f.updates)
        .integer("deletes", f.deletes)
        .integer("transactions", f.transactions);
  }
  if (with_series) {
    JsonArray series;
    for (const auto& p : f.series) {
      JsonObject s;
      s.number("t_s", p.t_s, 2)
          .number("items_per_s", p.items_per_s, 1)
          .number("mb_per_s", p.mb_per_s, 3)
          .number("rcu_per_s", p.rcu_per_s, 1)
          .number("wcu_per_s", p.wcu_per_s, 1)
          .integer("throttled", static_cast<std::int64_t>(p.throttled));
      series.object(s);
    }
    o.raw("series", series.str());
  }
  return o;
}

}  // namespace

std::string result_json(const BenchResult& r) {
  const RunFigures& b = r.best_run();
  JsonObject o = figures_json(b, true);
  JsonObject top;
  top.string("event", "result").string("bench", r.bench).string("target", r.target);
  // The best run's figures at the top level, then every run, the winner and the estimate.
  std::string head = top.str();
  std::string body = o.str();
  JsonArray runs;
  for (const auto& run : r.runs) runs.object(figures_json(run, true));
  JsonObject best;
  if (!b.setting_name.empty()) best.integer(b.setting_name, b.setting);
  best.number("items_per_s", b.items_per_s(), 1);
  JsonObject est;
  est.integer("table_items", r.estimate.table_items)
      .number("full_run_s", r.estimate.full_run_s, 1)
      .number("rcu", r.estimate.rcu, 1)
      .number("wcu", r.estimate.wcu, 1)
      .number("cost_usd_on_demand", r.estimate.cost_usd_on_demand, 9)
      .string("limited_by", r.estimate.limited_by)
      .string("prices_region", r.prices.region)
      .string("prices_as_of", r.prices.as_of);
  JsonArray notes;
  for (const auto& n : r.notes) notes.string(n);
  JsonObject tail;
  tail.raw("runs", runs.str()).object("best", best).object("estimate", est).raw("notes", notes.str());
  // Splice: {head fields, best-run fields, tail fields}.
  std::string out = head.substr(0, head.size() - 1) + "," + body.substr(1, body.size() - 2) + "," +
                    tail.str().substr(1);
  return out;
}

std::string progress_json(const std::string& bench, const std::string& setting_name, int setting,
                          const SeriesPoint& p, std::int64_t items_so_far) {
  JsonObject o;
  o.string("event", "progress").string("bench", bench);
  if (!setting_name.empty()) o.integer(setting_name, setting);
  o.number("t_s", p.t_s, 2)
      .integer("items", items_so_far)
      .number("items_per_s", p.items_per_s, 1)
      .number("mb_per_s", p.mb_per_s, 3)
      .number("rcu_per_s", p.rcu_per_s, 1)
      .number("wcu_per_s", p.wcu_per_s, 1)
      .integer("throttled", static_cast<std::int64_t>(p.throttled));
  return o.str();
}

std::string result_text(const BenchResult& r) {
  std::string out;
  const RunFigures& b = r.best_run();
  const bool sweep = !b.setting_name.empty();
  out += fmt::format("bench {}: {}\n", r.bench, r.target);
  out += fmt::format("  {:>10} {:>10} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
                     sweep ? b.setting_name : "run", "items", "items/s", "MB/s", "RCU/s", "WCU/s",
                     "p50 ms", "p99 ms", "thrott");
  out += fmt::format("  (latency columns: {})\n", r.main_operation);
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    const auto& f = r.runs[i];
    double p50 = 0, p99 = 0;
    if (auto it = f.latency_ms.find(r.main_operation); it != f.latency_ms.end()) {
      p50 = it->second.p50;
      p99 = it->second.p99;
    }
    out += fmt::format("  {:>10} {:>10} {:>9.0f} {:>8.2f} {:>9.1f} {:>9.1f} {:>9.2f} {:>9.2f} {:>7}{}\n",
                       sweep ? std::to_string(f.setting) : "-", f.items, f.items_per_s(),
                       f.mb_per_s(), f.rcu_per_s(), f.wcu_per_s(), p50, p99, f.throttled,
                       r.runs.size() > 1 && i == r.best ? "  ← best" : "");
  }
  out += "  latency of each request (ms), best run:\n";
  out += fmt::format("    {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "operation", "count",
                     "p50", "p90", "p99", "p99.9", "max");
  for (const auto& [op, s] : b.latency_ms)
    out += fmt::format("    {:<20} {:>8} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.2f}\n", op,
                       s.count, s.p50, s.p90, s.p99, s.p999, s.max);
  out += fmt::format("  throttled {}, retries {}, client CPU {:.2f} s, peak RSS {:.0f} MiB\n",
                     b.throttled, b.retries, b.client_cpu_s, b.peak_rss_mib);
  if (b.matched || b.puts || b.updates || b.deletes || b.transactions)
    out += fmt::format(
        "  the real run would write: matched {}, {} puts, {} updates, {} deletes, {} "
        "transactions\n",
        b.matched, b.puts, b.updates, b.deletes, b.transactions);
  if (sweep && r.runs.size() > 1)
    out += fmt::format("  best: {} {} ({:.0f} items/s)\n", b.setting_name, b.setting,
                       b.items_per_s());
  const auto& e = r.estimate;
  out += fmt::format(
      "  estimate for {} items: {} ({}), {:.0f} RCU + {:.0f} WCU, ${:.4f} on demand ({} "
      "prices as of {})\n",
      e.table_items, migrations::format_seconds(e.full_run_s),
      e.limited_by == "measured rate" ? "at the best measured rate" : "limited by " + e.limited_by,
      e.rcu, e.wcu, e.cost_usd_on_demand, r.prices.region, r.prices.as_of);
  for (const auto& n : r.notes) out += "  note: " + n + "\n";
  return out;
}

}  // namespace dynamorph::benchmark
