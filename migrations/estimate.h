// What a whole run would take, from what a part of it measured: time, capacity units and the
// on-demand cost, for `up --dry-run` and `dynamorph bench`; and the extrapolation of a sampled
// dry run (a random share of the scan segments) to the whole table with its uncertainty.
// Plain functions on plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dynamorph::migrations {

// On-demand request-unit prices in USD (dynamorph.yaml `pricing:`). The default is AWS's
// us-east-1 price list as of 2024-11-01 (after that month's on-demand price cut): $0.125 per
// million read request units, $0.625 per million write request units. One read request unit
// is one strongly consistent read of up to 4 KB, or two eventually consistent ones (a Scan's
// ConsumedCapacity already counts in these units); one write request unit writes up to 1 KB.
struct Prices {
  std::string region = "us-east-1";
  std::string as_of = "2024-11-01";
  double read_per_million = 0.125;
  double write_per_million = 0.625;
  double cost(double rcu, double wcu) const {
    return rcu * read_per_million / 1e6 + wcu * write_per_million / 1e6;
  }
};

// What a measured part did: `items` source items in `seconds`, consuming (or, in a dry run,
// planning) `rcu` and `wcu`.
struct Measured {
  std::int64_t items = 0;
  double seconds = 0;
  double rcu = 0, wcu = 0;
};

struct Estimate {
  std::int64_t table_items = 0;  // what the estimate is for
  double full_run_s = 0;
  double rcu = 0, wcu = 0;
  double cost_usd_on_demand = 0;
  // What sets full_run_s: "measured rate", "max_rcu", "max_wcu".
  std::string limited_by = "measured rate";
};

// Scales `m` to `table_items` (0: the measured items are the whole table) at the measured
// rate, or slower where a cap (> 0) allows less.
Estimate estimate_full_run(std::int64_t table_items, const Measured& m, double max_rcu,
                           double max_wcu, const Prices& prices);

// "0.4 s", "12 s", "3 min 20 s", "2 h 05 min", "3 d 4 h": for estimates people read.
std::string format_seconds(double seconds);

// A total extrapolated from a random k of n segments, with a 99% interval.
struct Extrapolated {
  double value = 0;        // n/k × the sampled sum
  double plus_minus = 0;   // half-width of the 99% interval
};

// `per_segment`: the figure of each sampled segment; `total_segments`: n. The interval is the
// wider of two: Student's t over the spread between the sampled segments (with the finite-
// population correction), and the binomial spread of items falling into the sample at random
// (segments split the key hash space, so each item is in the sample with probability k/n).
Extrapolated extrapolate(const std::vector<double>& per_segment, int total_segments);

// The segments a sampled run reads: round(percent% of total), at least one, at random
// (seeded), ascending.
std::vector<int> sample_segments(int total_segments, double percent, unsigned seed);

}  // namespace dynamorph::migrations
