#include "stages/stream_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "dynamo/clock.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/streams.h"
#include "stages/table_source.h"

namespace dynamorph::stages {
namespace {

using dynamo::StreamRecord;

constexpr int kMaxLanes = 4;
constexpr int kRecordsPerPage = 1000;  // GetRecords' maximum
constexpr auto kIdlePause = std::chrono::milliseconds(250);
constexpr std::int64_t kDescribeEveryMs = 1000;
constexpr int kIteratorRenewals = 5;  // an iterator expires 15 minutes after it was handed out

// ---- tokens ----------------------------------------------------------------------------------
struct ShardPos {
  enum class Mode { Trim, After, Done };  // from its first record, after `seq`, finished
  std::string id;
  Mode mode = Mode::Trim;
  std::string seq;
  std::int64_t ref_ms = 0;  // applied up to this time
};

struct LaneToken {
  std::string arn;
  std::int64_t ref_ms = 0;
  std::vector<ShardPos> shards;
};

std::string_view mode_word(ShardPos::Mode m) {
  switch (m) {
    case ShardPos::Mode::Trim: return "trim";
    case ShardPos::Mode::After: return "after";
    case ShardPos::Mode::Done: return "done";
  }
  return "?";
}

// stream1 <arn>\nref <ms>\n<trim|after|done> <shard> <ref ms> [<seq>]\n…
std::string write_token(const LaneToken& t) {
  std::string out = fmt::format("stream1 {}\nref {}\n", t.arn, t.ref_ms);
  for (const auto& s : t.shards) {
    out += fmt::format("{} {} {}", mode_word(s.mode), s.id, s.ref_ms);
    if (!s.seq.empty()) out += fmt::format(" {}", s.seq);
    out += '\n';
  }
  return out;
}

LaneToken read_token(const std::string& text) {
  LaneToken t;
  std::istringstream in(text);
  std::string word;
  if (!(in >> word) || word != "stream1" || !(in >> t.arn))
    throw Error("stream checkpoint: not a stream replay position");
  while (in >> word) {
    if (word == "ref") {
      in >> t.ref_ms;
      continue;
    }
    ShardPos s;
    if (word == "trim")
      s.mode = ShardPos::Mode::Trim;
    else if (word == "after")
      s.mode = ShardPos::Mode::After;
    else if (word == "done")
      s.mode = ShardPos::Mode::Done;
    else
      throw Error(fmt::format("stream checkpoint: unknown entry '{}'", word));
    in >> s.id >> s.ref_ms;
    if (s.mode == ShardPos::Mode::After) in >> s.seq;
    if (!in) throw Error("stream checkpoint: truncated");
    t.shards.push_back(std::move(s));
  }
  return t;
}

std::int64_t server_now_ms(const dynamo::Client& c) {
  return dynamo::now_epoch_ms() + c.clock_skew().count();
}

std::string trimmed_message(std::string_view label, std::string_view table, std::string_view shard,
                            std::string_view why) {
  return fmt::format(
      "{}: the replay position in shard {} of table '{}''s stream is gone ({}): stream records "
      "are kept 24 hours, so changes made since it was recorded cannot all be replayed. Start "
      "over: empty the target table, `dynamorph mark <version> pending`, and `dynamorph up` "
      "again (a faster backfill: more segments, a higher max_wcu)",
      label, shard, table, why);
}

// ---- the lineage the lanes share ---------------------------------------------------------------
class Lineage {
 public:
  explicit Lineage(int lanes) : lane_ref_(static_cast<std::size_t>(lanes), -1) {}

