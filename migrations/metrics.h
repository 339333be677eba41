// The process's Prometheus metrics: counters and gauges by name and labels, written out in the
// text exposition format 0.0.4 (what `--metrics ADDR` serves at /metrics, migrations/
// metrics_server.h). No HTTP here: any layer above may record into it. Thread-safe: every call
// takes one mutex, so call it about once a second per series (progress events, heartbeats),
// never per item.
//
// Use:
//   metrics::registry().set_gauge("dynamorph_leases_held", {{"version", "3"}, {"step", "1"}}, 4);
//   metrics::registry().add_counter("dynamorph_items_written_total", labels, 25);
// Every family is declared once in metrics.cpp (name, type, HELP text): a name not declared
// there is a programming error (std::logic_error). Each series also carries `worker`, added
// here (worker_name()); callers give `version` and `step` where the metric has them.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dynamorph::migrations::metrics {

// Label name → value. Order does not matter: a series is its sorted label set.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Kind { Counter, Gauge };

class Registry {
 public:
  // `worker`: the value of the `worker` label on every series (empty: no such label).
  explicit Registry(std::string worker);

  // Declares a family; names follow Prometheus' rules and counters end in `_total`
  // (std::logic_error otherwise, or when declared twice with another type).
  void declare(std::string name, Kind kind, std::string help);

  // A counter goes up by `delta` (>= 0; a negative one is ignored: counters never go down).
  void add_counter(std::string_view name, const Labels& labels, double delta);
  void set_gauge(std::string_view name, const Labels& labels, double value);
  void add_gauge(std::string_view name, const Labels& labels, double delta);  // may be < 0
  // A gauge read when scraped (e.g. requests in flight). `read` runs under the registry's
  // mutex: it must be quick and must not call the registry.
  void set_gauge_function(std::string_view name, const Labels& labels,
                          std::function<double()> read);

  // The current value of one series (a gauge function is read); 0 when it does not exist.
  double value(std::string_view name, const Labels& labels) const;

  // Text exposition format 0.0.4: per family (sorted by name) `# HELP` and `# TYPE` once, then
  // its series sorted by labels; label values and HELP text escaped.
  std::string exposition() const;

 private:
  struct Series {
    double value = 0;
    std::function<double()> read;
  };
  struct Family {
    Kind kind = Kind::Gauge;
    std::string help;
    std::map<Labels, Series> series;
  };
  Family& family(std::string_view name, Kind kind);
  Series& series(Family& f, const Labels& labels);

  std::string worker_;
  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

// The process's registry, with every dynamorph_ family declared (metrics.cpp lists them).
Registry& registry();

// The `worker` label: DYNAMORPH_WORKER_NAME when set, else this process's owner id
// (host:pid:nonce, as in the lock and the leases of the state table).
std::string worker_name();

// "+Inf", "-Inf", "NaN", or the shortest text that reads back as the same double.
std::string format_value(double v);
// Label values: backslash, double quote and newline escaped (\\, \", \n).
std::string escape_label_value(std::string_view v);

}  // namespace dynamorph::migrations::metrics
