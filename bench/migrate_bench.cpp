// migrate_bench: runs the peers' migration job (the baseline peer scripts' job) with dynamorph's
// pipeline against a live endpoint, or measures the CPU path in memory.
//
//   migrate_bench --endpoint http://127.0.0.1:PORT --table bench [--segments 8] [--max-writes 16]
//                 [--mode batch|update] [--filter server|split|client] [--page-size N]
//                 [--checkpoint FILE] [--mib-in-flight M] [--progress] [--json]
//   migrate_bench --inmemory N [--json]
//   both: [--transform expression|lua|lua-identity]
//
// Job: every item with PK beginning "USER#" and SK = "PROFILE" gets
//   SET username = lower(username), migratedAt = :m     (:m = "2025-01-01T00:00:00.000Z")
// --transform lua: the same job as a Lua function (ctx.lower, ctx.now); lua-identity: a Lua
//          function that returns the item unchanged (the conversion in and out alone; nothing is
//          written). Default: the update expression.
// --filter server: FilterExpression "begins_with(PK, :user) AND SK = :profile" (as the peers)
//          split:  FilterExpression "begins_with(PK, :user)", client where "SK = :profile"
//          client: no FilterExpression, client where "SK = :profile AND begins_with(PK, :user)"
//
// Prints one JSON line like the peers' ({"peer":"dynamorph","items_scanned",...}). wall_s is the
// pipeline's own clock (first request to last acknowledged write); client_cpu_s is the whole
// process (getrusage, start-up included, like the peers), client_cpu_s_timed the part inside
// the run; peak_rss_mib is ru_maxrss, peak_mib_in_flight the most response MiB the pipeline held
// at once (RunOptions::max_bytes_in_flight, set by --mib-in-flight; 0: no budget). SIGINT/SIGTERM
// stop the run cleanly (status "stopped", exit 3); with --checkpoint FILE a later run resumes
// where it stopped.
//
// --inmemory N: a synthetic ~1 MB Scan response page of ~300-byte items shaped like the peers'
// data set is parsed (dynamo::parse_page), filtered and transformed (stages::ItemProcessor with
// the job's where + update expression), grouped (the batch sink's page state) and serialized into
// BatchWriteItem bodies (dynamo::write_batch_write), single-threaded, until N items have been
// processed. Reports items per second of thread CPU time (= per core) and of wall time.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/client.h"
#include "dynamo/credentials.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/requests.h"
#include "pipeline/pipeline.h"
#include "pipeline/progress.h"

#include <iostream>
#include "stages/item_processor.h"
#include "stages/sink.h"
#include "stages/step_expressions.h"
#include "stages/step_spec.h"

using namespace dynamorph;

namespace {

constexpr const char* kMigratedAt = "2025-01-01T00:00:00.000Z";

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true); }

struct Args {
  std::string endpoint;
  std::string table = "bench";
  int segments = 8;
  int max_writes = 16;
  std::string mode = "batch";
  std::string filter = "server";
  int page_size = 0;
  double mib_in_flight = -1;  // -1: the pipeline's default
  std::string checkpoint;
  bool progress = false;
  bool json = false;
  long long inmemory = 0;
  std::string transform = "expression";
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "migrate_bench: %s\nusage: migrate_bench --endpoint URL --table T [--segments 8] "
               "[--max-writes 16]\n"
               "       [--mode batch|update] [--filter server|split|client] [--page-size N]\n"
               "       [--checkpoint FILE] [--mib-in-flight M] [--progress] [--json]\n"
               "       migrate_bench --inmemory N [--json]\n"
               "       both: [--transform expression|lua|lua-identity]\n",
               msg);
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + k).c_str());
      return argv[++i];
    };
    if (k == "--endpoint")
      a.endpoint = val();
    else if (k == "--table")
      a.table = val();
    else if (k == "--segments")
      a.segments = std::atoi(val().c_str());
    else if (k == "--max-writes")
      a.max_writes = std::atoi(val().c_str());
    else if (k == "--mode")
      a.mode = val();
    else if (k == "--filter")
      a.filter = val();
    else if (k == "--page-size")
      a.page_size = std::atoi(val().c_str());
    else if (k == "--checkpoint")
      a.checkpoint = val();
    else if (k == "--mib-in-flight")
      a.mib_in_flight = std::atof(val().c_str());
    else if (k == "--progress")
      a.progress = true;
    else if (k == "--json")
      a.json = true;
    else if (k == "--inmemory")
      a.inmemory = std::atoll(val().c_str());
    else if (k == "--transform")
      a.transform = val();
    else if (k == "-h" || k == "--help")
      usage("help");
    else
      usage(("unknown argument " + k).c_str());
  }
  if (a.inmemory <= 0 && a.endpoint.empty()) usage("--endpoint or --inmemory is required");
  if (a.segments < 1 || a.max_writes < 1) usage("--segments and --max-writes must be >= 1");
  if (a.filter != "server" && a.filter != "split" && a.filter != "client") usage("bad --filter");
  if (a.transform != "expression" && a.transform != "lua" && a.transform != "lua-identity")
    usage("bad --transform");
  return a;
}

