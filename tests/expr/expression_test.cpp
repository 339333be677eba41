// Unit tests of the expression engine: compile errors (exact text and column), semantics the
// differential test cannot show against DynamoDB Local, placeholders, reads/writes, wire form.
#include "expr/expression.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::expr {
// The item model and its JSON codec, as the engine sees them.
using namespace dynamo;  // NOLINT(google-build-using-namespace): test and bench code only
namespace {

Placeholders placeholders() {
  Placeholders ph;
  ph.names = {{"#n", "name"}, {"#data", "data"}, {"#n0", "taken"}, {"#k", "PK"}};
  ph.values = {
      {":v", AttributeValue("x")},
      {":w", AttributeValue("y")},
      {":profile", AttributeValue("PROFILE")},
      {":n", AttributeValue::number("5")},
      {":one", AttributeValue::number("1")},
      {":hi", AttributeValue::number("10")},
      {":lo", AttributeValue::number("1")},
      {":t", AttributeValue(true)},
      {":l", AttributeValue(List{AttributeValue("x")})},
      {":ss", AttributeValue(StringSet{"a"})},
      {":bad", AttributeValue("FOO")},
      {":big", AttributeValue::number("99999999999999999999999999999999999999")},
  };
  return ph;
}

std::string condition_error(std::string_view text, Dialect dialect = Dialect::Server,
                            std::string_view label = "where") {
  try {
    Condition::compile(text, placeholders(), dialect, label);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "compiled";
}

std::string update_error(std::string_view text, Dialect dialect = Dialect::Server,
                         std::string_view label = "transform[0]") {
  try {
    Update::compile(text, placeholders(), dialect, label);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "compiled";
}

const EvalContext kCtx{"2026-11-22T10:15:00.000Z"};

bool matches(std::string_view text, const Item& item, Dialect dialect = Dialect::Client) {
  return Condition::compile(text, placeholders(), dialect, "where").evaluate(item, kCtx);
}

// ---- compile errors ----------------------------------------------------------------------------

TEST(ExpressionErrors, SyntaxNamesTheColumnAndWhatWasExpected) {
  EXPECT_EQ(condition_error("SK = :profile AND username <>"),
            "where: column 30: expected an operand after '<>'");
  EXPECT_EQ(condition_error("SK = :profile AND username <> AND"),
            "where: column 31: expected an operand after '<>', found 'AND'");
  EXPECT_EQ(condition_error("a = :v AND"), "where: column 11: expected a condition after 'AND'");
  EXPECT_EQ(condition_error("a == :v"),
            "where: column 4: expected an operand after '=', found '='");
  EXPECT_EQ(condition_error("a != :v"),
            "where: column 3: unexpected '!='; DynamoDB writes 'not equal' as '<>'");
  EXPECT_EQ(condition_error("a = :v = :v"),
            "where: column 8: comparisons cannot be chained; join them with AND");
  EXPECT_EQ(
      condition_error("a"),
      "where: column 2: expected a comparison operator (= <> < <= > >=), BETWEEN or IN after 'a'");
  EXPECT_EQ(condition_error("(a = :v"), "where: column 1: '(' is never closed");
  EXPECT_EQ(condition_error("a = :v)"), "where: column 7: ')' closes no '('");
  EXPECT_EQ(condition_error("a = :v b = :v"), "where: column 8: unexpected 'b' after ':v'");
  EXPECT_EQ(condition_error(""), "where: column 1: the expression is empty");
  EXPECT_EQ(condition_error("   "), "where: column 4: the expression is empty");
  EXPECT_EQ(
      condition_error("a = \"x\""),
      "where: column 5: unexpected '\"'; attribute names go in #name placeholders and strings "
      "in :value placeholders (or 'single quotes' in client-side expressions)");
  EXPECT_EQ(condition_error("a = :v AND é = :v"), "where: column 12: unexpected character 'é'");
  EXPECT_EQ(condition_error("a = : AND"), "where: column 5: expected a placeholder name after ':'");
  EXPECT_EQ(condition_error("a IN :v"),
            "where: column 6: expected '(' and a list of operands after 'IN', found ':v'");
  EXPECT_EQ(condition_error("a BETWEEN :lo :hi"),
            "where: column 15: expected AND after ':lo', found ':hi'");
  EXPECT_EQ(condition_error("a IN ()"),
            "where: column 7: expected an operand after '(', found ')'");
}

TEST(ExpressionErrors, ColumnsCountCharactersNotBytes) {
  EXPECT_EQ(condition_error("a = 'é' AND", Dialect::Client, "where"),
            "where: column 12: expected a condition after 'AND'");
}

TEST(ExpressionErrors, Placeholders) {
  EXPECT_EQ(condition_error(":x = a"), "where: column 1: ':x' is not defined in values");
  EXPECT_EQ(condition_error("a.#x = :v"), "where: column 3: '#x' is not defined in names");
  EXPECT_EQ(update_error("SET a = :v,  b = :nope"),
            "transform[0]: column 18: ':nope' is not defined in values");
}

TEST(ExpressionErrors, ReservedWordsNeedANamePlaceholderInServerExpressions) {
  EXPECT_EQ(condition_error("data = :v"),
            "where: column 1: 'data' is a reserved word in DynamoDB; write it as a name "
            "placeholder, e.g. '#data' with names: {\"#data\": \"data\"}");
  EXPECT_EQ(condition_error("m.Status = :v", Dialect::Server, "source.filter"),
            "source.filter: column 3: 'Status' is a reserved word in DynamoDB; write it as a name "
            "placeholder, e.g. '#Status' with names: {\"#Status\": \"Status\"}");
  EXPECT_EQ(condition_error("#data = :v"), "compiled");
  // Client-side expressions may use them bare; to_wire hides them behind #names.
  EXPECT_EQ(condition_error("data = :v AND m.status = :w", Dialect::Client), "compiled");
  // Keywords stay keywords in both dialects.
  EXPECT_EQ(condition_error("and = :v", Dialect::Client), "where: column 1: expected a condition");
}

TEST(ExpressionErrors, Functions) {
  EXPECT_EQ(condition_error("lowr(a) = :v", Dialect::Client),
            "where: column 1: unknown function 'lowr' (did you mean 'lower'?)");
  EXPECT_EQ(update_error("SET a = lowr(a)", Dialect::Client),
            "transform[0]: column 9: unknown function 'lowr' (did you mean 'lower'?)");
  EXPECT_EQ(condition_error("frobnicate(a) = :v", Dialect::Client),
            "where: column 1: unknown function 'frobnicate'");  // nothing close: no guess
  EXPECT_EQ(condition_error("SIZE(a) = :n"),
            "where: column 1: unknown function 'SIZE' (function names are case-sensitive: 'size')");
  EXPECT_EQ(condition_error("lower(a) = :v"),
            "where: column 1: lower() is a dynamorph extension; it is not available in expressions "
            "the server evaluates");
  EXPECT_EQ(condition_error("size(a)"),
            "where: column 1: size() is not a condition; compare its result, e.g. size(…) = :v");
  EXPECT_EQ(condition_error("attribute_exists(a) = :t"),
            "where: column 21: attribute_exists() is a condition; its result cannot be compared");
  EXPECT_EQ(condition_error(":t = attribute_exists(a)"),
            "where: column 6: attribute_exists() is a condition and cannot be used as an operand");
  EXPECT_EQ(condition_error("if_not_exists(a, :v) = :v"),
            "where: column 1: if_not_exists() is not allowed in a condition expression");
  EXPECT_EQ(condition_error("attribute_exists(:v)"),
            "where: column 18: attribute_exists needs a document path as its first argument");
  EXPECT_EQ(condition_error("contains(a)"), "where: column 1: contains() takes 2 arguments, got 1");
  EXPECT_EQ(condition_error("substr(a) = :v", Dialect::Client),
            "where: column 1: substr() takes 2 to 3 arguments, got 1");
  EXPECT_EQ(condition_error("concat(a) = :v", Dialect::Client),
            "where: column 1: concat() takes at least 2 arguments, got 1");
  EXPECT_EQ(condition_error("now(a) = :v", Dialect::Client),
            "where: column 1: now() takes 0 arguments, got 1");
  EXPECT_EQ(update_error("SET a = attribute_exists(b)"),
            "transform[0]: column 9: attribute_exists() is not allowed in an update expression");
  EXPECT_EQ(update_error("SET a = size(b)"),
            "transform[0]: column 9: size() is not allowed in an update expression");
  EXPECT_EQ(update_error("SET a = size(b)", Dialect::Client), "compiled");
  EXPECT_EQ(update_error("SET a = list_append(a, :l) + :n"),
            "transform[0]: column 9: list_append() must be the whole value of a SET action; it "
            "cannot be an operand of '+'/'-'");
  EXPECT_EQ(update_error("SET a = if_not_exists(b, list_append(a, :l))"),
            "transform[0]: column 26: list_append() must be the whole value of a SET action; it "
            "cannot be an argument or an operand of '+'/'-'");
  EXPECT_EQ(update_error("SET a = if_not_exists(:v, a)"),
            "transform[0]: column 23: if_not_exists() needs a document path as its first argument");
}

TEST(ExpressionErrors, OperandTypesKnownAtCompileTime) {
  EXPECT_EQ(condition_error("a < :t"),
            "where: column 5: '<' needs numbers, strings or binaries; :t is BOOL");
  EXPECT_EQ(
      condition_error("a BETWEEN :hi AND :lo"),
      "where: column 19: the lower bound of BETWEEN (:hi) is greater than the upper bound (:lo)");
  EXPECT_EQ(
      condition_error("a BETWEEN :lo AND :v"),
      "where: column 19: the bounds of BETWEEN must have the same type; :lo is N and :v is S");
  EXPECT_EQ(condition_error("begins_with(a, :n)"),
            "where: column 16: begins_with needs strings or binaries; :n is N");
  EXPECT_EQ(
      condition_error("attribute_type(a, :bad)"),
      "where: column 19: 'FOO' is not a DynamoDB type; expected one of S, N, B, BOOL, NULL, M, "
      "L, SS, NS, BS");
  EXPECT_EQ(condition_error("size(:n) = :one"),
            "where: column 6: size() needs a string, binary, set, list or map; :n is N");
  EXPECT_EQ(condition_error("size(size(a)) = :one"),
            "where: column 6: size() needs a string, binary, set, list or map; size(…) is N");
  EXPECT_EQ(condition_error("a = a"),
            "where: column 5: '=': 'a' is compared with itself; the first operand must differ from "
            "the others");
  EXPECT_EQ(update_error("SET a = a + :v"), "transform[0]: column 13: '+' needs numbers; :v is S");
  EXPECT_EQ(update_error("ADD a :v"),
            "transform[0]: column 7: ADD needs a number or a set; :v is S");
  EXPECT_EQ(update_error("DELETE a :n"), "transform[0]: column 10: DELETE needs a set; :n is N");
  EXPECT_EQ(update_error("SET a = lower(5)", Dialect::Client),
            "transform[0]: column 15: lower() argument 1 needs a string; 5 is N");
  EXPECT_EQ(update_error("SET a = concat('a', :n)", Dialect::Client),
            "transform[0]: column 21: concat() argument 2 needs a string; :n is N");
  EXPECT_EQ(update_error("SET a = to_number('abc')", Dialect::Client),
            "transform[0]: column 19: to_number(): 'abc' is not a number");
  EXPECT_EQ(update_error("SET a = split_part(b, '', 1)", Dialect::Client),
            "transform[0]: column 23: split_part(): the separator is empty");
}

TEST(ExpressionErrors, ParenthesesAndLimits) {
  EXPECT_EQ(condition_error("((a = :v))"), "where: column 1: redundant parentheses");
  EXPECT_EQ(condition_error("a = :v AND ((b)) = :v"), "where: column 12: redundant parentheses");
  EXPECT_EQ(condition_error("(a = :v) AND ((b = :v) OR c = :v)"), "compiled");
  EXPECT_EQ(condition_error("(a) = :v"), "compiled");
  std::string in = "a IN (:v";
  for (int i = 0; i < 99; ++i) in += ", :v";
  EXPECT_EQ(
      condition_error(in + ")"),
      "where: column 3: IN takes at most 100 operands including the one on its left, got 101");
  std::string deep = "a";
  for (int i = 0; i < 32; ++i) deep += ".b";
  EXPECT_EQ(condition_error(deep + " = :v"),
            "where: column 1: the document path has 33 levels; DynamoDB allows at most 32");
  EXPECT_EQ(condition_error("l[01] = :v"),
            "where: column 3: expected a list index (0, 1, 2, …) after '[', found '01'");
  EXPECT_EQ(condition_error("l[2147483648] = :v"),
            "where: column 3: list index 2147483648 is out of range");
  EXPECT_EQ(condition_error(std::string(5000, ' ') + "a = :v"),
            "where: column 1: the expression is 5006 bytes long; DynamoDB allows at most 4096");
  std::string nots;
  for (int i = 0; i < 250; ++i) nots += "NOT ";
  EXPECT_EQ(condition_error(nots + "a = :v"), "where: column 801: the expression nests too deeply");
}

TEST(ExpressionErrors, LiteralsAreClientOnly) {
  EXPECT_EQ(
      condition_error("a = 'x'"),
      "where: column 5: string literals are a dynamorph extension of client-side expressions; "
      "use a :value placeholder here");
  EXPECT_EQ(
      condition_error("a = 5"),
      "where: column 5: number literals are a dynamorph extension of client-side expressions; "
      "use a :value placeholder here");
  EXPECT_EQ(condition_error("a = 'it''s", Dialect::Client),
            "where: column 5: unterminated string literal");
  EXPECT_EQ(condition_error("a = 1e999", Dialect::Client),
            "where: column 5: invalid number 1e999: Number overflow. Attempting to store a number "
            "with magnitude larger than supported range");
}

TEST(ExpressionErrors, UpdateClausesAndOverlaps) {
  EXPECT_EQ(update_error("SET a = :v REMOVE a"),
            "transform[0]: column 19: two document paths overlap: 'a' is both set and removed");
  EXPECT_EQ(update_error("SET a = :v, a = :w"),
            "transform[0]: column 13: two document paths overlap: 'a' is set twice");
  EXPECT_EQ(update_error("SET m.x = :v REMOVE m"),
            "transform[0]: column 21: two document paths overlap: 'm.x' is set and 'm' is removed");
  EXPECT_EQ(
      update_error("ADD s :ss DELETE s :ss"),
      "transform[0]: column 18: two document paths overlap: 's' is both added to and deleted from");
  EXPECT_EQ(
      update_error("SET l[0] = :v, l.x = :v"),
      "transform[0]: column 16: two document paths conflict: 'l[0]' and 'l.x' use 'l' both as "
      "a list and as a map");
  EXPECT_EQ(
      update_error("SET a = :v SET b = :v"),
      "transform[0]: column 12: the SET clause can only be used once in an update expression");
  EXPECT_EQ(update_error("UPDATE a = :v"),
            "transform[0]: column 1: expected SET, REMOVE, ADD or DELETE, found 'UPDATE'");
  EXPECT_EQ(
      update_error("SET a = :v b = :v"),
      "transform[0]: column 12: expected ',' or a new clause (SET, REMOVE, ADD, DELETE) after "
      "':v', found 'b'");
  EXPECT_EQ(update_error("SET a = a + :n + :n"),
            "transform[0]: column 16: a SET value has at most one '+' or '-'");
  EXPECT_EQ(update_error("ADD a b"),
            "transform[0]: column 7: expected a :value placeholder after 'a', found 'b'");
  EXPECT_EQ(update_error("ADD a b", Dialect::Client), "compiled");
  EXPECT_EQ(update_error("REMOVE"),
            "transform[0]: column 7: expected a document path after 'REMOVE'");
  EXPECT_EQ(update_error("SET a = :v,"),
            "transform[0]: column 12: expected a document path after ','");
  EXPECT_EQ(update_error("SET a :v"), "transform[0]: column 7: expected '=' after 'a', found ':v'");
  EXPECT_EQ(update_error("SET a = ((a + :n))"), "transform[0]: column 9: redundant parentheses");
}

// ---- semantics ---------------------------------------------------------------------------------

Item sample() {
  return parse_item(R"({"PK":{"S":"USER#1"},"SK":{"S":"PROFILE"},"username":{"S":"Alice"},
    "n":{"N":"5"},"big":{"N":"1.0000000000000000000000000000000000001"},"one":{"N":"1"},
    "emoji":{"S":"😀"},"fw":{"S":"！"},"e":{"S":"é"},"empty":{"S":""},"nul":{"NULL":true},
    "l":{"L":[{"N":"1"},{"S":"x"}]},"m":{"M":{"x":{"N":"1"}}},"ss":{"SS":["a","b"]}})");
}

TEST(ExpressionSemantics, StringsCompareByUtf8BytesAndSizeCountsBytes) {
  Item it = sample();
  // U+1F600 is F0 9F 98 80 in UTF-8, U+FF01 EF BC 81: bytes order the emoji last (UTF-16 code
  // units, which DynamoDB Local compares, would order it first).
  EXPECT_TRUE(matches("emoji > fw", it));
  EXPECT_TRUE(matches("size(e) = 2", it));
  EXPECT_TRUE(matches("size(emoji) = 4", it));
  EXPECT_TRUE(matches("size(empty) = 0", it));
}

TEST(ExpressionSemantics, NumbersAreExact) {
  Item it = sample();
  EXPECT_TRUE(matches("big > one", it));
  EXPECT_TRUE(matches("big <> 1", it));
  EXPECT_TRUE(matches("n = 5.000", it));
  EXPECT_TRUE(matches("n = 5e0", it));
  EXPECT_TRUE(matches("n BETWEEN 4.99999999999999999999999999999999999 AND 5", it));
}

TEST(ExpressionSemantics, MissingAttributes) {
  Item it = sample();
  EXPECT_FALSE(matches("zz = 1", it));
  EXPECT_FALSE(matches("zz < 1", it));
  EXPECT_TRUE(matches("zz <> 1", it));
  EXPECT_TRUE(matches("zz <> yy", it));
  EXPECT_FALSE(matches("zz IN (1, 2)", it));
  EXPECT_FALSE(matches("zz BETWEEN 1 AND 2", it));
  EXPECT_TRUE(matches("NOT zz BETWEEN 1 AND 2", it));
  EXPECT_FALSE(matches("contains(zz, 'a')", it));
  EXPECT_TRUE(matches("size(n) <> 1", it));  // size of a number is undefined, like missing
  EXPECT_TRUE(matches("l[5] <> 1 AND m.x.y <> 1 AND n.x <> 1", it));
}

TEST(ExpressionSemantics, UpdateFailsAsAWholeAndLeavesTheItem) {
  Item it = sample();
  Item before = it;
  Update u = Update::compile("SET a = :v, n = n + :big REMOVE username", placeholders(),
                             Dialect::Server, "t");
  EXPECT_EQ(u.apply(it, kCtx),
            std::optional<std::string>("Attempting to store more than 38 significant digits"));
  EXPECT_TRUE(it == before);
  Update v = Update::compile("SET a = :v, b = zz + :one", placeholders(), Dialect::Server, "t");
  EXPECT_EQ(v.apply(it, kCtx),
            std::optional<std::string>(
                "The provided expression refers to an attribute that does not exist in the item"));
  EXPECT_TRUE(it == before);
  Update w = Update::compile("SET a = :v REMOVE q.x", placeholders(), Dialect::Server, "t");
  EXPECT_EQ(w.apply(it, kCtx),
            std::optional<std::string>(
                "The document path provided in the update expression is invalid for update"));
  Update x = Update::compile("SET l = list_append(n, :l)", placeholders(), Dialect::Server, "t");
  EXPECT_EQ(
      x.apply(it, kCtx),
      std::optional<std::string>("An operand in the update expression has an incorrect data type"));
  EXPECT_TRUE(it == before);
}

TEST(ExpressionSemantics, UpdateUsesTheOriginalItem) {
  Item it = sample();
  Update u = Update::compile(
      "SET n = one, one = n, l[5] = :n, l[9] = :one REMOVE l[0], ss ADD c :one "
      "DELETE ss2 :ss",
      placeholders(), Dialect::Server, "t");
  ASSERT_EQ(u.apply(it, kCtx), std::nullopt);
  EXPECT_EQ(to_debug_string(*it.find("n")), R"({"N":"1"})");
  EXPECT_EQ(to_debug_string(*it.find("one")), R"({"N":"5"})");
  EXPECT_EQ(to_debug_string(*it.find("l")), R"({"L":[{"S":"x"},{"N":"5"},{"N":"1"}]})");
  EXPECT_EQ(it.find("ss"), nullptr);
  EXPECT_EQ(to_debug_string(*it.find("c")), R"({"N":"1"})");
  Update d = Update::compile("DELETE ss :ss", placeholders(), Dialect::Server, "t");
  Item s = sample();
  ASSERT_EQ(d.apply(s, kCtx), std::nullopt);
  EXPECT_EQ(to_debug_string(*s.find("ss")), R"({"SS":["b"]})");
}

TEST(ExpressionSemantics, EvaluateIsThreadSafe) {
  Condition c = Condition::compile("SK = :profile AND username <> lower(username)", placeholders(),
                                   Dialect::Client, "where");
  Item it = sample();
  std::vector<std::thread> threads;
  std::atomic<int> hits{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) hits += c.evaluate(it, kCtx) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(hits.load(), 40000);
}

// ---- reads, writes, placeholders, wire form ----------------------------------------------------

TEST(ExpressionApi, ReadsAndWrites) {
  Condition c = Condition::compile(
      "a.b[2].c = :v AND (size(l) > :n OR attribute_exists(#n)) AND a.b[2].c <> :w", placeholders(),
      Dialect::Server, "where");
  std::vector<std::string> reads;
  for (const Path& p : c.reads()) reads.push_back(p.to_string());
  EXPECT_EQ(reads, (std::vector<std::string>{"a.b[2].c", "l", "name"}));

  Update u = Update::compile(
      "SET username = lower(username), #k = concat('USER#', id) REMOVE old[1] ADD n :one",
      placeholders(), Dialect::Client, "t");
  std::vector<std::string> r, w;
  for (const Path& p : u.reads()) r.push_back(p.to_string());
  for (const Path& p : u.writes()) w.push_back(p.to_string());
  EXPECT_EQ(r, (std::vector<std::string>{"username", "id", "n"}));
  EXPECT_EQ(w, (std::vector<std::string>{"username", "PK", "old[1]", "n"}));
  EXPECT_TRUE(u.writes_any_of({"PK", "SK"}));
  EXPECT_FALSE(u.writes_any_of({"SK"}));
  EXPECT_FALSE(u.server_evaluable());
  EXPECT_THROW(u.to_wire(), Error);
}

TEST(ExpressionApi, PlaceholderUsage) {
  Placeholders ph = placeholders();
  PlaceholderUsage usage;
  Condition::compile("#n = :v", ph, Dialect::Server, "source.filter", &usage);
  Update::compile("SET #data = :w, #k = :profile", ph, Dialect::Client, "transform[0]", &usage);
  try {
    usage.check_all_used(ph, "migrations/001.yaml:12");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "migrations/001.yaml:12: names: '#n0' is not used by any expression of this step");
  }
  ph.names.erase("#n0");
  try {
    usage.check_all_used(ph, "");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "values: ':bad', ':big', ':hi', ':l', ':lo', ':n', ':one', ':ss', ':t' "
                 "are not used by any expression of this step");
  }
  Placeholders small{{{"#n", "name"}}, {{":v", AttributeValue("x")}}};
  EXPECT_NO_THROW(usage.check_all_used(small, "x"));
}

