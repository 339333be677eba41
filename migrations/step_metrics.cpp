#include "migrations/step_metrics.h"

#include <memory>
#include <mutex>
#include <string>

#include "dynamo/client.h"
#include "dynamo/http_transport.h"
#include "migrations/metrics.h"

namespace dynamorph::migrations {
namespace {

struct CounterMetric {
  const char* name;
  std::int64_t pipeline::Counters::*count;
  double pipeline::Counters::*amount;
};
constexpr CounterMetric kStepCounters[] = {
    {"dynamorph_items_scanned_total", &pipeline::Counters::scanned, nullptr},
    {"dynamorph_items_matched_total", &pipeline::Counters::matched, nullptr},
    {"dynamorph_items_written_total", &pipeline::Counters::written, nullptr},
    {"dynamorph_items_skipped_total", &pipeline::Counters::skipped, nullptr},
    {"dynamorph_items_failed_total", &pipeline::Counters::failed, nullptr},
    {"dynamorph_items_dead_lettered_total", &pipeline::Counters::dead_letters, nullptr},
    {"dynamorph_conflicts_total", &pipeline::Counters::conflicts, nullptr},
    {"dynamorph_retries_total", &pipeline::Counters::retries, nullptr},
    {"dynamorph_consumed_rcu_total", nullptr, &pipeline::Counters::consumed_rcu},
    {"dynamorph_consumed_wcu_total", nullptr, &pipeline::Counters::consumed_wcu},
};

double get(const pipeline::Counters& c, const CounterMetric& m) {
  return m.count ? static_cast<double>(c.*m.count) : c.*m.amount;
}

// What one step has recorded so far. The registry's counters only go up by deltas: each event's
// counters minus the resumed part minus what this run recorded already. A run's live `scanned`
// may run ahead of its final (committed) one when it is stopped; a counter never goes back.
struct StepFeed {
  metrics::Labels labels;
  const dynamo::Client* client;
  std::mutex mu;
  pipeline::Counters run_seen;  // this run's own work recorded so far
  std::uint64_t throttles_seen;
  bool started = false;
};

}  // namespace

void register_process_metrics() {
  static std::once_flag once;
  std::call_once(once, [] {
    metrics::registry().set_gauge_function("dynamorph_requests_in_flight", {}, [] {
      return static_cast<double>(std::max<std::int64_t>(0, dynamo::requests_in_flight().load()));
    });
  });
}

std::function<void(const pipeline::ProgressEvent&)> record_step_metrics(
    std::function<void(const pipeline::ProgressEvent&)> then, std::int64_t version, int step,
    const dynamo::Client& client) {
  auto feed = std::make_shared<StepFeed>();
  feed->labels = {{"version", std::to_string(version)}, {"step", std::to_string(step)}};
  feed->client = &client;
  feed->throttles_seen = client.stats().throttles.load();
  return [feed, then = std::move(then)](const pipeline::ProgressEvent& e) {
    {
      auto& reg = metrics::registry();
      std::lock_guard lock(feed->mu);
      if (!feed->started) {
        feed->started = true;
        reg.add_gauge("dynamorph_leases_held", feed->labels, 0);  // the series exists: 0
      }
      pipeline::Counters own = e.counters;
      own -= e.resumed;
      for (const auto& m : kStepCounters) {
        const double delta = get(own, m) - get(feed->run_seen, m);
        reg.add_counter(m.name, feed->labels, delta);  // at 0 first: the series exists
        if (delta > 0) {
          if (m.count)
            feed->run_seen.*m.count = own.*m.count;
          else
            feed->run_seen.*m.amount = own.*m.amount;
        }
      }
      const std::uint64_t throttles = feed->client->stats().throttles.load();
      reg.add_counter("dynamorph_throttles_total", feed->labels,
                      static_cast<double>(throttles - feed->throttles_seen));
      feed->throttles_seen = throttles;
      reg.set_gauge("dynamorph_segments_done", feed->labels, e.segments_done);
      reg.set_gauge("dynamorph_segments_total", feed->labels, e.segments_total);
      if (e.lag_s) reg.set_gauge("dynamorph_stream_lag_seconds", feed->labels, *e.lag_s);
      if (e.final) feed->run_seen = pipeline::Counters{};  // the next run counts from zero
    }
    if (then) then(e);
  };
}

}  // namespace dynamorph::migrations
