// Shared by the pipeline tests: a small single-table data set (profiles and photos), its seeding,
// and a StepSpec builder. Header-only so each test executable stays self-contained.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "dynamo/client.h"
#include "pipeline/pipeline.h"
#include "stages/step_spec.h"
#include "tests/support/ddb_client.h"
#include "tests/support/test_env.h"

namespace dynamorph::test {

using dynamo::AttributeValue;
using dynamo::Item;

struct DataSet {
  std::map<std::string, Item> items;  // "PK|SK" -> item
  static std::string key_of(const Item& i) {
    return i.find("PK")->as<std::string>() + "|" + i.find("SK")->as<std::string>();
  }
};

// n users: PROFILE (mixed-case username, visits, some with status, some without createdAt) and
// photos (PHOTO#<id>, createdAt ISO) for every third user.
inline DataSet make_dataset(int users, unsigned seed = 7) {
  DataSet d;
  std::mt19937 rng(seed);
  const char* names[] = {"Alice", "BOB", "carol", "DaVe", "eve", "FrAnK"};
  for (int u = 0; u < users; ++u) {
    std::string pk = "USER#" + std::to_string(1000 + u);
    Item p{{"PK", S(pk)},
           {"SK", S("PROFILE")},
           {"username", S(std::string(names[rng() % 6]) + std::to_string(u))},
           {"visits", N(std::to_string(u % 17))}};
    if (u % 5 == 0) p.set("status", S("banned"));
    if (u % 4 != 0)
      p.set("createdAt", S("2024-03-0" + std::to_string(1 + u % 9) + "T10:00:00.000Z"));
    d.items[DataSet::key_of(p)] = p;
    if (u % 3 == 0) {
      for (int k = 0; k < 2; ++k) {
        std::string id = "p" + std::to_string(u) + "x" + std::to_string(k);
        Item ph{{"PK", S(pk)},
                {"SK", S("PHOTO#" + id)},
                {"createdAt", S("2025-0" + std::to_string(1 + k) + "-1" + std::to_string(u % 10) +
                                "T0" + std::to_string(u % 10) + ":30:15.250Z")},
                {"url", S("https://img.example/" + id + ".jpg")}};
        d.items[DataSet::key_of(ph)] = ph;
      }
    }
  }
  return d;
}

inline void seed(dynamo::Client& client, const std::string& table, const DataSet& d) {
  std::vector<dynamo::BatchWriteEntry> batch;
  for (const auto& [k, item] : d.items) {
    batch.push_back({table, dynamo::BatchWriteEntry::Kind::Put, item});
    if (batch.size() == 25) {
      auto r = client.batch_write(std::move(batch));
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      batch.clear();
    }
  }
  if (!batch.empty()) {
    ASSERT_TRUE(client.batch_write(std::move(batch)).ok());
  }
}

inline std::map<std::string, Item> read_table(dynamo::Client& client, const std::string& table) {
  std::map<std::string, Item> out;
  for (auto& i : scan_all(client, table)) {
    std::string k = DataSet::key_of(i);
    EXPECT_TRUE(out.emplace(k, std::move(i)).second) << "duplicate " << k;
  }
  return out;
}

// Compares every item, naming the first differences.
inline void expect_same(const std::map<std::string, Item>& expected,
                        const std::map<std::string, Item>& actual) {
  EXPECT_EQ(expected.size(), actual.size());
  int shown = 0;
  for (const auto& [k, item] : expected) {
    auto it = actual.find(k);
    if (it == actual.end()) {
      if (shown++ < 5) ADD_FAILURE() << "missing " << k;
      continue;
    }
    if (!(it->second == item) && shown++ < 5) {
      ADD_FAILURE() << k << "\n expected " << dynamo::to_debug_string(item) << "\n actual   "
                    << dynamo::to_debug_string(it->second);
    }
  }
  for (const auto& [k, item] : actual) {
    if (!expected.count(k) && shown++ < 5) ADD_FAILURE() << "unexpected " << k;
  }
}

inline stages::StepSpec step(const std::string& table) {
  stages::StepSpec s;
  s.label = "test step";
  s.source.table = table;
  return s;
}

inline stages::Expression ex(std::string text, std::string label = "test") {
  return stages::Expression{std::move(text), std::move(label)};
}

inline pipeline::RunOptions options(int segments = 4) {
  pipeline::RunOptions o;
  o.segments = segments;
  o.now_iso = "2026-11-22T10:15:00.000Z";
  o.version = 20261122101500;
  return o;
}

// Runs `body` (returning an exit code) in a forked child; crash tests fork before any thread.
template <class F>
pid_t spawn(F body) {
  pid_t pid = fork();
  if (pid == 0) {
    int code = 0;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 99;
    }
    std::fflush(nullptr);
    _exit(code);
  }
  return pid;
}

// The child's exit status, or -signal when it was killed.
inline int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace dynamorph::test
