// The client-side extension functions: exact results, argument rules and runtime errors, in
// updates (errors reported) and conditions (a failing function reads as a missing value).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "dynamo/errors.h"
#include "expr/expression.h"
#include "dynamo/json.h"

namespace dynamorph::expr {
// The item model and its JSON codec, as the engine sees them.
using namespace dynamo;  // NOLINT(google-build-using-namespace): test and bench code only
namespace {

const EvalContext kCtx{"2026-11-22T10:15:00.000Z"};

Item sample() {
  return parse_item(R"({"SK":{"S":"PHOTO#0042"},"name":{"S":"  Ünïcode Straße ΣΟΦΊΑ Жук  "},
    "createdAt":{"S":"2024-01-02T03:04:05.123Z"},"n":{"N":"42"},"half":{"N":"2.50"},
    "flag":{"BOOL":true},"nul":{"NULL":true},"l":{"L":[{"N":"1"}]},"tags":{"SS":["a"]},
    "path":{"S":"a/b//c"}})");
}

Placeholders placeholders() {
  Placeholders ph;
  ph.values = {{":t", AttributeValue(true)}, {":l", AttributeValue(List{AttributeValue("x")})}};
  return ph;
}

// The value `SET out = <operand>` stores, or the update's error.
std::string value_of(std::string_view operand, Item item = sample()) {
  Update u = Update::compile(fmt::format("SET out = {}", operand), placeholders(), Dialect::Client,
                             "transform[0]");
  if (auto error = u.apply(item, kCtx)) return "error: " + *error;
  return to_debug_string(*item.find("out"));
}

std::string compile_error(std::string_view operand) {
  try {
    Update::compile(fmt::format("SET out = {}", operand), placeholders(), Dialect::Client,
                    "transform[0]");
  } catch (const UsageError& e) {
    return e.what();
  }
  return "compiled";
}

bool matches(std::string_view condition) {
  return Condition::compile(condition, placeholders(), Dialect::Client, "where")
      .evaluate(sample(), kCtx);
}

TEST(ExpressionFunctions, Literals) {
  EXPECT_EQ(value_of("'it''s'"), R"({"S":"it's"})");
  EXPECT_EQ(value_of("''"), R"({"S":""})");
  EXPECT_EQ(value_of("-1.50"), R"({"N":"-1.5"})");
  EXPECT_EQ(value_of("2e3"), R"({"N":"2000"})");
  EXPECT_EQ(value_of("n - 2"), R"({"N":"40"})");
  EXPECT_EQ(value_of("n -2"), R"({"N":"40"})");
  EXPECT_EQ(value_of("- 2"), R"({"N":"-2"})");
}

TEST(ExpressionFunctions, CaseAndTrim) {
  EXPECT_EQ(value_of("lower(name)"), R"({"S":"  ünïcode straße σοφία жук  "})");
  EXPECT_EQ(value_of("upper(name)"),
            R"({"S":"  ÜNÏCODE STRAßE ΣΟΦΊΑ ЖУК  "})");  // ß has no simple upper case
  EXPECT_EQ(value_of("trim(name)"), R"({"S":"Ünïcode Straße ΣΟΦΊΑ Жук"})");
  EXPECT_EQ(value_of("lower('ĀĹŸİ')"), R"({"S":"āĺÿi"})");
  EXPECT_EQ(value_of("upper('āĺÿıſµ')"), R"({"S":"ĀĹŸISΜ"})");
  EXPECT_EQ(value_of("trim(' \t\n ')"), R"({"S":""})");
  EXPECT_EQ(value_of("lower(n)"), "error: lower() argument 1 must be a string (S), got N");
  EXPECT_EQ(
      value_of("lower(missing)"),
      "error: The provided expression refers to an attribute that does not exist in the item");
}

TEST(ExpressionFunctions, ConcatReplaceStripPrefix) {
  EXPECT_EQ(
      value_of("concat('PHOTO#', to_string(epoch_ms(createdAt)), '#', strip_prefix(SK, 'PHOTO#'))"),
      R"({"S":"PHOTO#1704164645123#0042"})");
  EXPECT_EQ(value_of("concat(SK, '', '!')"), R"({"S":"PHOTO#0042!"})");
  EXPECT_EQ(value_of("concat('n=', n)"), "error: concat() argument 2 must be a string (S), got N");
  EXPECT_EQ(value_of("replace(path, '/', '::')"), R"({"S":"a::b::::c"})");
  EXPECT_EQ(value_of("replace('aaa', 'aa', 'b')"), R"({"S":"ba"})");
  EXPECT_EQ(value_of("replace('abc', '', 'x')"), R"({"S":"abc"})");
  EXPECT_EQ(value_of("strip_prefix(SK, 'PHOTO#')"), R"({"S":"0042"})");
  EXPECT_EQ(value_of("strip_prefix(SK, 'USER#')"), R"({"S":"PHOTO#0042"})");
  EXPECT_EQ(value_of("strip_prefix(SK, SK)"), R"({"S":""})");
}

TEST(ExpressionFunctions, SubstrIsOneBasedInCharacters) {
  EXPECT_EQ(value_of("substr('hello', 1)"), R"({"S":"hello"})");
  EXPECT_EQ(value_of("substr('hello', 2)"), R"({"S":"ello"})");
  EXPECT_EQ(value_of("substr('hello', 2, 3)"), R"({"S":"ell"})");
  EXPECT_EQ(value_of("substr('héllo', 2, 2)"), R"({"S":"él"})");
  EXPECT_EQ(value_of("substr('abc', 3, 10)"), R"({"S":"c"})");
  EXPECT_EQ(value_of("substr('abc', 10)"), R"({"S":""})");
  EXPECT_EQ(value_of("substr('abc', 2, 0)"), R"({"S":""})");
  EXPECT_EQ(value_of("substr('abc', 0)"),
            "error: substr() start must be 1 or more (1 is the first character), got 0");
  EXPECT_EQ(value_of("substr('abc', 1, -1)"),
            "error: substr() length must not be negative, got -1");
  EXPECT_EQ(value_of("substr('abc', half)"),
            "error: substr() argument 2 must be an integer, got 2.50");
  EXPECT_EQ(value_of("substr('abc', 1, flag)"),
            "error: substr() argument 3 must be an integer (N), got BOOL");
  EXPECT_EQ(compile_error("substr('abc', '1')"),
            "transform[0]: column 25: substr() argument 2 needs a number; '1' is S");
}

TEST(ExpressionFunctions, SplitPartIsOneBasedAndCountsFromTheEndWhenNegative) {
  EXPECT_EQ(value_of("split_part('a#b#c', '#', 1)"), R"({"S":"a"})");
  EXPECT_EQ(value_of("split_part('a#b#c', '#', 2)"), R"({"S":"b"})");
  EXPECT_EQ(value_of("split_part('a#b#c', '#', -1)"), R"({"S":"c"})");
  EXPECT_EQ(value_of("split_part('a#b#c', '#', -3)"), R"({"S":"a"})");
  EXPECT_EQ(value_of("split_part('a#b#c', '#', 4)"), R"({"S":""})");
  EXPECT_EQ(value_of("split_part('a#b#c', '#', -4)"), R"({"S":""})");
  EXPECT_EQ(value_of("split_part('a##b', '#', 2)"), R"({"S":""})");
  EXPECT_EQ(value_of("split_part(path, '//', 2)"), R"({"S":"c"})");
  EXPECT_EQ(value_of("split_part('abc', '#', 1)"), R"({"S":"abc"})");
  EXPECT_EQ(value_of("split_part('a#b', '#', 0)"),
            "error: split_part() field number must not be 0 (1 is the first field, -1 the last)");
  EXPECT_EQ(value_of("split_part('a#b', strip_prefix(SK, SK), 1)"),
            "error: split_part(): the separator is empty");
}

TEST(ExpressionFunctions, Conversions) {
  EXPECT_EQ(value_of("to_string(half)"), R"({"S":"2.5"})");
  EXPECT_EQ(value_of("to_string(SK)"), R"({"S":"PHOTO#0042"})");
  EXPECT_EQ(value_of("to_string(flag)"), R"({"S":"true"})");
  EXPECT_EQ(value_of("to_string(l)"),
            "error: to_string() takes a string, number or boolean, got L");
  EXPECT_EQ(
      compile_error("to_string(:l)"),
      "transform[0]: column 21: to_string() argument 1 needs a string, number or boolean; :l is L");
  EXPECT_EQ(value_of("to_number('0042.10')"), R"({"N":"42.1"})");
  EXPECT_EQ(value_of("to_number(n)"), R"({"N":"42"})");
  EXPECT_EQ(value_of("to_number(strip_prefix(SK, 'PHOTO#')) + 1"), R"({"N":"43"})");
  EXPECT_EQ(value_of("to_number(SK)"), "error: to_number(): 'PHOTO#0042' is not a number");
  EXPECT_EQ(value_of("to_number(flag)"), "error: to_number() takes a string or number, got BOOL");
}

TEST(ExpressionFunctions, Time) {
  EXPECT_EQ(value_of("now()"), R"({"S":"2026-11-22T10:15:00.000Z"})");
  EXPECT_EQ(value_of("epoch_ms('1970-01-01T00:00:00Z')"), R"({"N":"0"})");
  EXPECT_EQ(value_of("epoch_ms(createdAt)"), R"({"N":"1704164645123"})");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02T05:04:05.123+02:00')"), R"({"N":"1704164645123"})");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02T01:34:05.123-0130')"), R"({"N":"1704164645123"})");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02T03:04:05.123456789Z')"), R"({"N":"1704164645123"})");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02 03:04:05.123')"), R"({"N":"1704164645123"})");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02T03:04Z')"), R"({"N":"1704164640000"})");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02')"), R"({"N":"1704153600000"})");
  EXPECT_EQ(value_of("epoch_ms('1969-12-31T23:59:59.9995Z')"), R"({"N":"-1"})");
  EXPECT_EQ(value_of("epoch_ms(now())"), R"({"N":"1795342500000"})");
  EXPECT_EQ(value_of("epoch_ms('yesterday')"),
            "error: epoch_ms(): 'yesterday' is not an ISO-8601 date or date-time");
  EXPECT_EQ(value_of("epoch_ms('2024-13-01')"),
            "error: epoch_ms(): '2024-13-01' is not an ISO-8601 date or date-time");
  EXPECT_EQ(value_of("epoch_ms('2024-01-02T03:04:05+25:00')"),
            "error: epoch_ms(): '2024-01-02T03:04:05+25:00' is not an ISO-8601 date or date-time");
  EXPECT_EQ(value_of("epoch_ms(n)"), "error: epoch_ms() argument 1 must be a string (S), got N");
}