  void know(const std::string& shard, bool done) {
    std::lock_guard lock(mu_);
    known_.insert(shard);
    if (done) done_.insert(shard);
  }
  // A shard was read to its end in this run: its children are adopted at some lane's next
  // DescribeStream, so the replay is not called caught up before every lane has described again.
  void finished(const std::string& shard, std::int64_t now_ms) {
    std::lock_guard lock(mu_);
    known_.insert(shard);
    done_.insert(shard);
    settled_after_ms_ = now_ms + 3 * kDescribeEveryMs;
  }
  void snapshot(std::vector<std::string>& known, std::vector<std::string>& done) const {
    std::lock_guard lock(mu_);
    known.assign(known_.begin(), known_.end());
    done.assign(done_.begin(), done_.end());
  }
  // A lane's applied-until time after its last committed page (-1: not known yet); true when the
  // replay is caught up (every lane has reported, the oldest within `lag_ms` of now): it ends
  // then.
  bool report(int lane, std::int64_t ref_ms, std::int64_t now_ms, std::int64_t lag_ms) {
    std::lock_guard lock(mu_);
    lane_ref_[static_cast<std::size_t>(lane)] = ref_ms;
    if (finishing_ || lag_ms < 0 || now_ms < settled_after_ms_) return finishing_;
    std::int64_t oldest = *std::min_element(lane_ref_.begin(), lane_ref_.end());
    if (oldest >= 0 && now_ms - oldest < lag_ms) finishing_ = true;
    return finishing_;
  }
  // The oldest lane's applied-until time (epoch ms); -1 until every lane has reported.
  std::int64_t oldest_ref() const {
    std::lock_guard lock(mu_);
    return *std::min_element(lane_ref_.begin(), lane_ref_.end());
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> known_, done_;
  std::vector<std::int64_t> lane_ref_;
  std::int64_t settled_after_ms_ = 0;
  bool finishing_ = false;
};

// ---- the source ------------------------------------------------------------------------------
class StreamSource;

class LaneReader final : public PartitionReader {
 public:
  LaneReader(const StreamSource& source, int lane, LaneToken token);
  ReadRequest next() override;
  SourcePage parse(RawRead&& read) override;

 private:
  RawRead read_once();
  void describe_and_adopt();
  std::string iterator_for(ShardPos& s);
  [[noreturn]] void trimmed(const ShardPos& s, std::string_view why) const;
  std::int64_t lane_ref() const;
  std::vector<Change> collapse(std::vector<StreamRecord>&& records) const;

  const StreamSource& source_;
  int lane_;
  LaneToken token_;
  std::map<std::string, std::string> iterators_;  // shard → iterator of its next page
  std::size_t cursor_ = 0;                        // round robin over active shards
  int current_ = -1;                              // index into token_.shards of the read
  std::string finished_;                          // shard read to its end by the last page
  bool idle_ = false;                             // the last read found nothing new
  bool ending_ = false;
  bool read_this_run_ = false;  // a page of this run is committed: the lane may report its lag
  std::int64_t read_at_ms_ = 0;
  std::int64_t described_at_ms_ = 0;
};

class StreamSource final : public Source {
 public:
  explicit StreamSource(const SourceContext& c)
      : label_(c.spec.label),
        table_(describe_or_refuse(c.client, c.spec.source.table, "source", c.spec.label)),
        view_(require_stream_view(*table_, c.spec.label)),
        lag_ms_(c.spec.source.catch_up_lag_s < 0
                    ? -1
                    : static_cast<std::int64_t>(c.spec.source.catch_up_lag_s * 1000)),
        streams_(dynamo::streams_client_options(c.client.options())) {}

  int partitions(int) const override { return kMaxLanes; }
  std::unique_ptr<PartitionReader> open(int partition, int total,
                                        const std::optional<ResumeToken>& from) const override {
    {
      std::lock_guard lock(lineage_mu_);
      if (!lineage_) lineage_ = std::make_unique<Lineage>(total);
      lanes_ = total;
    }
    if (!from)
      throw Error(
          fmt::format("{}: lane {} of the stream replay has no recorded start", label_, partition));
    LaneToken t = read_token(*from);
    if (t.arn != table_->latest_stream_arn)
      throw Error(fmt::format(
          "{}: the stream of table '{}' was replaced since the replay began (recorded {}, now "
          "{}): changes in between cannot be replayed. Start over: empty the target table, "
          "`dynamorph mark <version> pending`, and `dynamorph up` again",
          label_, table_->name, t.arn,
          table_->latest_stream_arn.empty() ? std::string("none") : table_->latest_stream_arn));
    for (const auto& s : t.shards) lineage().know(s.id, s.mode == ShardPos::Mode::Done);
    return std::make_unique<LaneReader>(*this, partition, std::move(t));
  }
  const std::optional<dynamo::TableDescription>& table() const override { return table_; }
  std::string describe() const override {
    return fmt::format("the stream of table '{}'", table_->name);
  }
  bool serial_pages() const override { return true; }
  bool consumes_read_capacity() const override { return false; }
  std::optional<double> lag_s() const override {
    std::int64_t oldest = -1;
    {
      std::lock_guard lock(lineage_mu_);
      if (lineage_) oldest = lineage_->oldest_ref();
    }
    if (oldest < 0) return std::nullopt;
    return std::max<double>(0, static_cast<double>(server_now_ms(streams_.client()) - oldest) / 1000.0);
  }

