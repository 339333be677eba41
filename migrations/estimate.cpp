#include "migrations/estimate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <fmt/format.h>

namespace dynamorph::migrations {

Estimate estimate_full_run(std::int64_t table_items, const Measured& m, double max_rcu,
                           double max_wcu, const Prices& prices) {
  Estimate e;
  e.table_items = table_items > 0 ? table_items : m.items;
  const double scale =
      m.items > 0 ? static_cast<double>(e.table_items) / static_cast<double>(m.items) : 1.0;
  e.rcu = m.rcu * scale;
  e.wcu = m.wcu * scale;
  e.full_run_s = m.seconds * scale;
  if (max_rcu > 0 && e.rcu / max_rcu > e.full_run_s) {
    e.full_run_s = e.rcu / max_rcu;
    e.limited_by = "max_rcu";
  }
  if (max_wcu > 0 && e.wcu / max_wcu > e.full_run_s) {
    e.full_run_s = e.wcu / max_wcu;
    e.limited_by = "max_wcu";
  }
  e.cost_usd_on_demand = prices.cost(e.rcu, e.wcu);
  return e;
}

std::string format_seconds(double s) {
  if (!(s >= 0)) return "?";
  if (s < 10) return fmt::format("{:.1f} s", s);
  auto t = static_cast<std::int64_t>(std::llround(s));
  if (t < 60) return fmt::format("{} s", t);
  if (t < 3600) return fmt::format("{} min {:02} s", t / 60, t % 60);
  if (t < 86400) return fmt::format("{} h {:02} min", t / 3600, (t % 3600) / 60);
  return fmt::format("{} d {} h", t / 86400, (t % 86400) / 3600);
}

namespace {

// Two-sided 99.5% quantile of Student's t with `dof` degrees of freedom (a 99% interval).
double t995(int dof) {
  static const double table[] = {63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355,
                                 3.250,  3.169, 3.106, 3.055, 3.012, 2.977, 2.947, 2.921,
                                 2.898,  2.878, 2.861, 2.845, 2.831, 2.819, 2.807, 2.797,
                                 2.787,  2.779, 2.771, 2.763, 2.756, 2.750};
  if (dof < 1) return table[0];
  if (dof <= 30) return table[dof - 1];
  return 2.576 + 5.2 / dof;  // within 0.005 above 30
}

}  // namespace

Extrapolated extrapolate(const std::vector<double>& per_segment, int total_segments) {
  Extrapolated r;
  const auto k = static_cast<double>(per_segment.size());
  const auto n = static_cast<double>(std::max(1, total_segments));
  if (k == 0) return r;
  const double sum = std::accumulate(per_segment.begin(), per_segment.end(), 0.0);
  r.value = sum * n / k;
  const double f = std::min(1.0, k / n);
  if (f >= 1.0) return r;  // everything was read: exact
  double between = 0;
  if (per_segment.size() >= 2) {
    const double mean = sum / k;
    double ss = 0;
    for (double x : per_segment) ss += (x - mean) * (x - mean);
    const double var = ss / (k - 1);
    // The total's standard error: n · sqrt(var / k · (1 − f)).
    between = t995(static_cast<int>(k) - 1) * n * std::sqrt(var / k * (1.0 - f));
  }
  const double binomial = 2.576 * std::sqrt(std::max(r.value, 1.0) * (1.0 - f) / f);
  r.plus_minus = std::max(between, binomial);
  return r;
}

std::vector<int> sample_segments(int total_segments, double percent, unsigned seed) {
  const int n = std::max(1, total_segments);
  int k = static_cast<int>(std::lround(n * percent / 100.0));
  k = std::clamp(k, 1, n);
  std::vector<int> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<std::size_t>(k));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace dynamorph::migrations
