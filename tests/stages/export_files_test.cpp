// The DynamoDB export reader: exports written by tests/support/export_writer are read back
// exactly, from a local folder and through the S3 server (s3 fixture); resume at file + line;
// every damage (MD5, truncated gzip, a bad line, an item count, the manifests) stops with an
// error that names the file and line.
#include "stages/export_files.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "dynamo/json.h"
#include "tests/support/export_writer.h"
#include "tests/support/s3_client.h"
#include "tests/support/test_env.h"

using namespace dynamorph;
using namespace dynamorph::stages;
using dynamo::Item;

namespace {

const std::vector<Item>& fifty_thousand() {
  static const std::vector<Item> items = test::sample_items(50000, 7);
  return items;
}

std::string json_of(const Item& item) {
  std::string out;
  dynamo::write_item(out, item);
  return out;
}

// Reads file `index` from `start_line` to its end in pages of `page` items.
std::vector<Item> read_file(const ExportFiles& files, std::size_t index, std::size_t page = 1000,
                            std::uint64_t start_line = 1) {
  auto reader = files.reader(index, start_line);
  std::vector<Item> out;
  while (true) {
    const std::size_t before = out.size();
    auto r = reader->read(page, out);
    EXPECT_EQ(r.items, out.size() - before);
    EXPECT_EQ(r.next_line, start_line + out.size());
    if (r.finished) break;
    EXPECT_EQ(r.items, page) << "a page short of `page` items must be the last";
  }
  EXPECT_TRUE(reader->finished());
  return out;
}

// Every item of the export, file after file.
std::vector<Item> read_all(const ExportFiles& files, std::size_t page = 1000) {
  std::vector<Item> all;
  for (std::size_t i = 0; i < files.files().size(); ++i) {
    auto part = read_file(files, i, page);
    all.insert(all.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  return all;
}

void expect_same_items(const std::vector<Item>& got, const std::vector<Item>& want,
                       std::size_t offset = 0) {
  ASSERT_EQ(got.size() + offset <= want.size(), true);
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i] == want[offset + i]) << "item " << offset + i;
    // The same attributes in the same order, byte for byte.
    ASSERT_EQ(json_of(got[i]), json_of(want[offset + i])) << "item " << offset + i;
  }
}

// Reads every file and returns the message of the ExportError that stops it ("" if none).
std::string first_error(const ExportFiles& files) {
  try {
    read_all(files, 700);
  } catch (const ExportError& e) {
    return e.what();
  }
  return "";
}

// Each test runs on a local folder and, with GetParam() true, through the S3 server.
class ExportFilesTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { dir_ = test::scratch_dir("export"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  bool s3() const { return GetParam(); }

  test::WrittenExport write(const std::vector<Item>& items, test::ExportWriterOptions o = {}) {
    return test::write_export(dir_, items, o);
  }

  std::shared_ptr<const ExportFiles> open(const test::WrittenExport& w,
                                          ExportReadOptions options = {}) {
    if (!s3()) return ExportFiles::open(ExportLocation::parse(w.folder.string()), nullptr, options);
    if (!s3_) s3_ = test::make_s3_client();
    const std::string url =
        test::upload_export(*s3_, w, test::s3_bucket(), test::unique_name("exports") + "/app");
    return ExportFiles::open(ExportLocation::parse(url), s3_, options);
  }

  std::string data_path(const test::WrittenExport& w, int file) const {
    return (w.folder / w.data_keys[static_cast<std::size_t>(file)]).string();
  }

  std::filesystem::path dir_;
  std::shared_ptr<dynamo::S3Client> s3_;
};

INSTANTIATE_TEST_SUITE_P(Where, ExportFilesTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "S3" : "Local"; });

