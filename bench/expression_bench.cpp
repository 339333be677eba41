// Micro-benchmarks of the expression engine: compile once, evaluate/apply on a ~300-byte item.
// Reports heap allocations per iteration (global operator new is counted in this binary).
//
//   build-expr/bench/expression_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
// This binary replaces the global operator new/delete with counting malloc/free wrappers, which
// g++ cannot see through once inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "expr/expression.h"
#include "dynamo/json.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace dynamorph::expr {
// The item model and its JSON codec, as the engine sees them.
using namespace dynamo;  // NOLINT(google-build-using-namespace): test and bench code only
namespace {

Item profile(const char* username) {
  Item it = parse_item(R"({"PK":{"S":"USER#000123"},"SK":{"S":"PROFILE"},
    "email":{"S":"alice.smith@example.com"},"createdAt":{"S":"2024-01-02T03:04:05.123Z"},
    "visits":{"N":"41"},"tags":{"SS":["admin","beta","early"]},
    "address":{"M":{"city":{"S":"Lyon"},"zip":{"S":"69001"}}},
    "bio":{"S":"Writes about distributed systems, databases and bread. Based in Lyon; previously Paris and Montreal. Likes long scans."}})");
  it.set("username", AttributeValue(username));
  return it;
}

Placeholders placeholders() {
  Placeholders ph;
  ph.values = {{":profile", AttributeValue("PROFILE")},
               {":now", AttributeValue("2026-11-22T10:15:00.000Z")},
               {":one", AttributeValue::number("1")},
               {":lo", AttributeValue::number("10")},
               {":hi", AttributeValue::number("100")}};
  return ph;
}

const EvalContext kCtx{"2026-11-22T10:15:00.000Z"};

void report_allocations(benchmark::State& state, long before) {
  state.counters["allocs/iter"] = benchmark::Counter(
      static_cast<double>(g_allocations.load() - before) / static_cast<double>(state.iterations()));
}

// The DESIGN.md example: short username (fits the string's inline buffer) and a long one.
void BM_ConditionProfileWhere(benchmark::State& state) {
  Condition c = Condition::compile("SK = :profile AND username <> lower(username)", placeholders(),
                                   Dialect::Client, "where");
  Item it = profile(state.range(0) ? "Alice.Smith.Lyon.1987" : "AliceSmith");
  long before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(c.evaluate(it, kCtx));
  report_allocations(state, before);
}
BENCHMARK(BM_ConditionProfileWhere)->Arg(0)->Arg(1)->ArgName("long_username");

void BM_ConditionNoMatch(benchmark::State& state) {
  Condition c = Condition::compile("SK = :profile AND username <> lower(username)", placeholders(),
                                   Dialect::Client, "where");
  Item it = profile("AliceSmith");
  it.set("SK", AttributeValue("PHOTO#1"));
  long before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(c.evaluate(it, kCtx));
  report_allocations(state, before);
}
BENCHMARK(BM_ConditionNoMatch);

void BM_ConditionNumbersAndFunctions(benchmark::State& state) {
  Condition c = Condition::compile(
      "visits BETWEEN :lo AND :hi AND size(tags) > :one AND begins_with(PK, 'USER#') AND "
      "address.city IN ('Lyon', 'Paris') AND contains(tags, 'beta')",
      placeholders(), Dialect::Client, "where");
  Item it = profile("AliceSmith");
  long before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(c.evaluate(it, kCtx));
  report_allocations(state, before);
}
BENCHMARK(BM_ConditionNumbersAndFunctions);

void BM_ItemCopy(benchmark::State& state) {  // baseline for the update benchmarks
  Item it = profile("Alice.Smith.Lyon.1987");
  long before = g_allocations.load();
  for (auto _ : state) {
    Item copy = it;
    benchmark::DoNotOptimize(copy);
  }
  report_allocations(state, before);
}
BENCHMARK(BM_ItemCopy);

void BM_UpdateProfileTransform(benchmark::State& state) {
  Update u = Update::compile("SET username = lower(username), migratedAt = :now", placeholders(),
                             Dialect::Client, "transform[0]");
  Item it = profile("Alice.Smith.Lyon.1987");
  long before = g_allocations.load();
  for (auto _ : state) {
    Item copy = it;
    benchmark::DoNotOptimize(u.apply(copy, kCtx));
  }
  report_allocations(state, before);
}
BENCHMARK(BM_UpdateProfileTransform);

void BM_UpdateArithmetic(benchmark::State& state) {
  Update u = Update::compile("SET visits = visits + :one REMOVE bio ADD logins :one",
                             placeholders(), Dialect::Server, "transform[0]");
  Item it = profile("AliceSmith");
  long before = g_allocations.load();
  for (auto _ : state) {
    Item copy = it;
    benchmark::DoNotOptimize(u.apply(copy, kCtx));
  }
  report_allocations(state, before);
}
BENCHMARK(BM_UpdateArithmetic);

void BM_UpdateKeyRewrite(benchmark::State& state) {
  Update u = Update::compile(
      "SET SK = concat('PHOTO#', to_string(epoch_ms(createdAt)), '#', strip_prefix(PK, 'USER#'))",
      placeholders(), Dialect::Client, "transform[0]");
  Item it = profile("AliceSmith");
  long before = g_allocations.load();
  for (auto _ : state) {
    Item copy = it;
    benchmark::DoNotOptimize(u.apply(copy, kCtx));
  }
  report_allocations(state, before);
}
BENCHMARK(BM_UpdateKeyRewrite);

void BM_CompileCondition(benchmark::State& state) {
  Placeholders ph = placeholders();
  for (auto _ : state) {
    benchmark::DoNotOptimize(Condition::compile("SK = :profile AND username <> lower(username)", ph,
                                                Dialect::Client, "where"));
  }
}
BENCHMARK(BM_CompileCondition);

}  // namespace
}  // namespace dynamorph::expr

BENCHMARK_MAIN();
