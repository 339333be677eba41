#include "benchmark/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace dynamorph::benchmark {

// Index layout: [0, 2^P) holds the values themselves; then, for each magnitude m ≥ P (the
// position of the value's highest bit), 2^P buckets of width 2^(m−P) covering [2^m, 2^(m+1)).
LatencyHistogram::LatencyHistogram(int precision_bits) : bits_(precision_bits) {
  if (bits_ < 1 || bits_ > 16) throw std::invalid_argument("precision bits must be 1..16");
  counts_.assign(static_cast<std::size_t>(65 - bits_) << bits_, 0);
}

std::size_t LatencyHistogram::index_of(std::uint64_t v) const {
  const std::uint64_t sub = std::uint64_t{1} << bits_;
  if (v < sub) return static_cast<std::size_t>(v);
  const int m = 63 - std::countl_zero(v);  // ≥ bits_
  const int shift = m - bits_;
  const std::uint64_t within = (v >> shift) - sub;  // [0, 2^P)
  return static_cast<std::size_t>((static_cast<std::uint64_t>(shift + 1) << bits_) + within);
}

std::uint64_t LatencyHistogram::lowest_of(std::size_t index) const {
  const std::size_t sub = std::size_t{1} << bits_;
  if (index < sub) return index;
  const int shift = static_cast<int>(index >> bits_) - 1;
  return (static_cast<std::uint64_t>(sub) + (index & (sub - 1))) << shift;
}

std::uint64_t LatencyHistogram::width_of(std::size_t index) const {
  const std::size_t sub = std::size_t{1} << bits_;
  if (index < sub) return 1;
  return std::uint64_t{1} << (static_cast<int>(index >> bits_) - 1);
}

void LatencyHistogram::record(std::uint64_t value) {
  ++counts_[index_of(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.bits_ != bits_)
    throw std::invalid_argument("merging latency histograms of different precision");
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

double LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const std::uint64_t width = width_of(i);
      const double middle = width == 1 ? static_cast<double>(lowest_of(i))
                                       : static_cast<double>(lowest_of(i)) +
                                             static_cast<double>(width - 1) / 2.0;
      return std::min(middle, static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

double LatencyHistogram::relative_error() const { return 1.0 / static_cast<double>(2u << bits_); }

}  // namespace dynamorph::benchmark
