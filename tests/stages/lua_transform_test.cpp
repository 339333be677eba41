// Lua transforms without a server: the type mapping both ways on all ten DynamoDB types, exact
// decimals, the sandbox (every escape refused), the instruction budget and the memory cap,
// load-time errors, the results (item, nil, delete, many) and ctx.
#include "stages/lua_transform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "stages/item_processor.h"
#include "stages/step_expressions.h"
#include "tests/support/ddb_client.h"

using namespace dynamorph;
using namespace dynamorph::stages;
using dynamo::AttributeValue;
using dynamo::Binary;
using dynamo::Item;
using test::N;
using test::S;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

constexpr const char* kChunk = "lua/test.lua";

struct Lua {
  explicit Lua(std::string code, std::int64_t instructions = 0, std::int64_t memory = 0,
               std::string chunk = kChunk) {
    LuaSpec spec{std::move(code), std::move(chunk), 1, instructions, memory};
    transform = make_lua_transform(spec, "test step");
    state = transform->make_local_state();
    ctx.eval.now_iso = "2026-11-22T10:15:00.000Z";
    ctx.version = 20261122101500;
    ctx.values = &values;
  }
  TransformResult run(Item& item) { return transform->apply(item, state.get(), ctx); }
  std::string error(Item item = Item{{"PK", S("k")}}) {
    TransformResult r = run(item);
    EXPECT_EQ(r.kind, TransformResult::Kind::Error);
    return r.error;
  }

  std::unique_ptr<Transform> transform;
  std::unique_ptr<TransformState> state;
  std::map<std::string, AttributeValue> values;
  TransformContext ctx;
};

