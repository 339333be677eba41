#include "migrations/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "dynamo/aws_config.h"
#include "migrations/lease.h"

namespace dynamorph::migrations::metrics {
namespace {

bool valid_name(std::string_view s, bool colon) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// HELP text: backslash and newline escaped (quotes stay as they are).
std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// Every family dynamorph records. Counters count this process's work: a resumed step's earlier
// runs are not in them (they are in `status`).
struct Declared {
  const char* name;
  Kind kind;
  const char* help;
};
constexpr Declared kFamilies[] = {
    {"dynamorph_items_scanned_total", Kind::Counter,
     "Items the server examined for a pipeline step (ScannedCount), by this process"},
    {"dynamorph_items_matched_total", Kind::Counter,
     "Items that passed the step's filter and where, by this process"},
    {"dynamorph_items_written_total", Kind::Counter,
     "Items whose write (put, update or delete) was acknowledged, by this process"},
    {"dynamorph_items_skipped_total", Kind::Counter,
     "Items left as they were (already at this version, or nothing to change)"},
    {"dynamorph_items_failed_total", Kind::Counter, "Items that could not be written"},
    {"dynamorph_items_dead_lettered_total", Kind::Counter,
     "Items skipped to the dead letters (on_item_error: skip)"},
    {"dynamorph_conflicts_total", Kind::Counter,
     "Guard failures whose item was read and transformed again"},
    {"dynamorph_retries_total", Kind::Counter,
     "Requests of the step sent again (throttling, 5xx, resets, unprocessed items)"},
    {"dynamorph_throttles_total", Kind::Counter,
     "Throttled DynamoDB answers received while the step ran"},
    {"dynamorph_consumed_rcu_total", Kind::Counter, "Read capacity units the step consumed"},
    {"dynamorph_consumed_wcu_total", Kind::Counter, "Write capacity units the step consumed"},
    {"dynamorph_requests_in_flight", Kind::Gauge, "HTTP requests on the wire now"},
    {"dynamorph_segments_done", Kind::Gauge,
     "Partitions of the step's run that are done (scan segments; lanes while a stream replays)"},
    {"dynamorph_segments_total", Kind::Gauge, "Partitions of the step's run"},
    {"dynamorph_leases_held", Kind::Gauge, "Segment leases of the step this worker holds"},
    {"dynamorph_stream_lag_seconds", Kind::Gauge,
     "How far the replay of the step's source stream is behind, in seconds"},
};

}  // namespace

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

Registry::Registry(std::string worker) : worker_(std::move(worker)) {}

void Registry::declare(std::string name, Kind kind, std::string help) {
  if (!valid_name(name, true))
    throw std::logic_error(fmt::format("metrics: '{}' is not a metric name", name));
  if (kind == Kind::Counter && !ends_with(name, "_total"))
    throw std::logic_error(fmt::format("metrics: counter '{}' must end in _total", name));
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second.kind != kind)
      throw std::logic_error(fmt::format("metrics: '{}' declared twice, as two types", name));
    return;
  }
  Family f;
  f.kind = kind;
  f.help = std::move(help);
  families_.emplace(std::move(name), std::move(f));
}

Registry::Family& Registry::family(std::string_view name, Kind kind) {
  auto it = families_.find(name);
  if (it == families_.end())
    throw std::logic_error(
        fmt::format("metrics: '{}' is not declared (migrations/metrics.cpp)", name));
  if (it->second.kind != kind)
    throw std::logic_error(fmt::format("metrics: '{}' is a {}", name,
                                       it->second.kind == Kind::Counter ? "counter" : "gauge"));
  return it->second;
}

Registry::Series& Registry::series(Family& f, const Labels& labels) {
  Labels key = labels;
  for (const auto& [k, v] : key)
    if (!valid_name(k, false) || k.starts_with("__") || k == "worker")
      throw std::logic_error(fmt::format("metrics: '{}' cannot be a label name here", k));
  if (!worker_.empty()) key.emplace_back("worker", worker_);
  std::sort(key.begin(), key.end());
  return f.series[std::move(key)];
}

void Registry::add_counter(std::string_view name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  Series& s = series(family(name, Kind::Counter), labels);
  if (delta > 0) s.value += delta;
}

void Registry::set_gauge(std::string_view name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Series& s = series(family(name, Kind::Gauge), labels);
  s.read = nullptr;
  s.value = value;
}

void Registry::add_gauge(std::string_view name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  series(family(name, Kind::Gauge), labels).value += delta;
}

void Registry::set_gauge_function(std::string_view name, const Labels& labels,
                                  std::function<double()> read) {
  std::lock_guard lock(mu_);
  series(family(name, Kind::Gauge), labels).read = std::move(read);
}

double Registry::value(std::string_view name, const Labels& labels) const {
  Labels key = labels;
  if (!worker_.empty()) key.emplace_back("worker", worker_);
  std::sort(key.begin(), key.end());
  std::lock_guard lock(mu_);
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto s = f->second.series.find(key);
  if (s == f->second.series.end()) return 0;
  return s->second.read ? s->second.read() : s->second.value;
}

std::string Registry::exposition() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name,
                   escape_help(f.help), name, f.kind == Kind::Counter ? "counter" : "gauge");
    for (const auto& [labels, s] : f.series) {
      out += name;
      if (!labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < labels.size(); ++i) {
          if (i) out += ',';
          fmt::format_to(std::back_inserter(out), "{}=\"{}\"", labels[i].first,
                         escape_label_value(labels[i].second));
        }
        out += '}';
      }
      fmt::format_to(std::back_inserter(out), " {}\n", format_value(s.read ? s.read() : s.value));
    }
  }
  return out;
}

std::string worker_name() {
  if (auto w = dynamo::system_getenv("DYNAMORPH_WORKER_NAME"); w && !w->empty()) return *w;
  return this_process_owner().id();
}

Registry& registry() {
  static Registry r(worker_name());
  static const bool declared = [] {
    for (const auto& f : kFamilies) r.declare(f.name, f.kind, f.help);
    return true;
  }();
  (void)declared;
  return r;
}

}  // namespace dynamorph::migrations::metrics
