#include "stages/export_files.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <simdjson.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "dynamo/json.h"

namespace dynamorph::stages {
namespace {

constexpr std::string_view kSummary = "manifest-summary.json";
constexpr std::string_view kFiles = "manifest-files.json";

std::string excerpt(std::string_view text, std::size_t max = 80) {
  std::string out;
  for (const char c : text.substr(0, max)) {
    out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  }
  if (text.size() > max) out += "…";
  return out;
}

std::optional<std::string> md5_from_text(std::string_view text) {
  std::string bytes;
  if (text.size() == 32) {  // hex, as some tools write it
    bool ok = true;
    for (std::size_t i = 0; i < 32 && ok; i += 2) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(text.data() + i, text.data() + i + 2, v, 16);
      ok = ec == std::errc() && p == text.data() + i + 2;
      bytes.push_back(static_cast<char>(v));
    }
    if (ok) return bytes;
    bytes.clear();
  }
  if (dynamo::base64_decode(bytes, text) && bytes.size() == 16) return bytes;
  return std::nullopt;
}

std::string base64(std::string_view bytes) {
  std::string out;
  dynamo::base64_encode(out, bytes);
  return out;
}

// The data file's path relative to the export folder. Real exports name the whole S3 key
// (prefix/AWSDynamoDB/<id>/data/x.json.gz); a copied export keeps those names, so only the part
// from data/ on is trusted.
std::optional<std::string> relative_data_key(std::string_view s3_key) {
  if (s3_key.starts_with("data/")) return std::string(s3_key);
  const std::size_t at = s3_key.rfind("/data/");
  if (at == std::string_view::npos) return std::nullopt;
  std::string rel(s3_key.substr(at + 1));
  if (rel.size() <= 5) return std::nullopt;
  return rel;
}

std::string read_local(const std::string& path, std::string_view display) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ExportError(fmt::format("{}: cannot open {}", display, path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ExportError(fmt::format("{}: cannot read {}", display, path));
  return text;
}

// The text of a manifest, locally or from S3.
std::string read_manifest(const ExportLocation& where, dynamo::S3Client* s3,
                          std::string_view name) {
  if (!where.is_s3()) {
    const std::string path = where.describe(name);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw ExportError(fmt::format(
          "{}: not found in {} (export: names the folder AWSDynamoDB/<export-id>/ of a DynamoDB "
          "export)",
          name, where.folder));
    }
    return read_local(path, name);
  }
  auto r = s3->get_object(where.s3->bucket, where.s3->key + std::string(name));
  if (!r) {
    if (r.error().type == "NoSuchKey" || r.error().type == "NotFound") {
      throw ExportError(fmt::format(
          "{}: not found in {} (export: names the folder AWSDynamoDB/<export-id>/ of a DynamoDB "
          "export)",
          name, where.describe()));
    }
    throw ExportError(fmt::format("{}: {}", name, r.error().to_string()));
  }
  return std::move(r.value().body);
}

// simdjson DOM helpers with messages a user can act on.
std::string_view string_field(simdjson::dom::object obj, std::string_view field,
                              const std::string& where, bool required) {
  simdjson::dom::element e;
  if (obj[field].get(e) != simdjson::SUCCESS || e.is_null()) {
    if (required) throw ExportError(fmt::format("{}: {} is missing", where, field));
    return {};
  }
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) {
    throw ExportError(fmt::format("{}: {} must be a string", where, field));
  }
  return s;
}

std::uint64_t count_field(simdjson::dom::object obj, std::string_view field,
                          const std::string& where) {
  simdjson::dom::element e;
  if (obj[field].get(e) != simdjson::SUCCESS) {
    throw ExportError(fmt::format("{}: {} is missing", where, field));
  }
  std::uint64_t v = 0;
  if (e.get_uint64().get(v) != simdjson::SUCCESS) {
    throw ExportError(fmt::format("{}: {} must be a non-negative integer", where, field));
  }
  return v;
}

