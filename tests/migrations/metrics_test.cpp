// The Prometheus text exposition (format 0.0.4) of the metrics registry: HELP and TYPE once per
// family, families and series in a fixed order, label values and HELP text escaped, counters
// that never go down, the worker label on every series; and the served endpoint (/metrics, 404
// elsewhere, the address refused when taken).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "dynamo/errors.h"
#include "migrations/metrics.h"
#include "migrations/metrics_server.h"

namespace dynamorph::migrations::metrics {
namespace {

TEST(MetricsExposition, HelpAndTypeOncePerFamilySortedWithEscapedLabels) {
  Registry r("host:1:ab");
  r.declare("dynamorph_b_total", Kind::Counter, "Things counted \\ with a\nnewline and \"quotes\"");
  r.declare("dynamorph_a", Kind::Gauge, "A gauge");
  r.add_counter("dynamorph_b_total", {{"version", "2"}, {"step", "1"}}, 3);
  r.add_counter("dynamorph_b_total", {{"step", "1"}, {"version", "2"}}, 4);  // same series
  r.add_counter("dynamorph_b_total", {{"version", "10"}, {"step", "1"}}, 1.5);
  r.set_gauge("dynamorph_a", {{"step", "a\"b\\c\nd"}}, -2);
  EXPECT_EQ(r.exposition(),
            "# HELP dynamorph_a A gauge\n"
            "# TYPE dynamorph_a gauge\n"
            "dynamorph_a{step=\"a\\\"b\\\\c\\nd\",worker=\"host:1:ab\"} -2\n"
            "# HELP dynamorph_b_total Things counted \\\\ with a\\nnewline and \"quotes\"\n"
            "# TYPE dynamorph_b_total counter\n"
            "dynamorph_b_total{step=\"1\",version=\"10\",worker=\"host:1:ab\"} 1.5\n"
            "dynamorph_b_total{step=\"1\",version=\"2\",worker=\"host:1:ab\"} 7\n");
}

TEST(MetricsExposition, FamiliesWithoutSeriesAndNoWorkerLabel) {
  Registry r("");
  r.declare("x_total", Kind::Counter, "X");
  r.declare("up", Kind::Gauge, "Up");
  r.set_gauge("up", {}, 1);
  EXPECT_EQ(r.exposition(),
            "# HELP up Up\n# TYPE up gauge\nup 1\n# HELP x_total X\n# TYPE x_total counter\n");
}

TEST(MetricsExposition, CountersNeverGoDownGaugesDoAndFunctionsAreReadAtScrape) {
  Registry r("w");
  r.declare("c_total", Kind::Counter, "C");
  r.declare("g", Kind::Gauge, "G");
  r.add_counter("c_total", {}, 5);
  r.add_counter("c_total", {}, -3);  // ignored
  r.add_counter("c_total", {}, 0);
  EXPECT_EQ(r.value("c_total", {}), 5);
  r.add_gauge("g", {{"step", "1"}}, 4);
  r.add_gauge("g", {{"step", "1"}}, -1);
  EXPECT_EQ(r.value("g", {{"step", "1"}}), 3);
  double live = 7;
  r.set_gauge_function("g", {{"step", "2"}}, [&] { return live; });
  live = 9;
  EXPECT_NE(r.exposition().find("g{step=\"2\",worker=\"w\"} 9\n"), std::string::npos);
  r.set_gauge("g", {{"step", "2"}}, 1);  // a plain value again
  live = 11;
  EXPECT_EQ(r.value("g", {{"step", "2"}}), 1);
}

TEST(MetricsExposition, ValuesInPrometheusNotation) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(123456789012), "123456789012");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(MetricsExposition, MisuseIsAProgrammingError) {
  Registry r("w");
  EXPECT_THROW(r.declare("bad name", Kind::Gauge, "x"), std::logic_error);
  EXPECT_THROW(r.declare("no_suffix", Kind::Counter, "x"), std::logic_error);
  r.declare("g", Kind::Gauge, "G");
  EXPECT_THROW(r.declare("g", Kind::Counter, "G"), std::logic_error);
  EXPECT_THROW(r.set_gauge("undeclared", {}, 1), std::logic_error);
  EXPECT_THROW(r.add_counter("g", {}, 1), std::logic_error);               // a gauge
  EXPECT_THROW(r.set_gauge("g", {{"worker", "x"}}, 1), std::logic_error);  // ours
  EXPECT_THROW(r.set_gauge("g", {{"9x", "x"}}, 1), std::logic_error);
}

TEST(MetricsExposition, TheProcessRegistryDeclaresEveryFamily) {
  const std::string text = registry().exposition();
  for (const char* f :
       {"dynamorph_items_scanned_total counter", "dynamorph_items_matched_total counter",
        "dynamorph_items_written_total counter", "dynamorph_items_skipped_total counter",
        "dynamorph_conflicts_total counter", "dynamorph_retries_total counter",
        "dynamorph_throttles_total counter", "dynamorph_consumed_rcu_total counter",
        "dynamorph_consumed_wcu_total counter", "dynamorph_requests_in_flight gauge",
        "dynamorph_segments_done gauge", "dynamorph_segments_total gauge",
        "dynamorph_leases_held gauge", "dynamorph_stream_lag_seconds gauge"})
    EXPECT_NE(text.find(std::string("# TYPE ") + f + "\n"), std::string::npos) << f;
  registry().set_gauge("dynamorph_leases_held", {{"version", "3"}, {"step", "1"}}, 4);
  EXPECT_EQ(registry().value("dynamorph_leases_held", {{"step", "1"}, {"version", "3"}}), 4);
}

TEST(MetricsAddress, ParsedOrRefusedNamingTheOption) {
  auto a = parse_listen_address("127.0.0.1:9464");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9464);
  a = parse_listen_address("[::1]:80");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 80);
  for (const char* bad : {"nonsense", "127.0.0.1:99999", "127.0.0.1:0", ":9464", "::1:80",
                          "127.0.0.1:", "127.0.0.1:9x"}) {
    try {
      parse_listen_address(bad);
      ADD_FAILURE() << bad;
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(std::string("--metrics ADDR: ") + bad + ": ", 0), 0u)
          << e.what();
    }
  }
}