TEST_P(ExportFilesTest, TenFilesOfFiftyThousandItemsReadBackExactly) {
  const auto& items = fifty_thousand();
  auto w = write(items);
  ExportReadOptions options;
  if (s3()) options.chunk_bytes = 32 * 1024;  // several ranged GETs per file
  auto files = open(w, options);
  EXPECT_EQ(files->item_count(), 50000u);
  EXPECT_EQ(files->summary().output_format, "DYNAMODB_JSON");
  EXPECT_EQ(files->summary().export_type, "FULL_EXPORT");
  ASSERT_EQ(files->files().size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    const auto& f = files->files()[i];
    EXPECT_EQ(f.key, w.data_keys[i]);
    EXPECT_EQ(f.item_count, 5000u);
    EXPECT_EQ(f.manifest_line, static_cast<int>(i) + 1);
    EXPECT_EQ(f.size, std::filesystem::file_size(w.folder / f.key));
    EXPECT_TRUE(f.s3_key.starts_with("exports/app/AWSDynamoDB/" + w.export_id + "/data/"));
  }
  const std::uint64_t requests_before = s3_ ? s3_->stats().requests.load() : 0;
  auto all = read_all(*files);
  ASSERT_EQ(all.size(), items.size());
  expect_same_items(all, items);
  if (s3()) {
    std::uint64_t chunks = 0;
    for (const auto& f : files->files())
      chunks += (f.size + options.chunk_bytes - 1) / options.chunk_bytes;
    EXPECT_EQ(s3_->stats().requests.load() - requests_before, chunks);
    EXPECT_GT(chunks, 10u);
  }
}

TEST_P(ExportFilesTest, MemoryStaysWithinTheChunksWhateverTheFileSize) {
  const auto& items = fifty_thousand();
  test::ExportWriterOptions o;
  o.files = 2;  // 25,000 items, ~6 MB of JSON per file
  auto w = write(items, o);
  ExportReadOptions options;
  options.chunk_bytes = 64 * 1024;
  options.text_bytes = 32 * 1024;
  auto files = open(w, options);
  auto reader = files->reader(0);
  std::vector<Item> page;
  std::size_t total = 0;
  while (true) {
    page.clear();
    auto r = reader->read(500, page);
    expect_same_items(page, items, total);
    total += r.items;
    if (r.finished) break;
  }
  EXPECT_EQ(total, 25000u);
  // A compressed chunk and the inflated text (with a partial line, in strings that may double
  // as they grow), not the file: 4.7 MB of text from 0.6 MB of gzip.
  EXPECT_LT(reader->buffered_high_water(), 256u * 1024);
  EXPECT_GT(std::filesystem::file_size(w.folder / w.data_keys[0]), 8u * 64 * 1024);
  EXPECT_GT(test::gunzip_available(test::read_bytes(w.folder / w.data_keys[0])).size(),
            16u * 256 * 1024);
}

TEST_P(ExportFilesTest, ConcatenatedGzipMembersAndTinyBuffers) {
  const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 3000);
  test::ExportWriterOptions o;
  o.files = 3;
  o.members_per_file = 7;
  auto w = write(items, o);
  ExportReadOptions options;
  options.chunk_bytes = 1000;  // chunk and text boundaries fall inside lines and gzip headers
  options.text_bytes = 333;
  auto files = open(w, options);
  auto all = read_all(*files, 97);
  ASSERT_EQ(all.size(), items.size());
  expect_same_items(all, items);
}

TEST_P(ExportFilesTest, EmptyFilesAndEmptyExports) {
  const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 3);
  test::ExportWriterOptions o;
  o.files = 5;  // two of the five data files hold no item (an empty gzip each)
  auto w = write(items, o);
  auto files = open(w);
  auto all = read_all(*files);
  expect_same_items(all, items);
  ASSERT_EQ(all.size(), 3u);
  // A zero-byte data file is an empty one too.
  std::vector<Item> none;
  test::ExportWriterOptions one;
  one.files = 1;
  auto empty = write(none, one);
  std::ofstream(empty.folder / empty.data_keys[0], std::ios::trunc).close();
  std::string manifest = test::read_bytes(empty.folder / "manifest-files.json");
  const std::string empty_md5 = test::md5_base64("");
  const auto at = manifest.find("\"md5Checksum\":\"") + 15;
  manifest.replace(at, manifest.find('"', at) - at, empty_md5);
  std::ofstream(empty.folder / "manifest-files.json", std::ios::trunc) << manifest;
  auto zero = open(empty);
  EXPECT_EQ(zero->item_count(), 0u);
  EXPECT_TRUE(read_all(*zero).empty());
}

