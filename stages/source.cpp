#include "stages/source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dynamo/errors.h"
#include "stages/export_source.h"
#include "stages/keys_source.h"
#include "stages/query_source.h"
#include "stages/registry.h"
#include "stages/scan_source.h"
#include "stages/stream_source.h"

namespace dynamorph::stages {
namespace {

Registry<std::string, SourceFactory>& registry() {
  static Registry<std::string, SourceFactory> r([](auto& r) {
    // One line per source kind.
    r.add("scan", make_scan_source);
    r.add("query", make_query_source);
    r.add("export", make_export_source);
    r.add("stream", make_stream_source);
    r.add("keys", make_keys_source);
  });
  return r;
}

}  // namespace

void register_source(std::string kind, SourceFactory factory) {
  registry().add(std::move(kind), std::move(factory));
}

std::unique_ptr<Source> make_source(const SourceContext& context) {
  const SourceSpec& s = context.spec.source;
  std::string kind = !s.kind.empty() ? s.kind : !s.query_key.empty() ? "query" : "scan";
  SourceFactory factory = registry().find(kind);
  if (!factory)
    throw UsageError(fmt::format("{}: unknown source kind '{}' (this build has: {})",
                                 context.spec.label, kind, fmt::join(registry().keys(), ", ")));
  return factory(context);
}

}  // namespace dynamorph::stages
