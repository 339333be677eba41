#include "migrations/migration_file.h"

#include <fmt/format.h>

#include <cctype>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "dynamo/json.h"
#include "dynamo/s3.h"
#include "migrations/checksum.h"
#include "migrations/config.h"
#include "migrations/yaml_util.h"
#include "stages/lua_transform.h"
#include "stages/step_expressions.h"
#include "stages/transform.h"

namespace dynamorph::migrations {
namespace {

// DynamoDB's rule for table and index names: 3 to 255 characters of A-Z a-z 0-9 _ - .
// `kind`: "a table", "an index".
std::optional<std::string> bad_name(const std::string& name, std::string_view kind) {
  if (name.size() < 3 || name.size() > 255)
    return fmt::format("is {} characters long; {} name has 3 to 255", name.size(), kind);
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return fmt::format("has '{}'; {} name has only letters, digits, '_', '-' and '.'", c, kind);
  }
  return std::nullopt;
}

using Keys = std::set<std::string, std::less<>>;
namespace fs = std::filesystem;

class Parser {
 public:
  Parser(const YamlDoc& doc, const LoadOptions& options) : doc_(doc), options_(options) {}

  Migration parse(const std::string& file_name);

 private:
  std::vector<Step> steps(const YAML::Node& node, std::string_view what);
  Step step(const YAML::Node& node);
  CreateTableStep create_table(const YAML::Node& n);
  AddGsiStep add_gsi(const YAML::Node& n);
  DeleteGsiStep delete_gsi(const YAML::Node& n);
  UpdateTtlStep update_ttl(const YAML::Node& n);
  DeleteTableStep delete_table(const YAML::Node& n);
  EnableStreamStep enable_stream(const YAML::Node& n);
  PipelineStep pipeline(const YAML::Node& n, const std::string& where);
  Step cleanup_step(const std::string& where, const PipelineStep& after);

  std::string table(const YAML::Node& map, std::string_view what);
  dynamo::KeyAttribute key(const YAML::Node& n, std::string_view what);
  dynamo::Projection projection(const YAML::Node& n);
  dynamo::Throughput throughput(const YAML::Node& n, std::string_view what);
  dynamo::IndexDefinition index(const YAML::Node& n, bool global, std::string_view what);
  stages::Expression expression(const YAML::Node& n, std::string_view what);
  stages::LuaSpec lua(const YAML::Node& n);
  dynamo::AttributeValue value(const YAML::Node& n);
  dynamo::AttributeValue typed_value(const std::string& tag, const YAML::Node& n);
  YAML::Node required(const YAML::Node& map, std::string_view key, std::string_view what);
  void check_confined(const YAML::Node& n, std::string_view what, const std::string& written,
                      const fs::path& resolved) const;

