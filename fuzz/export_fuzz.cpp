// libFuzzer target for the export-file parser (stages/export_files.*): both manifests, the
// gzip data files and their lines, resume positions and locations.
//
// Input: one mode byte, then (mode % 4)
//   0  manifest-summary.json, a 0x01 byte, manifest-files.json (data/a.json.gz exists, empty);
//   1  reader settings (chunk bytes, text bytes, items per read, resume line, two gzip members
//      or one), then the decompressed data file: the target gzips it and writes manifests that
//      match it, so the lines themselves are what is fuzzed;
//   2  the compressed data file as is, with manifests that match its MD5;
//   3  a resume token, a newline, an export location.
// Only ExportError (and UsageError for a location) may be thrown. A data file that reads to its
// end gives one item per line, and a reader resumed at line k gives the items from line k on.
#include <openssl/evp.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dynamo/json.h"
#include "fuzz/fuzz_support.h"
#include "stages/export_files.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::stages;

constexpr const char* kTarget = "export_fuzz";

const std::string& folder() {
  static const std::string dir = [] {
    std::filesystem::create_directories(fuzz::scratch_dir() + "/export/data");
    return fuzz::scratch_dir() + "/export";
  }();
  return dir;
}

std::string gzip(std::string_view text) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fuzz::finding(kTarget, "zlib setup failed");
  std::string out(deflateBound(&zs, text.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) fuzz::finding(kTarget, "gzip failed");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string md5_base64(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_md5(), nullptr);
  std::string out;
  dynamo::base64_encode(out, std::string_view(reinterpret_cast<const char*>(digest), length));
  return out;
}

void write_manifests(std::string_view summary, std::string_view files) {
  fuzz::write_file(folder() + "/manifest-summary.json", summary);
  fuzz::write_file(folder() + "/manifest-files.json", files);
}

// Manifests listing one data file data/a.json.gz holding `compressed`, `items` lines.
void write_export(const std::string& compressed, std::uint64_t items) {
  fuzz::write_file(folder() + "/data/a.json.gz", compressed);
  write_manifests(
      R"({"version":"2020-06-30","outputFormat":"DYNAMODB_JSON","exportType":"FULL_EXPORT",)"
      R"("itemCount":)" + std::to_string(items) + "}",
      R"({"itemCount":)" + std::to_string(items) + R"(,"md5Checksum":")" + md5_base64(compressed) +
          R"(","etag":"e","dataFileS3Key":"AWSDynamoDB/x/data/a.json.gz"})" "\n");
}

// Every item of data file 0 from `start_line` on, `per_read` at a time; nullopt on ExportError.
std::optional<std::vector<dynamo::Item>> read_all(const ExportReadOptions& options,
                                                  std::uint64_t start_line, std::size_t per_read) {
  std::vector<dynamo::Item> items;
  try {
    auto files = ExportFiles::open(ExportLocation::parse(folder()), nullptr, options);
    for (std::size_t f = 0; f < files->files().size(); ++f) {
      auto reader = files->reader(f, f == 0 ? start_line : 1);
      for (int reads = 0; !reader->read(per_read, items).finished; ++reads) {
        if (reads > 1000000) fuzz::finding(kTarget, "a reader never finishes");
      }
    }
  } catch (const ExportError&) {
    return std::nullopt;
  }
  return items;
}

// Lines as the reader counts them: '\n'-separated, a last line without '\n' included.
std::uint64_t count_lines(std::string_view text) {
  std::uint64_t n = 0;
  for (const char c : text) n += c == '\n';
  return n + (!text.empty() && text.back() != '\n');
}

void check_lines(fuzz::Input& in) {
  ExportReadOptions options;
  options.chunk_bytes = 1 + in.byte() % 64;
  options.text_bytes = 1 + in.byte() % 64;
  options.max_line_bytes = 4096;
  const std::size_t per_read = 1 + in.byte() % 8;
  const std::uint64_t resume = 1 + in.byte() % 8;
  const bool two_members = in.byte() & 1;
  const std::string_view text = in.rest();
  const std::size_t half = text.size() / 2;
  const std::string compressed =
      two_members ? gzip(text.substr(0, half)) + gzip(text.substr(half)) : gzip(text);
  const std::uint64_t lines = count_lines(text);
  write_export(compressed, lines);
  const auto all = read_all(options, 1, per_read);
  if (!all) return;
  if (all->size() != lines) fuzz::finding(kTarget, "a file read to its end gives another item count");
  if (resume > lines + 1) return;
  const auto tail = read_all(options, resume, per_read);
  if (!tail) fuzz::finding(kTarget, "a resumed reader fails where a whole read did not");
  if (!std::equal(tail->begin(), tail->end(), all->begin() + static_cast<std::ptrdiff_t>(resume - 1),
                  all->end()))
    fuzz::finding(kTarget, "a resumed reader gives other items");
}

void check_token_and_location(fuzz::Input& in) {
  const std::string_view token = in.field('\n');
  try {
    const ExportPosition p = decode_position(token);
    if (!(decode_position(encode_position(p)) == p))
      fuzz::finding(kTarget, "a resume token does not decode back");
  } catch (const ExportError&) {
  }
  try {
    const ExportLocation where = ExportLocation::parse(in.rest());
    (void)where.describe("data/a.json.gz");
  } catch (const UsageError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  switch (in.byte() % 4) {
    case 0: {
      const std::string_view summary = in.field('\x01');
      write_manifests(summary, in.rest());
      fuzz::write_file(folder() + "/data/a.json.gz", "");
      (void)read_all(ExportReadOptions{}, 1, 100);
      break;
    }
    case 1: check_lines(in); break;
    case 2: {
      const std::uint64_t items = in.byte() % 4;
      write_export(std::string(in.rest()), items);
      ExportReadOptions options;
      options.chunk_bytes = 7;
      options.text_bytes = 5;
      (void)read_all(options, 1, 3);
      break;
    }
    default: check_token_and_location(in); break;
  }
  return 0;
}
