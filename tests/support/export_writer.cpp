#include "tests/support/export_writer.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <atomic>
#include <fstream>
#include <random>
#include <stdexcept>

#include "dynamo/json.h"
#include "tests/support/test_env.h"

namespace dynamorph::test {
namespace {

using dynamo::AttributeValue;
using dynamo::Item;

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  std::string out;
  for (unsigned i = 0; i < length; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string random_name(std::mt19937_64& gen, std::size_t length, std::string_view alphabet) {
  std::string out;
  for (std::size_t i = 0; i < length; ++i) out.push_back(alphabet[gen() % alphabet.size()]);
  return out;
}

}  // namespace

std::string gzip(std::string_view text) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

std::string md5_base64(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  std::string out;
  dynamo::base64_encode(out, std::string_view(reinterpret_cast<const char*>(digest), length));
  return out;
}

std::string gunzip_available(std::string_view bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) throw std::runtime_error("inflateInit2 failed");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  char buffer[65536];
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof buffer;
    const int rc = inflate(&zs, Z_SYNC_FLUSH);
    out.append(buffer, sizeof buffer - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);
    } else if (rc != Z_OK) {
      break;  // cut short (Z_BUF_ERROR) or damaged: what came out so far is the answer
    }
  }
  inflateEnd(&zs);
  return out;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(DYNAMORPH_BINARY_DIR) / "test-scratch" / unique_name(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

WrittenExport write_export(const std::filesystem::path& root, const std::vector<Item>& items,
                           const ExportWriterOptions& options) {
  static std::atomic<unsigned> calls{0};
  std::mt19937_64 gen(std::random_device{}() ^ (calls++ * 0x9E3779B97F4A7C15ull));
  WrittenExport w;
  w.export_id = !options.export_id.empty()
                    ? options.export_id
                    : fmt::format("{:014d}-{}", 1700000000000 + gen() % 100000000000,
                                  random_name(gen, 8, "0123456789abcdef"));
  w.folder = root / "AWSDynamoDB" / w.export_id;
  const std::string key_base = fmt::format("{}{}AWSDynamoDB/{}/", options.s3_prefix,
                                           options.s3_prefix.empty() ? "" : "/", w.export_id);
  const int nfiles = std::max(options.files, 1);
  std::string manifest_files;
  std::uint64_t manifest_total = 0;
  for (int f = 0; f < nfiles; ++f) {
    const std::size_t begin = items.size() * static_cast<std::size_t>(f) / nfiles;
    const std::size_t end = items.size() * static_cast<std::size_t>(f + 1) / nfiles;
    w.first_item.push_back(begin);
    w.item_counts.push_back(end - begin);
    std::vector<std::string> lines;
    for (std::size_t i = begin; i < end; ++i) {
      std::string line = "{\"Item\":";
      dynamo::write_item(line, items[i]);
      line += "}\n";
      lines.push_back(std::move(line));
    }
    if (options.bad_line && options.bad_line->first == f) {
      const std::uint64_t at = options.bad_line->second;
      if (at == 0 || at > lines.size()) throw std::runtime_error("bad_line outside the file");
      lines[at - 1] = options.bad_line_text + "\n";
    }
    // Members split the lines evenly (the last member takes the rest).
    std::string bytes;
    const int members = std::max(options.members_per_file, 1);
    for (int m = 0; m < members; ++m) {
      const std::size_t lb = lines.size() * static_cast<std::size_t>(m) / members;
      const std::size_t le = lines.size() * static_cast<std::size_t>(m + 1) / members;
      std::string text;
      for (std::size_t i = lb; i < le; ++i) text += lines[i];
      if (text.empty() && m > 0) continue;
      bytes += gzip(text);
    }
    if (lines.empty()) bytes = gzip("");  // DynamoDB writes an empty gzip for an empty partition
    if (options.truncate && *options.truncate == f) bytes.resize(bytes.size() / 2);

    const std::string key =
        "data/" + random_name(gen, 26, "abcdefghijklmnopqrstuvwxyz234567") + ".json.gz";
    w.data_keys.push_back(key);
    write_file(w.folder / key, bytes);
    std::string md5 = md5_base64(bytes);
    if (options.wrong_md5 && *options.wrong_md5 == f) md5 = md5_base64(bytes + "x");
    std::uint64_t count = lines.size();
    if (options.wrong_count && *options.wrong_count == f) ++count;
    manifest_total += count;
    manifest_files +=
        fmt::format(R"({{"itemCount":{},"md5Checksum":"{}","etag":"{}-1","dataFileS3Key":"{}{}"}})"
                    "\n",
                    count, md5, md5_hex(bytes), key_base, key);
  }
  write_file(w.folder / "manifest-files.json", manifest_files);
  const std::string summary = fmt::format(
      R"({{"version":"2020-06-30","exportArn":"arn:aws:dynamodb:us-east-1:123456789012:table/app/export/{0}",)"
      R"("startTime":"2024-05-17T13:00:00.000Z","endTime":"2024-05-17T13:05:00.000Z",)"
      R"("tableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/app","tableId":"12345a12-abcd-123a-ab12-1234abc12345",)"
      R"("exportTime":"2024-05-17T13:00:00.000Z","s3Bucket":"source-bucket","s3Prefix":"{1}",)"
      R"("s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"{2}manifest-files.json",)"
      R"("billedSizeBytes":{3},"itemCount":{4},"outputFormat":"DYNAMODB_JSON","exportType":"FULL_EXPORT"}})",
      w.export_id, options.s3_prefix, key_base, manifest_files.size() * 10, manifest_total);
  write_file(w.folder / "manifest-summary.json", summary);
  write_file(w.folder / "manifest-summary.checksum", md5_hex(summary));
  write_file(w.folder / "manifest-files.checksum", md5_hex(manifest_files));
  write_file(w.folder / "_started", "");
  return w;
}

