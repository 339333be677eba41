#include "pipeline/progress.h"

#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <mutex>

namespace dynamorph::pipeline {

std::string format_counters_json(const Counters& c) {
  std::string out = "{";
  for (const auto& field : kCounterFields) {
    if (out.size() > 1) out += ',';
    if (field.count) {
      fmt::format_to(std::back_inserter(out), "\"{}\":{}", field.name, c.*field.count);
    } else {
      fmt::format_to(std::back_inserter(out), "\"{}\":{:.1f}", field.name, c.*field.amount);
    }
  }
  out += '}';
  return out;
}

std::string format_counters_text(const Counters& c) {
  if (c.scanned == 0 && c.written == 0 && c.matched == 0 && c.skipped == 0) return "-";
  std::string s = fmt::format("scanned {}, matched {}, written {}", c.scanned, c.matched, c.written);
  if (c.skipped) s += fmt::format(", skipped {}", c.skipped);
  if (c.conflicts) s += fmt::format(", conflicts {}", c.conflicts);
  if (c.retries) s += fmt::format(", retries {}", c.retries);
  if (c.failed) s += fmt::format(", failed {}", c.failed);
  if (c.dead_letters) s += fmt::format(", dead letters {}", c.dead_letters);
  return s;
}

void RateSmoother::add(double t_s, double count) {
  if (last_t_ && t_s <= *last_t_) return;
  if (last_t_) {
    const double dt = t_s - *last_t_;
    const double now = (count - *last_count_) / dt;
    // The weight of a sample grows with the time it covers: ticks that come late (a loaded
    // machine) move the rate as much as the same span in one-second ticks.
    rate_ = rate_ ? *rate_ + (1 - std::exp(-dt / window_s_)) * (now - *rate_) : now;
  }
  last_t_ = t_s;
  last_count_ = count;
}

std::optional<double> RateSmoother::eta_s(double remaining) const {
  if (!rate_ || *rate_ <= 0) return std::nullopt;
  return remaining / *rate_;
}

namespace {

struct Printer {
  Printer(ProgressStyle s, std::ostream& o, std::ostream& e) : style(std::move(s)), out(o), err(e) {}

  ProgressStyle style;
  std::ostream& out;
  std::ostream& err;
  std::mutex mutex;
  std::chrono::steady_clock::time_point last_plain = std::chrono::steady_clock::now();
  RateSmoother scan_rate;

  void operator()(const ProgressEvent& e) {
    std::lock_guard lock(mutex);
    scan_rate.add(e.elapsed_s, static_cast<double>(e.counters.scanned));
    if (style.json) {
      out << fmt::format(
                 "{{\"event\":\"{}\",\"label\":\"{}\",\"elapsed_s\":{:.1f},\"items_per_s\":{:.0f},"
                 "\"rcu_per_s\":{:.1f},\"wcu_per_s\":{:.1f},\"table_items\":{},\"segments_done\":{},"
                 "\"segments_total\":{},\"counters\":{}}}\n",
                 e.final ? "summary" : "progress", style.label, e.elapsed_s, e.items_per_s, e.rcu_per_s,
                 e.wcu_per_s, e.table_items, e.segments_done, e.segments_total, format_counters_json(e.counters))
          << std::flush;
      return;
    }
    if (style.quiet) return;
    auto now = std::chrono::steady_clock::now();
    if (!style.tty && !e.final) {
      if (now - last_plain < style.plain_every) return;
      last_plain = now;
    }
    const Counters& c = e.counters;
    std::string bar;
    if (style.tty && e.table_items > 0) {
      // ItemCount is DynamoDB's estimate (refreshed about every 6 hours): cap the bar at 99%
      // until the step really ends.
      double f = std::min(e.final ? 1.0 : 0.99, static_cast<double>(c.scanned) / static_cast<double>(e.table_items));
      int filled = static_cast<int>(f * 20);
      bar = fmt::format("[{}{}] {:3.0f}% ", std::string(static_cast<std::size_t>(filled), '#'),
                        std::string(static_cast<std::size_t>(20 - filled), '.'), f * 100);
    }
    std::string eta;
    if (!e.final && e.table_items > 0 && c.scanned < e.table_items) {
      if (auto s = scan_rate.eta_s(static_cast<double>(e.table_items - c.scanned)))
        eta = fmt::format(", ETA {:.0f}s", *s);
    }
    std::string line = fmt::format(
        "{}{}, {:.0f} items/s, {:.0f} RCU/s, {:.0f} WCU/s, segments {}/{}{}", bar, format_counters_text(c),
        e.items_per_s, e.rcu_per_s, e.wcu_per_s, e.segments_done, e.segments_total, eta);
    if (e.final) line += fmt::format(" in {:.1f}s", e.elapsed_s);
    std::string prefix = style.label.empty() ? "  " : "  " + style.label + ": ";
    if (style.tty) {
      err << "\r\033[K" << prefix << line << (e.final ? "\n" : "") << std::flush;
    } else {
      err << prefix << line << "\n" << std::flush;
    }
  }
};

}  // namespace

std::function<void(const ProgressEvent&)> make_progress_printer(ProgressStyle style, std::ostream& out,
                                                                std::ostream& err) {
  auto printer = std::make_shared<Printer>(std::move(style), out, err);
  return [printer](const ProgressEvent& e) { (*printer)(e); };
}

}  // namespace dynamorph::pipeline
