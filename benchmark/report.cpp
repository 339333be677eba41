#include "benchmark/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "migrations/estimate.h"

namespace dynamorph::benchmark {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.0f}k", v / 1e3);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 1) return fmt::format("{:.3g}", v);
  return fmt::format("{:.2g}", v);
}

// Round tick steps: 1, 2 or 5 times a power of ten, about `want` of them up to `max`.
std::vector<double> linear_ticks(double max, int want = 5) {
  if (!(max > 0)) max = 1;
  const double raw = max / want;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> t;
  for (double v = 0; v <= max * 1.0001 + step * 0.5; v += step) t.push_back(v);
  return t;
}

// A per-second figure as a step line: each rate holds over the interval it was measured on.
std::vector<std::pair<double, double>> steps(const std::vector<SeriesPoint>& series,
                                             double SeriesPoint::*field) {
  std::vector<std::pair<double, double>> pts;
  double t0 = 0;
  for (const auto& p : series) {
    pts.emplace_back(t0, p.*field);
    pts.emplace_back(p.t_s, p.*field);
    t0 = p.t_s;
  }
  return pts;
}

// A chart's frame: plot area, axes, ticks, labels, title, legend.
class Chart {
 public:
  Chart(std::string title, std::string x_label, std::string y_label, bool log_y = false)
      : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)),
        log_y_(log_y) {}

  void set_x(double min, double max) {
    x_min_ = min;
    x_max_ = max > min ? max : min + 1;
  }
  void set_y_max(double max) { y_max_ = max; }

  double unit_px() const { return plot_w() / (x_max_ - x_min_); }
  double px(double x) const { return kLeft + (x - x_min_) / (x_max_ - x_min_) * plot_w(); }
  double py(double y) const {
    if (log_y_) {
      const double lo = std::log10(y_lo_), hi = std::log10(y_hi_);
      const double v = std::log10(std::max(y, y_lo_));
      return kTop + plot_h() - (v - lo) / (hi - lo) * plot_h();
    }
    return kTop + plot_h() - y / y_hi_ * plot_h();
  }

  // Call once every value is known: fixes the y range and draws the frame.
  void frame(const std::vector<std::pair<double, std::string>>& x_ticks = {}) {
    if (log_y_) {
      y_lo_ = 1e9;
      for (double v : y_values_) y_lo_ = std::min(y_lo_, v > 0 ? v : y_lo_);
      if (y_lo_ >= 1e9) y_lo_ = 0.01;
      y_lo_ = std::pow(10.0, std::floor(std::log10(y_lo_)));
      y_hi_ = std::pow(10.0, std::ceil(std::log10(std::max(y_max_, y_lo_ * 10))));
    } else {
      y_ticks_ = linear_ticks(y_max_ > 0 ? y_max_ : 1);
      y_hi_ = y_ticks_.back();
    }
    body_ += fmt::format(R"(<text class="title" x="{}" y="18">{}</text>)", kLeft, esc(title_));
    // y grid and labels
    std::vector<double> ys;
    if (log_y_) {
      for (double v = y_lo_; v <= y_hi_ * 1.0001; v *= 10) ys.push_back(v);
    } else {
      ys = y_ticks_;
    }
    for (double v : ys) {
      body_ += fmt::format(R"(<line class="grid" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>)", kLeft,
                           kLeft + plot_w(), py(v), py(v));
      body_ += fmt::format(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{}</text>)",
                           kLeft - 6, py(v) + 4, num(v));
    }
    // x ticks
    if (x_ticks.empty()) {
      for (double v : linear_ticks(x_max_ - x_min_, 6)) {
        const double x = x_min_ + v;
        if (x > x_max_ * 1.0001) break;
        body_ += fmt::format(R"(<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>)",
                             px(x), kTop + plot_h() + 16, num(x));
      }
    } else {
      for (const auto& [x, label] : x_ticks)
        body_ += fmt::format(R"(<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>)",
                             px(x), kTop + plot_h() + 16, esc(label));
    }
    body_ += fmt::format(
        R"(<path class="axis" d="M{} {} V{} H{}"/>)", kLeft, kTop, kTop + plot_h(), kLeft + plot_w());
    body_ += fmt::format(R"(<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>)",
                         kLeft + plot_w() / 2, kHeight - 6, esc(x_label_));
    body_ += fmt::format(
        R"svg(<text class="label" transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text>)svg",
        kTop + plot_h() / 2, esc(y_label_));
  }

  void note_y(double v) {
    y_max_ = std::max(y_max_, v);
    y_values_.push_back(v);
  }

  void line(const std::vector<std::pair<double, double>>& pts, int color, const std::string& name,
            bool markers) {
    if (pts.empty()) return;
    std::string d;
    for (std::size_t i = 0; i < pts.size(); ++i)
      d += fmt::format("{}{:.1f} {:.1f} ", i ? "L" : "M", px(pts[i].first), py(pts[i].second));
    body_ += fmt::format(R"(<path class="series" stroke="{}" d="{}"><title>{}</title></path>)",
                         kColors[color % 8], d, esc(name));
    if (markers) {
      for (const auto& [x, y] : pts)
        body_ += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"><title>{}: {}</title></circle>)",
                             px(x), py(y), kColors[color % 8], esc(name), num(y));
    }
    legend_.emplace_back(name, color);
  }

  // A bar from the axis up to y, centred on x, `w` pixels wide.
  void bar(double x, double y, double w, int color, const std::string& tip, bool highlight) {
    const double top = py(y), bottom = py(log_y_ ? y_lo_ : 0);
    body_ += fmt::format(
        R"(<path class="bar{}" fill="{}" d="M{:.1f} {:.1f} h{:.1f} V{:.1f} h{:.1f} Z"><title>{}</title></path>)",
        highlight ? " best" : "", kColors[color % 8], px(x) - w / 2, bottom, w, top, -w, esc(tip));
  }
  void legend_entry(const std::string& name, int color) { legend_.emplace_back(name, color); }

  std::string svg() const {
    std::string legend;
    double x = kLeft + 8;
    for (const auto& [name, color] : legend_) {
      legend += fmt::format(R"(<rect x="{:.0f}" y="28" width="10" height="10" fill="{}"/>)"
                            R"(<text class="tick" x="{:.0f}" y="37">{}</text>)",
                            x, kColors[color % 8], x + 14, esc(name));
      x += 24 + 7.0 * static_cast<double>(name.size());
    }
    return fmt::format(
        R"(<figure><svg class="chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}</svg></figure>)",
        kWidth, kHeight, kWidth, kHeight, esc(title_), body_, legend);
  }

 private:
  static constexpr int kWidth = 720, kHeight = 300, kLeft = 64, kRight = 16, kTop = 44,
                       kBottom = 44;
  static double plot_w() { return kWidth - kLeft - kRight; }
  static double plot_h() { return kHeight - kTop - kBottom; }

  std::string title_, x_label_, y_label_;
  bool log_y_;
  double x_min_ = 0, x_max_ = 1, y_max_ = 0, y_lo_ = 1, y_hi_ = 1;
  std::vector<double> y_ticks_, y_values_;
  std::string body_;
  std::vector<std::pair<std::string, int>> legend_;
};

