// The DynamoDB JSON codec and exact decimals without a server: string escaping, base64, every
// attribute type written and parsed back, Scan page parsing, and Decimal arithmetic at
// DynamoDB's limits (38 digits, 1E-130 .. 9.99E+125).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "dynamo/decimal.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/requests.h"
#include "dynamo/streams.h"

using namespace dynamorph;
using namespace dynamorph::dynamo;

namespace {

std::string json_string(std::string_view s) {
  std::string out;
  write_json_string(out, s);
  return out;
}

std::string written(const AttributeValue& v) {
  std::string out;
  write_value(out, v);
  return out;
}

std::string b64(std::string_view bytes) {
  std::string out;
  base64_encode(out, bytes);
  return out;
}

std::optional<std::string> unb64(std::string_view text) {
  std::string out;
  if (!base64_decode(out, text)) return std::nullopt;
  return out;
}

// A string parsed back through the codec: {"S": <written string>}.
std::string parsed_back(std::string_view s) {
  std::string json = "{\"S\":" + json_string(s) + "}";
  return parse_value(json).as<std::string>();
}

Page page_of(std::string body) {
  pad_for_parsing(body);
  return parse_page(body);
}

Decimal dec(std::string_view text) {
  std::string why;
  auto d = Decimal::parse(text, &why);
  if (!d) throw std::runtime_error("bad decimal in test: " + std::string(text) + ": " + why);
  return *d;
}

std::string canon(std::string_view text) { return dec(text).to_string(); }

std::string rejected_why(std::string_view text) {
  std::string why;
  auto d = Decimal::parse(text, &why);
  EXPECT_FALSE(d.has_value()) << text << " parsed as " << (d ? d->to_string() : "");
  return why;
}

std::string sum(std::string_view a, std::string_view b) {
  std::string why;
  auto r = Decimal::add(dec(a), dec(b), &why);
  return r ? r->to_string() : "error: " + why;
}

std::string difference(std::string_view a, std::string_view b) {
  std::string why;
  auto r = Decimal::subtract(dec(a), dec(b), &why);
  return r ? r->to_string() : "error: " + why;
}

std::string product(std::string_view a, std::string_view b) {
  std::string why;
  auto r = Decimal::multiply(dec(a), dec(b), &why);
  return r ? r->to_string() : "error: " + why;
}

std::string quotient(std::string_view a, std::string_view b) {
  std::string why;
  auto r = Decimal::divide(dec(a), dec(b), &why);
  return r ? r->to_string() : "error: " + why;
}

const std::string k38Nines(38, '9');

// ---- string escaping -----------------------------------------------------------------------

TEST(JsonString, QuotesBackslashAndShortEscapes) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("plain"), R"("plain")");
  EXPECT_EQ(json_string("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(json_string("a\\b"), R"("a\\b")");
  EXPECT_EQ(json_string("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  // '/' needs no escape in JSON and DynamoDB does not escape it either.
  EXPECT_EQ(json_string("a/b"), R"("a/b")");
}

TEST(JsonString, EveryControlCharacterIsEscapedAndParsesBack) {
  for (int c = 0; c < 0x20; ++c) {
    std::string s(1, static_cast<char>(c));
    std::string out = json_string(s);
    // Nothing below 0x20 may appear raw inside a JSON string.
    for (std::size_t i = 1; i + 1 < out.size(); ++i) {
      EXPECT_GE(static_cast<unsigned char>(out[i]), 0x20u) << "byte " << c << " → " << out;
    }
    EXPECT_EQ(parsed_back(s), s) << "byte " << c << " written as " << out;
  }
  EXPECT_EQ(json_string(std::string("\x00", 1)), R"("\u0000")");
  EXPECT_EQ(json_string("\x01\x1f"), R"("\u0001\u001f")");
  // DEL is not a JSON control character: written as is.
  EXPECT_EQ(json_string("\x7f"), "\"\x7f\"");
}

TEST(JsonString, EveryByteAtEveryOffsetOfAWordIsWrittenRight) {
  // The writer looks at eight bytes at a time: a byte to escape must be found wherever it
  // stands in a word, or in the tail after the last whole word, and next to any other byte.
  auto expected = [](unsigned char c) -> std::string {
    switch (c) {
      case '"': return "\\\"";
      case '\\': return "\\\\";
      case '\n': return "\\n";
      case '\r': return "\\r";
      case '\t': return "\\t";
      case '\b': return "\\b";
      case '\f': return "\\f";
      default: break;
    }
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      return buf;
    }
    return std::string(1, static_cast<char>(c));
  };
  for (int c = 0; c < 256; ++c) {
    for (std::size_t len : {1u, 7u, 8u, 9u, 16u, 23u}) {
      for (std::size_t at = 0; at < len; ++at) {
        std::string s(len, 'a');
        s[at] = static_cast<char>(c);
        if (at + 1 < len) s[at + 1] = static_cast<char>(0xA1);  // a high byte beside it
        std::string want = "\"";
        for (unsigned char x : s) want += expected(x);
        want += '"';
        ASSERT_EQ(json_string(s), want) << "byte " << c << " at " << at << " of " << len;
      }
    }
  }
}

TEST(JsonString, Utf8IsWrittenRawAndSurvivesARoundTrip) {
  const std::string s = "h\xc3\xa9llo \xe2\x98\x83 \xf0\x9d\x84\x9e";  // héllo ☃ 𝄞
  EXPECT_EQ(json_string(s), "\"" + s + "\"");
  EXPECT_EQ(parsed_back(s), s);
  std::string mixed = "\"\xe2\x98\x83\"\n\\\x01";
  EXPECT_EQ(parsed_back(mixed), mixed);
}

TEST(JsonString, ParserDecodesUnicodeEscapesIncludingSurrogatePairs) {
  EXPECT_EQ(parse_value(R"({"S":"\u00e9\u2603"})").as<std::string>(), "\xc3\xa9\xe2\x98\x83");
  EXPECT_EQ(parse_value(R"({"S":"\ud834\udd1e"})").as<std::string>(), "\xf0\x9d\x84\x9e");
  EXPECT_EQ(parse_value(R"({"S":"\"\\\/\b\f\n\r\t"})").as<std::string>(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parse_value(R"({"S":"\u0000"})").as<std::string>(), std::string("\0", 1));
}

TEST(JsonString, EscapedNamesAndTypeTagsReadAsTheirText) {
  // Names and tags are read straight from the document unless they hold an escape.
  Item item = parse_item(R"({"a\"b":{"S":"1"},"\u0063d":{"\u004e":"2"},"plain":{"S":"3"}})");
  ASSERT_EQ(item.size(), 3u);
  EXPECT_EQ(item.find("a\"b")->as<std::string>(), "1");
  EXPECT_EQ(item.find("cd")->as<Number>().text(), "2");
  EXPECT_EQ(item.find("plain")->as<std::string>(), "3");
  try {
    parse_item(R"({"x":{"SSS":"1"}})");
    FAIL() << "an unknown tag was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "malformed DynamoDB JSON: unknown type tag 'SSS'");
  }
}

TEST(JsonString, MalformedStringsAreRejected) {
  EXPECT_THROW(parse_value(R"({"S":"\ud834"})"), Error);     // lone high surrogate
  EXPECT_THROW(parse_value(R"({"S":"\x"})"), Error);         // unknown escape
  EXPECT_THROW(parse_value("{\"S\":\"\xff\xfe\"}"), Error);  // invalid UTF-8
  EXPECT_THROW(parse_value("{\"S\":\"unterminated}"), Error);
}

// ---- base64 --------------------------------------------------------------------------------

TEST(Base64, Rfc4648VectorsCoverEveryTailLength) {
  // Tails of 0, 1, 2 and 3 bytes (3 is a full group again).
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  for (std::string_view s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(unb64(b64(s)), std::string(s)) << s;
  }
}

TEST(Base64, EveryByteValueAndEveryLengthRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t len = 0; len <= all.size(); ++len) {
    std::string part = all.substr(all.size() - len);  // ends with 0xff, starts anywhere
    std::string enc = b64(part);
    EXPECT_EQ(enc.size(), (len + 2) / 3 * 4);
    EXPECT_EQ(unb64(enc), part) << "length " << len;
  }
  EXPECT_EQ(b64(std::string("\xff\xff\xff", 3)), "////");
  EXPECT_EQ(b64(std::string("\xfb\xef\xbe", 3)), "++++");
  EXPECT_EQ(b64(std::string("\0\0", 2)), "AAA=");
}

