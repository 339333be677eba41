#include "benchmark/write_load.h"

#include <fmt/format.h>

#include <thread>
#include <vector>

#include "benchmark/synthetic.h"
#include "stages/sink.h"
#include "stages/write_support.h"

namespace dynamorph::benchmark {

std::optional<WriteKind> parse_write_kind(std::string_view s) {
  if (s == "batch") return WriteKind::Batch;
  if (s == "update") return WriteKind::Update;
  if (s == "transact") return WriteKind::Transact;
  return std::nullopt;
}

std::string_view to_string(WriteKind k) {
  switch (k) {
    case WriteKind::Batch: return "batch";
    case WriteKind::Update: return "update";
    case WriteKind::Transact: return "transact";
    case WriteKind::Delete: return "delete";
  }
  return "?";
}

std::string_view operation_of(WriteKind k) {
  switch (k) {
    case WriteKind::Batch: return "BatchWriteItem";
    case WriteKind::Update: return "UpdateItem";
    case WriteKind::Transact: return "TransactWriteItems";
    case WriteKind::Delete: return "BatchWriteItem";
  }
  return "?";
}

WriteLoad::WriteLoad(dynamo::Client& client, WriteLoadOptions options)
    : client_(client), o_(std::move(options)), limiter_(o_.max_wcu) {}

WriteTotals WriteLoad::totals() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

void WriteLoad::finished(int count, std::int64_t bytes, double booked, double wcu,
                         std::string error) {
  if (booked > 0) limiter_.record(booked, error.empty() ? wcu : booked, false);
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    if (error.empty()) {
      totals_.items += count;
      totals_.bytes += bytes;
      totals_.wcu += wcu;
    } else if (error_.empty()) {
      error_ = std::move(error);
    }
  }
  cv_.notify_all();
}

void WriteLoad::send_next(std::int64_t first, int count, double booked) {
  std::vector<dynamo::Item> items;
  std::int64_t bytes = 0;
  for (int i = 0; i < count; ++i) {
    items.push_back(synthetic_item(first + i, o_.item_bytes, o_.seed));
    bytes += static_cast<std::int64_t>(dynamo::item_size(items.back()));
  }
  switch (o_.kind) {
    case WriteKind::Batch:
    case WriteKind::Delete: {
      std::vector<dynamo::BatchWriteEntry> entries;
      for (auto& item : items) {
        if (o_.kind == WriteKind::Delete) {
          dynamo::Item key;
          key.append(kPartitionKey, *item.find(kPartitionKey));
          key.append(kSortKey, *item.find(kSortKey));
          entries.push_back({o_.table, dynamo::BatchWriteEntry::Kind::Delete, std::move(key)});
        } else {
          entries.push_back({o_.table, dynamo::BatchWriteEntry::Kind::Put, std::move(item)});
        }
      }
      client_.batch_write_async(std::move(entries),
                                [this, count, bytes, booked](dynamo::Outcome<dynamo::BatchWriteSummary> r) {
                                  if (!r) return finished(count, 0, booked, 0, r.error().to_string());
                                  finished(count, bytes, booked, r.value().consumed_capacity, {});
                                });
      break;
    }
    case WriteKind::Update: {
      dynamo::UpdateItemRequest u;
      u.table = o_.table;
      u.key.append(kPartitionKey, *items[0].find(kPartitionKey));
      u.key.append(kSortKey, *items[0].find(kSortKey));
      u.update = stages::update_expression(u.key, items[0]);
      std::string body;
      dynamo::write_update_item(body, u);
      client_.call_async("UpdateItem", std::move(body),
                         [this, bytes, booked](dynamo::Outcome<dynamo::RawResponse> r) {
                           if (!r) return finished(1, 0, booked, 0, r.error().to_string());
                           finished(1, bytes, booked, dynamo::parse_consumed_total(r.value().body), {});
                         });
      break;
    }
    case WriteKind::Transact: {
      std::vector<dynamo::TransactAction> actions;
      for (auto& item : items) {
        dynamo::TransactAction a;
        a.kind = dynamo::TransactAction::Kind::Put;
        a.table = o_.table;
        a.item = std::move(item);
        actions.push_back(std::move(a));
      }
      client_.transact_write_async(std::move(actions), {},
                                   [this, count, bytes, booked](dynamo::Outcome<double> r) {
                                     if (!r) return finished(count, 0, booked, 0, r.error().to_string());
                                     finished(count, bytes, booked, r.value(), {});
                                   });
      break;
    }
  }
}

WriteLoadResult WriteLoad::run() {
  const int per_request = o_.kind == WriteKind::Update     ? 1
                          : o_.kind == WriteKind::Transact ? kItemsPerTransaction
                                                           : 25;
  const int window = std::max(1, o_.in_flight);
  const auto start = std::chrono::steady_clock::now();
  WriteLoadResult result;
  std::int64_t next = o_.first;
  const std::int64_t end = o_.first + o_.items;
  while (next < end) {
    if (o_.stop && o_.stop->load()) {
      result.stopped = true;
      break;
    }
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, std::chrono::milliseconds(100),
                   [&] { return in_flight_ < window || !error_.empty(); });
      if (!error_.empty()) break;
      if (in_flight_ >= window) continue;
      ++in_flight_;
    }
    const int count = static_cast<int>(std::min<std::int64_t>(per_request, end - next));
    if (o_.max_wcu > 0) {
      // Units booked up front from the item size (1 WCU per KB, doubled in transactions).
      const double units = count * std::max(1.0, o_.item_bytes / 1024.0) *
                           (o_.kind == WriteKind::Transact ? 2.0 : 1.0);
      std::this_thread::sleep_until(limiter_.reserve(units));
      send_next(next, count, units);
    } else {
      send_next(next, count, 0);
    }
    next += count;
  }
  {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    result.totals = totals_;
    result.error = error_;
  }
  result.wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace dynamorph::benchmark
