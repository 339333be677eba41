// FaultProxy::stats(): the proxy's counters parsed with simdjson. Apart from fault_proxy.cpp so
// that the driver itself needs nothing but libcurl (fault_proxy_test.py builds it on its own).
#include <simdjson.h>

#include <stdexcept>

#include "tests/support/fault_proxy.h"

namespace dynamorph::test {

ProxyStats FaultProxy::stats() {
  const std::string json = stats_json();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc))
    throw std::runtime_error("FaultProxy: stats are not JSON: " + json.substr(0, 200));
  ProxyStats s;
  for (auto [k, v] : doc["requests"].get_object()) s.requests[std::string(k)] = v.get_int64();
  for (auto [k, v] : doc["faults"].get_object()) s.faults[std::string(k)] = v.get_int64();
  s.total_requests = doc["total_requests"].get_int64();
  s.total_faults = doc["total_faults"].get_int64();
  for (auto rule : doc["rules"].get_array()) {
    s.fired.push_back(rule["fired"].get_int64());
    s.seen.push_back(rule["seen"].get_int64());
  }
  return s;
}

}  // namespace dynamorph::test