TEST(Base64, DecodeAppendsToTheBuffer) {
  std::string out = "x";
  ASSERT_TRUE(base64_decode(out, "Zm8="));
  EXPECT_EQ(out, "xfo");
}

TEST(Base64, BadInputIsRejected) {
  EXPECT_FALSE(unb64("Zm9v!"));     // not in the alphabet
  EXPECT_FALSE(unb64("Zm 9v"));     // whitespace
  EXPECT_FALSE(unb64("Zm-_"));      // base64url alphabet is not DynamoDB's
  EXPECT_FALSE(unb64("Zg=a"));      // data after padding
  EXPECT_FALSE(unb64("Zg==Zg=="));  // padding in the middle
  EXPECT_FALSE(unb64("Z==="));      // three padding characters
  EXPECT_FALSE(unb64("===="));
  EXPECT_FALSE(unb64("="));
  EXPECT_FALSE(unb64("Zg="));  // padded but not a multiple of 4
  EXPECT_FALSE(unb64(std::string("Zg\0=", 4)));
}

// A lone sixth-bit character cannot encode any byte, whatever the padding policy.
TEST(Base64, DanglingSingleCharacterIsRejected) {
  EXPECT_FALSE(unb64("Z"));
  EXPECT_FALSE(unb64("Zm9vY"));
}

TEST(Base64, BadBinaryInAResponseIsAnError) {
  EXPECT_THROW(parse_value(R"({"B":"Zm9v!"})"), Error);
  EXPECT_THROW(parse_value(R"({"BS":["Zg==","%%"]})"), Error);
  EXPECT_THROW(parse_value(R"({"B":5})"), Error);
}

// ---- every type, written then parsed -------------------------------------------------------