std::string upload_export(dynamo::S3Client& s3, const WrittenExport& written,
                          const std::string& bucket, const std::string& prefix) {
  const std::string base =
      fmt::format("{}{}AWSDynamoDB/{}/", prefix, prefix.empty() ? "" : "/", written.export_id);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(written.folder)) {
    if (!entry.is_regular_file()) continue;
    std::string bytes = read_bytes(entry.path());
    const std::string key =
        base + std::filesystem::relative(entry.path(), written.folder).generic_string();
    auto r = s3.put_object(bucket, key, std::move(bytes));
    if (!r) throw std::runtime_error(r.error().to_string());
  }
  return fmt::format("s3://{}/{}", bucket, base);
}

std::vector<Item> sample_items(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  const auto num = [](std::string text) { return dynamo::Number::from_canonical(std::move(text)); };
  std::vector<Item> items;
  items.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned r = gen();
    Item item;
    item.append("PK", AttributeValue(fmt::format("ITEM#{:07d}", i)));
    item.append("SK", AttributeValue(r % 5 == 0 ? std::string("PROFILE")
                                                : fmt::format("ORDER#{}", r % 1000)));
    item.append("name", AttributeValue(fmt::format("user {} \"q\" \\ é ☃ \t{}", r % 97, i)));
    item.append("count", AttributeValue(num(std::to_string(static_cast<int>(r % 100000) - 5000))));
    if (i % 2 == 0)
      item.append("price", AttributeValue(num(fmt::format("{}.{}", r % 1000, r % 9 + 1))));
    if (i % 3 == 0)
      item.append("blob", AttributeValue(
                              dynamo::Binary{std::string("\x00\xff\x10", 3) + std::to_string(r)}));
    if (i % 4 == 0) item.append("active", AttributeValue(r % 2 == 0));
    if (i % 5 == 0) item.append("gone", AttributeValue(dynamo::Null{}));
    if (i % 6 == 0) {
      dynamo::Map m;
      m.append("city", AttributeValue(std::string("Zürich")));
      m.append("zip", AttributeValue(num(std::to_string(8000 + r % 100))));
      m.append("tags", AttributeValue(dynamo::List{AttributeValue("a"), AttributeValue(num("1")),
                                                   AttributeValue(dynamo::Map{})}));
      item.append("address", AttributeValue(std::move(m)));
    }
    if (i % 7 == 0)
      item.append("ss", AttributeValue(dynamo::StringSet{"x", "y", std::to_string(r % 10)}));
    if (i % 8 == 0)
      item.append("ns", AttributeValue(dynamo::NumberSet{num("1"), num("2.5"),
                                                         num(std::to_string(r % 50 + 3))}));
    if (i % 9 == 0)
      item.append("bs", AttributeValue(dynamo::BinarySet{dynamo::Binary{"\x01"},
                                                         dynamo::Binary{std::to_string(r)}}));
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace dynamorph::test