std::string run_name(const RunFigures& f) {
  return f.setting_name.empty() ? std::string("run") : fmt::format("{} {}", f.setting_name, f.setting);
}

// One line per run of a per-second figure.
std::string over_time(const BenchResult& r, const std::string& title, const std::string& y_label,
                      double SeriesPoint::*field) {
  Chart c(title, "seconds since the run started", y_label);
  double t_max = 1;
  for (const auto& run : r.runs) {
    for (const auto& p : run.series) {
      t_max = std::max(t_max, p.t_s);
      c.note_y(p.*field);
    }
  }
  c.set_x(0, t_max);
  c.frame();
  int color = 0;
  for (const auto& run : r.runs) c.line(steps(run.series, field), color++, run_name(run), false);
  return c.svg();
}

std::string capacity_chart(const BenchResult& r) {
  const RunFigures& b = r.best_run();
  Chart c(fmt::format("Consumed capacity over time ({}{})", run_name(b),
                      r.runs.size() > 1 ? ", the best run" : ""),
          "seconds since the run started", "capacity units per second");
  double t_max = 1;
  for (const auto& p : b.series) {
    t_max = std::max(t_max, p.t_s);
    c.note_y(p.rcu_per_s);
    c.note_y(p.wcu_per_s);
  }
  c.set_x(0, t_max);
  c.frame();
  c.line(steps(b.series, &SeriesPoint::rcu_per_s), 0, "RCU/s", false);
  c.line(steps(b.series, &SeriesPoint::wcu_per_s), 1,
         r.bench == "migrate" ? "WCU/s (planned)" : "WCU/s", false);
  return c.svg();
}