  const YamlDoc& doc_;
  const LoadOptions& options_;
  bool in_down_ = false;
  std::int64_t version_ = 0;
  std::vector<std::pair<std::string, std::string>> lua_files_;  // as written, bytes: checksummed
};

YAML::Node Parser::required(const YAML::Node& map, std::string_view key, std::string_view what) {
  YAML::Node n = map[std::string(key)];
  if (!n) doc_.fail(map, fmt::format("{}: '{}' is required", what, key));
  return n;
}

std::string Parser::table(const YAML::Node& map, std::string_view what) {
  YAML::Node n = required(map, "table", what);
  std::string t = doc_.string(n, fmt::format("{}.table", what));
  if (t.empty()) doc_.fail(n, fmt::format("{}.table: must not be empty", what));
  std::string physical = options_.table_namespace + t;
  if (auto why = bad_name(physical, "a table"))
    doc_.fail(n, fmt::format("{}.table: '{}'{} {}", what, physical,
                             options_.table_namespace.empty() ? "" : " (with the namespace)", *why));
  return physical;
}

dynamo::KeyAttribute Parser::key(const YAML::Node& n, std::string_view what) {
  std::string why;
  auto k = parse_key_spec(doc_.string(n, what), &why);
  if (!k) doc_.fail(n, fmt::format("{}: {}", what, why));
  return *k;
}

dynamo::Projection Parser::projection(const YAML::Node& n) {
  dynamo::Projection p;
  if (n.IsSequence()) {
    p.kind = dynamo::Projection::Kind::Include;
    p.non_key_attributes = doc_.string_list(n, "projection");
    return p;
  }
  if (n.IsMap()) {
    doc_.check_map(n, "projection", Keys{"include"});
    p.kind = dynamo::Projection::Kind::Include;
    p.non_key_attributes = doc_.string_list(n["include"], "projection.include");
    return p;
  }
  std::string s = doc_.string(n, "projection");
  if (s == "all")
    p.kind = dynamo::Projection::Kind::All;
  else if (s == "keys_only")
    p.kind = dynamo::Projection::Kind::KeysOnly;
  else
    doc_.fail(
        n, fmt::format("projection: expected all, keys_only or a list of attributes, got '{}'", s));
  return p;
}

dynamo::Throughput Parser::throughput(const YAML::Node& n, std::string_view what) {
  doc_.check_map(n, what, Keys{"read", "write"});
  dynamo::Throughput t;
  t.read = doc_.integer(required(n, "read", what), "read");
  t.write = doc_.integer(required(n, "write", what), "write");
  if (t.read < 1 || t.write < 1)
    doc_.fail(n, fmt::format("{}: read and write must be at least 1", what));
  return t;
}

dynamo::IndexDefinition Parser::index(const YAML::Node& n, bool global, std::string_view what) {
  dynamo::IndexDefinition ix;
  if (global) {
    Keys allowed{"name", "partition_key", "sort_key", "projection", "read", "write"};
    if (what == "add_gsi") allowed.insert("table");
    doc_.check_map(n, what, allowed);
    ix.partition_key = key(required(n, "partition_key", what), "partition_key");
  } else {
    doc_.check_map(n, what, Keys{"name", "sort_key", "projection"});
  }
  if (n["sort_key"])
    ix.sort_key = key(n["sort_key"], "sort_key");
  else if (!global)
    doc_.fail(n, fmt::format("{}: 'sort_key' is required", what));
  if (n["projection"]) ix.projection = projection(n["projection"]);
  if (n["name"]) {
    ix.name = doc_.string(n["name"], "name");
    if (auto why = bad_name(ix.name, "an index"))
      doc_.fail(n["name"], fmt::format("{}.name: '{}' {}", what, ix.name, *why));
  } else if (global) {
    ix.name = ix.sort_key ? fmt::format("{}-{}-index", ix.partition_key.name, ix.sort_key->name)
                          : fmt::format("{}-index", ix.partition_key.name);
  } else {
    ix.name = fmt::format("{}-index", ix.sort_key->name);
  }
  if (n["read"] || n["write"]) {
    if (!(n["read"] && n["write"]))
      doc_.fail(n, fmt::format("{}: give both read and write, or neither", what));
    ix.throughput =
        dynamo::Throughput{doc_.integer(n["read"], "read"), doc_.integer(n["write"], "write")};
  }
  return ix;
}

CreateTableStep Parser::create_table(const YAML::Node& n) {
  const std::string_view what = "create_table";
  doc_.check_map(
      n, what,
      Keys{"table", "partition_key", "sort_key", "billing", "gsi", "lsi", "ttl", "stream"});
  CreateTableStep s;
  auto& r = s.request;
  r.table = table(n, what);
  r.partition_key = key(required(n, "partition_key", what), "partition_key");
  if (n["sort_key"]) r.sort_key = key(n["sort_key"], "sort_key");
  if (const YAML::Node b = n["billing"]) {
    if (b.IsMap()) {
      r.provisioned = throughput(b, "billing");
    } else {
      std::string v = doc_.string(b, "billing");
      if (v != "on_demand")
        doc_.fail(
            b, fmt::format("billing: expected on_demand or {{ read: N, write: N }}, got '{}'", v));
    }
  }
  auto list = [&](const YAML::Node& l, bool global) {
    std::string_view w = global ? "gsi" : "lsi";
    if (!l.IsSequence()) doc_.fail(l, fmt::format("{}: expected a list of indexes", w));
    for (const auto& i : l) {
      auto ix = index(i, global, w);
      if (!global) ix.partition_key = r.partition_key;
      if (global && r.provisioned && !ix.throughput) ix.throughput = r.provisioned;
      if (global && !r.provisioned && ix.throughput)
        doc_.fail(i, "gsi: read/write need a provisioned table (billing: { read, write })");
      auto& dest = global ? r.global_indexes : r.local_indexes;
      for (const auto& other : r.global_indexes)
        if (other.name == ix.name)
          doc_.fail(i, fmt::format("{}: index name '{}' used twice", w, ix.name));
      for (const auto& other : r.local_indexes)
        if (other.name == ix.name)
          doc_.fail(i, fmt::format("{}: index name '{}' used twice", w, ix.name));
      dest.push_back(std::move(ix));
    }
  };
  if (n["gsi"]) list(n["gsi"], true);
  if (n["lsi"]) {
    if (!r.sort_key) doc_.fail(n["lsi"], "lsi: a local index needs a table with a sort_key");
    list(n["lsi"], false);
  }
  if (n["ttl"]) s.ttl_attribute = doc_.string(n["ttl"], "ttl");
  if (const YAML::Node st = n["stream"]) {
    std::string v = doc_.string(st, "stream");
    std::string up;
    for (char c : v) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (up != "NEW_IMAGE" && up != "OLD_IMAGE" && up != "NEW_AND_OLD_IMAGES" && up != "KEYS_ONLY")
      doc_.fail(
          st,
          fmt::format(
              "stream: expected new_image, old_image, new_and_old_images or keys_only, got '{}'",
              v));
    r.stream_view_type = up;
  }
  return s;
}

AddGsiStep Parser::add_gsi(const YAML::Node& n) {
  doc_.check_map(n, "add_gsi",
                 Keys{"table", "name", "partition_key", "sort_key", "projection", "read", "write"});
  AddGsiStep s;
  s.table = table(n, "add_gsi");
  s.index = index(n, true, "add_gsi");
  return s;
}

DeleteGsiStep Parser::delete_gsi(const YAML::Node& n) {
  doc_.check_map(n, "delete_gsi", Keys{"table", "name"});
  return DeleteGsiStep{table(n, "delete_gsi"),
                       doc_.string(required(n, "name", "delete_gsi"), "name")};
}

UpdateTtlStep Parser::update_ttl(const YAML::Node& n) {
  doc_.check_map(n, "update_ttl", Keys{"table", "attribute", "enabled"});
  UpdateTtlStep s;
  s.table = table(n, "update_ttl");
  s.attribute = doc_.string(required(n, "attribute", "update_ttl"), "attribute");
  if (n["enabled"]) s.enabled = doc_.boolean(n["enabled"], "enabled");
  return s;
}

DeleteTableStep Parser::delete_table(const YAML::Node& n) {
  doc_.check_map(n, "delete_table", Keys{"table"});
  return DeleteTableStep{table(n, "delete_table")};
}

EnableStreamStep Parser::enable_stream(const YAML::Node& n) {
  doc_.check_map(n, "enable_stream", Keys{"table", "view"});
  EnableStreamStep s;
  s.table = table(n, "enable_stream");
  const YAML::Node v = required(n, "view", "enable_stream");
  const std::string view = doc_.string(v, "view");
  if (view == "new_image") s.view = "NEW_IMAGE";
  else if (view == "new_and_old_images") s.view = "NEW_AND_OLD_IMAGES";
  else
    doc_.fail(v, fmt::format("view: expected new_image or new_and_old_images (a copy that follows "
                             "the stream needs the new image), got '{}'",
                             view));
  return s;
}

stages::Expression Parser::expression(const YAML::Node& n, std::string_view what) {
  std::string text = doc_.string(n, what);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    doc_.fail(n, fmt::format("{}: empty expression", what));
  return stages::Expression{std::move(text), fmt::format("{}: {}", doc_.where(n), what)};
}

// `path` with every symbolic link of its existing part resolved, made absolute.
fs::path real_path(const fs::path& path) {
  std::error_code ec;
  fs::path real = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : real;
}

bool inside(const fs::path& path, const fs::path& folder) {
  auto p = path.begin();
  for (auto f = folder.begin(); f != folder.end(); ++f, ++p) {
    if (f->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *f) return false;
  }
  return true;
}

// A relative path from a migration file must not lead out of the project (a file checked into
// the repository reading ~/.aws/credentials through '../..' or a symbolic link); an absolute one
// says plainly where it goes.
void Parser::check_confined(const YAML::Node& n, std::string_view what, const std::string& written,
                            const fs::path& resolved) const {
  if (options_.roots.empty() || fs::path(written).is_absolute()) return;
  const fs::path real = real_path(resolved);
  for (const auto& root : options_.roots)
    if (inside(real, real_path(root))) return;
  doc_.fail(n, fmt::format("{}: '{}' leads outside the project folder {} (to {}, through '..' or "
                           "a symbolic link); write an absolute path to use a file there",
                           what, written, real_path(options_.roots.front()).string(),
                           real.string()));
}

stages::LuaSpec Parser::lua(const YAML::Node& n) {
  doc_.check_map(n, "lua", Keys{"file", "code", "max_instructions", "max_memory_mb"});
  if (!n["file"] == !n["code"])
    doc_.fail(n, "lua: give file: PATH (relative to this file) or code: TEXT");
  stages::LuaSpec spec;
  if (const YAML::Node f = n["file"]) {
    const std::string file = doc_.string(f, "lua.file");
    if (file.empty()) doc_.fail(f, "lua.file: must not be empty");
    const fs::path path = (fs::path(doc_.display()).parent_path() / file).lexically_normal();
    check_confined(f, "lua.file", file, path);
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    if (!in || in.bad()) doc_.fail(f, fmt::format("lua.file: cannot read '{}'", path.string()));
    spec.code = ss.str();
    spec.chunk_name = path.string();
    lua_files_.emplace_back(file, spec.code);
  } else {
    const YAML::Node c = n["code"];
    spec.code = doc_.string(c, "lua.code");
    spec.chunk_name = doc_.display();
    // Lua's line numbers are the file's: a block scalar (| or >) starts on the next line.
    const YAML::Mark m = c.Mark();
    const char indicator = m.pos >= 0 && static_cast<std::size_t>(m.pos) < doc_.text().size()
                               ? doc_.text()[static_cast<std::size_t>(m.pos)]
                               : ' ';
    spec.first_line = m.line + 1 + (indicator == '|' || indicator == '>' ? 1 : 0);
  }
  if (const YAML::Node x = n["max_instructions"]) {
    spec.max_instructions = doc_.integer(x, "max_instructions");
    if (spec.max_instructions < 1) doc_.fail(x, "max_instructions: must be at least 1");
  }
  if (const YAML::Node x = n["max_memory_mb"]) {
    const std::int64_t mb = doc_.integer(x, "max_memory_mb");
    if (mb < 1 || mb > (1 << 20)) doc_.fail(x, "max_memory_mb: expected 1 to 1048576");
    spec.max_memory_bytes = mb << 20;
  }
  // Compiled and its top level run now: a syntax error or a missing transform() is exit 2.
  stages::make_lua_transform(spec, doc_.where(n));
  return spec;
}

dynamo::AttributeValue Parser::typed_value(const std::string& tag, const YAML::Node& n) {
  using namespace dynamo;
  auto number = [&](const YAML::Node& x) {
    std::string why;
    auto v = Number::parse(doc_.string(x, tag), &why);
    if (!v)
      doc_.fail(x, fmt::format("{}: '{}' is not a DynamoDB number{}{}", tag, x.Scalar(),
                               why.empty() ? "" : ": ", why));
    return *v;
  };
  auto binary = [&](const YAML::Node& x) {
    Binary b;
    if (!base64_decode(b.bytes, doc_.string(x, tag)))
      doc_.fail(x, fmt::format("{}: not valid base64", tag));
    return b;
  };
  auto seq = [&](const YAML::Node& x) {
    if (!x.IsSequence() || x.size() == 0)
      doc_.fail(x, fmt::format("{}: expected a non-empty list", tag));
  };
  if (tag == "S") return AttributeValue(doc_.string(n, "S"));
  if (tag == "N") return AttributeValue(number(n));
  if (tag == "B") return AttributeValue(binary(n));
  if (tag == "BOOL") return AttributeValue(doc_.boolean(n, "BOOL"));
  if (tag == "NULL") {
    if (!doc_.boolean(n, "NULL")) doc_.fail(n, "NULL: must be true");
    return AttributeValue(Null{});
  }
  if (tag == "M") {
    if (!n.IsMap()) doc_.fail(n, "M: expected a map");
    doc_.check_keys_unique(n);
    Map m;
    for (auto it = n.begin(); it != n.end(); ++it) m.set(it->first.Scalar(), value(it->second));
    return AttributeValue(std::move(m));
  }
  if (tag == "L") {
    if (!n.IsSequence()) doc_.fail(n, "L: expected a list");
    List l;
    for (const auto& x : n) l.push_back(value(x));
    return AttributeValue(std::move(l));
  }
  seq(n);
  if (tag == "SS") {
    StringSet s;
    for (const auto& x : n) {
      auto v = doc_.string(x, "SS");
      if (std::find(s.begin(), s.end(), v) != s.end())
        doc_.fail(x, fmt::format("SS: '{}' appears twice", v));
      s.push_back(v);
    }
    return AttributeValue(std::move(s));
  }
  if (tag == "NS") {
    NumberSet s;
    for (const auto& x : n) {
      auto v = number(x);
      if (std::find(s.begin(), s.end(), v) != s.end())
        doc_.fail(x, fmt::format("NS: {} appears twice", v.text()));
      s.push_back(v);
    }
    return AttributeValue(std::move(s));
  }
  BinarySet s;
  for (const auto& x : n) s.push_back(binary(x));
  return AttributeValue(std::move(s));
}

dynamo::AttributeValue Parser::value(const YAML::Node& n) {
  using namespace dynamo;
  static const Keys kTags = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"};
  if (n.IsSequence()) {
    List l;
    for (const auto& x : n) l.push_back(value(x));
    return AttributeValue(std::move(l));
  }
  if (n.IsMap()) {
    doc_.check_keys_unique(n);
    if (n.size() == 1 && kTags.contains(n.begin()->first.Scalar()))
      return typed_value(n.begin()->first.Scalar(), n.begin()->second);
    Map m;
    for (auto it = n.begin(); it != n.end(); ++it) m.set(it->first.Scalar(), value(it->second));
    return AttributeValue(std::move(m));
  }
  if (is_null_scalar(n)) return AttributeValue(Null{});
  const std::string& s = n.Scalar();
  if (is_plain_scalar(n)) {
    if (s == "true" || s == "True" || s == "TRUE") return AttributeValue(true);
    if (s == "false" || s == "False" || s == "FALSE") return AttributeValue(false);
    if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' ||
                       s[0] == '+' || s[0] == '.')) {
      std::string why;
      if (auto num = Number::parse(s, &why)) return AttributeValue(std::move(*num));
      // A YAML number that DynamoDB cannot hold (over 38 digits, exponent out of range) is an
      // error; other plain scalars that merely start like one (2024-01-01, 0x1F) are strings.
      static const std::regex kNumber(R"([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)");
      bool looks_numeric = std::regex_match(s, kNumber);
      if (looks_numeric)
        doc_.fail(n,
                  fmt::format("'{}' is not a DynamoDB number: {} (quote it for a string)", s, why));
    }
  }
  return AttributeValue(s);
}