ExportSummary parse_summary(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (auto err = parser.parse(text).get(root); err != simdjson::SUCCESS) {
    throw ExportError(fmt::format("{}: not JSON ({})", kSummary, simdjson::error_message(err)));
  }
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    throw ExportError(fmt::format("{}: not a JSON object", kSummary));
  }
  const std::string where(kSummary);
  ExportSummary s;
  s.version = std::string(string_field(obj, "version", where, false));
  s.export_arn = std::string(string_field(obj, "exportArn", where, false));
  s.table_arn = std::string(string_field(obj, "tableArn", where, false));
  s.export_time = std::string(string_field(obj, "exportTime", where, false));
  s.export_type = std::string(string_field(obj, "exportType", where, false));
  s.output_format = std::string(string_field(obj, "outputFormat", where, true));
  s.manifest_files_key = std::string(string_field(obj, "manifestFilesS3Key", where, false));
  s.item_count = count_field(obj, "itemCount", where);
  if (s.output_format != "DYNAMODB_JSON") {
    throw ExportError(fmt::format("{}: outputFormat is {}; only DYNAMODB_JSON exports can be read",
                                  kSummary, s.output_format));
  }
  if (!s.export_type.empty() && s.export_type != "FULL_EXPORT") {
    throw ExportError(
        fmt::format("{}: exportType is {}; only full exports (FULL_EXPORT) can be read", kSummary,
                    s.export_type));
  }
  return s;
}

std::vector<ExportDataFile> parse_files(const std::string& text) {
  simdjson::dom::parser parser;
  std::vector<ExportDataFile> files;
  std::set<std::string> seen;
  int line_no = 0;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string where = fmt::format("{}:{}", kFiles, line_no);
    simdjson::dom::element root;
    simdjson::dom::object obj;
    if (auto err = parser.parse(line.data(), line.size()).get(root); err != simdjson::SUCCESS) {
      throw ExportError(
          fmt::format("{}: not JSON ({}): {}", where, simdjson::error_message(err), excerpt(line)));
    }
    if (root.get_object().get(obj) != simdjson::SUCCESS) {
      throw ExportError(fmt::format("{}: not a JSON object: {}", where, excerpt(line)));
    }
    ExportDataFile f;
    f.manifest_line = line_no;
    f.s3_key = std::string(string_field(obj, "dataFileS3Key", where, true));
    f.item_count = count_field(obj, "itemCount", where);
    f.md5_text = std::string(string_field(obj, "md5Checksum", where, true));
    f.etag = std::string(string_field(obj, "etag", where, false));
    auto md5 = md5_from_text(f.md5_text);
    if (!md5) {
      throw ExportError(fmt::format("{}: md5Checksum '{}' is not an MD5 (base64 of 16 bytes)",
                                    where, excerpt(f.md5_text)));
    }
    f.md5 = std::move(*md5);
    auto rel = relative_data_key(f.s3_key);
    if (!rel || rel->find("..") != std::string::npos) {
      throw ExportError(fmt::format("{}: dataFileS3Key '{}' is not a file under data/", where,
                                    excerpt(f.s3_key, 200)));
    }
    f.key = std::move(*rel);
    if (!seen.insert(f.key).second) {
      throw ExportError(fmt::format("{}: {} is listed twice", where, f.key));
    }
    files.push_back(std::move(f));
  }
  return files;
}

// ---- byte sources -----------------------------------------------------------------------------

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // Replaces `chunk` with the next bytes of the file; false at its end.
  virtual bool next(std::string& chunk) = 0;
};

class LocalChunks final : public ChunkSource {
 public:
  LocalChunks(const std::string& path, const std::string& key, std::size_t chunk_bytes)
      : key_(key), chunk_bytes_(chunk_bytes), file_(std::fopen(path.c_str(), "rb")) {
    if (file_ == nullptr) throw ExportError(fmt::format("{}: cannot open {}", key, path));
  }
  ~LocalChunks() override { std::fclose(file_); }

  bool next(std::string& chunk) override {
    chunk.resize(chunk_bytes_);
    const std::size_t n = std::fread(chunk.data(), 1, chunk.size(), file_);
    chunk.resize(n);
    if (n == 0 && std::ferror(file_)) throw ExportError(fmt::format("{}: read error", key_));
    return n > 0;
  }

 private:
  std::string key_;
  std::size_t chunk_bytes_;
  std::FILE* file_;
};

class S3Chunks final : public ChunkSource {
 public:
  S3Chunks(dynamo::S3Client& s3, std::string bucket, std::string key, const ExportDataFile& file,
           std::size_t chunk_bytes)
      : s3_(s3),
        bucket_(std::move(bucket)),
        key_(std::move(key)),
        file_(file),
        chunk_bytes_(chunk_bytes) {}

