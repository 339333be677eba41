#include "benchmark/synthetic.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace dynamorph::benchmark {
namespace {

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

dynamo::AttributeValue number(std::int64_t n) {
  return dynamo::AttributeValue(dynamo::Number::from_canonical(std::to_string(n)));
}

std::string mixed_case(std::string s, std::uint64_t bits) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if ((bits >> (i % 64)) & 1) s[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
  return s;
}

}  // namespace

dynamo::Item synthetic_item(std::int64_t index, int item_bytes, std::uint64_t seed) {
  const std::uint64_t r = mix(static_cast<std::uint64_t>(index) ^ mix(seed));
  const bool photo = index % 5 == 4;
  const std::int64_t user = photo ? index - 1 : index;
  dynamo::Item item;
  item.append(kPartitionKey, fmt::format("USER#{:010}", user));
  std::string* text = nullptr;
  if (!photo) {
    item.append(kSortKey, "PROFILE");
    item.append("username", mixed_case(fmt::format("user{}", user), r));
    item.append("email", fmt::format("user{}@example.com", user));
    item.append("age", number(18 + static_cast<std::int64_t>(r % 60)));
    item.append("tags", dynamo::StringSet{"bench", r % 2 ? "odd" : "even"});
    item.append("bio", std::string());
    text = &item.find("bio")->as<std::string>();
  } else {
    item.append(kSortKey, fmt::format("PHOTO#{:010}", index));
    item.append("createdAt", fmt::format("2026-01-{:02}T10:00:00.000Z", 1 + r % 28));
    item.append("url", fmt::format("https://img.example.com/{:x}.jpg", r));
    item.append("size", number(static_cast<std::int64_t>(r % 5000000)));
    item.append("caption", std::string());
    text = &item.find("caption")->as<std::string>();
  }
  // ±15% around the size asked for, uniformly.
  const double jitter = (static_cast<double>((r >> 20) % 3001) / 3000.0 - 0.5) * 0.30;
  const auto target = static_cast<std::int64_t>(item_bytes * (1.0 + jitter));
  const auto have = static_cast<std::int64_t>(dynamo::item_size(item));
  text->assign(static_cast<std::size_t>(std::max<std::int64_t>(1, target - have)), 'x');
  for (std::size_t i = 0; i < text->size(); i += 7) (*text)[i] = static_cast<char>('a' + (r + i) % 26);
  return item;
}

dynamo::CreateTableRequest bench_table_request(const std::string& table) {
  dynamo::CreateTableRequest r;
  r.table = table;
  r.partition_key = {kPartitionKey, dynamo::AttrType::S};
  r.sort_key = dynamo::KeyAttribute{kSortKey, dynamo::AttrType::S};
  return r;
}

}  // namespace dynamorph::benchmark
