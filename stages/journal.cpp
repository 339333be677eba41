#include "stages/journal.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dynamo/client.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/s3.h"
#include "stages/private_files.h"

namespace dynamorph::stages {
namespace {

// Canonical bytes of a value: maps by sorted name, sets sorted, every piece length-prefixed so
// that no two different values share bytes.
void canonical(std::string& out, const dynamo::AttributeValue& v);

void piece(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

void canonical_map(std::string& out, const dynamo::Map& m) {
  std::vector<const dynamo::Map::Entry*> entries;
  entries.reserve(m.size());
  for (const auto& e : m) entries.push_back(&e);
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  out += "M" + std::to_string(entries.size()) + "{";
  for (const auto* e : entries) {
    piece(out, e->first);
    canonical(out, e->second);
  }
  out += '}';
}

template <class T, class Text>
void canonical_set(std::string& out, char tag, const std::vector<T>& set, Text text) {
  std::vector<std::string> members;
  members.reserve(set.size());
  for (const auto& m : set) members.push_back(text(m));
  std::sort(members.begin(), members.end());
  out += tag;
  out += std::to_string(members.size()) + "{";
  for (const auto& m : members) piece(out, m);
  out += '}';
}

void canonical(std::string& out, const dynamo::AttributeValue& v) {
  using dynamo::AttrType;
  switch (v.type()) {
    case AttrType::S:
      out += 'S';
      piece(out, v.as<std::string>());
      break;
    case AttrType::N:
      out += 'N';
      piece(out, v.as<dynamo::Number>().text());
      break;
    case AttrType::B:
      out += 'B';
      piece(out, v.as<dynamo::Binary>().bytes);
      break;
    case AttrType::BOOL: out += v.as<bool>() ? "T" : "F"; break;
    case AttrType::NUL: out += '0'; break;
    case AttrType::M: canonical_map(out, v.as<dynamo::Map>()); break;
    case AttrType::L: {
      const auto& l = v.as<dynamo::List>();
      out += "L" + std::to_string(l.size()) + "[";
      for (const auto& x : l) canonical(out, x);
      out += ']';
      break;
    }
    case AttrType::SS:
      canonical_set(out, 's', v.as<dynamo::StringSet>(), [](const std::string& s) { return s; });
      break;
    case AttrType::NS:
      canonical_set(out, 'n', v.as<dynamo::NumberSet>(),
                    [](const dynamo::Number& n) { return n.text(); });
      break;
    case AttrType::BS:
      canonical_set(out, 'b', v.as<dynamo::BinarySet>(),
                    [](const dynamo::Binary& b) { return b.bytes; });
      break;
  }
}

class LocalStore final : public JournalStore {
 public:
  explicit LocalStore(std::filesystem::path root) : root_(std::move(root)) {}

  void put(const std::string& name, std::string bytes) override {
    // Before-images are the table's data: only the owner may list or read them.
    const std::filesystem::path path = root_ / name;
    make_private_folder(path.parent_path(), "journal");
    replace_private_file(path, bytes, "journal");
  }

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> out;
    const std::filesystem::path base = root_ / prefix;
    std::error_code ec;
    if (!std::filesystem::exists(base, ec)) return out;
    for (auto it = std::filesystem::recursive_directory_iterator(base, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      const std::string name = it->path().filename().string();
      if (name.starts_with(".")) continue;  // a file being written
      out.push_back(std::filesystem::relative(it->path(), root_).generic_string());
    }
    if (ec) throw Error(fmt::format("journal: cannot list {}: {}", base.string(), ec.message()));
    std::sort(out.begin(), out.end());
    return out;
  }

  std::optional<std::string> get(const std::string& name) override {
    std::ifstream in(root_ / name, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string describe() const override { return root_.string(); }

 private:
  std::filesystem::path root_;
};

class S3Store final : public JournalStore {
 public:
  S3Store(dynamo::S3Url url, std::shared_ptr<dynamo::S3Client> s3)
      : url_(std::move(url)), s3_(std::move(s3)) {
    if (!url_.key.empty() && !url_.key.ends_with('/')) url_.key += '/';
  }

  void put(const std::string& name, std::string bytes) override {
    auto r = s3_->put_object(url_.bucket, url_.key + name, std::move(bytes), "application/gzip");
    if (!r) throw Error(fmt::format("journal: {}", r.error().to_string()));
  }

  std::vector<std::string> list(const std::string& prefix) override {
    auto r = s3_->list_objects(url_.bucket, url_.key + prefix);
    if (!r) throw Error(fmt::format("journal: {}", r.error().to_string()));
    std::vector<std::string> out;
    for (const auto& o : r.value()) out.push_back(o.key.substr(url_.key.size()));
    std::sort(out.begin(), out.end());
    return out;
  }

  std::optional<std::string> get(const std::string& name) override {
    auto r = s3_->get_object(url_.bucket, url_.key + name);
    if (!r) {
      if (r.error().type == "NoSuchKey" || r.error().http_status == 404) return std::nullopt;
      throw Error(fmt::format("journal: {}", r.error().to_string()));
    }
    return std::move(r.value().body);
  }

  std::string describe() const override { return url_.to_string(); }

 private:
  dynamo::S3Url url_;
  std::shared_ptr<dynamo::S3Client> s3_;
};

}  // namespace

std::string key_text(const dynamo::TableDescription& t, const dynamo::Item& item) {
  std::string out;
  if (const auto* v = item.find(t.partition_key.name)) dynamo::write_value(out, *v);
  out += '|';
  if (t.sort_key)
    if (const auto* v = item.find(t.sort_key->name)) dynamo::write_value(out, *v);
  return out;
}

std::string item_hash(const dynamo::Item& item) {
  std::string bytes;
  bytes.reserve(512);
  canonical_map(bytes, item);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < 16; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

void append_record(std::string& out, const JournalRecordView& r) {
  out += R"({"k":{"M":)";
  dynamo::write_item(out, r.key);
  out += R"(},"b":)";
  if (r.before) {
    out += R"({"M":)";
    dynamo::write_item(out, *r.before);
    out += '}';
  } else {
    out += R"({"NULL":true})";
  }
  out += R"(,"a":)";
  if (r.after) {
    out += R"({"S":)";
    dynamo::write_json_string(out, *r.after);
    out += '}';
  } else {
    out += R"({"NULL":true})";
  }
  out += "}\n";
}

void append_record(std::string& out, const JournalRecord& r) {
  append_record(out, JournalRecordView{r.key, r.before ? &*r.before : nullptr,
                                       r.after ? &*r.after : nullptr});
}

JournalRecord parse_record(std::string_view line) {
  dynamo::Item m = dynamo::parse_item(line);
  JournalRecord r;
  const auto* k = m.find("k");
  const auto* b = m.find("b");
  const auto* a = m.find("a");
  if (!k || !k->is<dynamo::Map>() || !b || !a)
    throw Error("not a journal record (expected k, b and a)");
  r.key = k->as<dynamo::Map>();
  if (b->is<dynamo::Map>()) r.before = b->as<dynamo::Map>();
  if (a->is<std::string>()) r.after = a->as<std::string>();
  return r;
}

std::vector<JournalRecord> parse_records(std::string_view text, std::string_view what) {
  std::vector<JournalRecord> out;
  std::size_t line_no = 0, at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    ++line_no;
    std::string line(text.substr(at, end - at));
    at = end + 1;
    if (line.empty()) continue;
    dynamo::pad_for_parsing(line);
    try {
      out.push_back(parse_record(line));
    } catch (const std::exception& e) {
      throw Error(fmt::format("{}:{}: {}", what, line_no, e.what()));
    }
  }
  return out;
}

std::string gzip_compress(std::string_view text) {
  z_stream zs{};
  // Level 1: the journal is written while the run waits for it, and JSON lines of similar
  // items compress well even at the fastest level.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error("zlib setup failed");
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(text.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const auto written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw Error("zlib: compression did not finish");
  out.resize(written);
  return out;
}

std::string gzip_decompress(std::string_view bytes, std::string_view what) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) throw Error("zlib setup failed");
  std::string out;
  char buf[1 << 16];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  int rc = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);  // another gzip member follows
      continue;
    }
    if (rc != Z_OK) {
      std::string msg = zs.msg ? zs.msg : zError(rc);
      inflateEnd(&zs);
      throw Error(fmt::format("{}: corrupt gzip data ({})", what, msg));
    }
    if (zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw Error(fmt::format("{}: truncated gzip data", what));
    }
  }
  inflateEnd(&zs);
  return out;
}