  bool next(std::string& chunk) override {
    if (offset_ >= file_.size) return false;
    const std::uint64_t last = std::min<std::uint64_t>(offset_ + chunk_bytes_, file_.size) - 1;
    auto r = s3_.get_object_range(bucket_, key_, offset_, last, etag_);
    if (!r) {
      if (r.error().type == "PreconditionFailed") {
        throw ExportError(fmt::format("{}: the object changed while it was read", file_.key));
      }
      throw ExportError(fmt::format("{}: {}", file_.key, r.error().to_string()));
    }
    if (r.value().object_size != file_.size) {
      throw ExportError(
          fmt::format("{}: the object changed while it was read ({} bytes, {} when "
                      "listed)",
                      file_.key, r.value().object_size, file_.size));
    }
    if (r.value().body.empty()) {
      throw ExportError(fmt::format("{}: empty answer for bytes {}-{}", file_.key, offset_, last));
    }
    if (etag_.empty()) etag_ = r.value().etag;
    chunk = std::move(r.value().body);
    offset_ += chunk.size();
    return true;
  }

 private:
  dynamo::S3Client& s3_;
  std::string bucket_;
  std::string key_;
  const ExportDataFile& file_;
  std::size_t chunk_bytes_;
  std::uint64_t offset_ = 0;
  std::string etag_;
};

struct Md5Free {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

}  // namespace

// ---- positions --------------------------------------------------------------------------------

std::string encode_position(ExportPosition position) {
  return fmt::format("{}:{}", position.file, position.line);
}

ExportPosition decode_position(std::string_view token) {
  const std::size_t colon = token.find(':');
  ExportPosition p;
  const auto number = [&](std::string_view text, auto& out) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
  };
  if (colon == std::string_view::npos || !number(token.substr(0, colon), p.file) ||
      !number(token.substr(colon + 1), p.line) || p.line == 0) {
    throw ExportError(fmt::format("export resume token '{}' is not FILE:LINE", excerpt(token)));
  }
  return p;
}

// ---- location ---------------------------------------------------------------------------------

ExportLocation ExportLocation::parse(std::string_view dir_or_url) {
  ExportLocation loc;
  std::string text(dir_or_url);
  const auto drop_summary = [](std::string& s) {
    if (s.ends_with(kSummary) &&
        (s.size() == kSummary.size() || s[s.size() - kSummary.size() - 1] == '/')) {
      s.resize(s.size() - kSummary.size());
    }
  };
  if (dynamo::is_s3_url(text)) {
    dynamo::S3Url url = dynamo::parse_s3_url(text);
    drop_summary(url.key);
    if (!url.key.empty() && url.key.back() != '/') url.key.push_back('/');
    loc.s3 = std::move(url);
    return loc;
  }
  drop_summary(text);
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  loc.folder = text.empty() ? "." : text;
  return loc;
}

std::string ExportLocation::describe(std::string_view relative) const {
  if (s3) return fmt::format("s3://{}/{}{}", s3->bucket, s3->key, relative);
  if (relative.empty()) return folder;
  return fmt::format("{}/{}", folder, relative);
}

// ---- manifests --------------------------------------------------------------------------------

std::shared_ptr<const ExportFiles> ExportFiles::open(ExportLocation location,
                                                     std::shared_ptr<dynamo::S3Client> s3,
                                                     ExportReadOptions options) {
  if (location.is_s3() && !s3) {
    throw UsageError(fmt::format("reading {} needs an S3 client", location.describe()));
  }
  std::shared_ptr<ExportFiles> files(new ExportFiles());
  files->location_ = std::move(location);
  files->s3_ = std::move(s3);
  options.chunk_bytes = std::max<std::size_t>(options.chunk_bytes, 1);
  options.text_bytes = std::max<std::size_t>(options.text_bytes, 1);
  files->options_ = options;
  const ExportLocation& where = files->location_;

  files->summary_ = parse_summary(read_manifest(where, files->s3_.get(), kSummary));
  files->files_ = parse_files(read_manifest(where, files->s3_.get(), kFiles));

  std::uint64_t total = 0;
  for (const auto& f : files->files_) total += f.item_count;
  if (total != files->summary_.item_count) {
    throw ExportError(fmt::format("{}: its {} data files hold {} items, {} says {}", kFiles,
                                  files->files_.size(), total, kSummary,
                                  files->summary_.item_count));
  }

  // Every data file must be there before anything is read, and its size is needed for ranges.
  if (where.is_s3()) {
    auto listed = files->s3_->list_objects(where.s3->bucket, where.s3->key + "data/");
    if (!listed) {
      throw ExportError(fmt::format("{}: {}", where.describe("data/"), listed.error().to_string()));
    }
    std::map<std::string, std::uint64_t, std::less<>> sizes;
    for (const auto& o : listed.value()) sizes.emplace(o.key.substr(where.s3->key.size()), o.size);
    for (auto& f : files->files_) {
      auto it = sizes.find(f.key);
      if (it == sizes.end()) {
        throw ExportError(fmt::format("{}:{}: {} is not in {}", kFiles, f.manifest_line, f.key,
                                      where.describe("data/")));
      }
      f.size = it->second;
    }
  } else {
    for (auto& f : files->files_) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(where.describe(f.key), ec);
      if (ec) {
        throw ExportError(fmt::format("{}:{}: {} is not in {}", kFiles, f.manifest_line, f.key,
                                      where.describe("data/")));
      }
      f.size = size;
    }
  }
  return files;
}