TEST(Codec, EveryTypeHasItsExactWireForm) {
  EXPECT_EQ(written(AttributeValue("x")), R"({"S":"x"})");
  EXPECT_EQ(written(AttributeValue::number("-12.50")), R"({"N":"-12.5"})");
  EXPECT_EQ(written(AttributeValue(Binary{"fo"})), R"({"B":"Zm8="})");
  EXPECT_EQ(written(AttributeValue(true)), R"({"BOOL":true})");
  EXPECT_EQ(written(AttributeValue(false)), R"({"BOOL":false})");
  EXPECT_EQ(written(AttributeValue(Null{})), R"({"NULL":true})");
  EXPECT_EQ(written(AttributeValue(Map{})), R"({"M":{}})");
  EXPECT_EQ(written(AttributeValue(Map{{"a", AttributeValue("b")}})), R"({"M":{"a":{"S":"b"}}})");
  EXPECT_EQ(written(AttributeValue(List{})), R"({"L":[]})");
  EXPECT_EQ(written(AttributeValue(List{AttributeValue(true), AttributeValue("q")})),
            R"({"L":[{"BOOL":true},{"S":"q"}]})");
  EXPECT_EQ(written(AttributeValue(StringSet{"a", "\"b\""})), R"({"SS":["a","\"b\""]})");
  EXPECT_EQ(written(AttributeValue(
                NumberSet{Number::from_canonical("1"), Number::from_canonical("-0.5")})),
            R"({"NS":["1","-0.5"]})");
  EXPECT_EQ(written(AttributeValue(BinarySet{Binary{"f"}, Binary{"foo"}})),
            R"({"BS":["Zg==","Zm9v"]})");
}

Item every_type_item() {
  Map deep{{"x", AttributeValue(List{AttributeValue::number("1"), AttributeValue("two"),
                                     AttributeValue(Null{}),
                                     AttributeValue(Map{{"y", AttributeValue(false)}})})}};
  return Item{
      {"PK", AttributeValue("USER#1")},
      {"s", AttributeValue("q\"uote \\ ctl\x01\x1f nl\n \xe2\x98\x83")},
      {"empty", AttributeValue("")},
      {"n38", AttributeValue::number("12345678901234567890123456789012345678")},
      {"ntiny", AttributeValue::number("-1E-130")},
      {"nbig", AttributeValue::number("9.9999999999999999999999999999999999999E+125")},
      {"b", AttributeValue(Binary{std::string("\x00\x01\xff\xfe", 4)})},
      {"bempty", AttributeValue(Binary{""})},
      {"t", AttributeValue(true)},
      {"nul", AttributeValue(Null{})},
      {"m", AttributeValue(deep)},
      {"l", AttributeValue(List{AttributeValue(List{}), AttributeValue(Map{})})},
      {"ss", AttributeValue(StringSet{"a", "b", "\xe2\x98\x83"})},
      {"ns", AttributeValue(NumberSet{Number::from_canonical("1"), Number::from_canonical("-2.5"),
                                      Number::from_canonical("1000")})},
      {"bs",
       AttributeValue(BinarySet{Binary{"\x01"}, Binary{std::string("\x00", 1)}, Binary{"abc"}})},
      {"na\"me\n", AttributeValue("odd attribute name")},
  };
}

TEST(Codec, EveryTypeRoundTripsThroughWriteAndParse) {
  const Item item = every_type_item();
  for (const auto& [name, value] : item) {
    std::string json = written(value);
    AttributeValue back = parse_value(json);
    EXPECT_EQ(back.type(), value.type()) << name;
    EXPECT_EQ(back, value) << name << ": " << json;
    EXPECT_EQ(written(back), json) << name << ": writing is deterministic";
  }
  std::string json;
  write_item(json, item);
  Item back = parse_item(json);
  EXPECT_EQ(back, item) << json;
  EXPECT_EQ(back.size(), item.size());
  // Order of attributes and of set members is kept as written.
  std::vector<std::string> names;
  for (const auto& [k, v] : back) names.push_back(k);
  EXPECT_EQ(names.front(), "PK");
  EXPECT_EQ(names.back(), "na\"me\n");
  EXPECT_EQ(back.find("b")->as<Binary>().bytes, std::string("\x00\x01\xff\xfe", 4));
  EXPECT_EQ(back.find("n38")->as<Number>().text(), "12345678901234567890123456789012345678");
}

TEST(Codec, SetsAndMapsCompareWithoutRegardToOrder) {
  EXPECT_EQ(parse_value(R"({"SS":["a","b"]})"), parse_value(R"({"SS":["b","a"]})"));
  EXPECT_NE(parse_value(R"({"SS":["a","b"]})"), parse_value(R"({"SS":["a","c"]})"));
  EXPECT_EQ(parse_value(R"({"NS":["1","2"]})"), parse_value(R"({"NS":["2","1"]})"));
  EXPECT_EQ(parse_item(R"({"a":{"S":"1"},"b":{"N":"2"}})"),
            parse_item(R"({"b":{"N":"2"},"a":{"S":"1"}})"));
  // Lists are ordered.
  EXPECT_NE(parse_value(R"({"L":[{"S":"a"},{"S":"b"}]})"),
            parse_value(R"({"L":[{"S":"b"},{"S":"a"}]})"));
  // Different types never compare equal.
  EXPECT_NE(parse_value(R"({"S":"1"})"), parse_value(R"({"N":"1"})"));
}

