// Micro-benchmarks of Lua transforms against the expression engine: the cost per item of
// ItemProcessor::process (where + transform + what the write must be) on a ~300-byte profile
// shaped like the peers' data set, for the job "lowercase username + stamp migratedAt" as an
// update expression and as a Lua function, and for an identity Lua function (the conversion in
// and out alone). One and two threads, each with its own worker state (its own Lua VM).
//
//   build/bench/lua_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Before timing, each case checks its result: the expression and the Lua job give equal items.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "dynamo/json.h"
#include "stages/item_processor.h"
#include "stages/step_expressions.h"

using namespace dynamorph;

namespace {

constexpr const char* kNow = "2025-01-01T00:00:00.000Z";

// 302 bytes by DynamoDB's size rules.
dynamo::Item profile() {
  return dynamo::parse_item(R"({"PK":{"S":"USER#0000123"},"SK":{"S":"PROFILE"},
    "username":{"S":"AliceSmith1987"},"email":{"S":"alice.smith.123@example.com"},
    "age":{"N":"41"},"tags":{"SS":["aws","dynamodb","cpp"]},
    "bio":{"S":"lorem ipsum dolor sit amet consectetur adipiscing elit lorem ipsum dolor sit amet consectetur adipiscing elit lorem ipsum dolor sit amet consectetur adipiscing elit lorem ipsum dolor sit amet consec"}})");
}

enum class Job { Expression, Lua, LuaIdentity };

struct Setup {
  stages::StepSpec spec;
  std::unique_ptr<stages::StepExpressions> compiled;
  std::unique_ptr<stages::ItemProcessor> processor;
};

std::unique_ptr<Setup> make(Job job) {
  auto s = std::make_unique<Setup>();
  auto& spec = s->spec;
  spec.label = "lua_bench";
  spec.source.table = "bench";
  spec.values = {{":profile", dynamo::AttributeValue("PROFILE")},
                 {":user", dynamo::AttributeValue("USER#")}};
  spec.where = {"SK = :profile AND begins_with(PK, :user)", "where"};
  stages::TransformSpec t;
  if (job == Job::Expression) {
    spec.values[":m"] = dynamo::AttributeValue(kNow);
    t.update = {"SET username = lower(username), migratedAt = :m", "transform"};
  } else {
    t.lua.chunk_name = "bench.lua";
    t.lua.code = job == Job::Lua ? R"(
function transform(item, ctx)
  item.username = ctx.lower(item.username)
  item.migratedAt = ctx.now
  return item
end)"
                                 : "function transform(item, ctx) return item end";
  }
  spec.transform.push_back(std::move(t));
  dynamo::TableDescription desc;
  desc.name = "bench";
  desc.partition_key = {"PK", dynamo::AttrType::S};
  desc.sort_key = dynamo::KeyAttribute{"SK", dynamo::AttrType::S};
  s->compiled =
      std::make_unique<stages::StepExpressions>(stages::compile_step_expressions(spec, kNow));
  s->processor =
      std::make_unique<stages::ItemProcessor>(spec, *s->compiled, desc, desc, 20250101000000, kNow);
  return s;
}

const Setup& setup(Job job) {
  static const std::unique_ptr<Setup> all[] = {make(Job::Expression), make(Job::Lua),
                                               make(Job::LuaIdentity)};
  return *all[static_cast<int>(job)];
}

// The expression and the Lua job must agree before anything is timed.
void check_once() {
  static const bool checked = [] {
    const dynamo::Item item = profile();
    auto se = setup(Job::Expression).processor->make_local_state();
    auto sl = setup(Job::Lua).processor->make_local_state();
    auto si = setup(Job::LuaIdentity).processor->make_local_state();
    auto e = setup(Job::Expression).processor->process(item, *se);
    auto l = setup(Job::Lua).processor->process(item, *sl);
    auto i = setup(Job::LuaIdentity).processor->process(item, *si);
    if (e.kind != stages::Decision::Kind::Put || l.kind != e.kind || !(l.new_item == e.new_item) ||
        i.kind != stages::Decision::Kind::Unchanged) {
      std::fprintf(stderr, "lua_bench: results differ: %s / %s\n", l.error.c_str(),
                   dynamo::to_debug_string(l.new_item).c_str());
      std::exit(1);
    }
    std::fprintf(stderr, "lua_bench: item of %zu bytes; expression and Lua results agree\n",
                 dynamo::item_size(item));
    return true;
  }();
  (void)checked;
}

void run(benchmark::State& state, Job job) {
  check_once();
  const auto& processor = *setup(job).processor;
  auto local = processor.make_local_state();  // this thread's VM
  const dynamo::Item item = profile();
  for (auto _ : state) {
    stages::Decision d = processor.process(item, *local);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_Expression_LowerAndStamp(benchmark::State& state) { run(state, Job::Expression); }
void BM_Lua_LowerAndStamp(benchmark::State& state) { run(state, Job::Lua); }
void BM_Lua_Identity(benchmark::State& state) { run(state, Job::LuaIdentity); }

BENCHMARK(BM_Expression_LowerAndStamp)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Lua_LowerAndStamp)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Lua_Identity)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