PipelineStep Parser::pipeline(const YAML::Node& n, const std::string& where) {
  doc_.check_map(n, "pipeline", Keys{"values", "names", "source", "where", "transform", "write",
                                     "on_item_error", "max_item_errors"});
  PipelineStep p;
  auto& spec = p.spec;
  spec.label = fmt::format("{}: pipeline", where);
  if (const YAML::Node names = n["names"]) {
    if (!names.IsMap()) doc_.fail(names, "names: expected a map like { \"#n\": name }");
    doc_.check_keys_unique(names);
    for (auto it = names.begin(); it != names.end(); ++it) {
      const std::string k = it->first.Scalar();
      if (k.size() < 2 || k[0] != '#')
        doc_.fail(it->first, fmt::format("names: '{}' must start with #", k));
      spec.names[k] = doc_.string(it->second, k);
    }
  }
  if (const YAML::Node values = n["values"]) {
    if (!values.IsMap()) doc_.fail(values, "values: expected a map like { \":v\": value }");
    doc_.check_keys_unique(values);
    for (auto it = values.begin(); it != values.end(); ++it) {
      const std::string k = it->first.Scalar();
      if (k.size() < 2 || k[0] != ':')
        doc_.fail(it->first, fmt::format("values: '{}' must start with :", k));
      spec.values[k] = value(it->second);
    }
  }

  const YAML::Node src = required(n, "source", "pipeline");
  doc_.check_map(src, "source",
                 Keys{"table", "index", "segments", "filter", "page_size", "query", "consistent_read",
                      "export", "follow", "catch_up_lag"});
  if (const YAML::Node e = src["export"]) {
    // A DynamoDB export (a folder or s3://bucket/prefix): no table is read.
    for (const char* k : {"table", "index", "segments", "filter", "query", "consistent_read"})
      if (src[k])
        doc_.fail(src[k], fmt::format("{}: not used with source.export (an export is read as it "
                                      "was written, one partition per data file)",
                                      k));
    spec.source.kind = "export";
    spec.source.export_location = doc_.string(e, "export");
    if (spec.source.export_location.empty()) doc_.fail(e, "export: expected a folder or s3://bucket/prefix");
    if (!dynamo::is_s3_url(spec.source.export_location))  // relative to the current directory
      check_confined(e, "export", spec.source.export_location, spec.source.export_location);
    const YAML::Node w = n["write"];
    if (!w || !w["table"])
      doc_.fail(e, "export: a step reading an export copies into a table: set write.table");
  } else {
    spec.source.table = table(src, "source");
  }
  if (src["index"]) spec.source.index = doc_.string(src["index"], "index");
  if (src["segments"]) {
    auto s = doc_.integer(src["segments"], "segments");
    if (s < 1 || s > 1000000) doc_.fail(src["segments"], "segments: expected 1 to 1000000");
    spec.source.segments = static_cast<int>(s);
  }
  if (src["filter"]) spec.source.filter = expression(src["filter"], "source.filter");
  if (src["page_size"]) {
    auto s = doc_.integer(src["page_size"], "page_size");
    if (s < 1) doc_.fail(src["page_size"], "page_size: must be at least 1");
    spec.source.page_size = static_cast<int>(s);
  }
  if (src["consistent_read"])
    spec.source.consistent_read = doc_.boolean(src["consistent_read"], "consistent_read");
  if (const YAML::Node q = src["query"]) {
    doc_.check_map(q, "query", Keys{"key", "index", "forward"});
    spec.source.query_key = expression(required(q, "key", "query"), "source.query.key");
    if (q["index"]) {
      if (spec.source.index)
        doc_.fail(q["index"], "query.index: the index is already given by source.index");
      spec.source.index = doc_.string(q["index"], "index");
    }
    if (q["forward"]) spec.source.scan_forward = doc_.boolean(q["forward"], "forward");
    if (src["segments"]) doc_.fail(src["segments"], "segments: a query source is not segmented");
  }
  if (const YAML::Node f = src["follow"]) {
    if (doc_.string(f, "follow") != "stream")
      doc_.fail(f, fmt::format("follow: expected stream, got '{}'", f.Scalar()));
    if (src["export"] || src["query"] || src["index"])
      doc_.fail(f, "follow: stream backfills with a scan of the table; not with export, query or "
                   "index");
    if (in_down_) doc_.fail(f, "follow: not available in down steps");
    const YAML::Node w = n["write"];
    if (!w || !w["table"] || table(w, "write") == spec.source.table)
      doc_.fail(f, "follow: stream copies into another table (an in-place step has nothing to "
                   "follow): set write.table to a new table");
    spec.source.follow_stream = true;
  }
  if (const YAML::Node lag = src["catch_up_lag"]) {
    if (!src["follow"]) doc_.fail(lag, "catch_up_lag: only with follow: stream");
    auto d = parse_duration(doc_.string(lag, "catch_up_lag"));
    if (!d || d->count() <= 0)
      doc_.fail(lag, fmt::format("catch_up_lag: expected a duration like 5s or 1m, got '{}'",
                                 lag.Scalar()));
    spec.source.catch_up_lag_s = static_cast<double>(d->count()) / 1000.0;
  }
  if (n["where"]) spec.where = expression(n["where"], "where");
  if (const YAML::Node t = n["transform"]) {
    if (!t.IsSequence()) doc_.fail(t, "transform: expected a list of { update: \"SET …\" } steps");
    for (const auto& x : t) {
      stages::TransformSpec ts;
      if (x.IsScalar()) {
        ts.update = expression(x, "transform");
      } else {
        doc_.check_map(x, "transform step", Keys{"update", "stage", "args", "lua"});
        if ((x["update"] ? 1 : 0) + (x["stage"] ? 1 : 0) + (x["lua"] ? 1 : 0) > 1)
          doc_.fail(x, "transform step: give one of update, stage or lua");
        if (x["args"] && !x["stage"]) doc_.fail(x["args"], "args: only a stage takes args");
        if (x["lua"]) {
          ts.lua = lua(x["lua"]);
        } else if (x["update"]) {
          ts.update = expression(x["update"], "transform.update");
        } else if (x["stage"]) {
          ts.stage = doc_.string(x["stage"], "stage");
          const auto known = stages::registered_stages();
          if (std::find(known.begin(), known.end(), ts.stage) == known.end())
            doc_.fail(
                x["stage"],
                fmt::format("stage: no C++ stage named '{}' in this build (known: {})", ts.stage,
                            known.empty() ? std::string("none")
                                          : fmt::format("{}", fmt::join(known, ", "))));
          if (const YAML::Node a = x["args"]) {
            if (!a.IsMap()) doc_.fail(a, "args: expected a map");
            doc_.check_keys_unique(a);
            for (auto it = a.begin(); it != a.end(); ++it)
              ts.args[it->first.Scalar()] = value(it->second);
          }
        } else {
          doc_.fail(x,
                    "transform step: expected update: \"SET …\", stage: NAME or lua: { file: F }");
        }
      }
      spec.transform.push_back(std::move(ts));
    }
  }
  if (const YAML::Node w = n["write"]) {
    doc_.check_map(w, "write",
                   Keys{"table", "mode", "guard", "version_attribute",
                        "cleanup_version_attribute"});
    if (w["table"]) spec.write.table = table(w, "write");
    if (w["mode"]) {
      auto m = stages::parse_write_mode(doc_.string(w["mode"], "mode"));
      if (!m)
        doc_.fail(w["mode"],
                  fmt::format("mode: expected batch, update, transact, delete or none, got '{}'",
                              w["mode"].Scalar()));
      spec.write.mode = *m;
    }
    if (w["guard"]) {
      std::string g = doc_.string(w["guard"], "guard");
      if (g == "none")
        spec.write.guard = stages::Guard::None;
      else if (g == "unchanged")
        spec.write.guard = stages::Guard::Unchanged;
      else
        doc_.fail(w["guard"], fmt::format("guard: expected none or unchanged, got '{}'", g));
      if (spec.write.guard == stages::Guard::Unchanged &&
          spec.write.mode == stages::WriteMode::Batch)
        doc_.fail(w["guard"],
                  "guard: unchanged is not possible with mode: batch (use update or transact)");
    }
    if (w["version_attribute"]) {
      // Every item an up step wrote is at this version already: a down step would skip them all.
      if (in_down_)
        doc_.fail(w["version_attribute"],
                  "version_attribute: not available in down steps (the items are at this version "
                  "already); pick "
                  "the items to revert with where: attribute_exists(#v), and REMOVE #v, with "
                  "names: { \"#v\": _v }");
      spec.write.version_attribute = doc_.string(w["version_attribute"], "version_attribute");
    }
    if (const YAML::Node c = w["cleanup_version_attribute"]) {
      p.cleanup_after = doc_.boolean(c, "cleanup_version_attribute");
      if (p.cleanup_after && spec.write.version_attribute.empty())
        doc_.fail(c,
                  "cleanup_version_attribute: needs version_attribute (the attribute it removes)");
      if (p.cleanup_after && (spec.write.mode == stages::WriteMode::Delete ||
                              spec.write.mode == stages::WriteMode::None))
        doc_.fail(c, fmt::format("cleanup_version_attribute: mode {} leaves no attribute to remove",
                                 stages::to_string(spec.write.mode)));
    }
  }
  if (const YAML::Node e = n["on_item_error"]) {
    const std::string v = doc_.string(e, "on_item_error");
    if (v == "skip")
      spec.on_item_error = stages::OnItemError::Skip;
    else if (v != "stop")
      doc_.fail(e, fmt::format("on_item_error: expected stop or skip, got '{}'", v));
    if (spec.on_item_error == stages::OnItemError::Skip && in_down_)
      doc_.fail(e, "on_item_error: skip is only for up steps (a rollback that skips items leaves "
                   "them half rolled back)");
    if (spec.on_item_error == stages::OnItemError::Skip && spec.source.follow_stream)
      doc_.fail(e, "on_item_error: skip is not available with follow: stream (a skipped change "
                   "would leave the copy silently behind its source)");
  }
  if (const YAML::Node m = n["max_item_errors"]) {
    if (spec.on_item_error != stages::OnItemError::Skip)
      doc_.fail(m, "max_item_errors: only with on_item_error: skip");
    const auto v = doc_.integer(m, "max_item_errors");
    if (v < 0) doc_.fail(m, "max_item_errors: expected 0 (no limit) or more");
    spec.max_item_errors = v;
  }
  if (spec.write.mode == stages::WriteMode::Delete && !spec.transform.empty())
    doc_.fail(n["transform"],
              "transform: a delete step deletes what it matches; it has nothing to transform");
  // Every expression compiled now, with file:line:column errors, before anything is written.
  // An automatic :now that an expression uses is bound here, so that every worker and every
  // resumed run of this load sees the same instant.
  if (stages::compile_step_expressions(spec, options_.now_iso, where).uses_automatic_now)
    spec.values[":now"] = dynamo::AttributeValue(options_.now_iso);
  return p;
}