TEST(Codec, WhitespaceAndEscapedNamesAreAccepted) {
  Item item = parse_item(" {\n \"a\\u0062\" : { \"S\" : \"x\" } ,\t\"n\":{\"N\":\"5\"} } ");
  ASSERT_NE(item.find("ab"), nullptr);
  EXPECT_EQ(item.find("ab")->as<std::string>(), "x");
  EXPECT_EQ(item.find("n")->as<Number>().text(), "5");
}

TEST(Codec, MalformedValuesAreRejectedWithAMessage) {
  for (std::string_view bad : {R"({})", R"({"X":"1"})", R"({"S":5})", R"({"N":1})", R"({"L":{}})",
                               R"({"SS":"a"})", R"({"SS":[1]})", R"({"BOOL":"true"})",
                               R"({"NULL":1})", R"({"M":[]})", R"("S")", R"([])", ""}) {
    try {
      (void)parse_value(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("JSON"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_item(R"({"a":{"Q":"1"}})"), Error);
  EXPECT_THROW(parse_item(R"([1,2])"), Error);
}

// parse_value stops at the first type tag and never checks that the document ended.
TEST(Codec, TruncatedOrTrailingDocumentsAreRejected) {
  EXPECT_THROW(parse_value(R"({"S":"x")"), Error);
  EXPECT_THROW(parse_value(R"({"S":"x"} trailing)"), Error);
  EXPECT_THROW(parse_value(R"({"S":"x","N":"1"})"), Error);
  EXPECT_THROW(parse_item(R"({"a":{"S":"x"}} {)"), Error);
}

// ---- Scan pages ----------------------------------------------------------------------------

TEST(ScanPage, ItemsCountsKeyAndCapacityAreParsed) {
  Page p = page_of(R"({
    "Items": [
      {"PK":{"S":"USER#0000001"},"SK":{"S":"PROFILE"},"username":{"S":"AliceSmith1"},
       "age":{"N":"42"},"tags":{"SS":["aws","cpp"]},"bio":{"S":"lorem \"ipsum\"\n"}},
      {"PK":{"S":"USER#0000001"},"SK":{"S":"PHOTO#1"},"size":{"N":"12345"},
       "raw":{"B":"AAEC"},"ok":{"BOOL":true},"m":{"M":{"l":{"L":[{"NULL":true}]}}}}
    ],
    "Count": 2,
    "ScannedCount": 5,
    "LastEvaluatedKey": {"PK":{"S":"USER#0000001"},"SK":{"S":"PHOTO#1"}},
    "ConsumedCapacity": {"TableName":"app","CapacityUnits":12.5}
  })");
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.count, 2);
  EXPECT_EQ(p.scanned_count, 5);
  EXPECT_DOUBLE_EQ(p.consumed_capacity, 12.5);
  ASSERT_TRUE(p.last_evaluated_key.has_value());
  EXPECT_EQ(*p.last_evaluated_key,
            (Item{{"PK", AttributeValue("USER#0000001")}, {"SK", AttributeValue("PHOTO#1")}}));
  const Item& profile = p.items[0];
  EXPECT_EQ(profile.size(), 6u);
  EXPECT_EQ(profile.find("username")->as<std::string>(), "AliceSmith1");
  EXPECT_EQ(profile.find("age")->as<Number>().text(), "42");
  EXPECT_EQ(*profile.find("tags"), AttributeValue(StringSet{"cpp", "aws"}));
  EXPECT_EQ(profile.find("bio")->as<std::string>(), "lorem \"ipsum\"\n");
  const Item& photo = p.items[1];
  EXPECT_EQ(photo.find("raw")->as<Binary>().bytes, std::string("\x00\x01\x02", 3));
  EXPECT_TRUE(photo.find("ok")->as<bool>());
  EXPECT_TRUE(photo.find("m")->as<Map>().find("l")->as<List>().at(0).is<Null>());
}

TEST(ScanPage, TheLastPageHasNoKey) {
  Page p = page_of(R"({"Count":0,"Items":[],"ScannedCount":0})");
  EXPECT_TRUE(p.items.empty());
  EXPECT_EQ(p.count, 0);
  EXPECT_EQ(p.scanned_count, 0);
  EXPECT_FALSE(p.last_evaluated_key.has_value());
  EXPECT_EQ(p.consumed_capacity, 0);
}

TEST(ScanPage, FieldOrderAndUnknownFieldsDoNotMatter) {
  Page p = page_of(R"({"ConsumedCapacity":{"CapacityUnits":0.5,"TableName":"t",
                        "Table":{"CapacityUnits":0.5}},
                       "LastEvaluatedKey":{"PK":{"N":"7"}},"SomethingNew":[1,{"a":2}],
                       "ScannedCount":3,"Count":1,"Items":[{"PK":{"N":"7"}}]})");
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.count, 1);
  EXPECT_EQ(p.scanned_count, 3);
  EXPECT_DOUBLE_EQ(p.consumed_capacity, 0.5);
  ASSERT_TRUE(p.last_evaluated_key);
  EXPECT_EQ(p.last_evaluated_key->find("PK")->as<Number>().text(), "7");
}