double cpu_seconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // KiB on Linux
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

stages::StepSpec job_spec(const std::string& table, const std::string& filter,
                          const std::string& mode, int page_size,
                          const std::string& transform = "expression") {
  stages::StepSpec s;
  s.label = "migrate_bench";
  s.source.table = table;
  s.source.page_size = page_size;
  s.values = {{":user", dynamo::AttributeValue("USER#")},
              {":profile", dynamo::AttributeValue("PROFILE")},
              {":m", dynamo::AttributeValue(kMigratedAt)}};
  if (filter == "server") {
    s.source.filter = {"begins_with(PK, :user) AND SK = :profile", "filter"};
  } else if (filter == "split") {
    s.source.filter = {"begins_with(PK, :user)", "filter"};
    s.where = {"SK = :profile", "where"};
  } else {
    s.where = {"SK = :profile AND begins_with(PK, :user)", "where"};
  }
  if (transform == "expression") {
    s.transform.push_back(
        {{"SET username = lower(username), migratedAt = :m", "transform"}, {}, {}});
  } else {
    stages::TransformSpec t;
    t.lua.chunk_name = "migrate_bench.lua";
    t.lua.code = transform == "lua" ? R"(
function transform(item, ctx)
  item.username = ctx.lower(item.username)
  item.migratedAt = ctx.values[":m"]
  return item
end)"
                                    : "function transform(item, ctx) return item end";
    s.transform.push_back(std::move(t));
  }
  auto m = stages::parse_write_mode(mode);
  if (!m) usage(("unknown --mode " + mode).c_str());
  s.write.mode = *m;
  return s;
}

std::string json_escape(const std::string& s) {
  std::string out;
  dynamo::write_json_string(out, s);
  return out;
}

// ---- live run --------------------------------------------------------------------------------

int run_live(const Args& a) {
  dynamo::ClientOptions o;
  o.endpoint = a.endpoint;
  o.region = "us-east-1";
  dynamo::CredentialSources sources;
  sources.explicit_credentials = dynamo::Credentials{"local", "local", "", std::nullopt};
  o.credentials = dynamo::default_credentials_chain(sources);
  dynamo::Client client(std::move(o));

  stages::StepSpec spec = job_spec(a.table, a.filter, a.mode, a.page_size, a.transform);
  pipeline::RunOptions ro;
  ro.segments = a.segments;
  ro.max_writes_in_flight = a.max_writes;
  if (a.mib_in_flight >= 0)
    ro.max_bytes_in_flight = static_cast<std::int64_t>(a.mib_in_flight * 1048576);
  ro.now_iso = kMigratedAt;
  ro.version = 20250101000000;
  ro.stop = &g_stop;
  if (a.progress) {
    pipeline::ProgressStyle style;
    style.tty = isatty(2) != 0;
    style.label = "reshape " + a.table;
    ro.progress = pipeline::make_progress_printer(style, std::cout, std::cerr);
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  auto store = a.checkpoint.empty() ? pipeline::null_checkpoint_store()
                                    : pipeline::file_checkpoint_store(a.checkpoint);
  double cpu0 = cpu_seconds(RUSAGE_SELF);
  pipeline::RunResult r;
  try {
    r = pipeline::run_pipeline(client, spec, *store, ro);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "migrate_bench: %s\n", e.what());
    return 1;
  }
  double cpu1 = cpu_seconds(RUSAGE_SELF);
  const char* status = r.status == pipeline::RunResult::Status::Done      ? "done"
                       : r.status == pipeline::RunResult::Status::Stopped ? "stopped"
                                                                          : "failed";
  const auto& c = r.counters;
  double ips = r.wall_s > 0 ? c.scanned / r.wall_s : 0;
  std::printf(
      "{\"peer\":\"dynamorph\",\"items_scanned\":%lld,\"items_written\":%lld,\"wall_s\":%.3f,"
      "\"items_per_s\":%.1f,\"client_cpu_s\":%.3f,\"client_cpu_s_timed\":%.3f,\"peak_rss_mib\":%."
      "1f,\"peak_mib_in_flight\":%.1f,\"reads_held_back\":%lld,"
      "\"status\":\"%s\",\"matched\":%lld,\"retries\":%lld,\"requests\":%llu,\"segments\":%d,"
      "\"max_writes\":%d,\"mode\":\"%s\",\"filter\":\"%s\",\"transform\":\"%s\"%s%s}\n",
      static_cast<long long>(c.scanned), static_cast<long long>(c.written), r.wall_s, ips, cpu1,
      cpu1 - cpu0, peak_rss_mib(), r.peak_bytes_in_flight / 1048576.0,
      static_cast<long long>(r.reads_held_back), status, static_cast<long long>(c.matched),
      static_cast<long long>(c.retries),
      static_cast<unsigned long long>(client.stats().requests.load()), a.segments, a.max_writes,
      a.mode.c_str(), a.filter.c_str(), a.transform.c_str(),
      r.error.empty() ? "" : ",\"error\":", r.error.empty() ? "" : json_escape(r.error).c_str());
  std::fflush(stdout);
  if (r.status == pipeline::RunResult::Status::Failed) {
    std::fprintf(stderr, "migrate_bench: failed: %s\n", r.error.c_str());
    return 1;
  }
  return r.status == pipeline::RunResult::Status::Stopped ? 3 : 0;
}

