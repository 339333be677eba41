#include "migrations/dead_letters.h"

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "dynamo/clock.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "migrations/config.h"
#include "stages/private_files.h"

namespace dynamorph::migrations {
namespace {

using stages::append_private_file;
using stages::make_private_folder;
using stages::replace_private_file;

constexpr std::string_view kWho = "dead letters";

std::string key_string(int step, const dynamo::Item& key) {
  std::string out = std::to_string(step) + ':';
  dynamo::write_item(out, key);
  return out;
}

void append_line(std::string& out, int step, const dynamo::Item& key, const dynamo::Item& item,
                 const std::string& reason, const std::string& at) {
  fmt::format_to(std::back_inserter(out), R"({{"step":{},"key":)", step);
  dynamo::write_item(out, key);
  out += R"(,"reason":)";
  dynamo::write_json_string(out, reason);
  out += R"(,"item":)";
  dynamo::write_item(out, item);
  out += R"(,"at":)";
  dynamo::write_json_string(out, at);
  out += "}\n";
}

DeadLetterRecord parse_line(std::string_view line) {
  dynamo::PlainRecord p = dynamo::parse_plain_record(line);
  DeadLetterRecord r;
  auto step = p.integers.find("step");
  auto key = p.items.find("key");
  auto item = p.items.find("item");
  auto reason = p.strings.find("reason");
  if (step == p.integers.end() || key == p.items.end() || item == p.items.end() ||
      reason == p.strings.end())
    throw Error("not a dead letter (expected step, key, reason and item)");
  r.step = static_cast<int>(step->second);
  r.key = std::move(key->second);
  r.item = std::move(item->second);
  r.reason = reason->second;
  if (auto at = p.strings.find("at"); at != p.strings.end()) r.at = at->second;
  return r;
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UsageError(fmt::format("{}: cannot read", file.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::filesystem::path dead_letter_file(const Config& config, std::int64_t version) {
  const std::filesystem::path dir = std::filesystem::path(config.file).parent_path();
  return dir / ".dynamorph" / "dead-letters" / fmt::format("{}.jsonl", version);
}

std::vector<DeadLetterRecord> read_dead_letters(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return {};
  const std::string text = read_text(file);
  std::vector<DeadLetterRecord> out;
  std::map<std::string, std::size_t> at;  // (step, key) -> index in out
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // a torn last line: its append never finished
    ++line_no;
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    DeadLetterRecord r;
    try {
      r = parse_line(line);
    } catch (const std::exception& e) {
      throw UsageError(fmt::format("{}:{}: {}", file.string(), line_no, e.what()));
    }
    const std::string k = key_string(r.step, r.key);
    if (auto it = at.find(k); it != at.end()) {
      out[it->second] = std::move(r);  // the same item again (its page was read again): the last
    } else {
      at.emplace(k, out.size());
      out.push_back(std::move(r));
    }
  }
  return out;
}

bool has_dead_letter_work(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) return true;
  if (!std::filesystem::is_directory(file.parent_path(), ec)) return false;
  const std::string prefix = file.filename().string() + ".step";
  for (const auto& e : std::filesystem::directory_iterator(file.parent_path(), ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

void write_dead_letters(const std::filesystem::path& file,
                        const std::vector<DeadLetterRecord>& records) {
  std::error_code ec;
  if (records.empty()) {
    std::filesystem::remove(file, ec);
    return;
  }
  make_private_folder(file.parent_path(), kWho);
  std::string text;
  for (const auto& r : records) append_line(text, r.step, r.key, r.item, r.reason, r.at);
  replace_private_file(file, text, kWho);
}

DeadLetterFile::DeadLetterFile(std::filesystem::path file, int step)
    : file_(std::move(file)), step_(step) {}

void DeadLetterFile::open_once() {
  if (opened_) return;
  make_private_folder(file_.parent_path(), kWho);
  std::error_code ec;
  if (std::filesystem::exists(file_, ec)) {
    const std::string text = read_text(file_);
    const std::size_t whole = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (whole < text.size()) {  // a torn last line: cut it, so that appends start on a line
      std::filesystem::resize_file(file_, whole);
    }
    for (const auto& r : read_dead_letters(file_))
      if (r.step == step_) known_.insert(key_string(r.step, r.key));
  }
  opened_ = true;
}

void DeadLetterFile::append(const std::vector<pipeline::DeadLetter>& letters) {
  std::lock_guard lock(mutex_);
  open_once();
  const std::string at = dynamo::now_iso();
  std::string text;
  std::vector<std::string> added;
  for (const auto& l : letters) {
    std::string k = key_string(step_, l.key);
    if (known_.count(k)) continue;
    append_line(text, step_, l.key, l.item, l.reason, at);
    added.push_back(std::move(k));
  }
  if (text.empty()) return;
  append_private_file(file_, text, kWho);
  for (auto& k : added) known_.insert(std::move(k));
}

}  // namespace dynamorph::migrations
