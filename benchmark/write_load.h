// The write side of `bench seed` and `bench write`: synthetic items written as fast as the
// server takes them with a fixed number of requests in flight — BatchWriteItem of 25 puts,
// one UpdateItem per item (SET of every attribute: the whole item), or TransactWriteItems of
// 10 puts (DynamoDB allows 100 actions, DynamoDB Local 10; a migration's transactions are small
// too: a delete and a put per item) — under an optional WCU cap (the pipeline's adaptive limiter). The calling thread
// builds and sends requests; answers land on the client's I/O thread. One run per object.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "dynamo/client.h"
#include "pipeline/rate_limiter.h"

namespace dynamorph::benchmark {

// Delete: BatchWriteItem deletes of the same keys (how a bench empties a table it was lent).
inline constexpr int kItemsPerTransaction = 10;

enum class WriteKind { Batch, Update, Transact, Delete };
std::optional<WriteKind> parse_write_kind(std::string_view s);
std::string_view to_string(WriteKind k);
// The operation a kind sends, as the latency table names it.
std::string_view operation_of(WriteKind k);

struct WriteLoadOptions {
  WriteKind kind = WriteKind::Batch;
  std::string table;
  std::int64_t first = 0, items = 0;  // synthetic items [first, first + items)
  int item_bytes = 300;
  std::uint64_t seed = 1;
  int in_flight = 16;
  double max_wcu = 0;  // 0: no cap
  const std::atomic<bool>* stop = nullptr;
};

// What has been acknowledged so far (read at any time).
struct WriteTotals {
  std::int64_t items = 0, bytes = 0;
  double wcu = 0;
};

struct WriteLoadResult {
  WriteTotals totals;
  double wall_s = 0;
  bool stopped = false;  // the stop flag cut it short
  std::string error;     // the first failed request (the load stops there); empty: none
};

class WriteLoad {
 public:
  WriteLoad(dynamo::Client& client, WriteLoadOptions options);
  WriteLoadResult run();  // blocks until every request is answered
  WriteTotals totals() const;

 private:
  // `booked`: WCU reserved from the limiter for this request (0: no cap).
  void send_next(std::int64_t first, int count, double booked);
  void finished(int count, std::int64_t bytes, double booked, double wcu, std::string error);

  dynamo::Client& client_;
  WriteLoadOptions o_;
  pipeline::RateLimiter limiter_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  WriteTotals totals_;
  std::string error_;
};

}  // namespace dynamorph::benchmark