Step Parser::step(const YAML::Node& n) {
  static const Keys kKinds = {"create_table", "add_gsi",      "delete_gsi",   "update_ttl",
                              "delete_table", "enable_stream", "pipeline"};
  if (!n.IsMap() || n.size() != 1)
    doc_.fail(n,
              "a step is a map with one key: create_table, add_gsi, delete_gsi, update_ttl, "
              "delete_table, enable_stream or pipeline");
  doc_.check_map(n, "a step", kKinds);
  Step s;
  s.kind = n.begin()->first.Scalar();
  s.where = doc_.where(n.begin()->first);
  const YAML::Node body = n.begin()->second;
  if (s.kind == "create_table")
    s.body = create_table(body);
  else if (s.kind == "add_gsi")
    s.body = add_gsi(body);
  else if (s.kind == "delete_gsi")
    s.body = delete_gsi(body);
  else if (s.kind == "update_ttl")
    s.body = update_ttl(body);
  else if (s.kind == "delete_table")
    s.body = delete_table(body);
  else if (s.kind == "enable_stream")
    s.body = enable_stream(body);
  else
    s.body = pipeline(body, s.where);
  return s;
}

std::vector<Step> Parser::steps(const YAML::Node& node, std::string_view what) {
  if (is_null_scalar(node)) return {};
  if (!node.IsSequence()) doc_.fail(node, fmt::format("{}: expected a list of steps", what));
  std::vector<Step> out;
  in_down_ = what == "down";
  for (const auto& n : node) {
    out.push_back(step(n));
    const auto* p = std::get_if<PipelineStep>(&out.back().body);
    if (p && p->cleanup_after) out.push_back(cleanup_step(out.back().where, *p));
  }
  in_down_ = false;
  return out;
}