  Lineage& lineage() const { return *lineage_; }
  int lanes() const { return lanes_; }
  dynamo::StreamsClient& streams() const { return streams_; }
  const std::string& label() const { return label_; }
  const std::string& table_name() const { return table_->name; }
  const std::string& arn() const { return table_->latest_stream_arn; }
  std::int64_t lag_ms() const { return lag_ms_; }
  bool with_old_images() const { return view_ == "NEW_AND_OLD_IMAGES"; }

 private:
  std::string label_;
  std::optional<dynamo::TableDescription> table_;
  std::string view_;
  std::int64_t lag_ms_;
  mutable dynamo::StreamsClient streams_;  // thread-safe
  mutable std::mutex lineage_mu_;
  mutable std::unique_ptr<Lineage> lineage_;  // made by the first open(), shared by the lanes
  mutable int lanes_ = 1;
};

LaneReader::LaneReader(const StreamSource& source, int lane, LaneToken token)
    : source_(source), lane_(lane), token_(std::move(token)) {}

std::int64_t LaneReader::lane_ref() const {
  std::int64_t ref = -1;
  for (const auto& s : token_.shards) {
    if (s.mode == ShardPos::Mode::Done) continue;
    ref = ref < 0 ? s.ref_ms : std::min(ref, s.ref_ms);
  }
  // No shard to read: everything this lane holds is applied as of its last read.
  return ref < 0 ? std::max(read_at_ms_, token_.ref_ms) : ref;
}

ReadRequest LaneReader::next() {
  // Serial pages: the previous page is written and checkpointed by now.
  const std::int64_t now = server_now_ms(source_.streams().client());
  if (!finished_.empty()) {
    source_.lineage().finished(finished_, now);
    finished_.clear();
  }
  // A lane reports only once this run has read it: a position saved a second ago says nothing
  // about the changes made since.
  ending_ =
      source_.lineage().report(lane_, read_this_run_ ? lane_ref() : -1, now, source_.lag_ms());
  ReadRequest r;
  if (ending_) {
    r.local = [] { return RawRead{}; };
  } else {
    r.local = [this] { return read_once(); };
  }
  return r;
}

void LaneReader::trimmed(const ShardPos& s, std::string_view why) const {
  throw Error(trimmed_message(source_.label(), source_.table_name(), s.id, why));
}

void LaneReader::describe_and_adopt() {
  auto d = source_.streams().describe(token_.arn);
  if (!d) throw Error(fmt::format("DescribeStream: {}", d.error().to_string()));
  described_at_ms_ = dynamo::now_epoch_ms();
  std::vector<ShardInfo> shards;
  std::set<std::string> present;
  for (const auto& s : d.value().shards) {
    shards.push_back({s.id, s.parent});
    present.insert(s.id);
  }
  // A shard this lane still has to read that the stream no longer lists was trimmed away.
  for (const auto& s : token_.shards)
    if (s.mode != ShardPos::Mode::Done && !present.contains(s.id))
      trimmed(s, "the shard is no longer in the stream");
  // Done shards the stream no longer lists need not be remembered.
  std::erase_if(token_.shards, [&](const ShardPos& s) {
    return s.mode == ShardPos::Mode::Done && !present.contains(s.id);
  });
  std::vector<std::string> known, done;
  source_.lineage().snapshot(known, done);
  for (auto& id : adoptable_shards(shards, known, done, lane_, source_.lanes())) {
    ShardPos p;
    p.id = id;
    p.mode = ShardPos::Mode::Trim;  // born after the replay began: every record counts
    source_.lineage().know(id, false);
    token_.shards.push_back(std::move(p));
  }
}

std::string LaneReader::iterator_for(ShardPos& s) {
  auto it = iterators_.find(s.id);
  if (it != iterators_.end()) return it->second;
  auto type = s.mode == ShardPos::Mode::After ? dynamo::IteratorType::AfterSequence
                                              : dynamo::IteratorType::TrimHorizon;
  auto r = source_.streams().iterator(token_.arn, s.id, type, s.seq);
  if (!r) {
    const auto& e = r.error();
    if (e.type == "TrimmedDataAccessException" || e.type == "ResourceNotFoundException" ||
        (e.type == "ValidationException" && e.message.find("SequenceNumber") != std::string::npos))
      trimmed(s, e.type);
    throw Error(e.to_string());
  }
  iterators_[s.id] = r.value();
  return r.value();
}

RawRead LaneReader::read_once() {
  if (idle_) std::this_thread::sleep_for(kIdlePause);
  const std::int64_t now_local = dynamo::now_epoch_ms();
  bool has_active = std::any_of(token_.shards.begin(), token_.shards.end(),
                                [](const ShardPos& s) { return s.mode != ShardPos::Mode::Done; });
  if (described_at_ms_ == 0 ||
      ((idle_ || !has_active) && now_local - described_at_ms_ >= kDescribeEveryMs))
    describe_and_adopt();
  std::vector<int> active;
  for (int i = 0; i < static_cast<int>(token_.shards.size()); ++i)
    if (token_.shards[static_cast<std::size_t>(i)].mode != ShardPos::Mode::Done)
      active.push_back(i);
  read_at_ms_ = server_now_ms(source_.streams().client());
  if (active.empty()) {
    current_ = -1;
    return RawRead{};
  }
  current_ = active[cursor_++ % active.size()];
  ShardPos& s = token_.shards[static_cast<std::size_t>(current_)];
  for (int attempt = 0;; ++attempt) {
    const bool fresh = !iterators_.contains(s.id);
    std::string iterator = iterator_for(s);
    auto r = source_.streams().get_records_raw(iterator, kRecordsPerPage);
    if (r) return RawRead{std::move(r.value().body), r.value().attempts, r.value().throttled};
    const auto& e = r.error();
    // An iterator is a lease on a position, not the position: one that expired (15 minutes) or
    // that the server no longer honours (DynamoDB Local answers TrimmedDataAccessException to
    // an iterator handed out while the shard was empty) is renewed from the last sequence
    // number read. Only a fresh iterator's trim means the position itself is gone.
    if ((e.type == "ExpiredIteratorException" ||
         (e.type == "TrimmedDataAccessException" && !fresh)) &&
        attempt < kIteratorRenewals) {
      iterators_.erase(s.id);
      continue;
    }
    if (e.type == "TrimmedDataAccessException")
      trimmed(s, fmt::format("{}: {}", e.type, e.message));
    throw Error(e.to_string());
  }
}

std::vector<Change> LaneReader::collapse(std::vector<StreamRecord>&& records) const {
  // One change per key and page: the old image of every record (each is a state the target may
  // hold) and the last record's new image. Keys keep their first position.
  std::vector<Change> out;
  std::map<std::string, std::size_t> index;
  std::string key;
  for (auto& r : records) {
    key.clear();
    dynamo::write_item(key, r.keys);
    auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) {
      out.emplace_back();
      out.back().keys = r.keys;
      out.back().with_old_images = source_.with_old_images();
    }
    Change& c = out[it->second];
    if (r.old_image) c.old_images.push_back(std::move(*r.old_image));
    if (r.event == StreamRecord::Event::Remove)
      c.new_image.reset();
    else
      c.new_image = std::move(r.new_image);
  }
  return out;
}

SourcePage LaneReader::parse(RawRead&& read) {
  SourcePage page;
  if (ending_) {
    token_.ref_ms = lane_ref();
    page.next = write_token(token_);
    page.ends_run = true;
    return page;
  }
  read_this_run_ = true;
  if (current_ < 0) {  // nothing to read in this lane yet
    idle_ = true;
    token_.ref_ms = lane_ref();
    page.next = write_token(token_);
    return page;
  }
  dynamo::RecordsPage records = dynamo::parse_get_records(read.body);
  ShardPos& s = token_.shards[static_cast<std::size_t>(current_)];
  page.examined = static_cast<std::int64_t>(records.records.size());
  idle_ = records.records.empty();
  if (!records.records.empty()) {
    s.mode = ShardPos::Mode::After;
    s.seq = records.records.back().sequence;
    s.ref_ms = std::max(s.ref_ms, records.records.back().created_ms);
  }
  // A short page read everything the shard held when it was asked for.
  if (static_cast<int>(records.records.size()) < kRecordsPerPage)
    s.ref_ms = std::max(s.ref_ms, read_at_ms_);
  if (records.next_iterator) {
    iterators_[s.id] = *records.next_iterator;
  } else {
    iterators_.erase(s.id);
    s.mode = ShardPos::Mode::Done;
    finished_ = s.id;      // known as done to the other lanes once this page is written
    described_at_ms_ = 0;  // its children may be listed by now
  }
  page.changes = collapse(std::move(records.records));
  token_.ref_ms = lane_ref();
  page.next = write_token(token_);
  return page;
}

}  // namespace

int lane_of_shard(std::string_view shard_id, int lanes) {
  std::uint32_t h = 2166136261u;  // FNV-1a: stable across builds and runs
  for (unsigned char c : shard_id) {
    h ^= c;
    h *= 16777619u;
  }
  return static_cast<int>(h % static_cast<std::uint32_t>(std::max(1, lanes)));
}

std::vector<std::string> adoptable_shards(const std::vector<ShardInfo>& shards,
                                          const std::vector<std::string>& known,
                                          const std::vector<std::string>& done, int lane,
                                          int lanes) {
  std::set<std::string> listed, known_set(known.begin(), known.end()),
      done_set(done.begin(), done.end());
  for (const auto& s : shards) listed.insert(s.id);
  std::vector<std::string> out;
  for (const auto& s : shards) {
    if (known_set.contains(s.id) || lane_of_shard(s.id, lanes) != lane) continue;
    // Parents first: a parent still listed or still being read must be done. A parent neither
    // listed nor known is older than the retention (or than the replay): nothing to wait for.
    const bool parent_ready = s.parent.empty() || done_set.contains(s.parent) ||
                              (!listed.contains(s.parent) && !known_set.contains(s.parent));
    if (parent_ready) out.push_back(s.id);
  }
  return out;
}

std::string require_stream_view(const dynamo::TableDescription& table, std::string_view label) {
  const auto& v = table.stream_view_type;
  if (v && (*v == "NEW_IMAGE" || *v == "NEW_AND_OLD_IMAGES")) return *v;
  throw UsageError(fmt::format(
      "{}: follow: stream needs a stream on table '{}' with NEW_IMAGE or NEW_AND_OLD_IMAGES, and "
      "it has {}; add a step before it: enable_stream: {{ table: ..., view: new_and_old_images }}",
      label, table.name, v ? fmt::format("a {} stream", *v) : std::string("no stream enabled")));
}

std::vector<ResumeToken> stream_start_tokens(dynamo::Client& client, const std::string& table,
                                             std::string_view label) {
  auto d = client.describe_table(table);
  if (!d)
    throw Error(fmt::format("{}: DescribeTable '{}': {}", label, table, d.error().to_string()));
  require_stream_view(d.value(), label);
  const std::string arn = d.value().latest_stream_arn;
  dynamo::StreamsClient streams(dynamo::streams_client_options(client.options()));
  auto desc = streams.describe(arn);
  if (!desc) throw Error(fmt::format("{}: DescribeStream: {}", label, desc.error().to_string()));
  int open = 0;
  for (const auto& s : desc.value().shards) open += !s.closed();
  const int lanes = std::clamp(open, 1, kMaxLanes);
  std::vector<LaneToken> tokens(static_cast<std::size_t>(lanes));
  const std::int64_t now = server_now_ms(streams.client());
  for (auto& t : tokens) {
    t.arn = arn;
    t.ref_ms = now;
  }
  for (const auto& s : desc.value().shards) {
    ShardPos p;
    p.id = s.id;
    p.ref_ms = now;
    if (s.closed()) {
      p.mode = ShardPos::Mode::Done;  // closed before the scan starts: the scan sees it all
    } else {
      // Read to its end: every record there is older than the scan, which will see it.
      auto it = streams.iterator(arn, s.id, dynamo::IteratorType::TrimHorizon);
      if (!it) throw Error(fmt::format("{}: GetShardIterator: {}", label, it.error().to_string()));
      std::string iterator = it.value();
      while (true) {
        auto r = streams.get_records_raw(iterator, kRecordsPerPage);
        if (!r) throw Error(fmt::format("{}: GetRecords: {}", label, r.error().to_string()));
        auto page = dynamo::parse_get_records(r.value().body);
        if (!page.records.empty()) {
          p.mode = ShardPos::Mode::After;
          p.seq = page.records.back().sequence;
        }
        if (!page.next_iterator || static_cast<int>(page.records.size()) < kRecordsPerPage) break;
        iterator = *page.next_iterator;
      }
    }
    tokens[static_cast<std::size_t>(lane_of_shard(s.id, lanes))].shards.push_back(std::move(p));
  }
  std::vector<ResumeToken> out;
  for (const auto& t : tokens) out.push_back(write_token(t));
  return out;
}

std::int64_t stream_token_applied_until_ms(const ResumeToken& token) {
  try {
    return read_token(token).ref_ms;
  } catch (const Error&) {
    return 0;
  }
}

std::unique_ptr<Source> make_stream_source(const SourceContext& context) {
  return std::make_unique<StreamSource>(context);
}

}  // namespace dynamorph::stages
