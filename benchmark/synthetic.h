// Synthetic items for the benchmarks: a single-table design like the applications dynamorph
// migrates. Four in five items are user profiles (pk USER#<n>, sk PROFILE: username in mixed
// case, email, age, tags, bio), one in five a photo of the profile before it (pk USER#<n>,
// sk PHOTO#<n>: createdAt, url, size, caption). The free text is padded so that each item's
// DynamoDB size is within ±15% of the size asked for (mean on it). Item i is the same for the
// same seed on every machine. Pure functions.
#pragma once

#include <cstdint>

#include "dynamo/attribute_value.h"
#include "dynamo/requests.h"

namespace dynamorph::benchmark {

inline constexpr const char* kPartitionKey = "pk";
inline constexpr const char* kSortKey = "sk";
inline constexpr int kMinItemBytes = 120;  // the attributes alone take about this much

dynamo::Item synthetic_item(std::int64_t index, int item_bytes, std::uint64_t seed);

// The bench table: pk (S) and sk (S), on demand.
dynamo::CreateTableRequest bench_table_request(const std::string& table);

}  // namespace dynamorph::benchmark
