// Differential test of the expression engine against DynamoDB Local: the corpus
// (tests/expr/data/expr_corpus.txt) runs through expr::Condition/Update and, via
// tests/expr/expr_oracle.py (boto3), through the server, on the same generated items. Both must
// agree on matching keys (Scan FilterExpression), on new items or errors (UpdateItem ALL_NEW),
// and on which expressions are rejected. The wire form (to_wire) of every accepted expression is
// sent too and must give the same answers.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dynamo/errors.h"
#include "expr/expression.h"
#include "dynamo/json.h"
#include "tests/support/test_env.h"

namespace dynamorph::expr {
// The item model and its JSON codec, as the engine sees them.
using namespace dynamo;  // NOLINT(google-build-using-namespace): test and bench code only
namespace {

constexpr int kItems = 300;          // items every filter runs on
constexpr int kUpdateItems = 40;     // the first ones: every update runs on copies of these
constexpr int kWireUpdateItems = 5;  // the wire form of an update runs on these

// ---- corpus ------------------------------------------------------------------------------------

struct Case {
  char kind;  // 'C' condition, 'U' update
  std::string text;
  int line;
};

struct Corpus {
  Placeholders placeholders;
  std::vector<Case> cases;
};

Corpus load_corpus() {
  std::string path = test::source_path("tests/expr/data/expr_corpus.txt");
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  Corpus corpus;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("name ", 0) == 0) {
      std::istringstream fields(line.substr(5));
      std::string ph, attr;
      fields >> ph >> attr;
      corpus.placeholders.names[ph] = attr;
    } else if (line.rfind("value ", 0) == 0) {
      std::string rest = line.substr(6);
      std::size_t space = rest.find(' ');
      corpus.placeholders.values[rest.substr(0, space)] = parse_value(rest.substr(space + 1));
    } else if ((line[0] == 'C' || line[0] == 'U') && line.size() > 2 && line[1] == ' ') {
      corpus.cases.push_back({line[0], line.substr(2), number});
    } else {
      throw std::runtime_error(fmt::format("{}:{}: cannot read '{}'", path, number, line));
    }
  }
  return corpus;
}

// ---- items -------------------------------------------------------------------------------------

class ItemGenerator {
 public:
  explicit ItemGenerator(unsigned seed) : rng_(seed) {}

  Item item(int index) {
    Item it;
    it.set("pk", AttributeValue(fmt::format("i{:03}", index)));
    maybe(it, "s", [&] { return AttributeValue(pick(kStrings)); });
    maybe(it, "u", [&] { return AttributeValue(pick(kUnicode)); });
    maybe(it, "n", [&] { return AttributeValue::number(pick(kNumbers)); });
    maybe(it, "n2", [&] { return AttributeValue::number(std::to_string(below(10))); });
    maybe(it, "b", [&] { return binary(); });
    maybe(it, "t", [&] { return AttributeValue(below(2) == 0); });
    maybe(it, "z", [&] { return AttributeValue(Null{}); });
    maybe(it, "l", [&] { return list(); });
    maybe(it, "m", [&] { return map(); });
    maybe(it, "ss", [&] { return AttributeValue(subset<std::string>({"a", "b", "c", "d", "z"})); });
    maybe(it, "ns", [&] {
      NumberSet ns;
      for (const std::string& s : subset<std::string>({"1", "2", "3", "2.5"})) {
        ns.push_back(*Number::parse(s));
      }
      return AttributeValue(std::move(ns));
    });
    maybe(it, "bs", [&] {
      BinarySet bs;
      for (const std::string& s : subset<std::string>({"\x01", "\x02", "\x03"})) bs.push_back({s});
      return AttributeValue(std::move(bs));
    });
    maybe(it, "x", [&] { return any(); });
    maybe(it, "y", [&] { return any(); });
    maybe(it, "name", [&] { return AttributeValue(pick(kStrings)); });
    maybe(it, "status", [&] { return AttributeValue(pick(kStrings)); });
    maybe(it, "my-attr", [&] { return AttributeValue::number(std::to_string(below(3))); });
    return it;
  }

