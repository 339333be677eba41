#include "pipeline/write_meter.h"

namespace dynamorph::pipeline {

namespace {
constexpr double kDecay = 1.0 / 64;
}

bool WriteMeter::sample() {
  std::lock_guard lock(mutex_);
  const std::int64_t n = requests_++;
  return n < kFirst || (n - kFirst) % every_ == every_ - 1;
}

void WriteMeter::observe(double estimate, double consumed) {
  std::lock_guard lock(mutex_);
  ++metered_;
  consumed_ = consumed_ * (1 - kDecay) + consumed;
  estimated_ = estimated_ * (1 - kDecay) + estimate;
}

double WriteMeter::ratio() const {
  std::lock_guard lock(mutex_);
  // Nothing metered yet, or only writes estimated at nothing (their cost cannot calibrate).
  return estimated_ > 0 ? consumed_ / estimated_ : 1.0;
}

double WriteMeter::cost(double estimate) const { return estimate * ratio(); }

std::int64_t WriteMeter::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::int64_t WriteMeter::metered() const {
  std::lock_guard lock(mutex_);
  return metered_;
}

}  // namespace dynamorph::pipeline