std::string throttle_chart(const BenchResult& r) {
  Chart c("Throttled requests per second", "seconds since the run started",
          "throttled attempts per second");
  double t_max = 1;
  for (const auto& run : r.runs) {
    for (const auto& p : run.series) {
      t_max = std::max(t_max, p.t_s);
      c.note_y(static_cast<double>(p.throttled));
    }
  }
  c.set_x(0, t_max);
  c.frame();
  int color = 0;
  for (const auto& run : r.runs) {
    std::vector<SeriesPoint> per_second = run.series;
    for (auto& p : per_second) p.items_per_s = static_cast<double>(p.throttled);
    c.line(steps(per_second, &SeriesPoint::items_per_s), color++, run_name(run), false);
  }
  return c.svg();
}

std::string latency_chart(const BenchResult& r) {
  const RunFigures& b = r.best_run();
  Chart c(fmt::format("Latency of each request by operation ({})", run_name(b)), "operation",
          "milliseconds (log scale)", true);
  struct Pct {
    const char* name;
    double LatencySummary::*field;
  };
  const Pct pcts[] = {{"p50", &LatencySummary::p50},   {"p90", &LatencySummary::p90},
                      {"p99", &LatencySummary::p99},   {"p99.9", &LatencySummary::p999},
                      {"max", &LatencySummary::max}};
  std::vector<std::pair<double, std::string>> ticks;
  double x = 0;
  for (const auto& [op, s] : b.latency_ms) {
    ticks.emplace_back(x, fmt::format("{} ({} requests)", op, s.count));
    for (const auto& p : pcts) c.note_y(s.*p.field);
    x += 1;
  }
  c.set_x(-0.5, std::max(0.5, x - 0.5));
  c.frame(ticks);
  x = 0;
  const double w = std::min(28.0, c.unit_px() / 7);
  for (const auto& [op, s] : b.latency_ms) {
    for (int i = 0; i < 5; ++i) {
      const double off = (i - 2) * w * 1.15 / c.unit_px();  // in data units
      const double v = s.*pcts[i].field;
      c.bar(x + off, v, w, i, fmt::format("{} {}: {:.2f} ms", op, pcts[i].name, v), false);
    }
    x += 1;
  }
  for (int i = 0; i < 5; ++i) c.legend_entry(pcts[i].name, i);
  return c.svg();
}

std::string sweep_chart(const BenchResult& r) {
  const RunFigures& b = r.best_run();
  const std::string setting = b.setting_name.empty() ? "run" : b.setting_name;
  Chart c(fmt::format("Throughput by {} (the best highlighted)", setting), setting,
          "items per second");
  std::vector<std::pair<double, std::string>> ticks;
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    ticks.emplace_back(static_cast<double>(i), std::to_string(r.runs[i].setting));
    c.note_y(r.runs[i].items_per_s());
  }
  c.set_x(-0.5, static_cast<double>(r.runs.size()) - 0.5);
  c.frame(ticks);
  const double w = std::min(60.0, c.unit_px() * 0.6);
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    const auto& f = r.runs[i];
    c.bar(static_cast<double>(i), f.items_per_s(), w, i == r.best ? 2 : 0,
          fmt::format("{} {}: {:.0f} items/s, {:.2f} MB/s", setting, f.setting, f.items_per_s(),
                      f.mb_per_s()),
          i == r.best);
  }
  c.legend_entry("items/s", 0);
  c.legend_entry("best", 2);
  return c.svg();
}

