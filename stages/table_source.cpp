#include "stages/table_source.h"

#include <fmt/format.h>

#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::stages {

dynamo::TableDescription describe_or_refuse(dynamo::Client& client, const std::string& table,
                                            std::string_view role, std::string_view label) {
  auto d = client.describe_table(table);
  if (d) return std::move(d).value();
  if (d.error().type == "ResourceNotFoundException")
    throw UsageError(fmt::format("{}: {} table '{}' does not exist", label, role, table));
  throw UsageError(fmt::format("{}: DescribeTable '{}': {}", label, table, d.error().to_string()));
}

TablePartition::TablePartition(const std::optional<ResumeToken>& from) {
  if (from) start_key_ = dynamo::parse_item(*from);
}

SourcePage TablePartition::parse(RawRead&& read) {
  dynamo::Page parsed = dynamo::parse_page(read.body);
  SourcePage page;
  page.items = std::move(parsed.items);
  page.examined = parsed.scanned_count;
  page.consumed_rcu = parsed.consumed_capacity;
  if (parsed.last_evaluated_key) {
    page.next.emplace();
    dynamo::write_item(*page.next, *parsed.last_evaluated_key);
  }
  start_key_ = std::move(parsed.last_evaluated_key);
  return page;
}

TableSource::TableSource(const SourceContext& c)
    : spec_(c.spec.source),
      table_(describe_or_refuse(c.client, c.spec.source.table, "source", c.spec.label)),
      page_size_(c.spec.source.page_size > 0 ? c.spec.source.page_size : c.default_page_size) {}

std::string TableSource::describe() const { return fmt::format("table '{}'", spec_.table); }

}  // namespace dynamorph::stages