// ---- in memory -------------------------------------------------------------------------------

// A Scan response of ~1 MB of items shaped like the peers' data set (80 % profiles with
// mixed-case usernames, 20 % photos, DynamoDB item size 260..340 bytes).
std::string synthetic_page(std::size_t target_bytes, int* items_out) {
  static const char* first[] = {"alice", "bob",   "carol", "dave", "erin",
                                "frank", "grace", "heidi", "ivan", "judy"};
  static const char* last[] = {"smith",  "jones",  "brown", "taylor",
                               "wilson", "davies", "evans", "thomas"};
  static const char* tags[] = {"aws",    "dynamodb", "cpp",  "rust",  "go",
                               "python", "node",     "java", "music", "travel"};
  static const char* words[] = {"lorem", "ipsum",       "dolor",      "sit",
                                "amet",  "consectetur", "adipiscing", "elit"};
  std::mt19937_64 rng(42);
  std::string body = "{\"Items\":[";
  int n = 0, users = 0;
  std::string item_json;
  while (body.size() < target_bytes) {
    dynamo::Item item;
    int target = 260 + static_cast<int>(rng() % 81);
    int size = 0;
    auto add = [&](const std::string& name, dynamo::AttributeValue v, int vsize) {
      size += static_cast<int>(name.size()) + vsize;
      item.append(name, std::move(v));
    };
    std::string pad_attr;
    if (users == 0 || rng() % 10 < 8) {
      int uid = users++;
      char pk[32];
      std::snprintf(pk, sizeof pk, "USER#%07d", uid);
      std::string f = first[rng() % 10], l = last[rng() % 8];
      std::string uname = f + l + std::to_string(rng() % 9999 + 1);
      for (std::size_t i = 0; i < uname.size(); ++i) {
        if (i == 0 || rng() % 10 < 3)
          uname[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(uname[i])));
      }
      std::string email = f + "." + l + "." + std::to_string(uid) + "@example.com";
      dynamo::StringSet ss;
      int nt = 1 + static_cast<int>(rng() % 4), ts = 0;
      for (int t = 0; t < nt; ++t) {
        std::string tag = tags[(uid + t * 3) % 10];
        ts += static_cast<int>(tag.size());
        ss.push_back(tag);
      }
      add("PK", dynamo::AttributeValue(std::string(pk)), 12);
      add("SK", dynamo::AttributeValue("PROFILE"), 7);
      add("username", dynamo::AttributeValue(uname), static_cast<int>(uname.size()));
      add("email", dynamo::AttributeValue(email), static_cast<int>(email.size()));
      add("age", dynamo::AttributeValue::number(std::to_string(18 + rng() % 72)), 2);
      add("tags", dynamo::AttributeValue(std::move(ss)), ts);
      pad_attr = "bio";
    } else {
      int uid = static_cast<int>(rng() % users);
      char pk[32], sk[64], url[128];
      std::snprintf(pk, sizeof pk, "USER#%07d", uid);
      std::snprintf(sk, sizeof sk, "PHOTO#%016llx-%016llx", static_cast<unsigned long long>(rng()),
                    static_cast<unsigned long long>(rng()));
      std::snprintf(url, sizeof url, "https://img.example.com/u/%07d/%s.jpg", uid, sk + 6);
      add("PK", dynamo::AttributeValue(std::string(pk)), 12);
      add("SK", dynamo::AttributeValue(std::string(sk)), static_cast<int>(std::strlen(sk)));
      add("createdAt", dynamo::AttributeValue("2023-04-05T06:07:08Z"), 20);
      add("url", dynamo::AttributeValue(std::string(url)), static_cast<int>(std::strlen(url)));
      add("size", dynamo::AttributeValue::number(std::to_string(10000 + rng() % 4990000)), 4);
      pad_attr = "caption";
    }
    int need = std::max(1, target - size - static_cast<int>(pad_attr.size()));
    std::string pad;
    while (static_cast<int>(pad.size()) < need) {
      if (!pad.empty()) pad += ' ';
      pad += words[rng() % 8];
    }
    pad.resize(need);
    item.append(pad_attr, dynamo::AttributeValue(pad));
    item_json.clear();
    dynamo::write_item(item_json, item);
    if (n) body += ',';
    body += item_json;
    ++n;
  }
  body += "],\"Count\":" + std::to_string(n) + ",\"ScannedCount\":" + std::to_string(n) + "}";
  *items_out = n;
  return body;
}

