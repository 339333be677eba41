// Test helper: runs tests/support/fault_proxy.py (a fault-injecting HTTP proxy) in front of a
// DynamoDB-compatible server for the lifetime of one object. No GoogleTest dependency.
//
//   dynamorph::test::FaultProxy proxy(ddb_endpoint);          // spawns the proxy, waits for it
//   proxy.set_rules(R"([{"op":"BatchWriteItem","fault":"throttle","count":3}])");
//   client.endpoint = proxy.endpoint();                        // "http://127.0.0.1:PORT"
//   ... run the code under test ...
//   std::string s = proxy.stats_json();                        // counters, see fault_proxy.py
//
// The script is found next to this file (via __FILE__); the environment variable
// DYNAMORPH_FAULT_PROXY (a path to fault_proxy.py) overrides that. Errors throw
// std::runtime_error. The destructor kills exactly the child it spawned and reaps it; if the
// test process dies instead, the proxy exits on its own (it watches its stdin pipe for EOF).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace dynamorph::test {

// GET /__proxy__/stats, parsed: what the proxy forwarded and what it injected. Tests assert on
// these counts, never on the raw JSON (which also echoes every rule's settings).
struct ProxyStats {
  std::map<std::string, std::int64_t> requests;  // per operation
  std::map<std::string, std::int64_t> faults;    // per fault kind
  std::int64_t total_requests = 0;
  std::int64_t total_faults = 0;
  std::vector<std::int64_t> fired;  // per rule, in the order set
  std::vector<std::int64_t> seen;

  std::int64_t req(const std::string& op) const {
    auto it = requests.find(op);
    return it == requests.end() ? 0 : it->second;
  }
  std::int64_t fault(const std::string& kind) const {
    auto it = faults.find(kind);
    return it == faults.end() ? 0 : it->second;
  }
};

class FaultProxy {
 public:
  // upstream_url: "http://127.0.0.1:PORT" of the real server.
  explicit FaultProxy(std::string upstream_url);
  ~FaultProxy();

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // "http://127.0.0.1:PORT" of the proxy; point the client under test here.
  std::string endpoint() const;
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Replaces the rules (a JSON list, or a single rule object). Throws with the proxy's message
  // when it rejects them (unknown fault kind, unknown key, bad value).
  void set_rules(std::string_view json);
  // {"requests": {op: n}, "faults": {kind: n}, "total_requests": n, "total_faults": n,
  //  "upstream_connections": n, "upstream_idle": n, "rules": [{...rule, "seen": n, "fired": n}]}
  std::string stats_json();
  ProxyStats stats();  // in proxy_stats.cpp (simdjson), so that this file needs only libcurl
  // Clears the rules and the counters.
  void reset();

 private:
  std::string call(const char* method, std::string_view path, std::string_view body);
  void stop() noexcept;

  std::string upstream_;
  pid_t pid_ = -1;
  int port_ = 0;
  int stdin_fd_ = -1;  // write end of the child's stdin; closing it makes the proxy exit
};

}  // namespace dynamorph::test