// The last pass of `cleanup_version_attribute`: its own step, so it has its own checkpoints
// (resumed like any step), runs segment-parallel, and is planned and estimated by the dry run.
Step Parser::cleanup_step(const std::string& where, const PipelineStep& after) {
  const stages::StepSpec& done = after.spec;
  PipelineStep c;
  c.cleanup = true;
  stages::StepSpec& s = c.spec;
  const std::string label = fmt::format("{}: cleanup_version_attribute", where);
  s.label = label;
  s.names["#cv"] = done.write.version_attribute;
  s.values[":cv"] = dynamo::AttributeValue::number(std::to_string(version_));
  s.source.table = done.write.table.empty() ? done.source.table : done.write.table;
  s.source.segments = done.source.segments;
  s.source.page_size = done.source.page_size;
  s.source.filter = {"#cv = :cv", label + ": filter"};
  s.where = {"#cv = :cv", label + ": where"};
  stages::TransformSpec t;
  t.update = {"REMOVE #cv", label + ": update"};
  s.transform.push_back(std::move(t));
  s.write.mode = stages::WriteMode::Update;
  s.write.guard = stages::Guard::Unchanged;  // conditioned on #cv still being this version
  stages::compile_step_expressions(s, options_.now_iso, where);
  Step step;
  step.kind = "pipeline";
  step.where = where;
  step.body = std::move(c);
  return step;
}