int run_inmemory(const Args& a) {
  int page_items = 0;
  std::string body = synthetic_page(1'000'000, &page_items);
  const std::size_t page_bytes = body.size();
  dynamo::pad_for_parsing(body);

  stages::StepSpec spec = job_spec("bench", "client", "batch", 0, a.transform);
  dynamo::TableDescription desc;
  desc.name = "bench";
  desc.status = "ACTIVE";
  desc.partition_key = {"PK", dynamo::AttrType::S};
  desc.sort_key = dynamo::KeyAttribute{"SK", dynamo::AttrType::S};
  stages::StepExpressions compiled = stages::compile_step_expressions(spec, kMigratedAt);
  stages::ItemProcessor processor(spec, compiled, desc, desc, 20250101000000, kMigratedAt);
  auto sink = stages::make_sink(stages::WriteMode::Batch, processor);
  auto state = processor.make_local_state();

  long long items = 0, matched = 0, batches = 0, out_bytes = 0, pages = 0;
  std::vector<stages::WriteOp> ops;
  auto step = [&] {
    dynamo::Page page = dynamo::parse_page(body);
    auto wb = sink->make_page_state();
    ops.clear();
    for (const auto& item : page.items) {
      stages::Decision d = processor.process(item, *state);
      if (d.kind == stages::Decision::Kind::Put || d.kind == stages::Decision::Kind::Update) {
        ++matched;
        wb->add(item, std::move(d), ops, 0);
      } else if (d.kind == stages::Decision::Kind::Error) {
        std::fprintf(stderr, "migrate_bench: %s\n", d.error.c_str());
        std::exit(1);
      }
    }
    wb->flush(ops);
    for (const auto& op : ops) {  // written by flush
      out_bytes += static_cast<long long>(std::get<stages::BatchWrite>(op.request).body.size());
      ++batches;
    }
    items += static_cast<long long>(page.items.size());
    ++pages;
  };
  step();  // warm-up page, not counted
  items = matched = batches = out_bytes = pages = 0;

  double c0 = thread_cpu_seconds();
  auto w0 = std::chrono::steady_clock::now();
  while (items < a.inmemory) step();
  double cpu = thread_cpu_seconds() - c0;
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();

  // Where the time goes: the same number of pages parsed only, then parsed and processed.
  double parse_cpu = 0, process_cpu = 0;
  {
    long long sink = 0;
    double p0 = thread_cpu_seconds();
    for (long long i = 0; i < pages; ++i)
      sink += static_cast<long long>(dynamo::parse_page(body).items.size());
    parse_cpu = thread_cpu_seconds() - p0;
    p0 = thread_cpu_seconds();
    for (long long i = 0; i < pages; ++i) {
      dynamo::Page page = dynamo::parse_page(body);
      for (const auto& item : page.items)
        sink += static_cast<int>(processor.process(item, *state).kind);
    }
    process_cpu = thread_cpu_seconds() - p0 - parse_cpu;
    if (sink == 42) std::fprintf(stderr, " ");
  }
  std::printf(
      "{\"peer\":\"dynamorph\",\"bench\":\"inmemory\",\"transform\":\"%s\",\"items\":%lld,"
      "\"pages\":%lld,\"page_items\":"
      "%d,"
      "\"page_bytes\":%zu,\"matched\":%lld,\"batches\":%lld,\"out_bytes\":%lld,\"cpu_s\":%.4f,"
      "\"wall_s\":%.4f,"
      "\"items_per_s_per_core\":%.0f,\"items_per_s_wall\":%.0f,\"mb_per_s_per_core\":%.1f,\"peak_"
      "rss_mib\":%.1f,"
      "\"cpu_share\":{\"parse\":%.2f,\"where_transform\":%.2f,\"group_serialize\":%.2f}}\n",
      a.transform.c_str(), items, pages, page_items, page_bytes, matched, batches, out_bytes, cpu,
      wall, items / cpu, items / wall, pages * static_cast<double>(page_bytes) / 1e6 / cpu,
      peak_rss_mib(), parse_cpu / cpu, process_cpu / cpu,
      std::max(0.0, 1 - (parse_cpu + process_cpu) / cpu));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  try {
    return a.inmemory > 0 ? run_inmemory(a) : run_live(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "migrate_bench: %s\n", e.what());
    return 1;
  }
}