 private:
  // ASCII only where size() may apply: DynamoDB Local counts UTF-16 units, DynamoDB bytes.
  static inline const std::vector<std::string> kStrings = {
      "alpha", "alphabet", "alp",     "beta",    "Beta", "gamma",       "a", "zeta",
      "123",   "USER#1",   "USER#22", "PHOTO#9", "x",    "hello world", "ab"};
  // Basic Multilingual Plane below the surrogates: UTF-8 byte order = UTF-16 order here.
  static inline const std::vector<std::string> kUnicode = {"é", "e", "f",  "中文", "z",
                                                           "ÿ", "Ā", "ab", "ÿz"};
  static inline const std::vector<std::string> kNumbers = {
      "0",
      "1",
      "-1",
      "5",
      "10",
      "2.5",
      "-2.5",
      "100",
      "0.001",
      "3",
      "4",
      "99999999999999999999999999999999999999",
      "-99999999999999999999999999999999999999",
      "0.00000000000000000000000000000000000001",
      "12345678901234567890"};

  std::mt19937 rng_;

  int below(int n) { return static_cast<int>(rng_() % static_cast<unsigned>(n)); }
  const std::string& pick(const std::vector<std::string>& pool) {
    return pool[static_cast<std::size_t>(below(static_cast<int>(pool.size())))];
  }
  template <class F>
  void maybe(Item& it, const char* name, F make) {
    if (below(5) != 0) it.set(name, make());
  }
  template <class T>
  std::vector<T> subset(std::vector<T> pool) {
    std::vector<T> out;
    for (const T& x : pool) {
      if (below(2) == 0) out.push_back(x);
    }
    if (out.empty())
      out.push_back(pool[static_cast<std::size_t>(below(static_cast<int>(pool.size())))]);
    return out;
  }
  AttributeValue binary() {
    static const std::vector<std::string> pool = {std::string(1, '\0'), "\x01\x02", "\xff", "\x01",
                                                  "\x7f\x80",           "\x01\xff"};
    return AttributeValue(Binary{pick(pool)});
  }
  AttributeValue element() {
    switch (below(10)) {
      case 0: return AttributeValue::number("1");
      case 1: return AttributeValue::number("2");
      case 2: return AttributeValue("x");
      case 3: return AttributeValue("y");
      case 4: return AttributeValue(Map{{"x", AttributeValue::number("1")}});
      case 5: return AttributeValue(List{AttributeValue::number("1"), AttributeValue::number("2")});
      case 6: return AttributeValue(List{AttributeValue("x")});
      case 7: return AttributeValue(true);
      case 8: return AttributeValue(Null{});
      default: return AttributeValue(StringSet{"a"});
    }
  }
  AttributeValue list() {
    List l;
    int n = below(6);
    for (int i = 0; i < n; ++i) l.push_back(element());
    return AttributeValue(std::move(l));
  }
  AttributeValue map() {
    Map m;
    if (below(10) < 7) m.set("x", AttributeValue::number(std::to_string(below(3))));
    if (below(2) == 0) m.set("s", AttributeValue(pick(kStrings)));
    if (below(2) == 0) {
      List l;
      for (int i = 0, n = 1 + below(3); i < n; ++i)
        l.push_back(AttributeValue::number(std::to_string(i + 1)));
      m.set("l", AttributeValue(std::move(l)));
    }
    if (below(10) < 6) {
      Map inner;
      if (below(10) < 8) inner.set("y", AttributeValue::number(std::to_string(below(4))));
      m.set("m", AttributeValue(std::move(inner)));
    }
    return AttributeValue(std::move(m));
  }
  AttributeValue any() {
    switch (below(10)) {
      case 0: return AttributeValue(pick({"a", "alpha", "x", "beta"}));
      case 1: return AttributeValue::number(pick({"1", "5", "2.5", "-1"}));
      case 2: return binary();
      case 3: return AttributeValue(below(2) == 0);
      case 4: return AttributeValue(Null{});
      case 5: return list();
      case 6: return AttributeValue(Map{{"x", AttributeValue::number("1")}});
      case 7: return AttributeValue(subset<std::string>({"a", "b"}));
      case 8: return AttributeValue(NumberSet{*Number::parse("1")});
      default: return AttributeValue(BinarySet{Binary{"\x01"}});
    }
  }
};

