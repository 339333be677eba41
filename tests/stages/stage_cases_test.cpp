// ctest label: unit (no server)
// Table-driven tests of the stages, in the spirit of DuckDB's sqllogictest: each case in
// tests/stages/data/*.cases gives tables, a pipeline step (as a migration file writes it, loaded
// by the real loader), input items, and what must come out: one decision per item, the write
// requests the step's sink builds (their exact JSON bodies), and optionally the verdict of the
// sink on an answer. No server: sources, transforms and sinks as pure functions.
//
// Case format (sections start with "== "):
//   === case: NAME
//   == tables          one line each: NAME PK:TYPE [SK:TYPE]; the first is the source
//   == step            the body of a `- pipeline:` step, in YAML (the loader's own syntax)
//   == items           one item per line, DynamoDB JSON
//   == decisions       one word per item: not_matched skipped unchanged put update delete many
//   error
//   == writes          one line per request: OPERATION BODY
//   == answer          optional, for the first write: ok | ERROR_TYPE [REASON,REASON…]
//   == verdict         written=N reread=I,J resend=N conflicts=N failed=N retries=N [error: TEXT]
// DYNAMORPH_PRINT_CASES=1 prints what each case produced, for writing new cases.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "migrations/migration_file.h"
#include "stages/item_processor.h"
#include "stages/sink.h"
#include "stages/step_expressions.h"
#include "tests/support/test_env.h"

namespace dynamorph {
namespace {

struct Case {
  std::string name, file;
  int line = 0;
  std::map<std::string, std::vector<std::string>> sections;
};

std::vector<Case> load_cases() {
  std::vector<Case> cases;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(test::source_path("tests/stages/data")))
    if (e.path().extension() == ".cases") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path);
    std::string line, section;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.rfind("=== case: ", 0) == 0) {
        cases.push_back({line.substr(10), path.filename().string(), n, {}});
        section.clear();
      } else if (line.rfind("== ", 0) == 0) {
        section = line.substr(3);
        cases.back().sections[section];
      } else if (!section.empty() && !cases.empty()) {
        if (section != "step" && (line.empty() || line[0] == '#')) continue;
        cases.back().sections[section].push_back(line);
      }
    }
  }
  return cases;
}

dynamo::TableDescription table_of(const std::string& line) {
  std::istringstream words(line);
  std::string name, pk, sk;
  words >> name >> pk >> sk;
  auto key = [](const std::string& spec) {
    std::string why;
    auto k = migrations::parse_key_spec(spec, &why);
    if (!k) throw std::runtime_error("bad key " + spec + ": " + why);
    return *k;
  };
  dynamo::TableDescription t;
  t.name = name;
  t.status = "ACTIVE";
  t.partition_key = key(pk);
  if (!sk.empty()) t.sort_key = key(sk);
  return t;
}

std::string decision_word(const stages::Decision& d) {
  using K = stages::Decision::Kind;
  switch (d.kind) {
    case K::NotMatched: return "not_matched";
    case K::Skipped: return "skipped";
    case K::Unchanged: return "unchanged";
    case K::Put: return d.key_changed ? "put+delete" : "put";
    case K::Update: return "update";
    case K::Delete: return "delete";
    case K::Many: return d.key_changed ? "many+delete" : "many";
    case K::DeleteKeys: return "delete_keys";
    case K::Error: return "error: " + d.error;
  }
  return "?";
}

std::string request_line(const stages::WriteOp& op) {
  std::string body;
  std::string name = std::visit(
      [&](const auto& r) -> std::string {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, stages::BatchWrite>) {
          body = r.body;  // as a metered send has it
          dynamo::add_return_consumed_capacity(body);
          return "BatchWriteItem";
        } else if constexpr (std::is_same_v<T, stages::UpdateWrite>) {
          dynamo::write_update_item(body, r.request);
          return "UpdateItem";
        } else if constexpr (std::is_same_v<T, stages::PutWrite>) {
          dynamo::write_put_item(body, r.request);
          return "PutItem";
        } else if constexpr (std::is_same_v<T, stages::DeleteWrite>) {
          dynamo::write_delete_item(body, r.request);
          return "DeleteItem";
        } else {
          dynamo::write_transact_write(body, r.actions, "TOKEN");
          return "TransactWriteItems";
        }
      },
      op.request);
  return name + " " + body;
}

stages::WriteAnswer answer_of(const std::string& line, const std::string& operation) {
  stages::WriteAnswer a;
  if (line == "ok") return a;
  std::istringstream words(line);
  auto e = std::make_shared<dynamo::ServiceError>();
  e->operation = operation;
  e->http_status = 400;
  std::string reasons;
  words >> e->type >> reasons;
  std::istringstream split(reasons);
  for (std::string r; std::getline(split, r, ',');) e->cancellation_reasons.push_back(r);
  a.error = e;
  return a;
}

std::string verdict_line(const stages::Verdict& v) {
  std::string reread;
  for (int i : v.reread) reread += (reread.empty() ? "" : ",") + std::to_string(i);
  std::string s =
      fmt::format("written={} reread={} resend={} conflicts={} failed={} retries={}", v.written,
                  reread.empty() ? "-" : reread, v.resend ? v.resend->item_count : 0, v.conflicts,
                  v.failed, v.retries);
  if (!v.error.empty()) s += " error: " + v.error;
  return s;
}

