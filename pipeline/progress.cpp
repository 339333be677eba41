#include "pipeline/progress.h"

#include <fmt/format.h>

#include <memory>
#include <mutex>

namespace dynamorph::pipeline {

std::string format_counters_json(const Counters& c) {
  return fmt::format(
      "\"scanned\":{},\"matched\":{},\"written\":{},\"skipped\":{},\"conflicts\":{},\"failed\":{},\"retries\":{},"
      "\"consumed_rcu\":{:.1f},\"consumed_wcu\":{:.1f},\"puts\":{},\"updates\":{},\"deletes\":{},\"transactions\":{}",
      c.scanned, c.matched, c.written, c.skipped, c.conflicts, c.failed, c.retries, c.consumed_rcu, c.consumed_wcu,
      c.puts, c.updates, c.deletes, c.transactions);
}

std::function<void(const ProgressEvent&)> make_progress_printer(ProgressStyle style) {
  auto mutex = std::make_shared<std::mutex>();
  return [style, mutex](const ProgressEvent& e) {
    std::lock_guard lock(*mutex);
    const Counters& c = e.counters;
    if (style.json) {
      fmt::print(stdout, "{{\"event\":\"{}\",\"label\":\"{}\",\"elapsed_s\":{:.2f},\"items_per_s\":{:.0f},{},\"rcu_per_s\":{:.1f},\"wcu_per_s\":{:.1f},\"table_items\":{}}}\n",
                 e.final ? "summary" : "progress", style.label, e.elapsed_s, e.items_per_s, format_counters_json(c),
                 e.rcu_per_s, e.wcu_per_s, e.table_items);
      std::fflush(stdout);
      return;
    }
    if (!e.final && (style.quiet || !style.tty)) return;
    std::string eta = "?";
    if (e.table_items > 0 && e.items_per_s > 0 && c.scanned < e.table_items) {
      eta = fmt::format("{:.0f}s", static_cast<double>(e.table_items - c.scanned) / e.items_per_s);
    }
    std::string bar;
    if (e.table_items > 0) {
      double f = std::min(1.0, static_cast<double>(c.scanned) / static_cast<double>(e.table_items));
      int filled = static_cast<int>(f * 24);
      bar = fmt::format("[{}{}] {:3.0f}% ", std::string(static_cast<std::size_t>(filled), '#'),
                        std::string(static_cast<std::size_t>(24 - filled), '.'), f * 100);
    }
    std::string line = fmt::format(
        "{}scanned {} matched {} written {} skipped {} conflicts {} retries {} | {:.0f} items/s RCU {:.0f}/s WCU {:.0f}/s",
        bar, c.scanned, c.matched, c.written, c.skipped, c.conflicts, c.retries, e.items_per_s, e.rcu_per_s, e.wcu_per_s);
    if (!e.final) {
      fmt::print(stderr, "\r\033[K{} ETA {}", line, eta);
    } else {
      if (style.tty) fmt::print(stderr, "\r\033[K");
      fmt::print(stderr, "{}{}{} in {:.1f}s\n", style.label, style.label.empty() ? "" : ": ", line, e.elapsed_s);
    }
    std::fflush(stderr);
  };
}

}  // namespace dynamorph::pipeline
