#include "stages/query_source.h"

#include "stages/step_expressions.h"
#include "stages/table_source.h"

namespace dynamorph::stages {
namespace {

class QuerySource;

class QueryPartition final : public TablePartition {
 public:
  QueryPartition(const QuerySource& source, const std::optional<ResumeToken>& from)
      : TablePartition(from), source_(source) {}
  ReadRequest next() override;

 private:
  const QuerySource& source_;
};

class QuerySource final : public TableSource {
 public:
  explicit QuerySource(const SourceContext& c) : TableSource(c) {
    if (c.expressions.key_condition) key_condition_ = c.expressions.key_condition->to_wire();
    if (c.expressions.filter) filter_ = c.expressions.filter->to_wire();
  }
  int partitions(int) const override { return 1; }
  std::unique_ptr<PartitionReader> open(int, int,
                                        const std::optional<ResumeToken>& from) const override {
    return std::make_unique<QueryPartition>(*this, from);
  }

  ReadRequest request(const std::optional<dynamo::Item>& start) const {
    dynamo::QueryRequest q;
    q.table = spec_.table;
    q.index = spec_.index;
    q.key_condition = key_condition_;
    q.filter = filter_;
    q.limit = page_size_;
    q.exclusive_start_key = start;
    q.consistent_read = spec_.consistent_read;
    q.scan_forward = spec_.scan_forward;
    ReadRequest r;
    r.operation = "Query";
    dynamo::write_query(r.body, q);
    return r;
  }

 private:
  dynamo::WireExpression key_condition_, filter_;
};

ReadRequest QueryPartition::next() { return source_.request(start_key_); }

}  // namespace

std::unique_ptr<Source> make_query_source(const SourceContext& context) {
  return std::make_unique<QuerySource>(context);
}

}  // namespace dynamorph::stages
