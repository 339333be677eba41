// Parse and serialize speed of the DynamoDB JSON codec on a full Scan page: items of ~300 bytes
// shaped like the baseline peers' dataset (80% user profiles, 20% photos), as many as DynamoDB
// puts in one 1 MB page. Reports MB/s of JSON and items/s. Inputs are checked for a correct
// round trip before anything is timed.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "dynamo/json.h"
#include "dynamo/requests.h"

using namespace dynamorph::dynamo;

namespace {

constexpr std::size_t kPageLimit = 1 << 20;  // DynamoDB stops a Scan page at 1 MB of item data

const char* const kFirst[] = {"alice",  "bob",   "carol", "dave",    "erin",   "frank",  "grace",
                              "heidi",  "ivan",  "judy",  "mallory", "niaj",   "olivia", "peggy",
                              "rupert", "sybil", "trent", "victor",  "walter", "zoe"};
const char* const kLast[] = {"smith",  "jones",   "brown",   "taylor", "wilson", "davies",  "evans",
                             "thomas", "roberts", "johnson", "walker", "wright", "robinson"};
const char* const kTags[] = {"aws",    "dynamodb", "cpp",    "rust",   "go",   "python",
                             "node",   "java",     "music",  "travel", "food", "photo",
                             "sports", "books",    "gaming", "art"};
const char* const kWords[] = {"lorem",       "ipsum",      "dolor",      "sit",   "amet",
                              "consectetur", "adipiscing", "elit",       "sed",   "do",
                              "eiusmod",     "tempor",     "incididunt", "ut",    "labore",
                              "et",          "dolore",     "magna",      "aliqua"};

template <class T, std::size_t N>
const char* pick(std::mt19937_64& rng, T (&arr)[N]) {
  return arr[std::uniform_int_distribution<std::size_t>(0, N - 1)(rng)];
}

int uniform(std::mt19937_64& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

std::string padding(std::mt19937_64& rng, std::size_t need) {
  std::string out;
  while (out.size() < need) {
    if (!out.empty()) out.push_back(' ');
    out += pick(rng, kWords);
  }
  out.resize(std::max<std::size_t>(need, 1));
  return out;
}

// One item as the peers' dataset.py makes them: a DynamoDB item size drawn from 260..340 bytes.
Item make_item(std::mt19937_64& rng, int& users) {
  const std::size_t target = static_cast<std::size_t>(uniform(rng, 260, 340));
  Item item;
  const char* pad_attr;
  if (users == 0 || uniform(rng, 0, 99) < 80) {
    int uid = users++;
    std::string first = pick(rng, kFirst), last = pick(rng, kLast);
    std::string uname = fmt::format("{}{}{}", first, last, uniform(rng, 1, 9999));
    for (std::size_t i = 0; i < uname.size(); ++i) {
      if (i == 0 || uniform(rng, 0, 9) < 3) uname[i] = static_cast<char>(std::toupper(uname[i]));
    }
    StringSet tags;
    for (int n = uniform(rng, 1, 4); n > 0; --n) {
      std::string t = pick(rng, kTags);
      if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
    }
    item = Item{{"PK", AttributeValue(fmt::format("USER#{:07d}", uid))},
                {"SK", AttributeValue("PROFILE")},
                {"username", AttributeValue(uname)},
                {"email", AttributeValue(fmt::format("{}.{}.{}@example.com", first, last, uid))},
                {"age", AttributeValue::number(std::to_string(uniform(rng, 18, 90)))},
                {"tags", AttributeValue(std::move(tags))}};
    pad_attr = "bio";
  } else {
    int uid = uniform(rng, 0, users - 1);
    std::string photo = fmt::format("{:016x}-{:016x}", rng(), rng());
    item = Item{
        {"PK", AttributeValue(fmt::format("USER#{:07d}", uid))},
        {"SK", AttributeValue("PHOTO#" + photo)},
        {"createdAt",
         AttributeValue(fmt::format("202{}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z", uniform(rng, 0, 4),
                                    uniform(rng, 1, 12), uniform(rng, 1, 28), uniform(rng, 0, 23),
                                    uniform(rng, 0, 59), uniform(rng, 0, 59)))},
        {"url", AttributeValue(fmt::format("https://img.example.com/u/{:07d}/{}.jpg", uid, photo))},
        {"size", AttributeValue::number(std::to_string(uniform(rng, 10'000, 5'000'000)))}};
    pad_attr = "caption";
  }
  std::size_t size = item_size(item) + std::string_view(pad_attr).size();
  item.set(pad_attr, AttributeValue(padding(rng, target > size ? target - size : 1)));
  return item;
}

struct Fixture {
  Page page;                   // what parsing must give back
  std::string body;            // the Scan response, padded for simdjson
  std::size_t item_bytes = 0;  // DynamoDB size of the items
};

// {"Items":[…],"Count":n,"ScannedCount":n,"LastEvaluatedKey":{…},"ConsumedCapacity":{…}}
void write_page(std::string& out, const Page& p) {
  out += "{\"Items\":[";
  for (std::size_t i = 0; i < p.items.size(); ++i) {
    if (i) out.push_back(',');
    write_item(out, p.items[i]);
  }
  out += fmt::format("],\"Count\":{},\"ScannedCount\":{}", p.count, p.scanned_count);
  if (p.last_evaluated_key) {
    out += ",\"LastEvaluatedKey\":";
    write_item(out, *p.last_evaluated_key);
  }
  out += fmt::format(",\"ConsumedCapacity\":{{\"TableName\":\"bench\",\"CapacityUnits\":{}}}}}",
                     p.consumed_capacity);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "codec_bench: %s\n", what.c_str());
  std::exit(1);
}

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    std::mt19937_64 rng(42);
    int users = 0;
    while (true) {
      Item item = make_item(rng, users);
      std::size_t s = item_size(item);
      if (f.item_bytes + s > kPageLimit) break;
      f.item_bytes += s;
      f.page.items.push_back(std::move(item));
    }
    f.page.count = f.page.scanned_count = static_cast<std::int64_t>(f.page.items.size());
    const Item& last = f.page.items.back();
    f.page.last_evaluated_key = Item{{"PK", *last.find("PK")}, {"SK", *last.find("SK")}};
    f.page.consumed_capacity = 128.5;
    write_page(f.body, f.page);
    pad_for_parsing(f.body);

    // The codec must be right before its speed means anything.
    Page back = parse_page(f.body);
    if (back.items != f.page.items || back.count != f.page.count ||
        back.scanned_count != f.page.scanned_count ||
        back.last_evaluated_key != f.page.last_evaluated_key ||
        back.consumed_capacity != f.page.consumed_capacity) {
      die("parse_page(write_page(p)) != p");
    }
    std::string again;
    write_page(again, back);
    if (again != f.body) die("serializing the parsed page does not give the same bytes");
    return f;
  }();
  return f;
}

void report(benchmark::State& state, std::size_t json_bytes) {
  const auto& f = fixture();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * json_bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * f.page.items.size()));
  state.counters["items_per_page"] = static_cast<double>(f.page.items.size());
  state.counters["json_bytes"] = static_cast<double>(json_bytes);
  state.counters["avg_item_bytes"] =
      static_cast<double>(f.item_bytes) / static_cast<double>(f.page.items.size());
}

// simdjson On-Demand into the item model: what every Scan response costs the client.
void BM_ParseScanPage(benchmark::State& state) {
  const auto& f = fixture();
  for (auto _ : state) {
    Page p = parse_page(f.body);
    benchmark::DoNotOptimize(p.items.data());
    if (p.items.size() != f.page.items.size()) die("short parse");
  }
  report(state, f.body.size());
}
BENCHMARK(BM_ParseScanPage)->Unit(benchmark::kMicrosecond);

// The same page written back as DynamoDB JSON into a reused buffer.
void BM_SerializeScanPage(benchmark::State& state) {
  const auto& f = fixture();
  std::string out;
  out.reserve(f.body.size() + 64);
  for (auto _ : state) {
    out.clear();
    write_page(out, f.page);
    benchmark::DoNotOptimize(out.data());
  }
  if (out != f.body) die("serialized page differs");
  report(state, out.size());
}
BENCHMARK(BM_SerializeScanPage)->Unit(benchmark::kMicrosecond);

// The page's items as BatchWriteItem bodies of 25 whole-item puts: what a batch writer sends.
void BM_SerializeBatchWrites(benchmark::State& state) {
  const auto& f = fixture();
  std::vector<std::vector<BatchWriteEntry>> batches;
  for (std::size_t i = 0; i < f.page.items.size(); i += 25) {
    auto& b = batches.emplace_back();
    for (std::size_t j = i; j < std::min(i + 25, f.page.items.size()); ++j) {
      b.push_back({"bench", BatchWriteEntry::Kind::Put, f.page.items[j]});
    }
  }
  std::string out;
  std::size_t bytes = 0;
  for (auto _ : state) {
    bytes = 0;
    for (const auto& b : batches) {
      out.clear();
      write_batch_write(out, b);
      bytes += out.size();
      benchmark::DoNotOptimize(out.data());
    }
  }
  report(state, bytes);
}
BENCHMARK(BM_SerializeBatchWrites)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
