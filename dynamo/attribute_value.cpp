#include "dynamo/attribute_value.h"

#include <algorithm>

#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::dynamo {

namespace {
constexpr std::string_view kTags[] = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"};
constexpr std::string_view kNames[] = {"string", "number", "binary", "boolean", "null",
                                       "map",    "list",   "string_set", "number_set",
                                       "binary_set"};

template <class T>
bool same_set(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& x : a) {
    if (std::find(b.begin(), b.end(), x) == b.end()) return false;
  }
  return true;
}
}  // namespace

std::string_view type_tag(AttrType t) { return kTags[static_cast<int>(t)]; }

std::optional<AttrType> parse_type(std::string_view name) {
  for (int i = 0; i < 10; ++i) {
    if (name == kTags[i] || name == kNames[i]) return static_cast<AttrType>(i);
  }
  if (name == "bool") return AttrType::BOOL;
  return std::nullopt;
}

std::optional<Number> Number::parse(std::string_view text, std::string* why) {
  auto d = Decimal::parse(text, why);
  if (!d) return std::nullopt;
  return Number(d->to_string());
}

Decimal Number::value() const {
  auto d = Decimal::parse(text_);
  return d ? *d : Decimal{};
}

std::strong_ordering Number::operator<=>(const Number& other) const {
  if (text_ == other.text_) return std::strong_ordering::equal;
  return value() <=> other.value();
}

bool Number::operator==(const Number& other) const {
  return text_ == other.text_ || value() == other.value();
}

Map::Map(std::initializer_list<Entry> entries) {
  entries_.reserve(entries.size());
  for (const auto& e : entries) set(e.first, e.second);
}

const AttributeValue* Map::find(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.first == name) return &e.second;
  }
  return nullptr;
}

AttributeValue* Map::find(std::string_view name) {
  for (auto& e : entries_) {
    if (e.first == name) return &e.second;
  }
  return nullptr;
}

AttributeValue& Map::set(std::string name, AttributeValue value) {
  if (AttributeValue* v = find(name)) {
    *v = std::move(value);
    return *v;
  }
  return entries_.emplace_back(std::move(name), std::move(value)).second;
}

AttributeValue& Map::append(std::string name, AttributeValue value) {
  return entries_.emplace_back(std::move(name), std::move(value)).second;
}

bool Map::erase(std::string_view name) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const Entry& e) { return e.first == name; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

bool Map::operator==(const Map& other) const {
  if (entries_.size() != other.entries_.size()) return false;
  // Fast path: the same names in the same order (an item and its transformed copy).
  std::size_t i = 0;
  for (; i < entries_.size(); ++i) {
    if (entries_[i].first != other.entries_[i].first) break;
    if (!(entries_[i].second == other.entries_[i].second)) return false;
  }
  if (i == entries_.size()) return true;
  for (const auto& [k, v] : entries_) {
    const AttributeValue* o = other.find(k);
    if (!o || !(*o == v)) return false;
  }
  return true;
}

AttributeValue AttributeValue::number(std::string_view text) {
  std::string why;
  auto n = Number::parse(text, &why);
  if (!n) throw UsageError(why);
  return AttributeValue(std::move(*n));
}

bool AttributeValue::operator==(const AttributeValue& other) const {
  if (v_.index() != other.v_.index()) return false;
  switch (type()) {
    case AttrType::SS: return same_set(as<StringSet>(), other.as<StringSet>());
    case AttrType::NS: return same_set(as<NumberSet>(), other.as<NumberSet>());
    case AttrType::BS: return same_set(as<BinarySet>(), other.as<BinarySet>());
    default: return v_ == other.v_;
  }
}

std::size_t value_size(const AttributeValue& v) {
  // DynamoDB: strings and binaries by length; numbers ~ (significant digits / 2) + 1;
  // maps and lists 3 bytes overhead plus 1 per element; booleans and nulls 1 byte.
  auto number_size = [](const Number& n) {
    std::size_t digits = 0;
    for (char c : n.text()) digits += (c >= '0' && c <= '9');
    return (digits + 1) / 2 + 1;
  };
  switch (v.type()) {
    case AttrType::S: return v.as<std::string>().size();
    case AttrType::N: return number_size(v.as<Number>());
    case AttrType::B: return v.as<Binary>().bytes.size();
    case AttrType::BOOL:
    case AttrType::NUL: return 1;
    case AttrType::M: {
      std::size_t s = 3;
      for (const auto& [k, x] : v.as<Map>()) s += k.size() + value_size(x) + 1;
      return s;
    }
    case AttrType::L: {
      std::size_t s = 3;
      for (const auto& x : v.as<List>()) s += value_size(x) + 1;
      return s;
    }
    case AttrType::SS: {
      std::size_t s = 0;
      for (const auto& x : v.as<StringSet>()) s += x.size();
      return s;
    }
    case AttrType::NS: {
      std::size_t s = 0;
      for (const auto& x : v.as<NumberSet>()) s += number_size(x);
      return s;
    }
    case AttrType::BS: {
      std::size_t s = 0;
      for (const auto& x : v.as<BinarySet>()) s += x.bytes.size();
      return s;
    }
  }
  return 0;
}

std::size_t item_size(const Item& item) {
  std::size_t s = 0;
  for (const auto& [k, v] : item) s += k.size() + value_size(v);
  return s;
}

std::string to_debug_string(const AttributeValue& v) {
  std::string out;
  write_value(out, v);
  return out;
}

std::string to_debug_string(const Item& item) {
  std::string out;
  write_item(out, item);
  return out;
}

}  // namespace dynamorph::dynamo
