#include "stages/keys_source.h"

#include <fmt/format.h>

#include <charconv>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "stages/table_source.h"

namespace dynamorph::stages {
namespace {

class KeysSource;

class KeysPartition final : public PartitionReader {
 public:
  KeysPartition(const KeysSource& source, int partition, int total,
                const std::optional<ResumeToken>& from);
  ReadRequest next() override;
  SourcePage parse(RawRead&& read) override;

 private:
  const KeysSource& source_;
  std::size_t partition_, total_;
  std::size_t done_ = 0;  // keys of this partition read so far
};

class KeysSource final : public TableSource {
 public:
  explicit KeysSource(const SourceContext& c) : TableSource(c) {
    if (spec_.keys.empty()) throw UsageError(fmt::format("{}: no keys to read", c.spec.label));
  }
  int partitions(int requested) const override {
    return static_cast<int>(std::clamp<std::size_t>(static_cast<std::size_t>(std::max(1, requested)),
                                                    1, spec_.keys.size()));
  }
  std::unique_ptr<PartitionReader> open(int partition, int total,
                                        const std::optional<ResumeToken>& from) const override {
    return std::make_unique<KeysPartition>(*this, partition, total, from);
  }
  std::string describe() const override {
    return fmt::format("{} keys of table '{}'", spec_.keys.size(), spec_.table);
  }
  std::int64_t estimated_items() const override {
    return static_cast<std::int64_t>(spec_.keys.size());
  }
  const std::vector<dynamo::Item>& keys() const { return spec_.keys; }
  const std::string& table_name() const { return spec_.table; }
};

KeysPartition::KeysPartition(const KeysSource& source, int partition, int total,
                             const std::optional<ResumeToken>& from)
    : source_(source),
      partition_(static_cast<std::size_t>(partition)),
      total_(static_cast<std::size_t>(std::max(1, total))) {
  if (from) {
    auto [end, ec] = std::from_chars(from->data(), from->data() + from->size(), done_);
    if (ec != std::errc() || end != from->data() + from->size())
      throw Error(fmt::format("keys source: resume token '{}' is not a count", *from));
  }
}

ReadRequest KeysPartition::next() {
  const std::size_t at = partition_ + done_ * total_;
  ReadRequest r;
  r.operation = "GetItem";
  dynamo::write_get_item(r.body, dynamo::GetItemRequest{source_.table_name(),
                                                        source_.keys().at(at), true});
  return r;
}

SourcePage KeysPartition::parse(RawRead&& read) {
  SourcePage page;
  double consumed = 0;
  if (auto item = dynamo::parse_get_item(read.body, &consumed)) page.items.push_back(*item);
  page.examined = 1;
  page.consumed_rcu = consumed;
  ++done_;
  if (partition_ + done_ * total_ < source_.keys().size()) page.next = std::to_string(done_);
  return page;
}

}  // namespace

std::unique_ptr<Source> make_keys_source(const SourceContext& context) {
  return std::make_unique<KeysSource>(context);
}

}  // namespace dynamorph::stages