TEST_P(ExportFilesTest, ResumeAtFileAndLineGivesExactlyTheRest) {
  const auto& items = fifty_thousand();
  auto w = write(items);
  auto files = open(w);
  // Read 1,234 items of file 3, keep the position as a resume token, start a new reader there.
  auto first = files->reader(3);
  std::vector<Item> head;
  auto r = first->read(1234, head);
  ASSERT_EQ(r.items, 1234u);
  EXPECT_FALSE(r.finished);
  const std::string token = encode_position(first->position());
  EXPECT_EQ(token, "3:1235");
  first.reset();

  auto resumed = files->reader(decode_position(token));
  std::vector<Item> tail;
  while (!resumed->read(1000, tail).finished) {
  }
  ASSERT_EQ(head.size() + tail.size(), 5000u);
  expect_same_items(head, items, w.first_item[3]);
  expect_same_items(tail, items, w.first_item[3] + 1234);

  // At the last line, and one past it (a file read to its end whose checkpoint came late).
  EXPECT_EQ(read_file(*files, 9, 1000, 5000).size(), 1u);
  EXPECT_TRUE(read_file(*files, 9, 1000, 5001).empty());
  try {
    read_file(*files, 9, 1000, 5003);
    FAIL();
  } catch (const ExportError& e) {
    EXPECT_EQ(std::string(e.what()),
              w.data_keys[9] + ": resume position line 5003 is past the end (5000 lines)");
  }
}

TEST_P(ExportFilesTest, FinishedIsKnownWithTheLastItem) {
  const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 100);
  test::ExportWriterOptions o;
  o.files = 1;
  auto w = write(items, o);
  auto files = open(w);
  auto reader = files->reader(0);
  std::vector<Item> out;
  auto r = reader->read(100, out);
  EXPECT_EQ(r.items, 100u);
  EXPECT_TRUE(r.finished);  // no extra empty read needed to learn the file is done
  EXPECT_EQ(r.next_line, 101u);
  r = reader->read(100, out);
  EXPECT_EQ(r.items, 0u);
  EXPECT_TRUE(r.finished);
}

TEST_P(ExportFilesTest, WrongMd5NamesTheFile) {
  const auto& items = fifty_thousand();
  test::ExportWriterOptions o;
  o.wrong_md5 = 4;
  auto w = write(items, o);
  auto files = open(w);
  const auto& f = files->files()[4];
  const std::string actual = test::md5_base64(test::read_bytes(data_path(w, 4)));
  EXPECT_EQ(first_error(*files), w.data_keys[4] + ": MD5 " + actual +
                                     " does not match manifest-files.json (line 5: " + f.md5_text +
                                     ")");
  // The files before it are fine; the damaged one fails only at its end, after its lines.
  EXPECT_EQ(read_file(*files, 3).size(), 5000u);
  auto reader = files->reader(4);
  std::vector<Item> out;
  EXPECT_FALSE(reader->read(4999, out).finished);
  EXPECT_THROW(reader->read(1, out), ExportError);
  EXPECT_THROW(reader->read(1, out), ExportError);  // and stays failed
}