TEST(ScanPage, CapacityListsAreSummed) {
  // Query on an index with INDEXES capacity, or a batch: a list of per-table entries.
  Page p = page_of(R"({"Items":[],"Count":0,"ScannedCount":0,
                       "ConsumedCapacity":[{"TableName":"a","CapacityUnits":1.5},
                                           {"TableName":"b","CapacityUnits":2}]})");
  EXPECT_DOUBLE_EQ(p.consumed_capacity, 3.5);
}

TEST(ScanPage, LargePageOfManyItems) {
  std::string body = R"({"Items":[)";
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    if (i) body += ',';
    Item item{{"PK", AttributeValue("USER#" + std::to_string(i))},
              {"SK", AttributeValue("PROFILE")},
              {"age", AttributeValue::number(std::to_string(18 + i % 70))}};
    write_item(body, item);
  }
  body += R"(],"Count":3000,"ScannedCount":3000})";
  Page p = page_of(body);
  ASSERT_EQ(p.items.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; i += 499) {
    EXPECT_EQ(p.items[i].find("PK")->as<std::string>(), "USER#" + std::to_string(i));
  }
  EXPECT_EQ(p.items.back().find("age")->as<Number>().text(), std::to_string(18 + (n - 1) % 70));
}

TEST(ScanPage, MalformedPagesThrow) {
  EXPECT_THROW(page_of(R"({"Items":{}})"), Error);
  EXPECT_THROW(page_of(R"({"Items":[1]})"), Error);
  EXPECT_THROW(page_of(R"({"Items":[{"a":{"S":1}}]})"), Error);
  EXPECT_THROW(page_of(R"({"Count":"two"})"), Error);
  EXPECT_THROW(page_of(R"({"Items":[{"a":{"S":"x"}})"), Error);  // truncated
  EXPECT_THROW(page_of("not json"), Error);
}

// ---- Decimal -------------------------------------------------------------------------------

TEST(Decimal, ParsesEveryNotationIntoCanonicalText) {
  EXPECT_EQ(canon("0"), "0");
  EXPECT_EQ(canon("0007"), "7");
  EXPECT_EQ(canon("-12.50"), "-12.5");
  EXPECT_EQ(canon("+.5"), "0.5");
  EXPECT_EQ(canon("5."), "5");
  EXPECT_EQ(canon("1e3"), "1000");
  EXPECT_EQ(canon("1E+3"), "1000");
  EXPECT_EQ(canon("12.5e-3"), "0.0125");
  EXPECT_EQ(canon("1000e-3"), "1");
  EXPECT_EQ(canon("0.000"), "0");
  EXPECT_EQ(canon("0e999999999"), "0");
  EXPECT_EQ(canon("123.456"), "123.456");
  EXPECT_EQ(canon("-0.001"), "-0.001");
  EXPECT_EQ(canon("1E-130"), "0." + std::string(129, '0') + "1");
  EXPECT_EQ(canon("1E125"), "1" + std::string(125, '0'));
}

TEST(Decimal, NotNumbersAreRejectedWithAReason) {
  for (std::string_view bad : {"", "-", "+", ".", "e5", "1e", "1e+", "--1", "+-1", "1.2.3", " 1",
                               "1 ", "0x10", "inf", "NaN", "1,5", "1e5.5", "١"}) {
    std::string why = rejected_why(bad);
    EXPECT_NE(why.find("not a number"), std::string::npos) << "'" << bad << "': " << why;
  }
}

TEST(Decimal, ThirtyEightSignificantDigitsAndNoMore) {
  EXPECT_EQ(canon(k38Nines), k38Nines);
  EXPECT_EQ(canon("-" + k38Nines), "-" + k38Nines);
  EXPECT_EQ(canon("1234567890123456789.0123456789012345678"),
            "1234567890123456789.0123456789012345678");
  // Leading and trailing zeros are not significant.
  EXPECT_EQ(canon("000" + k38Nines + "000"), k38Nines + "000");
  EXPECT_EQ(canon("0.000" + k38Nines), "0.000" + k38Nines);
  EXPECT_EQ(canon("1" + std::string(100, '0')), "1" + std::string(100, '0'));
  for (std::string_view bad : {"1" + std::string(37, '0') + "1",  // 39 digits
                               std::string("9999999999999999999999999999999999999.99"),
                               std::string("0.123456789012345678901234567890123456789")}) {
    std::string why = rejected_why(bad);
    EXPECT_NE(why.find("38 significant digits"), std::string::npos) << bad << ": " << why;
  }
}

TEST(Decimal, MagnitudeLimitsGiveOverflowAndUnderflow) {
  EXPECT_EQ(canon("9.9999999999999999999999999999999999999E+125"), k38Nines + std::string(88, '0'));
  EXPECT_EQ(canon("-1E-130"), "-0." + std::string(129, '0') + "1");
  EXPECT_NE(rejected_why("1E126").find("overflow"), std::string::npos);
  EXPECT_NE(rejected_why("-1E126").find("overflow"), std::string::npos);
  EXPECT_NE(rejected_why("1e999999999999").find("overflow"), std::string::npos);
  EXPECT_NE(rejected_why("1E-131").find("underflow"), std::string::npos);
  EXPECT_NE(rejected_why("0.9E-130").find("underflow"), std::string::npos);
  EXPECT_NE(rejected_why("1e-999999999999").find("underflow"), std::string::npos);
}