// A C++ stage for the fan-out cases: one item per element of the list attribute args.list,
// with that element as its sort key; an empty list deletes the item, no list skips it.
class TestFanout final : public stages::Transform {
 public:
  explicit TestFanout(std::string list) : list_(std::move(list)) {}
  stages::TransformResult apply(dynamo::Item& item, stages::TransformState*,
                                const stages::TransformContext&) const override {
    const auto* v = item.find(list_);
    if (!v) return stages::TransformResult::skip();
    const auto& elements = v->as<dynamo::List>();
    if (elements.empty()) return stages::TransformResult::remove();
    std::vector<dynamo::Item> out;
    for (const auto& e : elements) {
      dynamo::Item one = item;
      one.erase(list_);
      one.set("SK", e);
      out.push_back(std::move(one));
    }
    return stages::TransformResult::many(std::move(out));
  }
  std::vector<std::string> reads() const override { return {list_}; }
  std::optional<std::vector<std::string>> writes() const override { return std::nullopt; }
  std::string describe() const override { return "stage test_fanout"; }

 private:
  std::string list_;
};

const bool kFanoutRegistered = [] {
  stages::register_stage("test_fanout", [](const stages::StageContext& c) {
    return std::make_unique<TestFanout>(c.args.at("list").as<std::string>());
  });
  return true;
}();

class StageCases : public ::testing::TestWithParam<Case> {};

TEST_P(StageCases, ProduceExactlyWhatTheCaseSays) {
  const Case& c = GetParam();
  SCOPED_TRACE(fmt::format("{}:{}: {}", c.file, c.line, c.name));
  const auto& tables = c.sections.at("tables");
  ASSERT_FALSE(tables.empty());
  std::map<std::string, dynamo::TableDescription> described;
  for (const auto& t : tables) {
    auto d = table_of(t);
    described[d.name] = d;
  }
  // The step, as a migration file would hold it, through the real loader.
  std::string text = "version: 1\nname: case\nup:\n  - pipeline:\n";
  for (const auto& l : c.sections.at("step")) text += "      " + l + "\n";
  migrations::LoadOptions lo;
  lo.now_iso = "2026-11-22T10:15:00.000Z";
  std::vector<std::string> decisions, writes, verdicts;
  try {
    auto m = migrations::parse_migration(text, c.file, "1_case.yaml", lo);
    const auto& spec = std::get<migrations::PipelineStep>(m.up.at(0).body).spec;
    const auto& source = described.at(table_of(tables.front()).name);
    const auto& target = described.at(spec.write.table.empty() ? source.name : spec.write.table);
    auto compiled = stages::compile_step_expressions(spec, lo.now_iso);
    stages::ItemProcessor processor(spec, compiled, source, target, 20261122000000, lo.now_iso);
    auto sink = stages::make_sink(spec.write.mode, processor);
    auto state = processor.make_local_state();
    auto page = sink->make_page_state();
    std::vector<stages::WriteOp> ops;
    for (const auto& line : c.sections.at("items")) {
      dynamo::Item item = dynamo::parse_item(line);
      stages::Decision d = processor.process(item, *state);
      decisions.push_back(decision_word(d));
      using K = stages::Decision::Kind;
      if (d.kind == K::Put || d.kind == K::Update || d.kind == K::Delete || d.kind == K::Many)
        page->add(item, std::move(d), ops, 0);
    }
    page->flush(ops);
    for (const auto& op : ops) writes.push_back(request_line(op));
    if (c.sections.contains("answer")) {
      ASSERT_FALSE(ops.empty()) << "an answer needs a write to answer";
      std::string operation = writes.front().substr(0, writes.front().find(' '));
      auto answer = answer_of(c.sections.at("answer").at(0), operation);
      verdicts.push_back(verdict_line(sink->classify(ops.front(), answer, 5)));
    }
  } catch (const UsageError& e) {
    decisions = {std::string("refused: ") + e.what()};
  }
  if (std::getenv("DYNAMORPH_PRINT_CASES")) {
    std::printf("=== case: %s\n== decisions\n", c.name.c_str());
    for (const auto& d : decisions) std::printf("%s\n", d.c_str());
    std::printf("== writes\n");
    for (const auto& w : writes) std::printf("%s\n", w.c_str());
    for (const auto& v : verdicts) std::printf("== verdict\n%s\n", v.c_str());
  }
  auto section = [&](const char* name) {
    auto it = c.sections.find(name);
    return it == c.sections.end() ? std::vector<std::string>{} : it->second;
  };
  EXPECT_EQ(decisions, section("decisions"));
  EXPECT_EQ(writes, section("writes"));
  EXPECT_EQ(verdicts, section("verdict"));
}

INSTANTIATE_TEST_SUITE_P(Data, StageCases, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string n = info.param.file.substr(0, info.param.file.find('.')) +
                                           "_" + std::to_string(info.param.line);
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace dynamorph
