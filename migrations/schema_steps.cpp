#include "migrations/schema_steps.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "dynamo/streams.h"
#include "migrations/errors.h"

namespace dynamorph::migrations {
namespace {

using Clock = std::chrono::steady_clock;

std::string key_text(const dynamo::KeyAttribute& k) {
  return fmt::format("{} {}", k.name, dynamo::type_tag(k.type));
}
std::string keys_text(const dynamo::KeyAttribute& pk,
                      const std::optional<dynamo::KeyAttribute>& sk) {
  return sk ? fmt::format("{}, {}", key_text(pk), key_text(*sk)) : key_text(pk);
}

class Runner {
 public:
  Runner(dynamo::Client& c, const Step& s, const ProgressLine& p, const std::atomic<bool>& stop)
      : client_(c), step_(s), progress_(p), stop_(stop) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw StepFailed(fmt::format("{}: {}: {}", step_.where, step_.kind, what));
  }

  std::optional<dynamo::TableDescription> describe(const std::string& table) {
    auto d = client_.describe_table(table);
    if (d) return std::move(d).value();
    if (d.error().type == "ResourceNotFoundException") return std::nullopt;
    fail(d.error().to_string());
  }

  // Polls until `done(description)` says so; false when stopped.
  template <class Done>
  bool wait(const std::string& table, const std::string& what, Done done) {
    const auto start = Clock::now();
    auto last_line = start;
    auto pause = std::chrono::milliseconds(100);
    while (true) {
      auto d = describe(table);
      if (done(d)) {
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
        if (secs >= 1) progress_(fmt::format("  {} ({}s)", what, secs));
        return true;
      }
      if (stop_.load()) return false;
      if (Clock::now() - last_line > std::chrono::seconds(10)) {
        last_line = Clock::now();
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(last_line - start).count();
        progress_(fmt::format("  waiting: {} — table {} is {} ({}s)", what, table,
                              d ? d->status : "absent", secs));
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(2000));
    }
  }

  static bool all_active(const std::optional<dynamo::TableDescription>& d) {
    if (!d || d->status != "ACTIVE") return false;
    for (const auto& g : d->global_indexes)
      if (g.status != "ACTIVE") return false;
    return true;
  }

  bool same_index(const dynamo::IndexDescription& have, const dynamo::IndexDefinition& want) {
    if (!(have.partition_key == want.partition_key) || have.sort_key != want.sort_key) return false;
    if (have.projection.kind != want.projection.kind) return false;
    if (want.projection.kind == dynamo::Projection::Kind::Include) {
      auto a = have.projection.non_key_attributes, b = want.projection.non_key_attributes;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      if (a != b) return false;
    }
    return true;
  }

  bool ttl(const std::string& table, const std::string& attribute, bool enabled) {
    auto t = client_.describe_ttl(table);
    if (!t) fail(t.error().to_string());
    const auto& cur = t.value();
    const bool on = cur.status == "ENABLED" || cur.status == "ENABLING";
    if (enabled && on) {
      if (cur.attribute != attribute)
        fail(fmt::format(
            "TTL of {} is already on attribute '{}'; disable it first (update_ttl enabled: false)",
            table, cur.attribute));
      return true;
    }
    if (!enabled && !on) return true;
    auto u = client_.update_ttl(
        table, enabled ? attribute : (cur.attribute.empty() ? attribute : cur.attribute), enabled);
    if (!u) fail(u.error().to_string());
    progress_(fmt::format("  TTL {} on {}.{}", enabled ? "enabled" : "disabled", table, attribute));
    return true;
  }

  bool create_table(const CreateTableStep& s) {
    const auto& r = s.request;
    auto d = describe(r.table);
    if (d) {
      if (!(d->partition_key == r.partition_key) || d->sort_key != r.sort_key)
        fail(fmt::format("table {} exists with key ({}), the step wants ({})", r.table,
                         keys_text(d->partition_key, d->sort_key),
                         keys_text(r.partition_key, r.sort_key)));
      for (const auto& g : r.global_indexes) {
        const auto* have = d->find_global_index(g.name);
        if (!have || !same_index(*have, g))
          fail(fmt::format("table {} exists, but its index {} is {} what the step asks for",
                           r.table, g.name, have ? "not" : "missing, unlike"));
      }
      for (const auto& l : r.local_indexes) {
        bool found = false;
        for (const auto& have : d->local_indexes)
          if (have.name == l.name) found = same_index(have, l);
        if (!found)
          fail(fmt::format("table {} exists, but its local index {} differs from the step's",
                           r.table, l.name));
      }
      progress_(fmt::format("  table {} exists with the same key schema; accepted", r.table));
    } else {
      auto c = client_.create_table(r);
      if (!c && c.error().type != "ResourceInUseException") fail(c.error().to_string());
    }
    if (!wait(r.table, fmt::format("table {} is ACTIVE", r.table), all_active)) return false;
    if (s.ttl_attribute) return ttl(r.table, *s.ttl_attribute, true);
    return true;
  }