TEST(Decimal, NegativeZeroIsZero) {
  for (std::string_view z : {"-0", "-0.0", "-0e5", "-.000", "+0", "0"}) {
    Decimal d = dec(z);
    EXPECT_TRUE(d.is_zero()) << z;
    EXPECT_FALSE(d.negative()) << z;
    EXPECT_EQ(d.to_string(), "0") << z;
    EXPECT_EQ(d, Decimal{}) << z;
    EXPECT_EQ(d <=> dec("0"), std::strong_ordering::equal) << z;
  }
  EXPECT_EQ(difference("1.5", "1.5"), "0");
  EXPECT_EQ(sum("-1.5", "1.5"), "0");
  EXPECT_FALSE(Decimal::add(dec("-2"), dec("2"))->negative());
  EXPECT_EQ(difference("0", "0"), "0");
  EXPECT_EQ(difference("0", "3"), "-3");
  EXPECT_EQ(difference("-0", "-3"), "3");
}

TEST(Decimal, ComparesByValue) {
  auto cmp = [](std::string_view a, std::string_view b) { return dec(a) <=> dec(b); };
  using std::strong_ordering;
  EXPECT_EQ(cmp("1", "1.000"), strong_ordering::equal);
  EXPECT_EQ(cmp("100", "1e2"), strong_ordering::equal);
  EXPECT_EQ(cmp("2", "10"), strong_ordering::less);
  EXPECT_EQ(cmp("0.1", "0.09"), strong_ordering::greater);
  EXPECT_EQ(cmp("-1", "1"), strong_ordering::less);
  EXPECT_EQ(cmp("-2", "-10"), strong_ordering::greater);
  EXPECT_EQ(cmp("-0.1", "-0.09"), strong_ordering::less);
  EXPECT_EQ(cmp("0", "-0.0001"), strong_ordering::greater);
  EXPECT_EQ(cmp("0", "1E-130"), strong_ordering::less);
  EXPECT_EQ(cmp("-0", "0"), strong_ordering::equal);
  EXPECT_EQ(cmp("12345678901234567890123456789012345678", "12345678901234567890123456789012345679"),
            strong_ordering::less);
  EXPECT_EQ(
      cmp("1.2345678901234567890123456789012345678", "1.2345678901234567890123456789012345677"),
      strong_ordering::greater);
  EXPECT_EQ(cmp("9.9999999999999999999999999999999999999E+125", "1E125"), strong_ordering::greater);
  EXPECT_EQ(cmp("1E-130", "1.0000000000000000000000000000000000001E-130"), strong_ordering::less);
  EXPECT_EQ(cmp("-" + k38Nines, "-1E38"), strong_ordering::greater);
  EXPECT_TRUE(dec("1.50") == dec("1.5"));
  EXPECT_FALSE(dec("1.5") == dec("-1.5"));
}

TEST(Decimal, AddsAndSubtractsExactly) {
  EXPECT_EQ(sum("0.1", "0.2"), "0.3");  // where double gives 0.30000000000000004
  EXPECT_EQ(sum("1", "2"), "3");
  EXPECT_EQ(sum("999", "1"), "1000");
  EXPECT_EQ(sum("-5", "3"), "-2");
  EXPECT_EQ(sum("5", "-3"), "2");
  EXPECT_EQ(sum("-5", "-3"), "-8");
  EXPECT_EQ(sum("1e3", "1e-3"), "1000.001");
  EXPECT_EQ(sum("0", "-7.25"), "-7.25");
  EXPECT_EQ(sum("12.34", "0"), "12.34");
  EXPECT_EQ(difference("1000", "0.001"), "999.999");
  EXPECT_EQ(difference("1", "1000"), "-999");
  EXPECT_EQ(difference("-1", "-1000"), "999");
  EXPECT_EQ(difference("10.5", "0.5"), "10");
  EXPECT_EQ(difference("1E-130", "1E-130"), "0");
  // 38-digit operands and results.
  EXPECT_EQ(sum(k38Nines, "1"), "1" + std::string(38, '0'));  // 1E38: one significant digit
  EXPECT_EQ(difference("1" + std::string(38, '0'), "1"), k38Nines);
  EXPECT_EQ(
      sum("12345678901234567890123456789012345678", "-12345678901234567890123456789012345677"),
      "1");
  EXPECT_EQ(
      sum("0.5555555555555555555555555555555555555", "0.4444444444444444444444444444444444445"),
      "1");
  EXPECT_EQ(sum("1E125", "1E125"), "2" + std::string(125, '0'));
}