// ---- the oracle's exchange files ---------------------------------------------------------------

void write_names(std::string& out, const std::map<std::string, std::string>& names) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : names) {
    if (!first) out += ',';
    first = false;
    write_json_string(out, k);
    out += ':';
    write_json_string(out, v);
  }
  out += '}';
}

void write_values(std::string& out, const std::map<std::string, AttributeValue>& values) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : values) {
    if (!first) out += ',';
    first = false;
    write_json_string(out, k);
    out += ':';
    write_value(out, v);
  }
  out += '}';
}

struct Request {
  std::string text;
  std::optional<WireExpression> wire;  // explicit placeholders; else the shared ones it mentions
  std::vector<int> items;              // updates only
};

void write_request(std::string& out, const Request& r, bool update) {
  out += "{\"expr\":";
  write_json_string(out, r.wire ? r.wire->text : r.text);
  if (r.wire) {
    out += ",\"names\":";
    write_names(out, r.wire->names);
    out += ",\"values\":";
    write_values(out, r.wire->values);
  }
  if (update) {
    out += ",\"items\":[";
    for (std::size_t i = 0; i < r.items.size(); ++i)
      out += fmt::format("{}{}", i ? "," : "", r.items[i]);
    out += ']';
  }
  out += '}';
}

struct ServerAnswer {
  bool ok = false;
  std::string text;  // keys (scan), item JSON or error message
};

struct ServerAnswers {
  std::map<int, ServerAnswer> scans;
  std::map<int, std::map<int, ServerAnswer>> updates;  // item -1: rejected before any item
};

ServerAnswers ask_server(const Placeholders& ph, const std::vector<Item>& items,
                         const std::vector<Request>& scans, const std::vector<Request>& updates) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / test::unique_name("dynamorph_expr_diff");
  fs::create_directories(dir);
  std::string spec = "{\"endpoint\":";
  write_json_string(spec, test::ddb_endpoint());
  spec += ",\"table\":";
  write_json_string(spec, test::unique_name("expr_diff"));
  spec += ",\"names\":";
  write_names(spec, ph.names);
  spec += ",\"values\":";
  write_values(spec, ph.values);
  spec += ",\"items\":[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) spec += ',';
    write_item(spec, items[i]);
  }
  spec += "],\"scans\":[";
  for (std::size_t i = 0; i < scans.size(); ++i) {
    if (i) spec += ',';
    write_request(spec, scans[i], false);
  }
  spec += "],\"updates\":[";
  for (std::size_t i = 0; i < updates.size(); ++i) {
    if (i) spec += ',';
    write_request(spec, updates[i], true);
  }
  spec += "]}";
  fs::path in = dir / "spec.json", out = dir / "answers.txt";
  std::ofstream(in) << spec;
  std::string cmd =
      fmt::format("/usr/bin/python3 '{}' '{}' '{}'",
                  test::source_path("tests/expr/expr_oracle.py"), in.string(), out.string());
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("the oracle failed: " + cmd);
  ServerAnswers answers;
  std::ifstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string kind, a, b, status;
    fields >> kind >> a;
    if (kind == "U") fields >> b;
    fields >> status;
    std::string rest;
    std::getline(fields, rest);
    if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
    ServerAnswer answer{status == "OK", rest};
    if (kind == "S")
      answers.scans[std::stoi(a)] = answer;
    else
      answers.updates[std::stoi(a)][b == "*" ? -1 : std::stoi(b)] = answer;
  }
  fs::remove_all(dir);
  return answers;
}

// DynamoDB Local words a few range errors differently from DynamoDB (whose texts Decimal uses).
std::string error_class(const std::string& message) {
  if (message.find("38 digits") != std::string::npos ||
      message.find("significant digits") != std::string::npos ||
      message.find("magnitude") != std::string::npos) {
    return "number out of range";
  }
  if (message.find("part of the key") != std::string::npos) return "key attribute";
  return message;
}

bool known_item_error(const std::string& message) {
  std::string c = error_class(message);
  return c == "number out of range" ||
         c == "The provided expression refers to an attribute that does not exist in the item" ||
         c == "An operand in the update expression has an incorrect data type" ||
         c == "The document path provided in the update expression is invalid for update";
}

