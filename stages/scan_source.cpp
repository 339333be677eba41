#include "stages/scan_source.h"

#include "stages/step_expressions.h"
#include "stages/table_source.h"

namespace dynamorph::stages {
namespace {

class ScanSource;

class ScanPartition final : public TablePartition {
 public:
  ScanPartition(const ScanSource& source, int segment, int total,
                const std::optional<ResumeToken>& from)
      : TablePartition(from), source_(source), segment_(segment), total_(total) {}
  ReadRequest next() override;

 private:
  const ScanSource& source_;
  int segment_, total_;
};

class ScanSource final : public TableSource {
 public:
  explicit ScanSource(const SourceContext& c) : TableSource(c) {
    if (c.expressions.filter) filter_ = c.expressions.filter->to_wire();
  }
  int partitions(int requested) const override { return std::max(1, requested); }
  std::unique_ptr<PartitionReader> open(int partition, int total,
                                        const std::optional<ResumeToken>& from) const override {
    return std::make_unique<ScanPartition>(*this, partition, total, from);
  }

  ReadRequest request(int segment, int total, const std::optional<dynamo::Item>& start) const {
    dynamo::ScanRequest s;
    s.table = spec_.table;
    s.index = spec_.index;
    s.segment = segment;
    s.total_segments = total;
    s.filter = filter_;
    s.limit = page_size_;
    s.exclusive_start_key = start;
    s.consistent_read = spec_.consistent_read;
    ReadRequest r;
    r.operation = "Scan";
    dynamo::write_scan(r.body, s);
    return r;
  }

 private:
  dynamo::WireExpression filter_;
};

ReadRequest ScanPartition::next() { return source_.request(segment_, total_, start_key_); }

}  // namespace

std::unique_ptr<Source> make_scan_source(const SourceContext& context) {
  return std::make_unique<ScanSource>(context);
}

}  // namespace dynamorph::stages