std::string journal_step_prefix(std::int64_t version, std::string_view started_at, int step) {
  std::string epoch;
  for (char c : started_at)
    if (std::isalnum(static_cast<unsigned char>(c))) epoch += c;
  if (epoch.empty()) epoch = "0";
  return fmt::format("{}/{}/step-{:02}/", version, epoch, step);
}

std::string journal_file_name(std::string_view step_prefix, int segment, std::int64_t seq,
                              std::string_view run, std::int64_t n) {
  return fmt::format("{}seg-{:05}/{}-p{:012}-{:08}.jsonl.gz", step_prefix, segment, run, seq, n);
}

std::optional<JournalFileName> parse_journal_file_name(std::string_view relative) {
  if (!relative.starts_with("seg-") || !relative.ends_with(".jsonl.gz")) return std::nullopt;
  JournalFileName f;
  const auto slash = relative.find('/');
  const auto p = relative.rfind("-p", relative.size() - 9 - 9);  // before "-<n>.jsonl.gz"
  if (slash != 9 || p == std::string_view::npos || p < slash) return std::nullopt;
  const auto digits = [](std::string_view t, auto& out) {
    if (t.empty()) return false;
    out = 0;
    for (char c : t) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    return true;
  };
  if (!digits(relative.substr(4, 5), f.segment) || !digits(relative.substr(p + 2, 12), f.seq))
    return std::nullopt;
  return f;
}

std::shared_ptr<JournalStore> JournalStore::open(const std::string& location,
                                                 dynamo::Client& client) {
  if (dynamo::is_s3_url(location)) {
    auto url = dynamo::parse_s3_url(location);
    auto s3 = std::make_shared<dynamo::S3Client>(
        dynamo::s3_client_options_for(client.options()));
    return std::make_shared<S3Store>(std::move(url), std::move(s3));
  }
  return std::make_shared<LocalStore>(std::filesystem::path(location));
}

}  // namespace dynamorph::stages