TEST(Decimal, ArithmeticPastTheLimitsIsAnError) {
  // 39 significant digits needed.
  EXPECT_NE(sum(k38Nines, "0.1").find("38 significant digits"), std::string::npos)
      << sum(k38Nines, "0.1");
  EXPECT_NE(sum("1E125", "1E-130").find("38 significant digits"), std::string::npos);
  // Past 9.99…E+125.
  std::string max = "9.9999999999999999999999999999999999999E+125";
  EXPECT_NE(sum(max, "1E88").find("overflow"), std::string::npos) << sum(max, "1E88");
  EXPECT_NE(difference("-" + max, "1E88").find("overflow"), std::string::npos);
  // Below 1E-130 (a difference of two neighbours at the bottom of the range).
  EXPECT_NE(difference("1.1E-129", "1.09E-129").find("underflow"), std::string::npos)
      << difference("1.1E-129", "1.09E-129");
  // Without a reason pointer the result is still nullopt.
  EXPECT_FALSE(Decimal::add(dec(k38Nines), dec("0.1")).has_value());
}

TEST(Decimal, MultipliesAndDividesRoundingHalfEvenTo38Digits) {
  EXPECT_EQ(product("1.5", "2"), "3");
  EXPECT_EQ(product("-0.1", "0.2"), "-0.02");
  EXPECT_EQ(product("0", "-5"), "0");
  EXPECT_EQ(product("12345678901234567890", "1E-20"), "0.1234567890123456789");
  // (10^38 - 1)^2 has 76 digits: the first 38 are kept (the next one is 0).
  EXPECT_EQ(product(k38Nines, k38Nines),
            "99999999999999999999999999999999999998" + std::string(38, '0'));
  EXPECT_EQ(product("1.0000000000000000000000000000000000005", "1"),
            "1.0000000000000000000000000000000000005");
  EXPECT_EQ(product("1.0000000000000000000000000000000000005", "10"),
            "10.000000000000000000000000000000000005");
  EXPECT_EQ(product("3333333333333333333333333333333333333.5", "1"),  // 38 digits: exact
            "3333333333333333333333333333333333333.5");
  EXPECT_EQ(product("33333333333333333333333333333333333335", "0.1"),
            "3333333333333333333333333333333333333.5");
  EXPECT_EQ(product("1.25", "1.25"), "1.5625");
  EXPECT_EQ(quotient("1", "3"), "0." + std::string(38, '3'));
  EXPECT_EQ(quotient("2", "3"), "0." + std::string(37, '6') + "7");
  EXPECT_EQ(quotient("-1", "8"), "-0.125");
  EXPECT_EQ(quotient("10", "4"), "2.5");
  EXPECT_EQ(quotient("1E-100", "1E25"), "0." + std::string(124, '0') + "1");
  EXPECT_EQ(quotient(k38Nines, "0.5"), "2" + std::string(38, '0'));  // rounds up a digit
  EXPECT_NE(quotient("1", "0").find("Division by zero"), std::string::npos);
  EXPECT_NE(quotient("1E-100", "1E40").find("underflow"), std::string::npos);
  EXPECT_NE(product("1E100", "1E100").find("overflow"), std::string::npos);
}

TEST(Decimal, IntegersConvertBothWays) {
  EXPECT_EQ(Decimal::from_int(0).to_string(), "0");
  EXPECT_EQ(Decimal::from_int(-42).to_string(), "-42");
  EXPECT_EQ(Decimal::from_int(INT64_MAX).to_string(), "9223372036854775807");
  EXPECT_EQ(Decimal::from_int(INT64_MIN).to_string(), "-9223372036854775808");
  EXPECT_EQ(dec("1e3").to_int64(), 1000);
  EXPECT_EQ(dec("-17").to_int64(), -17);
  EXPECT_EQ(dec("9223372036854775807").to_int64(), INT64_MAX);
  EXPECT_EQ(dec("-9223372036854775808").to_int64(), INT64_MIN);
  EXPECT_FALSE(dec("-9223372036854775809").to_int64());
  EXPECT_FALSE(dec("9223372036854775808").to_int64());
  EXPECT_FALSE(dec("1.5").to_int64());
  EXPECT_FALSE(dec("1e30").to_int64());
}

TEST(Number, UserTextIsCanonicalizedAndComparedByValue) {
  auto n = Number::parse("0012.50");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->text(), "12.5");
  std::string why;
  EXPECT_FALSE(Number::parse("1" + std::string(38, '0') + "1", &why));
  EXPECT_NE(why.find("38"), std::string::npos);
  EXPECT_EQ(Number::from_canonical("1"), *Number::parse("1.000"));
  EXPECT_LT(Number::from_canonical("9"), Number::from_canonical("10"));
  EXPECT_THROW(AttributeValue::number("abc"), UsageError);
}

// Found by fuzz/response_fuzz: a malformed ConsumedCapacity value threw simdjson_error, which
// no caller catches, instead of dynamorph::Error.
TEST(Codec, MalformedConsumedCapacityIsAnError) {
  std::string body = R"({"Items":[],"Count":0,"ScannedCount":0,"ConsumedCapacity":})";
  pad_for_parsing(body);
  EXPECT_THROW(parse_page(body), Error);
  std::string batch = R"({"UnprocessedItems":{},"ConsumedCapacity":,})";
  pad_for_parsing(batch);
  EXPECT_THROW(parse_batch_write(batch), Error);
}