Migration Parser::parse(const std::string& file_name) {
  const YAML::Node& root = doc_.root();
  if (!root.IsMap()) doc_.fail(root, "expected a map with version, name, up and down");
  doc_.check_map(root, "a migration file",
                 Keys{"version", "name", "description", "schema", "up", "down", "segments",
                      "max_wcu", "max_rcu"});
  Migration m;
  m.file = doc_.display();
  m.version = doc_.integer(required(root, "version", "migration"), "version");
  version_ = m.version;
  if (m.version < 0) doc_.fail(root["version"], "version: must not be negative");
  // <version>_<name>.yaml
  const auto us = file_name.find('_');
  const std::string stem = fs::path(file_name).stem().string();
  std::int64_t file_version = -1;
  if (us != std::string::npos) {
    auto [p, ec] = std::from_chars(file_name.data(), file_name.data() + us, file_version);
    if (ec != std::errc() || p != file_name.data() + us) file_version = -1;
  }
  if (file_version < 0)
    throw UsageError(
        fmt::format("{}: the file name must be <version>_<name>.yaml", doc_.display()));
  if (file_version != m.version)
    doc_.fail(root["version"], fmt::format("version: {} does not match the file name's {}",
                                           m.version, file_version));
  m.name = root["name"] ? doc_.string(root["name"], "name") : stem.substr(stem.find('_') + 1);
  if (root["segments"]) {
    auto s = doc_.integer(root["segments"], "segments");
    if (s < 1 || s > 1000000) doc_.fail(root["segments"], "segments: expected 1 to 1000000");
    m.segments = static_cast<int>(s);
  }
  for (const char* k : {"max_wcu", "max_rcu"}) {
    if (!root[k]) continue;
    double x = doc_.number(root[k], k);
    if (x < 0) doc_.fail(root[k], fmt::format("{}: must not be negative", k));
    (std::string_view(k) == "max_wcu" ? m.max_wcu : m.max_rcu) = x;
  }
  if (root["schema"]) m.schema = parse_model_schema(doc_, root["schema"]);
  // A version that only documents a model change needs no step.
  if (!m.schema || root["up"]) m.up = steps(required(root, "up", "migration"), "up");
  if (m.up.empty() && !m.schema) doc_.fail(root["up"], "up: a migration needs at least one step");
  if (std::count_if(m.up.begin(), m.up.end(), is_follow_step) > 1)
    doc_.fail(root["up"], "up: at most one step of a version may follow: stream (`follow` "
                          "replays it until cut-over)");
  if (const YAML::Node d = root["down"]; d && is_plain_scalar(d) && d.Scalar() == "irreversible")
    m.irreversible = true;
  else if (d && d.IsScalar() && !is_null_scalar(d))
    doc_.fail(d, fmt::format("down: expected a list of steps, [] (nothing to undo) or "
                             "irreversible, got '{}'",
                             d.Scalar()));
  else if (d)
    m.down = steps(d, "down");
  // The Lua files a step names are part of the version: editing an applied script is drift.
  std::string text = doc_.text();
  for (const auto& [file, bytes] : lua_files_)
    text += fmt::format("\n--- lua file {} ---\n{}", file, bytes);
  m.checksum = checksum(text);
  return m;
}

