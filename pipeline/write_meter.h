// Which write requests ask DynamoDB what they consumed, and what the others are taken to cost.
// Thread-safe (reserve on TBB workers, answers on the I/O thread); a short lock per request.
//
// Why. ReturnConsumedCapacity is free on DynamoDB's bill but not for the server: DynamoDB Local
// spends 10-15% more CPU per BatchWriteItem with it (docs/benchmarks.md), and every answer
// carries it. The sink already sizes each write op by DynamoDB's metering rules (item sizes,
// indexes included: WriteOp::wcu_estimate), and that estimate is exact whenever the target item
// is what it assumed (the scanned item, or none). So only a sample of requests asks: the first
// kFirst, then one in `every`. The others cost their estimate times the calibration ratio, the
// metered units over the metered estimates with exponential decay (about the last 64 metered
// requests), which corrects a systematic bias (a copy into a table whose items are larger than
// the new ones) and follows it when it drifts. Until a metered answer has come back the ratio is 1.
//
// every = 1 meters every request (then the run's consumed WCU is exactly the server's).
#pragma once

#include <cstdint>
#include <mutex>

namespace dynamorph::pipeline {

class WriteMeter {
 public:
  static constexpr int kFirst = 8;
  static constexpr int kDefaultEvery = 16;

  explicit WriteMeter(int every = kDefaultEvery) : every_(every < 1 ? 1 : every) {}

  // Whether the next request asks for its ConsumedCapacity.
  bool sample();
  // A metered answer: the request's estimate and what the server said it consumed.
  void observe(double estimate, double consumed);
  // What an unmetered request of this estimate is taken to have consumed.
  double cost(double estimate) const;
  double ratio() const;

  std::int64_t requests() const;  // sample() calls
  std::int64_t metered() const;   // observe() calls

 private:
  const int every_;
  mutable std::mutex mutex_;
  std::int64_t requests_ = 0;
  std::int64_t metered_ = 0;
  double consumed_ = 0;  // decayed sums of the metered answers
  double estimated_ = 0;
};

}  // namespace dynamorph::pipeline
