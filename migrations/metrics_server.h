// `--metrics ADDR`: the registry (migrations/metrics.h) served as Prometheus text on
// GET /metrics, by cpp-httplib on threads of its own (404 for any other path). start() binds
// before it returns, so a bad address or a port in use is refused (UsageError, exit 2) before
// the command makes its first request. Thread-safe; the destructor stops serving and joins.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace dynamorph::migrations::metrics {

class Registry;

// "127.0.0.1:9464", "localhost:9464", "[::1]:9464", "0.0.0.0:9464" → host and port; UsageError
// naming --metrics and what is wrong otherwise.
struct ListenAddress {
  std::string host;
  int port = 0;
};
ListenAddress parse_listen_address(const std::string& text);

class MetricsServer {
 public:
  // Binds exactly `address` and serves `registry` there. UsageError "--metrics ADDR: …" (the
  // address and the reason: unknown host, port in use …) when it cannot.
  static std::unique_ptr<MetricsServer> start(const std::string& address, const Registry& registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The command has ended: keep serving until one scrape of /metrics has begun after this call
  // and been answered, `limit` has passed, or `*stop` turns true (a signal), whichever is first.
  // Returns whether such a scrape was served.
  bool linger(std::chrono::milliseconds limit, const std::atomic<bool>* stop);
  void stop();  // idempotent

  struct Impl;

 private:
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// DYNAMORPH_METRICS_LINGER (a duration: 30s, 2m): how long linger() may wait after a command.
// 0 when unset; UsageError naming the variable when it is not a duration.
std::chrono::milliseconds linger_from_environment();

}  // namespace dynamorph::migrations::metrics
