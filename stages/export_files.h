// Reading a DynamoDB export to S3 in DYNAMODB_JSON format — manifest-summary.json,
// manifest-files.json and data/*.json.gz — from a local folder or an s3:// URL, independent of
// any pipeline. ExportFiles reads and checks both manifests once; an ExportFileReader streams one
// data file (gzip, concatenated members allowed) in bounded chunks, parses each line
// {"Item":{…}} and, at the end of the file, checks the MD5 of the compressed bytes and the line
// count against manifest-files.json. Positions are 1-based line numbers of the decompressed
// file, so a resume restarts at file + line (the file is decompressed again from its start and
// the lines before are skipped unparsed).
//
// Threading: ExportFiles is immutable after open() and may be shared by every thread. An
// ExportFileReader belongs to one thread at a time. Both block on file or S3 I/O (synchronous
// S3Client calls): use them on a reader thread, never on a TBB worker or the transport's I/O
// thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/errors.h"
#include "dynamo/s3.h"

namespace dynamorph::stages {

// Every failure of an export: a manifest that is malformed or does not add up, a missing file,
// an MD5 or item count that does not match the manifest, a truncated or corrupt gzip, a line that
// is not DynamoDB JSON, an S3 error. what() names the file, and the line where there is one:
//   manifest-files.json:3: itemCount must be a non-negative integer
//   data/k3bm….json.gz:1234: not a DynamoDB JSON item: malformed DynamoDB JSON: …: {"Item":{"PK…
//   data/k3bm….json.gz: MD5 1B2M2Y8AsgTpgAmY7PhCfg== does not match manifest-files.json (line 3:
//   sQMSpEILNgoQmarvDFonGQ==)
// A run that meets one stops (exit 1): the export cannot be trusted past it.
class ExportError : public Error {
 public:
  using Error::Error;
};

// The export's folder: the one holding manifest-summary.json (…/AWSDynamoDB/<export-id>/).
struct ExportLocation {
  std::string folder;               // local folder, without trailing '/'; empty for S3
  std::optional<dynamo::S3Url> s3;  // bucket and the folder's key prefix, ending in '/'

  // A local path or s3://bucket/prefix; a path or URL naming manifest-summary.json itself means
  // its folder. Throws UsageError for a malformed s3:// URL.
  static ExportLocation parse(std::string_view dir_or_url);
  bool is_s3() const { return s3.has_value(); }
  // Where `relative` (e.g. "data/x.json.gz") lives: "/exports/…/data/x.json.gz" or
  // "s3://bucket/…/data/x.json.gz".
  std::string describe(std::string_view relative = {}) const;
};

// What manifest-summary.json says.
struct ExportSummary {
  std::string version;  // "2020-06-30"
  std::string export_arn;
  std::string table_arn;
  std::string export_time;    // ISO-8601
  std::string export_type;    // "FULL_EXPORT" (or empty in older exports)
  std::string output_format;  // "DYNAMODB_JSON"
  std::string manifest_files_key;
  std::uint64_t item_count = 0;
};

// One line of manifest-files.json.
struct ExportDataFile {
  std::string key;     // relative to the export folder: "data/<name>.json.gz"
  std::string s3_key;  // dataFileS3Key as written
  std::uint64_t item_count = 0;
  std::string md5;         // the 16 bytes of md5Checksum (base64 in real exports; hex accepted)
  std::string md5_text;    // md5Checksum as written
  std::string etag;        // as written; not checked (multipart uploads have no plain MD5 ETag)
  std::uint64_t size = 0;  // compressed bytes, from the folder's listing at open
  int manifest_line = 0;   // its line in manifest-files.json
};

struct ExportReadOptions {
  std::size_t chunk_bytes = 4u << 20;      // compressed bytes per local read or ranged GetObject
  std::size_t text_bytes = 1u << 20;       // decompressed bytes inflated at a time
  std::size_t max_line_bytes = 16u << 20;  // longer is not an item (DynamoDB caps them at 400 KB)
};

// A resume token's content: the data file and the next line to read in it (1-based).
struct ExportPosition {
  std::size_t file = 0;
  std::uint64_t line = 1;
  bool operator==(const ExportPosition&) const = default;
};
std::string encode_position(ExportPosition position);    // "3:1201"
ExportPosition decode_position(std::string_view token);  // throws ExportError when malformed

struct ExportReadResult {
  std::size_t items = 0;        // items appended (one per line read)
  bool finished = false;        // the file is read to its end and checked
  std::uint64_t next_line = 1;  // where a resume continues
};

class ExportFileReader;

class ExportFiles : public std::enable_shared_from_this<ExportFiles> {
 public:
  // Reads and checks both manifests and finds every data file they list (one listing of
  // data/ on S3, a stat per file locally). An s3:// location needs `s3`. Throws ExportError.
  static std::shared_ptr<const ExportFiles> open(ExportLocation location,
                                                 std::shared_ptr<dynamo::S3Client> s3 = nullptr,
                                                 ExportReadOptions options = {});

  const ExportLocation& location() const { return location_; }
  const ExportSummary& summary() const { return summary_; }
  const std::vector<ExportDataFile>& files() const { return files_; }
  std::uint64_t item_count() const { return summary_.item_count; }
  const ExportReadOptions& options() const { return options_; }

  // A reader of data file `index` that starts at `start_line` (1 = the beginning; one past the
  // last line gives a reader that only checks the file). Opens the file (no read yet).
  std::unique_ptr<ExportFileReader> reader(std::size_t index, std::uint64_t start_line = 1) const;
  std::unique_ptr<ExportFileReader> reader(ExportPosition position) const {
    return reader(position.file, position.line);
  }

 private:
  ExportFiles() = default;
  friend class ExportFileReader;

  ExportLocation location_;
  std::shared_ptr<dynamo::S3Client> s3_;
  ExportReadOptions options_;
  ExportSummary summary_;
  std::vector<ExportDataFile> files_;
};

// Streams one data file. Memory stays O(chunk_bytes + text_bytes + longest line) whatever the
// file's size.
class ExportFileReader {
 public:
  ~ExportFileReader();
  ExportFileReader(const ExportFileReader&) = delete;
  ExportFileReader& operator=(const ExportFileReader&) = delete;

  // Appends up to `max_items` items of the lines from position() on to `out`. When the end of
  // the file is reached (in this call, or found right after its last item), the MD5 and the
  // line count are checked and the result says finished. Throws ExportError; the items this
  // call appended before the throw must then be dropped, and the reader is not usable again.
  ExportReadResult read(std::size_t max_items, std::vector<dynamo::Item>& out);

  ExportPosition position() const { return {index_, next_line_}; }
  bool finished() const { return finished_; }
  const ExportDataFile& file() const;
  // Largest bytes held in buffers so far (compressed chunk + text), for tests of the O(chunk)
  // bound.
  std::size_t buffered_high_water() const { return high_water_; }

 private:
  friend class ExportFiles;
  struct Impl;
  ExportFileReader(std::shared_ptr<const ExportFiles> files, std::size_t index,
                   std::uint64_t start_line);

  std::shared_ptr<const ExportFiles> files_;
  std::size_t index_;
  std::uint64_t start_line_;
  std::uint64_t next_line_;
  bool finished_ = false;
  bool failed_ = false;
  std::size_t high_water_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamorph::stages
