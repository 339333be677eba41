#include "benchmark/recorder.h"

#include <sys/resource.h>

#include <atomic>
#include <fstream>
#include <string>

namespace dynamorph::benchmark {

std::function<void(const dynamo::AttemptRecord&)> Recorder::hook() {
  return [this](const dynamo::AttemptRecord& a) { record(a.operation, a.latency, a.throttled); };
}

namespace {
std::atomic<std::uint64_t> next_recorder_id{0};
}

Recorder::Recorder() : id_(next_recorder_id.fetch_add(1) + 1) {}

Recorder::Shard& Recorder::shard() {
  // Each thread finds its shard under the shared lock once, then through its own cache.
  thread_local std::uint64_t cached_id = 0;
  thread_local Shard* cached = nullptr;
  if (cached_id == id_) return *cached;
  std::lock_guard lock(shards_mutex_);
  auto& s = shards_[std::this_thread::get_id()];
  if (!s) s = std::make_unique<Shard>();
  cached_id = id_;
  cached = s.get();
  return *s;
}

void Recorder::record(std::string_view operation, std::chrono::nanoseconds latency,
                      bool throttled) {
  Shard& s = shard();
  std::lock_guard lock(s.mutex);
  auto it = s.by_operation.find(operation);
  if (it == s.by_operation.end()) it = s.by_operation.emplace(std::string(operation), LatencyHistogram()).first;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
  it->second.record(static_cast<std::uint64_t>(us < 0 ? 0 : us));
  if (throttled) ++s.throttled;
}

std::map<std::string, LatencyHistogram> Recorder::latencies() const {
  std::map<std::string, LatencyHistogram> merged;
  std::lock_guard lock(shards_mutex_);
  for (const auto& [id, s] : shards_) {
    std::lock_guard slock(s->mutex);
    for (const auto& [op, h] : s->by_operation) merged.try_emplace(op).first->second.merge(h);
  }
  return merged;
}

std::uint64_t Recorder::throttled() const {
  std::uint64_t n = 0;
  std::lock_guard lock(shards_mutex_);
  for (const auto& [id, s] : shards_) {
    std::lock_guard slock(s->mutex);
    n += s->throttled;
  }
  return n;
}

void Recorder::reset() {
  std::lock_guard lock(shards_mutex_);
  for (auto& [id, s] : shards_) {
    std::lock_guard slock(s->mutex);
    s->by_operation.clear();
    s->throttled = 0;
  }
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  return static_cast<bool>(out.flush());
}

}  // namespace dynamorph::benchmark