std::string keys_of(const std::set<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : " ") + k;
  return out;
}

// ---- the test ----------------------------------------------------------------------------------

class ExpressionDifferential : public ::testing::Test {
 protected:
  struct CondCase {
    const Case* c;
    std::optional<Condition> compiled;
    std::string error;
    int scan = -1, wire_scan = -1;
  };
  struct UpdCase {
    const Case* c;
    std::optional<Update> compiled;
    std::string error;
    int request = -1, wire_request = -1;
  };

  static void SetUpTestSuite() {
    corpus_ = new Corpus(load_corpus());
    ItemGenerator gen(20261122);
    for (int i = 0; i < kItems; ++i) items_.push_back(gen.item(i));
    std::vector<Request> scans, updates;
    for (const Case& c : corpus_->cases) {
      std::string label = fmt::format("expr_corpus.txt:{}", c.line);
      if (c.kind == 'C') {
        CondCase cc{&c, std::nullopt, {}};
        try {
          cc.compiled = Condition::compile(c.text, corpus_->placeholders, Dialect::Server, label);
        } catch (const UsageError& e) {
          cc.error = e.what();
        }
        cc.scan = static_cast<int>(scans.size());
        scans.push_back({c.text, std::nullopt, {}});
        if (cc.compiled) {
          cc.wire_scan = static_cast<int>(scans.size());
          scans.push_back({c.text, cc.compiled->to_wire(), {}});
        }
        conditions_.push_back(std::move(cc));
      } else {
        UpdCase uc{&c, std::nullopt, {}};
        try {
          uc.compiled = Update::compile(c.text, corpus_->placeholders, Dialect::Server, label);
        } catch (const UsageError& e) {
          uc.error = e.what();
        }
        std::vector<int> all(kUpdateItems), few(kWireUpdateItems);
        for (int i = 0; i < kUpdateItems; ++i) all[static_cast<std::size_t>(i)] = i;
        for (int i = 0; i < kWireUpdateItems; ++i) few[static_cast<std::size_t>(i)] = i;
        uc.request = static_cast<int>(updates.size());
        updates.push_back({c.text, std::nullopt, all});
        if (uc.compiled) {
          uc.wire_request = static_cast<int>(updates.size());
          updates.push_back({c.text, uc.compiled->to_wire(), few});
        }
        updates_.push_back(std::move(uc));
      }
    }
    answers_ = new ServerAnswers(ask_server(corpus_->placeholders, items_, scans, updates));
  }

  static void TearDownTestSuite() {
    delete corpus_;
    delete answers_;
    corpus_ = nullptr;
    answers_ = nullptr;
  }

  static inline Corpus* corpus_ = nullptr;
  static inline std::vector<Item> items_;
  static inline std::vector<CondCase> conditions_;
  static inline std::vector<UpdCase> updates_;
  static inline ServerAnswers* answers_ = nullptr;
  static inline int other_action_errors_ = 0;
};

TEST_F(ExpressionDifferential, CorpusIsLargeEnough) {
  EXPECT_GE(conditions_.size() + updates_.size(), 200u);
  std::cout << fmt::format("corpus: {} conditions, {} updates; {} items\n", conditions_.size(),
                           updates_.size(), items_.size());
}

TEST_F(ExpressionDifferential, FiltersMatchScan) {
  EvalContext ctx{"2026-01-01T00:00:00.000Z"};
  int accepted = 0, rejected = 0, wire = 0;
  for (const CondCase& cc : conditions_) {
    const ServerAnswer& server = answers_->scans.at(cc.scan);
    SCOPED_TRACE(fmt::format("line {}: C {}", cc.c->line, cc.c->text));
    if (!cc.compiled) {
      EXPECT_FALSE(server.ok) << "dynamorph rejects (" << cc.error << "), the server accepts";
      if (!server.ok) ++rejected;
      continue;
    }
    ASSERT_TRUE(server.ok) << "dynamorph accepts, the server rejects: " << server.text;
    std::set<std::string> local;
    for (const Item& item : items_) {
      if (cc.compiled->evaluate(item, ctx)) local.insert(item.find("pk")->as<std::string>());
    }
    std::set<std::string> remote;
    std::istringstream keys(server.text);
    for (std::string k; keys >> k;) remote.insert(k);
    EXPECT_EQ(keys_of(local), keys_of(remote));
    if (local == remote) ++accepted;
    const ServerAnswer& w = answers_->scans.at(cc.wire_scan);
    EXPECT_TRUE(w.ok) << "wire form rejected: " << cc.compiled->to_wire().text << ": " << w.text;
    if (w.ok && w.text == server.text)
      ++wire;
    else
      ADD_FAILURE() << "wire form " << cc.compiled->to_wire().text << " matched other keys";
  }
  std::cout << fmt::format(
      "filters: {} agree on matching keys, {} rejected by both, {} wire forms agree\n", accepted,
      rejected, wire);
}