TEST_P(ExportFilesTest, TruncatedGzipNamesFileAndLine) {
  const auto& items = fifty_thousand();
  test::ExportWriterOptions o;
  o.truncate = 2;
  auto w = write(items, o);
  auto files = open(w);
  const std::string text = test::gunzip_available(test::read_bytes(data_path(w, 2)));
  const auto complete_lines = std::count(text.begin(), text.end(), '\n');
  ASSERT_GT(complete_lines, 100);
  ASSERT_LT(complete_lines, 5000);
  EXPECT_EQ(first_error(*files), fmt::format("{}:{}: truncated gzip: the file ends inside a "
                                             "compressed stream",
                                             w.data_keys[2], complete_lines + 1));
  // Every complete line before the cut is delivered exactly; the cut shows as soon as the reader
  // looks past the last one.
  auto reader = files->reader(2);
  std::vector<Item> out;
  EXPECT_FALSE(reader->read(static_cast<std::size_t>(complete_lines) - 1, out).finished);
  expect_same_items(out, items, w.first_item[2]);
  EXPECT_THROW(reader->read(10, out), ExportError);
}

TEST_P(ExportFilesTest, LineThatIsNotDynamoDbJsonNamesFileAndLine) {
  const auto& items = fifty_thousand();
  test::ExportWriterOptions o;
  o.bad_line = {6, 1234};
  auto w = write(items, o);
  auto files = open(w);
  EXPECT_EQ(first_error(*files),
            w.data_keys[6] +
                ":1234: not a DynamoDB JSON item: malformed DynamoDB JSON: unknown type tag 'Q': "
                R"({"Item":{"PK":{"S":"x"},"n":{"Q":"1"}}})");
  // A resume past the bad line does not parse it again.
  EXPECT_EQ(read_file(*files, 6, 1000, 1235).size(), 5000u - 1234);
}

TEST_P(ExportFilesTest, ItemCountMismatchNamesTheFile) {
  const auto& items = fifty_thousand();
  test::ExportWriterOptions o;
  o.wrong_count = 1;
  auto w = write(items, o);
  auto files = open(w);
  EXPECT_EQ(files->item_count(), 50001u);
  EXPECT_EQ(first_error(*files),
            w.data_keys[1] + ": 5000 items, manifest-files.json says 5001 (line 2)");
}

// Lines that are not DynamoDB JSON, one per case.
TEST_P(ExportFilesTest, EveryKindOfBadLine) {
  const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 20);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hello", "not a JSON object: hello"},
      {R"({"Keys":{"PK":{"S":"x"}}})", R"(unexpected member "Keys": {"Keys":{"PK":{"S":"x"}}})"},
      {R"({"Item":{"PK":{"S":"x"}})", R"(malformed JSON: {"Item":{"PK":{"S":"x"}})"},
      {R"({"Item":{"PK":"x"}})",
       R"(malformed DynamoDB JSON: expected an attribute value object: {"Item":{"PK":"x"}})"},
      {R"({"Item":{"PK":{"S":"x"}}} {})", R"(text after the object: {"Item":{"PK":{"S":"x"}}} {})"},
      {R"({"Item":{"b":{"B":"%%%"}}})",
       R"(malformed DynamoDB JSON: invalid base64 in a binary value: {"Item":{"b":{"B":"%%%"}}})"},
      {"{}", R"(no "Item" member: {})"},
  };
  for (const auto& [line, why] : cases) {
    SCOPED_TRACE(line);
    test::ExportWriterOptions o;
    o.files = 2;
    o.bad_line = {1, 3};
    o.bad_line_text = line;
    auto w = write(items, o);
    auto files = open(w);
    EXPECT_EQ(first_error(*files), w.data_keys[1] + ":3: not a DynamoDB JSON item: " + why);
  }
}

// ---- manifests ---------------------------------------------------------------------------------

