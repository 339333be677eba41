// A log-linear latency histogram (HdrHistogram's idea): values below 2^P are counted exactly,
// larger ones in buckets whose width is at most 1/2^P of their lower bound, so every reported
// percentile is within a relative error of 2^-(P+1) of a recorded value (the bucket's middle;
// P = 7: ±0.39%). Recording is an index computation and one increment; histograms of the same
// precision merge by adding counts, so each thread records into its own and the results are
// combined at the end. Not thread-safe: one writer at a time.
#pragma once

#include <cstdint>
#include <vector>

namespace dynamorph::benchmark {

class LatencyHistogram {
 public:
  static constexpr int kDefaultPrecisionBits = 7;
  explicit LatencyHistogram(int precision_bits = kDefaultPrecisionBits);

  void record(std::uint64_t value);  // in any unit (the benchmarks use microseconds)
  void merge(const LatencyHistogram& other);  // same precision; throws std::invalid_argument

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }  // exact
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0; }
  // The nearest-rank percentile (0 < p ≤ 100): the smallest recorded value v with at least
  // p% of the values ≤ v, as its bucket's middle (exact below 2^P), never above max().
  // 0 when empty.
  double percentile(double p) const;
  // The stated precision: |reported − true| ≤ relative_error() · true.
  double relative_error() const;
  int precision_bits() const { return bits_; }

 private:
  std::size_t index_of(std::uint64_t v) const;
  std::uint64_t lowest_of(std::size_t index) const;
  std::uint64_t width_of(std::size_t index) const;

  int bits_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0, sum_ = 0, min_ = UINT64_MAX, max_ = 0;
};

}  // namespace dynamorph::benchmark