std::string key_text(const dynamo::KeyAttribute& k) {
  return fmt::format("{} {}", k.name, dynamo::type_tag(k.type));
}

}  // namespace

std::optional<dynamo::KeyAttribute> parse_key_spec(std::string_view text, std::string* why) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    if (why) *why = fmt::format("expected NAME:TYPE like id:string, got '{}'", text);
    return std::nullopt;
  }
  auto type = dynamo::parse_type(text.substr(colon + 1));
  if (!type || (*type != dynamo::AttrType::S && *type != dynamo::AttrType::N &&
                *type != dynamo::AttrType::B)) {
    if (why)
      *why = fmt::format("key type must be string, number or binary (S, N, B), got '{}'",
                         text.substr(colon + 1));
    return std::nullopt;
  }
  return dynamo::KeyAttribute{std::string(text.substr(0, colon)), *type};
}

std::string Step::describe() const {
  return std::visit(
      [&](const auto& b) -> std::string {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, CreateTableStep>) {
          const auto& r = b.request;
          std::string keys = key_text(r.partition_key);
          if (r.sort_key) keys += ", " + key_text(*r.sort_key);
          std::string s = fmt::format("create_table {} ({})", r.table, keys);
          s += r.provisioned
                   ? fmt::format(", provisioned {}/{}", r.provisioned->read, r.provisioned->write)
                   : ", on demand";
          for (const auto& g : r.global_indexes) s += fmt::format(", gsi {}", g.name);
          for (const auto& l : r.local_indexes) s += fmt::format(", lsi {}", l.name);
          if (b.ttl_attribute) s += fmt::format(", ttl {}", *b.ttl_attribute);
          if (r.stream_view_type) s += fmt::format(", stream {}", *r.stream_view_type);
          return s;
        } else if constexpr (std::is_same_v<T, AddGsiStep>) {
          return fmt::format("add_gsi {} on {} ({}{})", b.index.name, b.table,
                             key_text(b.index.partition_key),
                             b.index.sort_key ? ", " + key_text(*b.index.sort_key) : "");
        } else if constexpr (std::is_same_v<T, DeleteGsiStep>) {
          return fmt::format("delete_gsi {} on {}", b.index, b.table);
        } else if constexpr (std::is_same_v<T, UpdateTtlStep>) {
          return fmt::format("update_ttl {} on {} ({})", b.attribute, b.table,
                             b.enabled ? "enable" : "disable");
        } else if constexpr (std::is_same_v<T, DeleteTableStep>) {
          return fmt::format("delete_table {}", b.table);
        } else if constexpr (std::is_same_v<T, EnableStreamStep>) {
          return fmt::format("enable_stream {} ({})", b.table, b.view);
        } else {
          const auto& s = b.spec;
          if (b.cleanup)
            return fmt::format("pipeline cleanup: REMOVE {} from the items of {} at this version",
                               s.names.at("#cv"), s.source.table);
          std::string target = s.write.table.empty() ? s.source.table : s.write.table;
          if (s.source.kind == "export")
            return fmt::format("pipeline export {} → {} ({})", s.source.export_location, target,
                               stages::to_string(s.write.mode));
          return fmt::format("pipeline {} {} → {} ({}{})",
                             s.source.query_key.empty() ? "scan" : "query", s.source.table, target,
                             stages::to_string(s.write.mode),
                             s.source.follow_stream ? ", then follow its stream" : "");
        }
      },
      body);
}

bool is_follow_step(const Step& step) {
  const auto* p = std::get_if<PipelineStep>(&step.body);
  return p && p->spec.source.follow_stream;
}

Migration parse_migration(const std::string& text, const std::string& display,
                          const std::string& file_name, const LoadOptions& options) {
  YamlDoc doc = YamlDoc::parse(text, display);
  Parser p(doc, options);
  return p.parse(file_name);
}

Migration load_migration_file(const std::string& path, const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("{}: cannot read", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_migration(ss.str(), path, fs::path(path).filename().string(), options);
}

std::vector<Migration> load_migrations(const std::string& dir, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UsageError(
        fmt::format("migrations folder '{}' not found (run `dynamorph init`, or set --migrations / "
                    "migrations_dir)",
                    dir));
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<Migration> out;
  for (const auto& f : files)
    out.push_back(load_migration_file(f.lexically_normal().string(), options));
  std::stable_sort(out.begin(), out.end(),
                   [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (std::size_t i = 1; i < out.size(); ++i)
    if (out[i].version == out[i - 1].version)
      throw UsageError(fmt::format("{}: version {} is also used by {}", out[i].file, out[i].version,
                                   out[i - 1].file));
  return out;
}

}  // namespace dynamorph::migrations