TEST(ExpressionApi, WireFormCarriesOnlyWhatItUses) {
  Condition c = Condition::compile("#n = :v AND (b = :w OR NOT c = :v)", placeholders(),
                                   Dialect::Server, "f");
  WireExpression w = c.to_wire();
  EXPECT_EQ(w.text, "#n = :v AND (b = :w OR NOT c = :v)");
  EXPECT_EQ(w.names, (std::map<std::string, std::string>{{"#n", "name"}}));
  EXPECT_EQ(w.values.size(), 2u);
  EXPECT_TRUE(c.server_evaluable());
}

TEST(ExpressionApi, WireFormOfClientExpressions) {
  // Reserved words and literals of a client-side expression become placeholders that collide
  // with none of the expression's own (#n0 is taken here).
  Condition c =
      Condition::compile("#n0 = :v AND data = 'x' AND status IN (1, :n) AND m.data <> -2.5",
                         placeholders(), Dialect::Client, "where");
  ASSERT_TRUE(c.server_evaluable());
  WireExpression w = c.to_wire();
  EXPECT_EQ(w.text, "#n0 = :v AND #n1 = :v0 AND #n2 IN (:v1, :n) AND m.#n1 <> :v2");
  EXPECT_EQ(w.names, (std::map<std::string, std::string>{
                         {"#n0", "taken"}, {"#n1", "data"}, {"#n2", "status"}}));
  EXPECT_EQ(to_debug_string(w.values.at(":v0")), R"({"S":"x"})");
  EXPECT_EQ(to_debug_string(w.values.at(":v1")), R"({"N":"1"})");
  EXPECT_EQ(to_debug_string(w.values.at(":v2")), R"({"N":"-2.5"})");
  Update u = Update::compile(
      "REMOVE old DELETE tags :ss SET #n = if_not_exists(#n, :v), c = c + 1 ADD d 2",
      placeholders(), Dialect::Client, "t");
  WireExpression uw = u.to_wire();
  EXPECT_EQ(uw.text,
            "SET #n = if_not_exists(#n, :v), c = c + :v0 REMOVE #n0 ADD d :v1 DELETE tags :ss");
  EXPECT_EQ(uw.names, (std::map<std::string, std::string>{{"#n", "name"}, {"#n0", "old"}}));
}

}  // namespace
}  // namespace dynamorph::expr