class ManifestTest : public ExportFilesTest {
 protected:
  // Writes a 3-file export, lets `edit` change a manifest's text, and returns open()'s error.
  std::string open_error(std::string_view manifest, const std::function<void(std::string&)>& edit) {
    const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 30);
    test::ExportWriterOptions o;
    o.files = 3;
    w_ = write(items, o);
    const auto path = w_.folder / std::string(manifest);
    std::string text = test::read_bytes(path);
    edit(text);
    std::ofstream(path, std::ios::trunc | std::ios::binary) << text;
    try {
      open(w_);
    } catch (const ExportError& e) {
      return e.what();
    }
    return "";
  }

  static void replace(std::string& text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  }

  test::WrittenExport w_;
};

INSTANTIATE_TEST_SUITE_P(Where, ManifestTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "S3" : "Local"; });

TEST_P(ManifestTest, FilesManifestErrorsNameTheLine) {
  EXPECT_EQ(
      open_error("manifest-files.json",
                 [](std::string& t) { replace(t, "\"itemCount\":10,", "\"itemCount\":-1,"); }),
      "manifest-files.json:1: itemCount must be a non-negative integer");
  EXPECT_EQ(open_error("manifest-files.json",
                       [](std::string& t) { t.insert(t.find('\n') + 1, "{not json}\n"); }),
            "manifest-files.json:2: not JSON (The JSON document has an improper structure: missing "
            "or superfluous commas, braces, missing keys, etc.): {not json}");
  std::string md5 = open_error("manifest-files.json", [](std::string& t) {
    replace(t, "\"md5Checksum\":\"", "\"md5Checksum\":\"zz");
  });
  EXPECT_EQ(md5, fmt::format(
                     "manifest-files.json:1: md5Checksum 'zz{}' is not an MD5 (base64 of 16 bytes)",
                     test::md5_base64(test::read_bytes(w_.folder / w_.data_keys[0]))));
  EXPECT_EQ(open_error("manifest-files.json",
                       [](std::string& t) { replace(t, ",\"dataFileS3Key\"", ",\"key\""); }),
            "manifest-files.json:1: dataFileS3Key is missing");
  EXPECT_EQ(open_error("manifest-files.json",
                       [](std::string& t) {
                         const auto first = t.find('\n');
                         t.erase(first + 1, t.find('\n', first + 1) - first);
                       }),
            "manifest-files.json: its 2 data files hold 20 items, manifest-summary.json says 30");
  std::string twice = open_error("manifest-files.json", [](std::string& t) {
    const auto first = t.find('\n');
    t += t.substr(0, first + 1);
    replace(t, "\"itemCount\":10,", "\"itemCount\":0,");
  });
  EXPECT_EQ(twice, "manifest-files.json:4: " + w_.data_keys[0] + " is listed twice");
  // Keys are taken from data/ on: an export copied elsewhere keeps its original keys.
  EXPECT_EQ(open_error("manifest-files.json",
                       [](std::string& t) {
                         replace(t, "\"dataFileS3Key\":\"", "\"dataFileS3Key\":\"old/");
                       }),
            "");
  std::string elsewhere = open_error("manifest-files.json",
                                     [](std::string& t) { replace(t, "/data/", "/elsewhere/"); });
  EXPECT_EQ(elsewhere,
            fmt::format("manifest-files.json:1: dataFileS3Key "
                        "'exports/app/AWSDynamoDB/{}/elsewhere/{}' is not a file under data/",
                        w_.export_id, w_.data_keys[0].substr(5)));
}

TEST_P(ManifestTest, MissingDataFile) {
  const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 30);
  test::ExportWriterOptions o;
  o.files = 3;
  auto w = write(items, o);
  std::filesystem::remove(w.folder / w.data_keys[1]);
  try {
    open(w);
    FAIL();
  } catch (const ExportError& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(msg.starts_with("manifest-files.json:2: " + w.data_keys[1] + " is not in ")) << msg;
    EXPECT_TRUE(msg.ends_with("/AWSDynamoDB/" + w.export_id + "/data/")) << msg;
  }
}

