// What the sources that read a DynamoDB table share (scan_source, query_source): the table's
// description, taken at plan time, and pages parsed from Scan/Query answers, whose resume token
// is the LastEvaluatedKey in DynamoDB JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "stages/source.h"

namespace dynamorph::stages {

// DescribeTable, or UsageError "<label>: <role> table 'x' does not exist".
dynamo::TableDescription describe_or_refuse(dynamo::Client& client, const std::string& table,
                                            std::string_view role, std::string_view label);

// A Scan/Query partition: builds the request body from the last key, parses the answer.
class TablePartition : public PartitionReader {
 public:
  explicit TablePartition(const std::optional<ResumeToken>& from);
  SourcePage parse(RawRead&& read) override;

 protected:
  std::optional<dynamo::Item> start_key_;  // ExclusiveStartKey of the next request
};

class TableSource : public Source {
 public:
  TableSource(const SourceContext& c);
  const std::optional<dynamo::TableDescription>& table() const override { return table_; }
  std::string describe() const override;
  std::int64_t estimated_items() const override { return table_->item_count; }

 protected:
  SourceSpec spec_;
  std::optional<dynamo::TableDescription> table_;
  int page_size_;
};

}  // namespace dynamorph::stages