std::unique_ptr<ExportFileReader> ExportFiles::reader(std::size_t index,
                                                      std::uint64_t start_line) const {
  if (index >= files_.size()) {
    throw ExportError(fmt::format("export data file #{} does not exist ({} has {})", index, kFiles,
                                  files_.size()));
  }
  if (start_line == 0) start_line = 1;
  return std::unique_ptr<ExportFileReader>(
      new ExportFileReader(shared_from_this(), index, start_line));
}

// ---- one data file ----------------------------------------------------------------------------

struct ExportFileReader::Impl {
  const ExportDataFile& file;
  const ExportReadOptions& options;
  std::unique_ptr<ChunkSource> source;
  z_stream zs{};
  bool z_ready = false;
  bool member_done = false;  // the last inflate ended a gzip member
  bool input_eof = false;
  bool any_input = false;
  std::string in;    // the compressed chunk zs reads from
  std::string text;  // decompressed bytes; text[pos..] not consumed yet
  std::size_t pos = 0;
  std::size_t scanned = 0;  // text[pos..scanned) holds no newline
  std::unique_ptr<EVP_MD_CTX, Md5Free> md5{EVP_MD_CTX_new()};
  std::uint64_t lines = 0;  // lines read so far (skipped ones included)

  Impl(const ExportDataFile& f, const ExportReadOptions& o) : file(f), options(o) {
    if (!md5 || EVP_DigestInit_ex(md5.get(), EVP_md5(), nullptr) != 1) {
      throw Error("OpenSSL MD5 setup failed");
    }
    if (inflateInit2(&zs, 15 + 32) != Z_OK) throw Error("zlib setup failed");
    z_ready = true;
  }
  ~Impl() {
    if (z_ready) inflateEnd(&zs);
  }

  [[noreturn]] void fail_at_line(std::string_view what) const {
    throw ExportError(fmt::format("{}:{}: {}", file.key, lines + 1, what));
  }

  // Inflates more text; false when the compressed stream has ended.
  bool inflate_more() {
    if (pos > 0) {
      text.erase(0, pos);
      scanned -= pos;
      pos = 0;
    }
    while (true) {
      if (zs.avail_in == 0 && !input_eof) {
        if (source->next(in)) {
          any_input = true;
          EVP_DigestUpdate(md5.get(), in.data(), in.size());
          zs.next_in = reinterpret_cast<Bytef*>(in.data());
          zs.avail_in = static_cast<uInt>(in.size());
        } else {
          input_eof = true;
          in.clear();
          in.shrink_to_fit();
        }
      }
      if (zs.avail_in == 0 && input_eof) {
        if (any_input && !member_done) {
          fail_at_line("truncated gzip: the file ends inside a compressed stream");
        }
        return false;
      }
      if (member_done) {  // another gzip member follows the one that ended
        inflateReset(&zs);
        member_done = false;
      }
      const std::size_t old = text.size();
      text.resize(old + options.text_bytes);
      zs.next_out = reinterpret_cast<Bytef*>(text.data() + old);
      zs.avail_out = static_cast<uInt>(options.text_bytes);
      const int rc = inflate(&zs, Z_NO_FLUSH);
      const std::size_t produced = options.text_bytes - zs.avail_out;
      text.resize(old + produced);
      if (rc == Z_STREAM_END) {
        member_done = true;
      } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_in == 0)) {
        fail_at_line(fmt::format("corrupt gzip data ({})", zs.msg ? zs.msg : zError(rc)));
      }
      if (produced > 0) return true;
    }
  }

  // The next line without its '\n'; the view lives until the next call. False at the end.
  bool next_line(std::string_view& line) {
    while (true) {
      const std::size_t nl = text.find('\n', scanned);
      if (nl != std::string::npos) {
        line = std::string_view(text).substr(pos, nl - pos);
        pos = nl + 1;
        scanned = pos;
        ++lines;
        return true;
      }
      scanned = text.size();
      if (text.size() - pos > options.max_line_bytes) {
        fail_at_line(fmt::format("not a DynamoDB JSON item: a line longer than {} bytes",
                                 options.max_line_bytes));
      }
      if (!inflate_more()) {
        if (pos < text.size()) {  // a last line without '\n'
          line = std::string_view(text).substr(pos);
          pos = text.size();
          scanned = pos;
          ++lines;
          return true;
        }
        return false;
      }
    }
  }

  bool more_text() { return pos < text.size() || inflate_more(); }

  std::size_t held() const { return in.capacity() + text.capacity(); }
};