TEST_P(ManifestTest, SummaryChecks) {
  EXPECT_EQ(open_error("manifest-summary.json",
                       [](std::string& t) { replace(t, "\"DYNAMODB_JSON\"", "\"ION\""); }),
            "manifest-summary.json: outputFormat is ION; only DYNAMODB_JSON exports can be read");
  EXPECT_EQ(
      open_error("manifest-summary.json",
                 [](std::string& t) { replace(t, "\"FULL_EXPORT\"", "\"INCREMENTAL_EXPORT\""); }),
      "manifest-summary.json: exportType is INCREMENTAL_EXPORT; only full exports "
      "(FULL_EXPORT) can be read");
  EXPECT_EQ(
      open_error("manifest-summary.json",
                 [](std::string& t) { replace(t, "\"itemCount\":30", "\"itemCount\":\"30\""); }),
      "manifest-summary.json: itemCount must be a non-negative integer");
  EXPECT_EQ(
      open_error("manifest-summary.json",
                 [](std::string& t) { replace(t, ",\"outputFormat\":\"DYNAMODB_JSON\"", ""); }),
      "manifest-summary.json: outputFormat is missing");
  EXPECT_EQ(open_error("manifest-summary.json", [](std::string& t) { t = "[1,2]"; }),
            "manifest-summary.json: not a JSON object");
}

TEST_P(ManifestTest, NotAnExportFolder) {
  const std::vector<Item> items(fifty_thousand().begin(), fifty_thousand().begin() + 3);
  test::ExportWriterOptions o;
  o.files = 1;
  auto w = write(items, o);
  std::filesystem::remove(w.folder / "manifest-summary.json");
  try {
    open(w);
    FAIL();
  } catch (const ExportError& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(msg.starts_with("manifest-summary.json: not found in ")) << msg;
    EXPECT_TRUE(
        msg.ends_with("(export: names the folder AWSDynamoDB/<export-id>/ of a DynamoDB "
                      "export)"))
        << msg;
  }
}

// ---- no server needed --------------------------------------------------------------------------

TEST(ExportPositions, RoundTripAndMalformedTokens) {
  EXPECT_EQ(encode_position({3, 1235}), "3:1235");
  EXPECT_EQ(decode_position("3:1235"), (ExportPosition{3, 1235}));
  EXPECT_EQ(decode_position(encode_position({0, 1})), (ExportPosition{0, 1}));
  for (const char* bad : {"", "3", "3:", ":5", "a:1", "3:0", "3:1x", "-1:2"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(decode_position(bad), ExportError);
  }
}

TEST(ExportLocations, LocalAndS3) {
  auto local = ExportLocation::parse("/tmp/exp/AWSDynamoDB/0170-ab/");
  EXPECT_FALSE(local.is_s3());
  EXPECT_EQ(local.folder, "/tmp/exp/AWSDynamoDB/0170-ab");
  EXPECT_EQ(local.describe("data/x.json.gz"), "/tmp/exp/AWSDynamoDB/0170-ab/data/x.json.gz");
  EXPECT_EQ(ExportLocation::parse("/tmp/e/manifest-summary.json").folder, "/tmp/e");
  auto s3 = ExportLocation::parse("s3://bucket/p/AWSDynamoDB/0170-ab");
  ASSERT_TRUE(s3.is_s3());
  EXPECT_EQ(s3.s3->bucket, "bucket");
  EXPECT_EQ(s3.s3->key, "p/AWSDynamoDB/0170-ab/");
  EXPECT_EQ(s3.describe("data/x"), "s3://bucket/p/AWSDynamoDB/0170-ab/data/x");
  EXPECT_EQ(ExportLocation::parse("s3://bucket/p/manifest-summary.json").s3->key, "p/");
  EXPECT_EQ(ExportLocation::parse("s3://bucket").s3->key, "");
  EXPECT_THROW(ExportLocation::parse("s3://B/x"), UsageError);
  EXPECT_THROW(ExportFiles::open(s3), UsageError);  // an S3 location needs a client
}

}  // namespace
