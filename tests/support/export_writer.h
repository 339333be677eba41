// Writes a DynamoDB export in DYNAMODB_JSON format from a list of items, laid out as
// ExportTableToPointInTime does (AWSDynamoDB/<export-id>/manifest-summary.json,
// manifest-files.json, data/<name>.json.gz with base64 MD5s), optionally damaged in one chosen
// way, and uploads it to S3. For tests; thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/s3.h"

namespace dynamorph::test {

struct ExportWriterOptions {
  int files = 10;                         // items are split into this many data files, in order
  std::string export_id;                  // empty: a random one shaped like DynamoDB's
  std::string s3_prefix = "exports/app";  // the export prefix written in the manifests' keys
  int members_per_file = 1;  // > 1: each data file is that many concatenated gzip members
  // Damage (data file indexes are 0-based, lines 1-based):
  std::optional<int> wrong_md5;  // manifest-files.json gives another file's MD5
  std::optional<int> truncate;   // the gzip stops halfway (its MD5 is of what is left)
  std::optional<std::pair<int, std::uint64_t>> bad_line;  // that line becomes bad_line_text
  std::string bad_line_text = R"({"Item":{"PK":{"S":"x"},"n":{"Q":"1"}}})";
  std::optional<int> wrong_count;  // manifest-files.json says one item more (summary agrees)
};

struct WrittenExport {
  std::filesystem::path folder;  // <root>/AWSDynamoDB/<export-id>
  std::string export_id;
  std::vector<std::string> data_keys;    // "data/<name>.json.gz", in manifest order
  std::vector<std::size_t> first_item;   // index in the items of each file's first item
  std::vector<std::size_t> item_counts;  // items in each file
};

WrittenExport write_export(const std::filesystem::path& root,
                           const std::vector<dynamo::Item>& items,
                           const ExportWriterOptions& options = {});

// Puts every file of the export under s3://bucket/<prefix>/AWSDynamoDB/<export-id>/ and returns
// that folder's URL.
std::string upload_export(dynamo::S3Client& s3, const WrittenExport& written,
                          const std::string& bucket, const std::string& prefix);

// `n` items with every attribute type, keyed PK = "ITEM#<i>", the same for the same seed.
std::vector<dynamo::Item> sample_items(std::size_t n, unsigned seed = 1);

// One gzip member holding `text`.
std::string gzip(std::string_view text);
// Everything that decompresses from `bytes`, a gzip that may be cut short or hold several members.
std::string gunzip_available(std::string_view bytes);
// Base64 of the MD5 of `bytes`, as md5Checksum holds it.
std::string md5_base64(std::string_view bytes);
// A file's bytes.
std::string read_bytes(const std::filesystem::path& path);

// A fresh folder under the build tree for this test process; removed by the caller.
std::filesystem::path scratch_dir(const std::string& name);

}  // namespace dynamorph::test