ExportFileReader::ExportFileReader(std::shared_ptr<const ExportFiles> files, std::size_t index,
                                   std::uint64_t start_line)
    : files_(std::move(files)), index_(index), start_line_(start_line), next_line_(start_line) {
  const ExportDataFile& f = files_->files_[index_];
  impl_ = std::make_unique<Impl>(f, files_->options_);
  const ExportLocation& where = files_->location_;
  if (where.is_s3()) {
    impl_->source = std::make_unique<S3Chunks>(
        *files_->s3_, where.s3->bucket, where.s3->key + f.key, f, files_->options_.chunk_bytes);
  } else {
    impl_->source =
        std::make_unique<LocalChunks>(where.describe(f.key), f.key, files_->options_.chunk_bytes);
  }
}

ExportFileReader::~ExportFileReader() = default;

const ExportDataFile& ExportFileReader::file() const { return files_->files_[index_]; }

ExportReadResult ExportFileReader::read(std::size_t max_items, std::vector<dynamo::Item>& out) {
  ExportReadResult result;
  if (failed_) throw ExportError(fmt::format("{}: read after an error", file().key));
  if (finished_) {
    result.finished = true;
    result.next_line = next_line_;
    return result;
  }
  Impl& im = *impl_;
  const ExportDataFile& f = file();
  const auto finish = [&] {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(im.md5.get(), digest, &length);
    const std::string got(reinterpret_cast<const char*>(digest), length);
    if (got != f.md5) {
      throw ExportError(fmt::format("{}: MD5 {} does not match {} (line {}: {})", f.key,
                                    base64(got), kFiles, f.manifest_line, f.md5_text));
    }
    if (im.lines != f.item_count) {
      throw ExportError(fmt::format("{}: {} items, {} says {} (line {})", f.key, im.lines, kFiles,
                                    f.item_count, f.manifest_line));
    }
    if (start_line_ > im.lines + 1) {
      throw ExportError(fmt::format("{}: resume position line {} is past the end ({} lines)", f.key,
                                    start_line_, im.lines));
    }
    finished_ = true;
  };
  try {
    std::string_view line;
    while (result.items < max_items) {
      if (!im.next_line(line)) {
        finish();
        break;
      }
      high_water_ = std::max(high_water_, im.held());
      if (im.lines < start_line_) continue;  // before the resume position: read, not parsed
      if (line.empty()) {
        throw ExportError(
            fmt::format("{}:{}: not a DynamoDB JSON item: an empty line", f.key, im.lines));
      }
      try {
        out.push_back(dynamo::parse_item_member(line, "Item"));
      } catch (const Error& e) {
        throw ExportError(fmt::format("{}:{}: not a DynamoDB JSON item: {}: {}", f.key, im.lines,
                                      e.what(), excerpt(line)));
      }
      ++result.items;
      next_line_ = im.lines + 1;
    }
    if (!finished_ && !im.more_text()) finish();
    high_water_ = std::max(high_water_, im.held());
  } catch (...) {
    failed_ = true;  // not usable again; the exception goes to the caller
    impl_.reset();
    throw;
  }
  if (finished_) impl_.reset();  // the buffers and the open file are not needed any more
  result.finished = finished_;
  result.next_line = next_line_;
  return result;
}

}  // namespace dynamorph::stages
