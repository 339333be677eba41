// What a benchmark measures besides its own counts: the latency of every request by operation
// (the client's attempt hook feeds it), throttled attempts, and the process's CPU time and peak
// memory. Latencies go into one histogram per operation per recording thread, merged when read,
// so recording takes no shared lock (the client records on its one I/O thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/latency_histogram.h"
#include "dynamo/client.h"

namespace dynamorph::benchmark {

class Recorder {
 public:
  Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // For ClientOptions::on_attempt; the recorder must outlive the client.
  std::function<void(const dynamo::AttemptRecord&)> hook();
  void record(std::string_view operation, std::chrono::nanoseconds latency, bool throttled);

  // Merged over the recording threads since the last reset(), by operation, in microseconds.
  std::map<std::string, LatencyHistogram> latencies() const;
  std::uint64_t throttled() const;
  // Between the runs of a sweep, when no request is in flight.
  void reset();

 private:
  struct Shard {
    std::mutex mutex;  // taken by its one writer thread, and by readers: never contended long
    std::map<std::string, LatencyHistogram, std::less<>> by_operation;
    std::uint64_t throttled = 0;
  };
  Shard& shard();

  const std::uint64_t id_;  // tells the threads' shard caches one recorder from the next
  mutable std::mutex shards_mutex_;
  std::map<std::thread::id, std::unique_ptr<Shard>> shards_;
};

// This process's CPU time (user + system, every thread) in seconds.
double process_cpu_seconds();
// Peak resident memory (VmHWM) in MiB since the start or the last reset_peak_rss().
double peak_rss_mib();
// Starts a new peak (Linux /proc/self/clear_refs "5"); false where that is not possible.
bool reset_peak_rss();

}  // namespace dynamorph::benchmark