TEST_F(ExpressionDifferential, UpdatesMatchUpdateItem) {
  EvalContext ctx{"2026-01-01T00:00:00.000Z"};
  int rejected = 0, items_same = 0, errors_same = 0, wire_same = 0;
  for (const UpdCase& uc : updates_) {
    SCOPED_TRACE(fmt::format("line {}: U {}", uc.c->line, uc.c->text));
    const auto& server = answers_->updates.at(uc.request);
    if (!uc.compiled) {
      bool server_rejects = server.count(-1) == 1;
      EXPECT_TRUE(server_rejects) << "dynamorph rejects (" << uc.error
                                  << "), the server accepts or fails per item";
      if (server_rejects) ++rejected;
      continue;
    }
    ASSERT_EQ(server.count(-1), 0u)
        << "dynamorph accepts, the server rejects: " << server.at(-1).text;
    auto check = [&](const std::map<int, ServerAnswer>& answers, int count, int& same_items,
                     int& same_errors) {
      for (int i = 0; i < count; ++i) {
        SCOPED_TRACE(
            fmt::format("item {}: {}", i, to_debug_string(items_[static_cast<std::size_t>(i)])));
        const ServerAnswer& remote = answers.at(i);
        Item local = items_[static_cast<std::size_t>(i)];
        local.set("pk", AttributeValue(fmt::format(
                            "u{}_{}", &answers == &server ? uc.request : uc.wire_request, i)));
        std::optional<std::string> error;
        if (uc.compiled->writes_any_of({"pk"}))
          error = "part of the key";
        else
          error = uc.compiled->apply(local, ctx);
        if (error) {
          EXPECT_FALSE(remote.ok) << "dynamorph fails (" << *error << "), the server gives "
                                  << remote.text;
          if (!remote.ok) {
            if (error_class(*error) == error_class(remote.text)) {
              ++same_errors;
            } else if (uc.compiled->writes().size() > 1 && known_item_error(*error) &&
                       known_item_error(remote.text)) {
              // Several actions fail on this item and each side names another one: DynamoDB
              // Local picks the action that comes last in a Java HashMap of the top-level
              // names; dynamorph reports bad target paths first, then operands in text order.
              ++other_action_errors_;
            } else {
              EXPECT_EQ(error_class(*error), error_class(remote.text));
            }
          }
          continue;
        }
        ASSERT_TRUE(remote.ok) << "dynamorph gives " << to_debug_string(local)
                               << ", the server fails: " << remote.text;
        Item expected = parse_item(remote.text);
        EXPECT_TRUE(local == expected) << "dynamorph: " << to_debug_string(local)
                                       << "\nserver:    " << to_debug_string(expected);
        if (local == expected) ++same_items;
      }
    };
    check(server, kUpdateItems, items_same, errors_same);
    int wire_items = 0, wire_errors = 0;
    const auto& w = answers_->updates.at(uc.wire_request);
    ASSERT_EQ(w.count(-1), 0u) << "wire form " << uc.compiled->to_wire().text
                               << " rejected: " << w.at(-1).text;
    check(w, kWireUpdateItems, wire_items, wire_errors);
    wire_same += wire_items + wire_errors;
  }
  std::cout << fmt::format(
      "updates: {} rejected by both; {} new items and {} item errors agree "
      "({} more fail on both sides, naming different failing actions); "
      "{} wire-form answers agree\n",
      rejected, items_same, errors_same, other_action_errors_, wire_same);
}

}  // namespace
}  // namespace dynamorph::expr
