// The journal's pieces without a server: the item hash (order-blind, type-aware), records that
// round-trip every attribute type, gzip with named errors, file names that sort in the order
// their records were made, and the local store (durable put, sorted list, absent get).
#include "stages/journal.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "dynamo/client.h"
#include "dynamo/credentials.h"
#include "dynamo/errors.h"

namespace dynamorph::stages {
namespace {

using dynamo::AttributeValue;
using dynamo::Item;

Item sample() {
  Item meta;
  meta.set("rank", AttributeValue::number("7"));
  meta.set("list", dynamo::List{AttributeValue("two"), AttributeValue(false), dynamo::Null{}});
  Item it;
  it.set("PK", "USER#1");
  it.set("SK", "PROFILE");
  it.set("n", AttributeValue::number("-12.50"));
  it.set("b", dynamo::Binary{std::string("\0\xff\x07", 3)});
  it.set("ok", true);
  it.set("none", dynamo::Null{});
  it.set("meta", meta);
  it.set("tags", dynamo::StringSet{"b", "a", "c"});
  it.set("nums", dynamo::NumberSet{*dynamo::Number::parse("3"), *dynamo::Number::parse("1")});
  it.set("bins", dynamo::BinarySet{dynamo::Binary{"y"}, dynamo::Binary{"x"}});
  it.set("text", "é \"quoted\"\n");
  return it;
}

TEST(JournalHash, IgnoresAttributeAndSetOrderButNotValuesOrTypes) {
  Item a = sample();
  Item b;
  std::vector<Item::Entry> entries(a.begin(), a.end());
  std::reverse(entries.begin(), entries.end());
  for (auto& [k, v] : entries) b.set(k, v);
  b.set("tags", dynamo::StringSet{"c", "a", "b"});
  EXPECT_EQ(item_hash(a), item_hash(b));
  EXPECT_EQ(item_hash(a).size(), 32u);

  Item c = a;
  c.set("text", "é \"quoted\" \n");
  EXPECT_NE(item_hash(a), item_hash(c));
  Item s, n;  // the same text as S and as N
  s.set("x", "1");
  n.set("x", AttributeValue::number("1"));
  EXPECT_NE(item_hash(s), item_hash(n));
  Item l1, l2;  // list order matters
  l1.set("l", dynamo::List{AttributeValue("a"), AttributeValue("b")});
  l2.set("l", dynamo::List{AttributeValue("b"), AttributeValue("a")});
  EXPECT_NE(item_hash(l1), item_hash(l2));
  Item e1, e2;  // no two different items share their canonical bytes
  e1.set("ab", "c");
  e2.set("a", "bc");
  EXPECT_NE(item_hash(e1), item_hash(e2));
}

TEST(JournalRecord, RoundTripsEveryType) {
  JournalRecord full{Item{{"PK", "USER#1"}, {"SK", "PROFILE"}}, sample(), item_hash(sample())};
  JournalRecord deleted{Item{{"PK", "USER#1"}, {"SK", "PROFILE"}}, sample(), std::nullopt};
  JournalRecord created{Item{{"PK", "USER#2"}, {"SK", "IMG#1"}}, std::nullopt, "00ff"};
  std::string text;
  for (const auto* r : {&full, &deleted, &created}) append_record(text, *r);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  auto back = parse_records(text, "f.jsonl");
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].key, full.key);
  ASSERT_TRUE(back[0].before);
  EXPECT_EQ(*back[0].before, sample());
  EXPECT_EQ(item_hash(*back[0].before), item_hash(sample()));
  EXPECT_EQ(back[0].after, full.after);
  EXPECT_FALSE(back[1].after);
  EXPECT_FALSE(back[2].before);
  EXPECT_EQ(back[2].after, std::optional<std::string>("00ff"));

  try {
    parse_records(text + "{\"k\":{\"S\":\"x\"}}\n", "f.jsonl");
    FAIL() << "a line that is not a record";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "f.jsonl:4: not a journal record (expected k, b and a)");
  }
}

