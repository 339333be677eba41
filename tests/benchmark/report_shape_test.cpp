// The result JSON carries every field of the contract, and the HTML report is one page with
// nothing to fetch, its five charts and its tables, with text escaped. (That the charts render
// is checked in a real Chromium: tests/cli/bench_report_test.py.)
#include <gtest/gtest.h>

#include <regex>

#include "benchmark/bench_result.h"
#include "benchmark/report.h"

namespace dynamorph::benchmark {
namespace {

BenchResult sample_result() {
  BenchResult r;
  r.bench = "scan";
  r.target = "table <bench> & co";
  r.main_operation = "Scan";
  for (int s : {1, 2, 4}) {
    RunFigures f;
    f.setting_name = "segments";
    f.setting = s;
    f.items = 1000;
    f.bytes = 300'000;
    f.wall_s = 2.0 / s;
    f.rcu = 40;
    f.latency_ms["Scan"] = {10, 1.5, 2.5, 4.0, 4.5, 5.0};
    for (int t = 1; t <= 3; ++t) f.series.push_back({t * 0.3, 500.0 * s, 0.15, 20, 0, 0});
    r.runs.push_back(f);
  }
  choose_best(r);
  r.estimate = {5000, 1.0, 200, 0, 0.000025, "measured rate"};
  r.notes.push_back("a note");
  return r;
}

TEST(BenchResult, BestIsTheFastestOrTheSmallestWithin3Percent) {
  BenchResult r = sample_result();
  EXPECT_EQ(r.best, 2u);
  r.runs[1].wall_s = r.runs[2].wall_s * 1.01;  // 2 segments within 1%: less load, same speed
  choose_best(r);
  EXPECT_EQ(r.best, 1u);
}

TEST(BenchResult, JsonHasTheContractFields) {
  const std::string j = result_json(sample_result());
  for (const char* field :
       {"\"bench\":\"scan\"", "\"items\":1000", "\"wall_s\":", "\"items_per_s\":2000.0",
        "\"mb_per_s\":0.600", "\"rcu_per_s\":80.0", "\"wcu_per_s\":0.0", "\"latency_ms\":{\"Scan\":",
        "\"p50\":1.500", "\"p90\":2.500", "\"p99\":4.000", "\"p999\":4.500", "\"max\":5.000",
        "\"throttled\":0", "\"retries\":0", "\"client_cpu_s\":", "\"peak_rss_mib\":", "\"runs\":[",
        "\"best\":{\"segments\":4", "\"estimate\":{\"table_items\":5000", "\"full_run_s\":1.0",
        "\"rcu\":200.0", "\"wcu\":0.0", "\"cost_usd_on_demand\":0.000025"})
    EXPECT_NE(j.find(field), std::string::npos) << field << " in " << j;
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
}

TEST(Report, SelfContainedWithEveryChart) {
  const std::string html = report_html(sample_result());
  std::smatch m;
  // Nothing to fetch: no src/href attributes, no url(), no script, no @import.
  for (const char* banned : {"src=", "href=", "url(", "<script", "@import", "<link", "<img"})
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  // The only URL is the SVG namespace, an identifier, never fetched.
  std::regex any_url("https?://[^\"]*");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), any_url);
       it != std::sregex_iterator(); ++it)
    EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg");
  std::regex svg("<svg ");
  EXPECT_EQ(std::distance(std::sregex_iterator(html.begin(), html.end(), svg),
                          std::sregex_iterator()),
            5);  // throughput, sweep, capacity, latency, throttles
  for (const char* title : {"Items per second over time", "Throughput by segments",
                            "Consumed capacity over time", "Latency of each request by operation",
                            "Throttled requests per second"})
    EXPECT_NE(html.find(title), std::string::npos) << title;
  EXPECT_NE(html.find("table &lt;bench&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(html.find("<bench>"), std::string::npos);
}

}  // namespace
}  // namespace dynamorph::benchmark