TEST(ExpressionFunctions, Identifiers) {
  std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  Update u = Update::compile("SET a = uuid(), b = ulid()", placeholders(), Dialect::Client, "t");
  std::set<std::string> seen;
  std::string previous_ulid;
  for (int i = 0; i < 2000; ++i) {
    Item it;
    ASSERT_EQ(u.apply(it, kCtx), std::nullopt);
    const std::string& a = it.find("a")->as<std::string>();
    const std::string& b = it.find("b")->as<std::string>();
    ASSERT_TRUE(std::regex_match(a, uuid)) << a;
    ASSERT_TRUE(std::regex_match(b, std::regex("^[0-7][0-9A-HJKMNP-TV-Z]{25}$"))) << b;
    ASSERT_LT(previous_ulid, b) << "ulid() must increase within a thread";
    previous_ulid = b;
    seen.insert(a);
    seen.insert(b);
  }
  EXPECT_EQ(seen.size(), 4000u);
}

TEST(ExpressionFunctions, Coalesce) {
  EXPECT_EQ(value_of("coalesce(missing, nul, SK)"), R"({"S":"PHOTO#0042"})");
  EXPECT_EQ(value_of("coalesce(n, SK)"), R"({"N":"42"})");
  EXPECT_EQ(value_of("coalesce(missing, 'default')"), R"({"S":"default"})");
  EXPECT_EQ(
      value_of("coalesce(m.x, l[7], nul)"),
      "error: The provided expression refers to an attribute that does not exist in the item");
  // A wrong type is an error, not a missing value.
  EXPECT_EQ(value_of("coalesce(lower(n), 'x')"),
            "error: lower() argument 1 must be a string (S), got N");
  EXPECT_EQ(value_of("if_not_exists(missing, coalesce(nope, 'y'))"), R"({"S":"y"})");
}

TEST(ExpressionFunctions, FailuresInConditionsReadAsMissing) {
  EXPECT_FALSE(matches("lower(n) = 'x'"));
  EXPECT_TRUE(matches("lower(n) <> 'x'"));
  EXPECT_FALSE(matches("to_number(SK) > 0"));
  EXPECT_TRUE(matches("coalesce(a, b) <> 'x'"));
  EXPECT_TRUE(matches("coalesce(a, SK) = 'PHOTO#0042'"));
  EXPECT_TRUE(matches("begins_with(lower(SK), 'photo#')"));
  EXPECT_TRUE(matches("size(trim(name)) = 35"));  // bytes
  EXPECT_TRUE(matches("contains(tags, lower('A'))"));
  EXPECT_TRUE(matches("epoch_ms(createdAt) BETWEEN 1704164645000 AND epoch_ms(now())"));
  EXPECT_TRUE(matches("split_part(SK, '#', 2) IN ('0041', '0042')"));
  EXPECT_TRUE(matches("SK = concat('PHOTO#', '0042') AND NOT attribute_exists(missing)"));
}

TEST(ExpressionFunctions, ClientOnly) {
  Condition c =
      Condition::compile("begins_with(SK, 'PHOTO#')", placeholders(), Dialect::Client, "where");
  EXPECT_TRUE(c.server_evaluable());  // literals alone can travel as :values
  Condition d = Condition::compile("lower(SK) = 'x'", placeholders(), Dialect::Client, "where");
  EXPECT_FALSE(d.server_evaluable());
  EXPECT_THROW(d.to_wire(), Error);
  Update u = Update::compile("SET c = size(l)", placeholders(), Dialect::Client, "t");
  EXPECT_FALSE(u.server_evaluable());
  Item it = sample();
  ASSERT_EQ(u.apply(it, kCtx), std::nullopt);
  EXPECT_EQ(to_debug_string(*it.find("c")), R"({"N":"1"})");
}

}  // namespace
}  // namespace dynamorph::expr