// A GET with a plain socket: status line and body.
std::string http_get(int port, const std::string& path) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    return "connect failed";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!::write(s, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(s, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(s);
  return out;
}

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

TEST(MetricsServer, ServesMetricsOnlyAndRefusesATakenPort) {
  Registry r("w");
  r.declare("g", Kind::Gauge, "G");
  r.set_gauge("g", {}, 5);
  const int port = free_port();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  auto server = MetricsServer::start(addr, r);
  const std::string ok = http_get(port, "/metrics");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\n\r\n# HELP g G\n# TYPE g gauge\ng{worker=\"w\"} 5\n"), std::string::npos)
      << ok;
  EXPECT_EQ(http_get(port, "/").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(http_get(port, "/metricsx").rfind("HTTP/1.1 404", 0), 0u);
  try {
    MetricsServer::start(addr, r);
    ADD_FAILURE() << "a second server on " << addr;
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "--metrics ADDR: " + addr + ": Address already in use");
  }
  // linger: a scrape after the end is what it waits for; without one, the limit ends it.
  std::atomic<bool> stop{false};
  EXPECT_FALSE(server->linger(std::chrono::milliseconds(100), &stop));
  std::thread scraper([&] { http_get(port, "/metrics"); });
  EXPECT_TRUE(server->linger(std::chrono::seconds(30), &stop));
  scraper.join();
  server->stop();
  EXPECT_EQ(http_get(port, "/metrics"), "connect failed");
}

}  // namespace
}  // namespace dynamorph::migrations::metrics