TEST(JournalGzip, RoundTripsAndNamesTheFileOnCorruption) {
  std::string text;
  std::mt19937 rng(1);
  for (int i = 0; i < 5000; ++i) text += std::to_string(rng()) + "\n";
  const std::string z = gzip_compress(text);
  EXPECT_LT(z.size(), text.size());
  EXPECT_EQ(gzip_decompress(z, "x"), text);
  EXPECT_EQ(gzip_decompress(z + z, "x"), text + text);  // concatenated members
  EXPECT_THROW(
      {
        try {
          gzip_decompress(z.substr(0, z.size() / 2), "j/p1.jsonl.gz");
        } catch (const Error& e) {
          EXPECT_EQ(std::string(e.what()), "j/p1.jsonl.gz: truncated gzip data");
          throw;
        }
      },
      Error);
  std::string bad = z;
  bad[z.size() / 2] ^= 0x55;
  bad[z.size() / 2 + 1] ^= 0x55;
  EXPECT_THROW(gzip_decompress(bad, "x"), Error);
}

TEST(JournalNames, SortInTheOrderRecordsWereMade) {
  const std::string step = journal_step_prefix(20261202100000, "2026-12-02T01:02:03.456Z", 2);
  EXPECT_EQ(step, "20261202100000/20261202T010203456Z/step-02/");
  const std::string a = journal_file_name(step, 3, 9, "1764637200000abcd", 0);
  EXPECT_EQ(a, step + "seg-00003/1764637200000abcd-p000000000009-00000000.jsonl.gz");
  // Page 10 after page 9; a page's re-read items (a later n) after its first file; a resumed
  // run's files (a later run) after the first run's, even for an earlier page.
  const std::string b = journal_file_name(step, 3, 10, "1764637200000abcd", 1);
  const std::string d = journal_file_name(step, 3, 9, "1764637200000abcd", 7);
  const std::string c = journal_file_name(step, 3, 8, "1764637299999abcd", 0);
  EXPECT_LT(a, d);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LT(d, c);
  auto f = parse_journal_file_name(std::string_view(b).substr(step.size()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->segment, 3);
  EXPECT_EQ(f->seq, 10);
  EXPECT_FALSE(parse_journal_file_name(kJournalManifest));
  EXPECT_FALSE(parse_journal_file_name("seg-00003/x-pabc-00000000.jsonl.gz"));
}

TEST(JournalStore, LocalPutListGet) {
  const auto root = std::filesystem::temp_directory_path() /
                    ("dynamorph_journal_unit_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  dynamo::ClientOptions o;
  o.endpoint = "http://127.0.0.1:9";  // never called: a local store makes no request
  o.region = "us-east-1";
  o.credentials =
      dynamo::static_credentials(dynamo::Credentials{"k", "s", "", std::nullopt}, "test");
  dynamo::Client client(o);
  auto store = JournalStore::open(root.string(), client);
  EXPECT_EQ(store->describe(), root.string());
  EXPECT_TRUE(store->list("").empty());
  store->put("1/e/step-01/seg-00001/p2.jsonl.gz", "two");
  store->put("1/e/step-01/seg-00000/p1.jsonl.gz", "one");
  store->put("1/e/step-01/step.json", "m");
  store->put("1/e/step-01/step.json", "manifest");  // replaced
  EXPECT_EQ(
      store->list("1/e/step-01/"),
      (std::vector<std::string>{"1/e/step-01/seg-00000/p1.jsonl.gz",
                                "1/e/step-01/seg-00001/p2.jsonl.gz", "1/e/step-01/step.json"}));
  EXPECT_EQ(store->get("1/e/step-01/step.json"), std::optional<std::string>("manifest"));
  EXPECT_FALSE(store->get("1/e/step-01/nothing"));
  EXPECT_TRUE(store->list("2/").empty());
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace dynamorph::stages