  bool add_gsi(const AddGsiStep& s) {
    auto d = describe(s.table);
    if (!d) fail(fmt::format("table {} does not exist", s.table));
    const auto* have = d->find_global_index(s.index.name);
    if (have) {
      if (!same_index(*have, s.index))
        fail(fmt::format("index {} exists on {} with a different key or projection", s.index.name,
                         s.table));
    } else {
      auto ix = s.index;
      if (d->provisioned && !ix.throughput) ix.throughput = d->provisioned;
      if (!d->provisioned) ix.throughput.reset();
      if (!wait(s.table, fmt::format("table {} is ACTIVE", s.table), all_active)) return false;
      auto u = client_.update_table(
          s.table, {dynamo::GlobalIndexUpdate{dynamo::GlobalIndexUpdate::Kind::Create, ix}});
      if (!u && !(u.error().type == "ValidationException" &&
                  u.error().message.find("already exists") != std::string::npos))
        fail(u.error().to_string());
    }
    return wait(s.table, fmt::format("index {} on {} is ACTIVE", s.index.name, s.table),
                [&](const auto& x) {
                  if (!all_active(x)) return false;
                  const auto* g = x->find_global_index(s.index.name);
                  return g && !g->backfilling;
                });
  }

  bool delete_gsi(const DeleteGsiStep& s) {
    auto d = describe(s.table);
    if (!d) fail(fmt::format("table {} does not exist", s.table));
    const auto* have = d->find_global_index(s.index);
    if (have && have->status != "DELETING") {
      if (!wait(s.table, fmt::format("table {} is ACTIVE", s.table), all_active)) return false;
      dynamo::GlobalIndexUpdate u{dynamo::GlobalIndexUpdate::Kind::Delete, {}};
      u.index.name = s.index;
      auto r = client_.update_table(s.table, {u});
      if (!r && r.error().type != "ResourceNotFoundException") fail(r.error().to_string());
    } else if (!have) {
      progress_(fmt::format("  index {} on {} is already gone", s.index, s.table));
    }
    return wait(s.table, fmt::format("index {} on {} deleted", s.index, s.table),
                [&](const auto& x) {
                  return x && x->status == "ACTIVE" && !x->find_global_index(s.index);
                });
  }

  bool delete_table(const DeleteTableStep& s) {
    auto d = describe(s.table);
    if (!d) {
      progress_(fmt::format("  table {} is already gone", s.table));
      return true;
    }
    if (d->status != "DELETING") {
      auto r = client_.delete_table(s.table);
      if (!r && r.error().type != "ResourceNotFoundException") fail(r.error().to_string());
    }
    return wait(s.table, fmt::format("table {} deleted", s.table),
                [](const auto& x) { return !x.has_value(); });
  }

  // Idempotent: a stream with this view is accepted; one with another view is an error (changing
  // it means a new stream, which a replay in progress would lose).
  bool enable_stream(const EnableStreamStep& s) {
    auto d = describe(s.table);
    if (!d) fail(fmt::format("table {} does not exist", s.table));
    if (d->stream_view_type) {
      if (*d->stream_view_type != s.view)
        fail(fmt::format("table {} has a {} stream already; the step wants {} (disable it first: "
                         "a new stream begins empty)",
                         s.table, *d->stream_view_type, s.view));
      progress_(fmt::format("  stream of {} is already on ({})", s.table, s.view));
    } else {
      if (!wait(s.table, fmt::format("table {} is ACTIVE", s.table), all_active)) return false;
      auto u = client_.update_stream(s.table, true, s.view);
      if (!u && !(u.error().type == "ValidationException" &&
                  u.error().message.find("already") != std::string::npos))
        fail(u.error().to_string());
    }
    // ENABLED: DescribeStream's status, on the Streams endpoint.
    auto now = describe(s.table);
    if (!now || now->latest_stream_arn.empty())
      fail(fmt::format("table {} reports no stream after enabling it", s.table));
    dynamo::StreamsClient streams(dynamo::streams_client_options(client_.options()));
    auto pause = std::chrono::milliseconds(100);
    const auto start = Clock::now();
    while (true) {
      auto sd = streams.describe(now->latest_stream_arn);
      if (!sd) fail(sd.error().to_string());
      if (sd.value().status == "ENABLED") break;
      if (stop_.load()) return false;
      if (Clock::now() - start > std::chrono::minutes(10))
        fail(fmt::format("the stream of {} is still {} after 10 minutes", s.table,
                         sd.value().status));
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(2000));
    }
    return wait(s.table, fmt::format("table {} is ACTIVE", s.table), all_active);
  }

  bool run() {
    return std::visit(
        [&](const auto& b) -> bool {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, CreateTableStep>)
            return create_table(b);
          else if constexpr (std::is_same_v<T, AddGsiStep>)
            return add_gsi(b);
          else if constexpr (std::is_same_v<T, DeleteGsiStep>)
            return delete_gsi(b);
          else if constexpr (std::is_same_v<T, UpdateTtlStep>) {
            if (!describe(b.table)) fail(fmt::format("table {} does not exist", b.table));
            return ttl(b.table, b.attribute, b.enabled);
          } else if constexpr (std::is_same_v<T, DeleteTableStep>)
            return delete_table(b);
          else if constexpr (std::is_same_v<T, EnableStreamStep>)
            return enable_stream(b);
          else
            fail("not a schema step");
        },
        step_.body);
  }

 private:
  dynamo::Client& client_;
  const Step& step_;
  const ProgressLine& progress_;
  const std::atomic<bool>& stop_;
};

}  // namespace

bool run_schema_step(dynamo::Client& client, const Step& step, const ProgressLine& progress,
                     const std::atomic<bool>& stop) {
  Runner r(client, step, progress, stop);
  return r.run();
}

}  // namespace dynamorph::migrations