// Found by fuzz/response_fuzz (a 10-minute run): number text is kept as the server sent it and
// copied unescaped into request bodies, so a malformed number (here with a NUL, or a quote that
// would add an attribute of its own) must be refused when read, not written out.
TEST(Codec, NumberTextThatIsNotANumberIsMalformed) {
  for (std::string bad : {R"("2.5)__\u0000__")", R"("1\",\"x\":{\"S\":\"y")", R"("")",
                          R"("-")", R"(".")", R"("1e")", R"("1e+")", R"("1..2")", R"("0x10")",
                          R"(" 1")", R"("12.")", R"(".5")"}) {
    for (std::string tag : {R"("N":)", R"("NS":[)"}) {
      std::string body = R"({"Items":[{"k":{"S":"a"},"n":{)" + tag + bad +
                         (tag.back() == '[' ? "]" : "") + R"(}}],"Count":1,"ScannedCount":1})";
      pad_for_parsing(body);
      EXPECT_THROW(parse_page(body), Error) << body;
    }
  }
  for (std::string good : {"-1.5E+3", "0", "12.25", "-0.001", "1e-130", "99999999999999999999"}) {
    std::string body = R"({"Items":[{"n":{"N":")" + good + R"("},"s":{"NS":[")" + good +
                       R"("]}}],"Count":1,"ScannedCount":1})";
    pad_for_parsing(body);
    Page page = parse_page(body);
    ASSERT_EQ(page.items.size(), 1u);
    ASSERT_NE(page.items[0].find("n"), nullptr);
    EXPECT_EQ(page.items[0].find("n")->as<Number>().text(), good);
  }
}

// Found by fuzz/streams_fuzz (a 10-minute run): a NextShardIterator that is neither a string nor
// null (here the start of a word, "nS…") threw simdjson_error, which ends the process, instead
// of dynamorph::Error. A null one ends the shard, as before.
TEST(Codec, MalformedNextShardIteratorIsAnError) {
  std::string body = R"({"Records":[],"NextShardIterator": nShardsme})";
  pad_for_parsing(body);
  EXPECT_THROW(parse_get_records(body), Error);
  std::string end = R"({"Records":[],"NextShardIterator":null})";
  pad_for_parsing(end);
  EXPECT_FALSE(parse_get_records(end).next_iterator.has_value());
}

// Found by fuzz/streams_fuzz: a creation time past int64 milliseconds was cast anyway
// (undefined behaviour); it is a malformed response.
TEST(Codec, StreamRecordTimeOutOfRangeIsAnError) {
  std::string body = R"({"Records":[{"eventName":"INSERT","dynamodb":{"Keys":{"k":{"S":"a"}},)"
                     R"("SequenceNumber":"1","ApproximateCreationDateTime":1.8e37}}]})";
  pad_for_parsing(body);
  EXPECT_THROW(parse_get_records(body), Error);
  std::string ok = R"({"Records":[{"eventName":"INSERT","dynamodb":{"Keys":{"k":{"S":"a"}},)"
                   R"("SequenceNumber":"1","ApproximateCreationDateTime":1700000000}}]})";
  pad_for_parsing(ok);
  EXPECT_EQ(parse_get_records(ok).records.at(0).created_ms, 1700000000000);
}

}  // namespace

TEST(Codec, WritesAskForTheirConsumedCapacityOnlyWhenTold) {
  const Item item{{"PK", AttributeValue("a")}};
  std::vector<BatchWriteEntry> entries{{"t", BatchWriteEntry::Kind::Put, item}};
  std::string asked, silent;
  write_batch_write(asked, entries);
  write_batch_write(silent, entries, false);
  EXPECT_EQ(asked,
            R"({"RequestItems":{"t":[{"PutRequest":{"Item":{"PK":{"S":"a"}}}}]},)"
            R"("ReturnConsumedCapacity":"TOTAL"})");
  EXPECT_EQ(silent, R"({"RequestItems":{"t":[{"PutRequest":{"Item":{"PK":{"S":"a"}}}}]}})");
  std::string later = silent;  // a batch written once, metered when sent
  add_return_consumed_capacity(later);
  EXPECT_EQ(later, asked);
  std::string cut = "{\"RequestItems\":{";
  EXPECT_THROW(add_return_consumed_capacity(cut), Error);

  UpdateItemRequest u{"t", item, {"SET n = :one", {}, {{":one", AttributeValue("1")}}}, {}};
  u.return_consumed_capacity = false;
  std::string update;
  write_update_item(update, u);
  EXPECT_EQ(update,
            R"({"TableName":"t","Key":{"PK":{"S":"a"}},"UpdateExpression":"SET n = :one",)"
            R"("ExpressionAttributeValues":{":one":{"S":"1"}}})");
  PutItemRequest p{"t", item, {}};
  p.return_consumed_capacity = false;
  std::string put;
  write_put_item(put, p);
  EXPECT_EQ(put, R"({"TableName":"t","Item":{"PK":{"S":"a"}}})");
  DeleteItemRequest d{"t", item, {}};
  std::string del;
  write_delete_item(del, d);  // asks by default
  EXPECT_EQ(del, R"({"TableName":"t","Key":{"PK":{"S":"a"}},"ReturnConsumedCapacity":"TOTAL"})");
}
