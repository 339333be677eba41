// libFuzzer target for the expression engine (scripts/fuzz.sh builds and runs it).
//
// Input: one mode byte, then the expression text. Mode & 3: 0 condition/Server, 1 condition/
// Client, 2 update/Server, 3 update/Client. A compile may only fail with UsageError; a compiled
// expression is evaluated (or applied to copies) on a few items of every type; and when it is
// server-evaluable its wire form must compile in the Server dialect and give the same answers.
// Any other exception, a crash, a leak or undefined behaviour is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/errors.h"
#include "expr/expression.h"
#include "dynamo/json.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::dynamo;
using namespace dynamorph::expr;

const Placeholders& placeholders() {
  static const Placeholders ph = [] {
    Placeholders p;
    p.names = {{"#nm", "name"}, {"#st", "status"}, {"#dash", "my-attr"}, {"#m", "m"}, {"#x", "x"}};
    const char* values[][2] = {
        {":s_alpha", R"({"S":"alpha"})"},
        {":s_a", R"({"S":"a"})"},
        {":s_x", R"({"S":"x"})"},
        {":u_e", R"({"S":"é"})"},
        {":empty", R"({"S":""})"},
        {":n0", R"({"N":"0"})"},
        {":n1", R"({"N":"1"})"},
        {":n2", R"({"N":"2"})"},
        {":n5", R"({"N":"5"})"},
        {":n25", R"({"N":"2.5"})"},
        {":nneg", R"({"N":"-1"})"},
        {":nbig", R"({"N":"99999999999999999999999999999999999999"})"},
        {":ntiny", R"({"N":"0.00000000000000000000000000000000000001"})"},
        {":b01", R"({"B":"AQ=="})"},
        {":t", R"({"BOOL":true})"},
        {":null", R"({"NULL":true})"},
        {":l_x", R"({"L":[{"S":"x"}]})"},
        {":l_empty", R"({"L":[]})"},
        {":m_x", R"({"M":{"x":{"N":"1"}}})"},
        {":ss_a", R"({"SS":["a"]})"},
        {":ss_ab", R"({"SS":["a","b"]})"},
        {":ns_12", R"({"NS":["1","2"]})"},
        {":bs_1", R"({"BS":["AQ=="]})"},
        {":ty_S", R"({"S":"S"})"},
        {":ty_M", R"({"S":"M"})"},
        {":ty_bad", R"({"S":"FOO"})"},
    };
    for (const auto& [name, json] : values) p.values[name] = parse_value(json);
    return p;
  }();
  return ph;
}

const std::vector<Item>& items() {
  static const std::vector<Item> all = [] {
    std::vector<Item> v;
    for (const char* json : {
             R"({"pk":{"S":"a"},"s":{"S":"alpha"},"n":{"N":"5"},"b":{"B":"AQI="},"t":{"BOOL":true},
                "z":{"NULL":true},"l":{"L":[{"N":"1"},{"S":"x"},{"M":{"x":{"N":"1"}}},{"L":[{"N":"2"}]}]},
                "m":{"M":{"x":{"N":"1"},"s":{"S":"x"},"l":{"L":[{"N":"1"}]},"m":{"M":{"y":{"N":"2"}}}}},
                "ss":{"SS":["a","b"]},"ns":{"NS":["1","2.5"]},"bs":{"BS":["AQ=="]},"x":{"S":"a"},
                "name":{"S":"Ünïcode"},"status":{"S":"on"},"my-attr":{"N":"1"}})",
             R"({"pk":{"S":"b"},"s":{"S":"é😀"},"n":{"N":"99999999999999999999999999999999999999"},
                "x":{"NS":["1"]},"y":{"L":[]},"m":{"M":{}},"createdAt":{"S":"2024-01-02T03:04:05Z"}})",
             R"({"pk":{"S":"c"}})",
         }) {
      v.push_back(parse_item(json));
    }
    return v;
  }();
  return all;
}

const EvalContext kCtx{"2026-11-22T10:15:00.000Z"};

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "expression_fuzz: %s\n", what);
  std::abort();
}

Placeholders wire_placeholders(const WireExpression& w) { return Placeholders{w.names, w.values}; }

void check_condition(std::string_view text, Dialect dialect) {
  std::optional<Condition> c;
  try {
    c = Condition::compile(text, placeholders(), dialect, "fuzz");
  } catch (const UsageError&) {
    return;
  }
  std::vector<bool> results;
  for (const Item& item : items()) results.push_back(c->evaluate(item, kCtx));
  for (const Path& p : c->reads()) (void)p.to_string();
  if (!c->server_evaluable()) return;
  WireExpression w = c->to_wire();
  if (w.text.size() > 4096) return;  // placeholders are longer than the literals they replace
  std::optional<Condition> again;
  try {
    again = Condition::compile(w.text, wire_placeholders(w), Dialect::Server, "wire");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "wire form '%s' of '%.*s': %s\n", w.text.c_str(),
                 static_cast<int>(text.size()), text.data(), e.what());
    finding("the wire form of a condition does not compile");
  }
  for (std::size_t i = 0; i < items().size(); ++i) {
    if (again->evaluate(items()[i], kCtx) != results[i])
      finding("the wire form of a condition answers differently");
  }
}

void check_update(std::string_view text, Dialect dialect) {
  std::optional<Update> u;
  try {
    u = Update::compile(text, placeholders(), dialect, "fuzz");
  } catch (const UsageError&) {
    return;
  }
  std::vector<Item> after;
  std::vector<std::optional<std::string>> errors;
  for (const Item& item : items()) {
    Item copy = item;
    errors.push_back(u->apply(copy, kCtx));
    if (errors.back() && !(copy == item)) finding("a failed update changed the item");
    after.push_back(std::move(copy));
  }
  (void)u->writes_any_of({"pk"});
  if (!u->server_evaluable()) return;
  WireExpression w = u->to_wire();
  if (w.text.size() > 4096) return;
  std::optional<Update> again;
  try {
    again = Update::compile(w.text, wire_placeholders(w), Dialect::Server, "wire");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "wire form '%s' of '%.*s': %s\n", w.text.c_str(),
                 static_cast<int>(text.size()), text.data(), e.what());
    finding("the wire form of an update does not compile");
  }
  for (std::size_t i = 0; i < items().size(); ++i) {
    Item copy = items()[i];
    std::optional<std::string> error = again->apply(copy, kCtx);
    if (error.has_value() != errors[i].has_value())
      finding("the wire form of an update fails differently");
    if (!error && !(copy == after[i])) finding("the wire form of an update gives another item");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] & 3) {
    case 0: check_condition(text, Dialect::Server); break;
    case 1: check_condition(text, Dialect::Client); break;
    case 2: check_update(text, Dialect::Server); break;
    default: check_update(text, Dialect::Client); break;
  }
  return 0;
}
