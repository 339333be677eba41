#include "stages/sink.h"

#include <fmt/format.h>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "stages/batch_sink.h"
#include "stages/delete_sink.h"
#include "stages/none_sink.h"
#include "stages/registry.h"
#include "stages/transact_sink.h"
#include "stages/update_sink.h"

namespace dynamorph::stages {
namespace {

Registry<WriteMode, SinkFactory>& registry() {
  static Registry<WriteMode, SinkFactory> r([](auto& r) {
    // One line per write mode.
    r.add(WriteMode::Batch, make_batch_sink);
    r.add(WriteMode::Update, make_update_sink);
    r.add(WriteMode::Transact, make_transact_sink);
    r.add(WriteMode::Delete, make_delete_sink);
    r.add(WriteMode::None, make_none_sink);
  });
  return r;
}

}  // namespace

void register_sink(WriteMode mode, SinkFactory factory) {
  registry().add(mode, std::move(factory));
}

std::unique_ptr<Sink> make_sink(WriteMode mode, const ItemProcessor& processor) {
  SinkFactory factory = registry().find(mode);
  if (!factory)
    throw UsageError(fmt::format("write mode '{}' has no sink in this build", to_string(mode)));
  return factory(processor);
}

ReadRequest Sink::reread(const dynamo::Item& scanned) const {
  dynamo::GetItemRequest g{processor_.source().name, processor_.source_key(scanned), true};
  ReadRequest r;
  r.operation = "GetItem";
  dynamo::write_get_item(r.body, g);
  return r;
}

std::optional<dynamo::Item> Sink::parse_reread(const std::string& body) const {
  return dynamo::parse_get_item(body);
}

void WriteCost::add_index(const std::vector<double>& units) {
  if (index.size() < units.size()) index.resize(units.size(), 0.0);
  for (std::size_t i = 0; i < units.size(); ++i) {
    index[i] += units[i];
    wcu += units[i];
  }
}

WriteCost& WriteCost::operator+=(const WriteCost& o) {
  const double table = wcu;
  add_index(o.index);
  wcu = table + o.wcu;  // o.wcu holds its indexes' share already
  return *this;
}

void WriteOp::add_cost(const WriteCost& c) {
  wcu_estimate += c.wcu;
  if (index_wcu.size() < c.index.size()) index_wcu.resize(c.index.size(), 0.0);
  for (std::size_t i = 0; i < c.index.size(); ++i) index_wcu[i] += c.index[i];
}

}  // namespace dynamorph::stages