std::string load_error(const std::string& code) {
  try {
    Lua lua(code);
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no load error for: " << code;
  return {};
}

std::string json(const Item& item) {
  std::string out;
  dynamo::write_item(out, item);
  return out;
}

// Maps sorted by name at every level: Lua tables have no order, DynamoDB maps neither.
AttributeValue sorted(const AttributeValue& v) {
  if (const auto* m = v.get_if<dynamo::Map>()) {
    std::vector<std::pair<std::string, AttributeValue>> e;
    for (const auto& [k, x] : *m) e.emplace_back(k, sorted(x));
    std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    dynamo::Map out;
    for (auto& [k, x] : e) out.append(k, std::move(x));
    return AttributeValue(std::move(out));
  }
  if (const auto* l = v.get_if<dynamo::List>()) {
    dynamo::List out;
    for (const auto& x : *l) out.push_back(sorted(x));
    return AttributeValue(std::move(out));
  }
  return v;
}

AttributeValue B(std::string bytes) { return AttributeValue(Binary{std::move(bytes)}); }

// Every type, the numbers at the edges of Lua integers and of DynamoDB's range, binaries with
// NUL and 0xFF, nesting, empty map and empty list, every set.
Item all_types() {
  using namespace std::string_literals;
  dynamo::Map nested{
      {"deep", AttributeValue(
                   dynamo::List{N("1"), S("two"), AttributeValue(dynamo::Map{{"x", N("-0.5")}})})},
      {"empty_map", AttributeValue(dynamo::Map{})},
      {"empty_list", AttributeValue(dynamo::List{})}};
  return Item{
      {"PK", S("USER#1")},
      {"s", S("h\xC3\xA9llo, \"w\"\n\t")},
      {"s_empty", S("")},
      {"int", N("42")},
      {"neg", N("-7")},
      {"zero", N("0")},
      {"i64_max", N("9223372036854775807")},
      {"i64_min", N("-9223372036854775808")},
      {"above_i64", N("9223372036854775808")},
      {"below_i64", N("-9223372036854775809")},
      {"digits38", N("12345678901234567890123456789012345678")},
      {"frac38", N("0.12345678901234567890123456789012345678")},
      {"tiny", N("1E-130")},
      {"huge", N("9.9999999999999999999999999999999999999E+125")},
      {"dec", N("12.50")},
      {"b", B("\x00\xFF\x01 bytes\x00"s)},
      {"b_empty", B("")},
      {"t", AttributeValue(true)},
      {"f", AttributeValue(false)},
      {"nul", AttributeValue(dynamo::Null{})},
      {"m", AttributeValue(nested)},
      {"l",
       AttributeValue(dynamo::List{S("a"), N("2.5"), AttributeValue(dynamo::List{}),
                                   AttributeValue(dynamo::Map{}), AttributeValue(dynamo::Null{})})},
      {"empty_m", AttributeValue(dynamo::Map{})},
      {"empty_l", AttributeValue(dynamo::List{})},
      {"ss", AttributeValue(dynamo::StringSet{"b", "a", "\xE2\x82\xAC"})},
      {"ns", AttributeValue(dynamo::NumberSet{
                 *dynamo::Number::parse("1"), *dynamo::Number::parse("-2.75"),
                 *dynamo::Number::parse("1E-130"),
                 *dynamo::Number::parse("99999999999999999999999999999999999999")})},
      {"bs", AttributeValue(dynamo::BinarySet{Binary{"\x00"s}, Binary{"\xFF\xFE"}, Binary{"x"}})},
  };
}

TEST(LuaValues, IdentityKeepsEveryValueByteForByte) {
  Lua lua("function transform(item, ctx) return item end");
  Item item = all_types();
  const std::string before = json(item);
  TransformResult r = lua.run(item);
  ASSERT_EQ(r.kind, TransformResult::Kind::Changed) << r.error;
  EXPECT_EQ(json(item), before);
}

// Every value converted into Lua and back out, under new names (so no original to keep).
TEST(LuaValues, EveryTypeRoundTripsThroughConversion) {
  Lua lua(R"(
function transform(item, ctx)
  local out = {}
  for k, v in pairs(item) do out["copy_" .. k] = v end
  return out
end)");
  Item item = all_types();
  const Item original = item;
  TransformResult r = lua.run(item);
  ASSERT_EQ(r.kind, TransformResult::Kind::Changed) << r.error;
  ASSERT_EQ(item.size(), original.size());
  for (const auto& [name, value] : original) {
    SCOPED_TRACE(name);
    const AttributeValue* copy = item.find("copy_" + name);
    ASSERT_NE(copy, nullptr);
    // Exact: same type, same canonical text for numbers, same bytes, sets in the same order.
    EXPECT_EQ(json(Item{{"v", sorted(*copy)}}), json(Item{{"v", sorted(value)}}));
  }
  // "12.50" comes back canonical ("12.5"), like DynamoDB stores it; the value is the same.
  EXPECT_EQ(item.find("copy_dec")->as<dynamo::Number>().text(), "12.5");
}

TEST(LuaValues, TypesSeenFromLua) {
  Lua lua(R"(
function transform(item, ctx)
  local D = dynamorph
  assert(math.type(item.int) == "integer" and item.int == 42)
  assert(math.type(item.i64_max) == "integer" and item.i64_max == math.maxinteger)
  assert(math.type(item.i64_min) == "integer" and item.i64_min == math.mininteger)
  assert(type(item.above_i64) == "userdata" and D.type(item.above_i64) == "N")
  assert(tostring(item.above_i64) == "9223372036854775808")
  assert(tostring(item.tiny) == "0." .. string.rep("0", 129) .. "1")
  assert(tostring(item.dec) == "12.5" and item.dec == D.N("12.50"))
  assert(D.type(item.b) == "B" and #item.b == 10 and tostring(item.b):byte(2) == 255)
  assert(item.nul == D.null and D.type(item.nul) == "NULL")
  assert(item.t == true and item.f == false)
  assert(D.type(item.m) == "M" and D.type(item.m.empty_map) == "M")
  assert(D.type(item.m.empty_list) == "L" and D.type(item.empty_l) == "L")
  assert(D.type(item.l) == "L" and #item.l == 5 and item.l[1] == "a")
  assert(tostring(item.l[2]) == "2.5" and item.l[5] == D.null)
  assert(D.type(item.ss) == "SS" and #item.ss == 3 and item.ss:has("a"))
  assert(D.type(item.ns) == "NS" and item.ns:has(1) and item.ns:has(D.N("-2.75")))
  assert(D.type(item.bs) == "BS" and item.bs:has("\0") and item.bs:has(D.B("\255\254")))
  assert(getmetatable(item) == "dynamorph.map")
  return nil
end)");
  Item item = all_types();
  TransformResult r = lua.run(item);
  EXPECT_EQ(r.kind, TransformResult::Kind::Skip) << r.error;
}

TEST(LuaValues, AmbiguousTablesFollowTheDocumentedRules) {
  Lua lua(R"(
function transform(item, ctx)
  local D = dynamorph
  item.new_empty = {}                         -- a new empty table: M
  item.new_list = D.list{}                    -- marked: L
  item.new_map = D.map{}
  item.seq = {"a", "b"}                       -- keys 1..n: L
  item.rec = {a = 1}                          -- string keys: M
  item.from_l = item.empty_l                  -- came from an L: stays L, even empty
  item.from_m = item.empty_m
  local l = item.l; l[#l + 1] = "more"        -- still a list
  return item
end)");
  Item item = all_types();
  TransformResult r = lua.run(item);
  ASSERT_EQ(r.kind, TransformResult::Kind::Changed) << r.error;
  EXPECT_EQ(item.find("new_empty")->type(), dynamo::AttrType::M);
  EXPECT_EQ(item.find("new_list")->type(), dynamo::AttrType::L);
  EXPECT_EQ(item.find("new_map")->type(), dynamo::AttrType::M);
  EXPECT_EQ(item.find("seq")->type(), dynamo::AttrType::L);
  EXPECT_EQ(item.find("rec")->type(), dynamo::AttrType::M);
  EXPECT_EQ(item.find("from_l")->type(), dynamo::AttrType::L);
  EXPECT_EQ(item.find("from_m")->type(), dynamo::AttrType::M);
  EXPECT_EQ(item.find("l")->as<dynamo::List>().size(), 6u);
}

TEST(LuaValues, BadValuesNameTheAttribute) {
  auto err = [](const std::string& body) {
    Lua lua("function transform(item, ctx)\n" + body + "\nreturn item end");
    return lua.error();
  };
  EXPECT_EQ(err("item.x = math.huge"),
            "lua/test.lua:1: transform's result: attribute 'x': inf is not a number DynamoDB can "
            "store");
  EXPECT_THAT(err("item.x = 0/0"), HasSubstr("is not a number DynamoDB can store"));
  EXPECT_THAT(err("item.x = 1e300"), HasSubstr("attribute 'x': Number overflow"));
  EXPECT_THAT(err("item.m = {a = {b = {1, nil, 3}}}"),
              HasSubstr("attribute 'm.a.b': a list with holes (its keys are not 1..n)"));
  EXPECT_THAT(err("item.f = function() end"),
              HasSubstr("attribute 'f': a function cannot be stored in DynamoDB"));
  EXPECT_THAT(err("item.t = {1, 2, x = 3}"),
              HasSubstr("attribute 't': a table whose keys are neither all strings"));
  EXPECT_THAT(err("item.t = dynamorph.list{x = 1}"),
              HasSubstr("attribute 't': a list (from an L or dynamorph.list) has keys"));
  EXPECT_THAT(err("item.s = dynamorph.SS{}"),
              HasSubstr("attribute 's': an empty string set: DynamoDB has no empty sets"));
  EXPECT_THAT(err("local t = {} t.self = t item.t = t"),
              HasSubstr("nested deeper than DynamoDB's 32 levels"));
  EXPECT_THAT(err("item.d = dynamorph.delete"),
              HasSubstr("attribute 'd': dynamorph.delete is a result of transform"));
  EXPECT_THAT(err("item[1] = 'x'"), HasSubstr("an item's attribute names must be strings"));
}

TEST(LuaValues, UntouchedAttributesKeepTheirBytes) {
  Lua lua("function transform(item, ctx) item.n = item.n + 1 return item end");
  Item item{{"PK", S("k")},
            {"odd", AttributeValue(dynamo::Number::from_canonical("1.50"))},
            {"n", N("1")}};
  ASSERT_EQ(lua.run(item).kind, TransformResult::Kind::Changed);
  EXPECT_EQ(item.find("odd")->as<dynamo::Number>().text(), "1.50");
  EXPECT_EQ(item.find("n")->as<dynamo::Number>().text(), "2");
  EXPECT_EQ(item.begin()->first, "PK");  // attributes keep their order
}

// The item is a lazy table: read through, written through, pairs() sees every attribute, and
// only this call's item may be used.
TEST(LuaValues, TheItemIsALazyTableOfItsCall) {
  Lua lua(R"LUA(
function transform(item, ctx)
  if item.PK == "stash" then kept = item return nil end
  if item.PK == "stale" then return kept end
  if item.PK == "stale_read" then return {PK = kept.PK} end
  assert(next(item) == nil and rawget(item, "a") == nil)   -- raw access sees nothing
  assert(item.a == 1 and item.missing == nil)
  item.a = nil
  assert(item.a == nil)
  item.b = "two"
  item[7] = nil                                             -- a nil for a non-name is fine
  local names = {}
  for k, v in pairs(item) do names[#names + 1] = k .. "=" .. tostring(v) end
  table.sort(names)
  item.names = table.concat(names, ",")
  assert(dynamorph.type(item) == "M")
  if item.PK == "nest" then return {PK = item.PK, copy = item} end
  if item.PK == "many" then return dynamorph.many{item, {PK = "second", a = item.c}} end
  return item
end)LUA");
  Item item{{"PK", S("k")}, {"a", N("1")}, {"c", S("keep")}};
  TransformResult first = lua.run(item);
  ASSERT_EQ(first.kind, TransformResult::Kind::Changed) << first.error;
  EXPECT_EQ(
      item,
      (Item{{"PK", S("k")}, {"c", S("keep")}, {"b", S("two")}, {"names", S("PK=k,b=two,c=keep")}}));
  Item nest{{"PK", S("nest")}, {"a", N("1")}};
  ASSERT_EQ(lua.run(nest).kind, TransformResult::Kind::Changed);
  EXPECT_EQ(*nest.find("copy"),
            AttributeValue(
                dynamo::Map{{"PK", S("nest")}, {"b", S("two")}, {"names", S("PK=nest,b=two")}}));
  Item many{{"PK", S("many")}, {"a", N("1")}, {"c", S("x")}};
  TransformResult r = lua.run(many);
  ASSERT_EQ(r.kind, TransformResult::Kind::Many) << r.error;
  ASSERT_EQ(r.items.size(), 2u);
  EXPECT_EQ(
      r.items[0],
      (Item{{"PK", S("many")}, {"c", S("x")}, {"b", S("two")}, {"names", S("PK=many,b=two,c=x")}}));
  EXPECT_EQ(r.items[1], (Item{{"PK", S("second")}, {"a", S("x")}}));
  Item stash{{"PK", S("stash")}};
  ASSERT_EQ(lua.run(stash).kind, TransformResult::Kind::Skip);
  EXPECT_EQ(lua.error(Item{{"PK", S("stale")}}),
            "lua/test.lua:2: transform's result: an item table from an earlier call of transform");
  EXPECT_EQ(lua.error(Item{{"PK", S("stale_read")}}),
            "lua/test.lua:5: this item table belongs to an earlier call of transform (copy what "
            "you need from it)");
}

TEST(LuaDecimals, ExactArithmeticAndComparisons) {
  Lua lua(R"(
local N = dynamorph.N
function transform(item, ctx)
  assert(N("0.1") + N("0.2") == N("0.3"))
  assert(N("0.5") + N("0.5") == 1 and math.type(N("0.5") + N("0.5")) == "integer")
  assert(math.type(N("12")) == "integer" and N(7) == 7)
  assert(N("1.5") * 2 == 3 and N("1") - N("0.25") == N("0.75") and -N("2.5") == N("-2.5"))
  assert(tostring(N("1.5") / N("4.5")) == "0." .. string.rep("3", 38))
  assert(tostring(dynamorph.div(1, 3)) == "0." .. string.rep("3", 38) and 1 / 3 ~= dynamorph.div(1, 3))
  assert(tostring(dynamorph.div(2, 3)) == "0." .. string.rep("6", 37) .. "7")  -- half-even
  assert(N("2.5") < 3 and 2 < N("2.5") and N("2.5") <= N("2.50") and N("-1.5") < N("-1.25"))
  assert(math.maxinteger + 1 == math.mininteger)              -- Lua's integers wrap
  assert(N("9223372036854775808") - 1 == math.maxinteger)       -- back in range: an integer
  assert(tostring(item.big + 1) == "12345678901234567890123456789012345679")
  assert("v=" .. N("1.25") == "v=1.25")
  assert(not pcall(function() return N("1.5") % 2 end))
  assert(N("1.5") ~= dynamorph.B("1.5"))
  item.sum = N("0.1") + N("0.2")
  item.float = 0.1
  item.third = 1 / 3
  item.integral_float = 2^53
  item.neg_zero = -0.0
  return item
end)");
  Item item{{"PK", S("k")}, {"big", N("12345678901234567890123456789012345678")}};
  TransformResult r = lua.run(item);
  ASSERT_EQ(r.kind, TransformResult::Kind::Changed) << r.error;
  auto text = [&](const char* n) { return item.find(n)->as<dynamo::Number>().text(); };
  EXPECT_EQ(text("sum"), "0.3");
  EXPECT_EQ(text("float"), "0.1");  // a float becomes its shortest round-trip decimal
  EXPECT_EQ(text("third"), "0.3333333333333333");
  EXPECT_EQ(text("integral_float"), "9007199254740992");
  EXPECT_EQ(text("neg_zero"), "0");
}

TEST(LuaDecimals, ErrorsAreMessages) {
  Lua lua(R"(function transform(item, ctx)
  return dynamorph.N("12345678901234567890123456789012345678") + dynamorph.N("0.1")
end)");
  EXPECT_EQ(lua.error(),
            "lua/test.lua:2: decimal +: Attempting to store more than 38 significant digits");
  Lua div("function transform(item, ctx) return dynamorph.N('1.5') / 0 end");
  EXPECT_EQ(div.error(), "lua/test.lua:1: decimal /: Division by zero");
  Lua bad("function transform(item, ctx) return dynamorph.N('12x') end");
  EXPECT_EQ(bad.error(), "lua/test.lua:1: dynamorph.N: '12x' is not a number");
  Lua mod("function transform(item, ctx) return dynamorph.N('1.5') % 2 end");
  EXPECT_THAT(mod.error(), StartsWith("lua/test.lua:1: exact decimals support + - * /"));
}

TEST(LuaSets, AddRemoveHasItemsEquality) {
  Lua lua(R"(
local D = dynamorph
function transform(item, ctx)
  local s = item.tags
  s:add("c", "a", "d")                            -- "a" is there already
  s:remove("b", "nope")
  assert(#s == 3 and s:has("c") and not s:has("b"))
  assert(s == D.SS{"a", "c", "d"} and s ~= D.SS{"a"} and s ~= D.NS{1})
  local items = s:items(); table.sort(items)
  assert(table.concat(items, ",") == "a,c,d" and D.type(items) == "L")
  assert(tostring(D.SS{"x"}) == "SS{x}")
  item.ns = D.NS{1, "2.50", D.N("2.5"), 0.5, 1}   -- deduplicated by value
  assert(#item.ns == 3 and item.ns:has("0.5"))
  item.bs = D.BS{"\0", D.B("\0"), "\255"}
  assert(#item.bs == 2)
  assert(not pcall(D.SS, {1}) and not pcall(D.NS, {"x"}))
  return item
end)");
  Item item{{"PK", S("k")}, {"tags", AttributeValue(dynamo::StringSet{"a", "b"})}};
  TransformResult r = lua.run(item);
  ASSERT_EQ(r.kind, TransformResult::Kind::Changed) << r.error;
  EXPECT_EQ(*item.find("tags"), AttributeValue(dynamo::StringSet{"a", "c", "d"}));
  EXPECT_EQ(*item.find("ns"), AttributeValue(dynamo::NumberSet{*dynamo::Number::parse("1"),
                                                               *dynamo::Number::parse("2.5"),
                                                               *dynamo::Number::parse("0.5")}));
  using namespace std::string_literals;
  EXPECT_EQ(*item.find("bs"), AttributeValue(dynamo::BinarySet{Binary{"\0"s}, Binary{"\xFF"}}));
}

TEST(LuaResults, ItemNilDeleteMany) {
  Lua lua(R"(
function transform(item, ctx)
  if item.kind == "skip" then return nil end
  if item.kind == "delete" then return dynamorph.delete end
  if item.kind == "many" then
    local out = {}
    for i = 1, 3 do out[i] = {PK = item.PK, SK = "PART#" .. i, n = i} end
    return dynamorph.many(out)
  end
  item.seen = true
  return item
end)");
  Item skip{{"PK", S("a")}, {"kind", S("skip")}};
  EXPECT_EQ(lua.run(skip).kind, TransformResult::Kind::Skip);
  Item del{{"PK", S("a")}, {"kind", S("delete")}};
  EXPECT_EQ(lua.run(del).kind, TransformResult::Kind::Delete);
  Item many{{"PK", S("a")}, {"kind", S("many")}};
  TransformResult r = lua.run(many);
  ASSERT_EQ(r.kind, TransformResult::Kind::Many) << r.error;
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[2], (Item{{"PK", S("a")}, {"SK", S("PART#3")}, {"n", N("3")}}));
  Item changed{{"PK", S("a")}};
  EXPECT_EQ(lua.run(changed).kind, TransformResult::Kind::Changed);
  EXPECT_EQ(changed, (Item{{"PK", S("a")}, {"seen", AttributeValue(true)}}));

  Lua number("function transform(item, ctx)\n  return 5\nend");
  EXPECT_EQ(number.error(),
            "lua/test.lua:1: transform returned a number; expected the item, nil, "
            "dynamorph.delete or dynamorph.many{...}");
  Lua null("function transform(item, ctx) return dynamorph.null end");
  EXPECT_THAT(null.error(), HasSubstr("returned a dynamorph.null; expected"));
  Lua bad_many("function transform(item, ctx) return dynamorph.many{item, 'x'} end");
  EXPECT_EQ(bad_many.error(),
            "lua/test.lua:1: transform's result: dynamorph.many{...} item 2: a string, not an "
            "item table");
  Lua list("function transform(item, ctx) return dynamorph.list{} end");
  EXPECT_THAT(list.error(), HasSubstr("an item must be a map, not a list"));
}

TEST(LuaContext, FieldsAndHelpers) {
  Lua lua(R"(
function transform(item, ctx)
  assert(ctx.version == 20261122101500 and ctx.now == "2026-11-22T10:15:00.000Z")
  assert(ctx.values[":prefix"] == "USER#" and ctx.values[":n"] == 3)
  assert(ctx.lower("ÄbC Ω") == "äbc ω")
  assert(ctx.upper("äb") == "ÄB" and ctx.trim("  x \t") == "x")
  assert(ctx.substr("héllo", 2, 3) == "éll" and ctx.substr("abc", 2) == "bc")
  assert(ctx.replace("a-b-c", "-", "+") == "a+b+c" and ctx.strip_prefix("USER#1", "USER#") == "1")
  assert(ctx.split_part("a#b#c", "#", -1) == "c" and ctx.split_part("a#b", "#", 5) == "")
  local parts = ctx.split("a,b,,c", ",")
  assert(#parts == 4 and parts[3] == "" and dynamorph.type(parts) == "L")
  assert(ctx.concat("a", 1, "b") == "a1b")
  assert(ctx.epoch_ms("2024-03-01T10:00:00.000Z") == 1709287200000 and ctx.epoch_ms("x") == nil)
  assert(#ctx.uuid() == 36 and #ctx.ulid() == 26 and ctx.uuid() ~= ctx.uuid())
  assert(ctx.to_number("12.50") == dynamorph.N("12.5") and ctx.to_number("x") == nil)
  assert(ctx.to_string(dynamorph.N("1.50")) == "1.5" and ctx.to_string(true) == "true")
  assert(ctx.coalesce(nil, dynamorph.null, "x") == "x")
  item.id = ctx.uuid()
  return item
end)");
  lua.values = {{":prefix", S("USER#")}, {":n", N("3")}};
  Item item{{"PK", S("k")}};
  TransformResult r = lua.run(item);
  ASSERT_EQ(r.kind, TransformResult::Kind::Changed) << r.error;
  EXPECT_EQ(item.find("id")->as<std::string>().size(), 36u);
}

TEST(LuaSandbox, EveryEscapeIsRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"io.open('/etc/passwd')", "lua/test.lua:2: attempt to index a nil value (global 'io')"},
      {"os.execute('true')", "lua/test.lua:2: attempt to index a nil value (global 'os')"},
      {"require('os')", "lua/test.lua:2: attempt to call a nil value (global 'require')"},
      {"debug.getinfo(1)", "lua/test.lua:2: attempt to index a nil value (global 'debug')"},
      {"load('return 1')", "lua/test.lua:2: attempt to call a nil value (global 'load')"},
      {"loadfile('x.lua')", "lua/test.lua:2: attempt to call a nil value (global 'loadfile')"},
      {"dofile('x.lua')", "lua/test.lua:2: attempt to call a nil value (global 'dofile')"},
      {"collectgarbage()", "lua/test.lua:2: attempt to call a nil value (global 'collectgarbage')"},
      {"string.dump(transform)", "lua/test.lua:2: attempt to call a nil value (field 'dump')"},
      {"('x'):dump()", "lua/test.lua:2: attempt to call a nil value (method 'dump')"},
      {"package.loadlib('x', 'y')",
       "lua/test.lua:2: attempt to index a nil value (global 'package')"},
      {"coroutine.wrap(print)",
       "lua/test.lua:2: attempt to index a nil value (global 'coroutine')"},
      {"print('x')", "lua/test.lua:2: attempt to call a nil value (global 'print')"},
      {"setmetatable({}, {__gc = function() while true do end end})",
       "lua/test.lua:2: setmetatable: __gc metamethods are not available in dynamorph"},
      {"setmetatable(item, {})", "lua/test.lua:2: cannot change a protected metatable"},
  };
  for (const auto& [code, message] : cases) {
    SCOPED_TRACE(code);
    Lua lua(std::string("function transform(item, ctx)\n") + code + "\nreturn item end");
    EXPECT_EQ(lua.error(), message);
  }
  // Bytecode is refused when the file is read.
  EXPECT_EQ(load_error(std::string("\x1bLua\x54\x00", 6) + "rest"),
            "lua/test.lua: attempt to load a binary chunk (mode is 't') (test step)");
  // Only the allowed libraries are there.
  Lua libs(R"(function transform(item, ctx)
  local names = {}
  for k in pairs(_G) do names[#names + 1] = k end
  table.sort(names)
  item.globals = table.concat(names, " ")
  return item
end)");
  Item item{{"PK", S("k")}};
  ASSERT_EQ(libs.run(item).kind, TransformResult::Kind::Changed);
  EXPECT_EQ(item.find("globals")->as<std::string>(),
            "_G _VERSION assert dynamorph error getmetatable ipairs math next pairs pcall rawequal "
            "rawget rawlen rawset select setmetatable string table tonumber tostring transform "
            "type utf8 xpcall");
}

TEST(LuaLimits, InfiniteLoopStopsAtTheBudgetWithFileAndLine) {
  Lua lua("function transform(item, ctx)\n  local n = 0\n  while true do n = n + 1 end\nend",
          100000);
  EXPECT_EQ(lua.error(),
            "lua/test.lua:3: instruction budget exceeded (100000 instructions per item; raise "
            "it with lua.max_instructions)");
  // A pcall in the script cannot swallow it, nor can a loop around pcall.
  Lua swallow(R"(function transform(item, ctx)
  while true do pcall(function() while true do end end) end
end)",
              100000);
  EXPECT_THAT(swallow.error(), StartsWith("lua/test.lua:2: instruction budget exceeded"));
  // The budget is per item: the same VM runs the next item afresh.
  Lua ok("function transform(item, ctx) for i = 1, 20000 do end return item end", 100000);
  for (int i = 0; i < 20; ++i) {
    Item item{{"PK", S("k")}};
    ASSERT_EQ(ok.run(item).kind, TransformResult::Kind::Changed);
  }
}

TEST(LuaLimits, MemoryBombStopsAtTheCap) {
  Lua lua(R"(function transform(item, ctx)
  local t = {}
  while true do t[#t + 1] = string.rep("x", 1000) .. #t end
end)",
          0, 4 << 20);
  EXPECT_EQ(lua.error(),
            "lua/test.lua:3: memory cap exceeded (4 MiB per worker; raise it with "
            "lua.max_memory_mb)");
  // One huge allocation, and one inside pcall.
  Lua huge("function transform(item, ctx)\n  return string.rep('x', 1 << 30)\nend", 0, 4 << 20);
  EXPECT_THAT(huge.error(), StartsWith("lua/test.lua:"));
  EXPECT_THAT(huge.error(), HasSubstr(": memory cap exceeded (4 MiB per worker"));
  Lua caught(R"(function transform(item, ctx)
  local t = {}
  while true do pcall(function() t[#t + 1] = string.rep("y", 100000) .. #t end) end
end)",
             0, 4 << 20);
  EXPECT_THAT(caught.error(), StartsWith("lua/test.lua:3: memory cap exceeded"));
  // Garbage is not held against the cap.
  Lua garbage(R"(function transform(item, ctx)
  for i = 1, 2000 do local s = string.rep("z", 10000) .. i end
  return item
end)",
              0, 4 << 20);
  Item item{{"PK", S("k")}};
  EXPECT_EQ(garbage.run(item).kind, TransformResult::Kind::Changed) << "garbage counted";
}

TEST(LuaLoad, SyntaxAndTopLevelErrorsAreFoundAtLoad) {
  EXPECT_EQ(load_error("function transform(item, ctx)\n  return item\n"),
            "lua/test.lua:3: 'end' expected (to close 'function' at line 1) near <eof> (test "
            "step)");
  EXPECT_EQ(load_error("x = = 1"), "lua/test.lua:1: unexpected symbol near '=' (test step)");
  EXPECT_EQ(load_error("local function transform(item) return item end"),
            "lua/test.lua: defines no function transform(item, ctx) (test step)");
  EXPECT_EQ(load_error("error('boom')"), "lua/test.lua:1: boom (test step)");
  EXPECT_EQ(load_error("while true do end"),
            "lua/test.lua:1: instruction budget exceeded (10000000 instructions per item; raise "
            "it with lua.max_instructions) (test step)");
}

TEST(LuaLoad, MessagesCarryTheWholeFileNameAndTheFileLine) {
  const std::string chunk =
      "migrations/a/very/long/path/that/lua/would/cut/short/for/its/messages/normalize.lua";
  Lua lua("function transform(item, ctx)\n  return item.x.y\nend", 0, 0, chunk);
  EXPECT_EQ(lua.error(), chunk + ":2: attempt to index a nil value (field 'x')");
  // Inline code: line numbers are the migration file's.
  LuaSpec spec{"function transform(item, ctx)\n  error({})\nend", "migrations/1_x.yaml", 14, 0, 0};
  auto t = make_lua_transform(spec, "test step");
  auto st = t->make_local_state();
  Item item{{"PK", S("k")}};
  TransformContext ctx;
  EXPECT_EQ(t->apply(item, st.get(), ctx).error,
            "migrations/1_x.yaml:15: (error object is a table value)");
  LuaSpec level0{"function transform(item, ctx)\n  error('plain', 0)\nend", "x.lua", 1, 0, 0};
  auto t0 = make_lua_transform(level0, "test step");
  auto st0 = t0->make_local_state();
  EXPECT_EQ(t0->apply(item, st0.get(), ctx).error, "x.lua:2: plain");
}

// Through the ItemProcessor: the message names the item's key; update mode takes a Lua step
// that keeps the key, and refuses an item whose key it changes.
TEST(LuaInProcessor, KeyInMessagesAndUpdateMode) {
  dynamo::TableDescription table;
  table.name = "app";
  table.partition_key = {"PK", dynamo::AttrType::S};
  table.sort_key = dynamo::KeyAttribute{"SK", dynamo::AttrType::S};
  StepSpec spec;
  spec.label = "m.yaml:3: pipeline";
  spec.source.table = "app";
  spec.write.mode = WriteMode::Update;
  TransformSpec t;
  t.lua = LuaSpec{R"(function transform(item, ctx)
  if item.SK == "loop" then while true do end end
  if item.SK == "move" then item.SK = "moved" end
  item.n = (item.n or 0) + 1
  return item
end)",
                  "lua/x.lua", 1, 50000, 0};
  spec.transform.push_back(t);
  StepExpressions ex = compile_step_expressions(spec, "2026-11-22T10:15:00.000Z");
  ItemProcessor p(spec, ex, table, table, 7, "2026-11-22T10:15:00.000Z");
  EXPECT_TRUE(p.reads_everything());
  auto state = p.make_local_state();
  Decision d = p.process(Item{{"PK", S("a")}, {"SK", S("x")}, {"n", N("1")}}, *state);
  EXPECT_EQ(d.kind, Decision::Kind::Update);
  EXPECT_EQ(*d.new_item.find("n"), N("2"));
  d = p.process(Item{{"PK", S("a")}, {"SK", S("loop")}}, *state);
  ASSERT_EQ(d.kind, Decision::Kind::Error);
  EXPECT_EQ(d.error,
            R"(item {"PK":{"S":"a"},"SK":{"S":"loop"}}: lua lua/x.lua: lua/x.lua:2: instruction )"
            "budget exceeded (50000 instructions per item; raise it with lua.max_instructions)");
  d = p.process(Item{{"PK", S("a")}, {"SK", S("move")}}, *state);
  ASSERT_EQ(d.kind, Decision::Kind::Error);
  EXPECT_THAT(d.error, HasSubstr("changed its key, which mode 'update' cannot write"));
}

TEST(LuaInProcessor, ValuesUsedOnlyByLuaAreNotUnused) {
  StepSpec spec;
  spec.label = "m.yaml:3: pipeline";
  spec.values = {{":only_lua", S("x")}};
  TransformSpec t;
  t.lua = LuaSpec{"function transform(item, ctx) return item end", "x.lua", 1, 0, 0};
  spec.transform.push_back(t);
  EXPECT_NO_THROW(compile_step_expressions(spec, "2026-11-22T10:15:00.000Z"));
}

}  // namespace