std::string runs_table(const BenchResult& r) {
  std::string t =
      "<table><tr><th>setting</th><th>items</th><th>wall s</th><th>items/s</th><th>MB/s</th>"
      "<th>RCU/s</th><th>WCU/s</th><th>throttled</th><th>retries</th><th>client CPU s</th>"
      "<th>peak RSS MiB</th></tr>";
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    const auto& f = r.runs[i];
    t += fmt::format(
        "<tr{}><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.0f}</td><td>{:.2f}</td><td>{:.1f}</td>"
        "<td>{:.1f}</td><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.0f}</td></tr>",
        i == r.best ? R"( class="best")" : "", esc(run_name(f)), f.items, f.wall_s,
        f.items_per_s(), f.mb_per_s(), f.rcu_per_s(), f.wcu_per_s(), f.throttled, f.retries,
        f.client_cpu_s, f.peak_rss_mib);
  }
  return t + "</table>";
}

std::string latency_table(const RunFigures& b) {
  std::string t =
      "<table><tr><th>operation</th><th>requests</th><th>p50 ms</th><th>p90 ms</th>"
      "<th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>";
  for (const auto& [op, s] : b.latency_ms)
    t += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.2f}</td>"
        "<td>{:.2f}</td></tr>",
        esc(op), s.count, s.p50, s.p90, s.p99, s.p999, s.max);
  return t + "</table>";
}

}  // namespace

std::string report_html(const BenchResult& r) {
  const RunFigures& b = r.best_run();
  const auto& e = r.estimate;
  std::string html;
  html += R"(<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">)";
  html += fmt::format("<title>dynamorph bench {} — {}</title>", esc(r.bench), esc(r.target));
  html += R"(<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:760px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}tr.best td{background:#eaf6ea;font-weight:600}
figure{margin:12px 0}svg.chart{background:#fff;border:1px solid #ddd}
.title{font-size:13px;font-weight:600}.tick{font-size:11px;fill:#555}.label{font-size:12px;fill:#333}
.grid{stroke:#eee}.axis{stroke:#333;fill:none}.series{fill:none;stroke-width:2}
.bar.best{stroke:#111;stroke-width:1.5}.summary{background:#f7f7f7;padding:8px 12px;border-radius:4px}
</style></head><body>)";
  html += fmt::format("<h1>dynamorph bench {}</h1><p>{}</p>", esc(r.bench), esc(r.target));
  html += R"(<div class="summary">)";
  html += fmt::format(
      "<p><b>{:.0f} items/s</b>, {:.2f} MB/s, {:.1f} RCU/s, {:.1f} WCU/s{}.</p>", b.items_per_s(),
      b.mb_per_s(), b.rcu_per_s(), b.wcu_per_s(),
      b.setting_name.empty() || r.runs.size() < 2
          ? std::string()
          : fmt::format(" with the best setting, {} {}", b.setting_name, b.setting));
  html += fmt::format(
      "<p>Estimate for {} items: <b>{}</b> ({}), {:.0f} RCU + {:.0f} WCU, <b>${:.4f}</b> on "
      "demand ({} prices as of {}).</p>",
      e.table_items, esc(migrations::format_seconds(e.full_run_s)),
      e.limited_by == "measured rate" ? "at the best measured rate" : "limited by " + e.limited_by,
      e.rcu, e.wcu, e.cost_usd_on_demand, esc(r.prices.region), esc(r.prices.as_of));
  for (const auto& n : r.notes) html += "<p>" + esc(n) + "</p>";
  html += "</div>";
  html += "<h2>Throughput</h2>";
  html += over_time(r, "Items per second over time", "items per second", &SeriesPoint::items_per_s);
  if (r.runs.size() > 1) html += sweep_chart(r);
  html += runs_table(r);
  html += "<h2>Consumed capacity</h2>" + capacity_chart(r);
  html += "<h2>Latency</h2>" + latency_chart(r) + latency_table(b);
  html += "<h2>Throttling</h2>" + throttle_chart(r);
  html += fmt::format("<p>{} throttled attempts, {} retries in the best run.</p>", b.throttled,
                      b.retries);
  html += "</body></html>\n";
  return html;
}

}  // namespace dynamorph::benchmark
