// The item model: one AttributeValue covers DynamoDB's ten types; an Item is a Map of them.
// Plain values: safe to share read-only between threads, not to mutate concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dynamo/decimal.h"

namespace dynamorph::dynamo {

enum class AttrType : std::uint8_t { S, N, B, BOOL, NUL, M, L, SS, NS, BS };

// "S", "N", … "NULL", "M", "L", "SS", "NS", "BS": the wire tag.
std::string_view type_tag(AttrType t);
// Accepts the wire tag or the long name (string number binary boolean null map list string_set
// number_set binary_set).
std::optional<AttrType> parse_type(std::string_view name);

// A number as its decimal text. Text from the server is canonical already and kept as is; text
// from users goes through Number::parse, which canonicalizes it.
class Number {
 public:
  Number() : text_("0") {}
  static std::optional<Number> parse(std::string_view text, std::string* why = nullptr);
  static Number from_canonical(std::string text) { return Number(std::move(text)); }
  static Number from_decimal(const Decimal& d) { return Number(d.to_string()); }

  const std::string& text() const { return text_; }
  Decimal value() const;  // exact; the text was validated when it came in
  std::strong_ordering operator<=>(const Number& other) const;
  bool operator==(const Number& other) const;

 private:
  explicit Number(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Raw bytes (decoded from base64 on the wire).
struct Binary {
  std::string bytes;
  bool operator==(const Binary&) const = default;
  auto operator<=>(const Binary& o) const { return bytes <=> o.bytes; }
};

struct Null {
  bool operator==(const Null&) const = default;
};

class AttributeValue;

// Attribute name → value, in insertion order. Items are small (a handful of attributes), so a
// flat vector with linear lookup beats any hash map; equality ignores order.
class Map {
 public:
  using Entry = std::pair<std::string, AttributeValue>;

  Map() = default;
  Map(std::initializer_list<Entry> entries);

  const AttributeValue* find(std::string_view name) const;
  AttributeValue* find(std::string_view name);
  // Inserts or replaces; returns the stored value.
  AttributeValue& set(std::string name, AttributeValue value);
  bool erase(std::string_view name);

  // Defined below AttributeValue: clang needs the element type complete here.
  std::size_t size() const;
  bool empty() const;
  void reserve(std::size_t n);
  void clear();
  // Appends without looking for an existing name: for parsers, which see each name once.
  AttributeValue& append(std::string name, AttributeValue value);

  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  auto begin() { return entries_.begin(); }
  auto end() { return entries_.end(); }

  bool operator==(const Map& other) const;

 private:
  std::vector<Entry> entries_;
};

using List = std::vector<AttributeValue>;
using StringSet = std::vector<std::string>;  // sets keep arrival order; equality ignores it
using NumberSet = std::vector<Number>;
using BinarySet = std::vector<Binary>;

class AttributeValue {
 public:
  using Storage = std::variant<std::string, Number, Binary, bool, Null, Map, List, StringSet,
                               NumberSet, BinarySet>;

  AttributeValue() : v_(Null{}) {}
  AttributeValue(std::string s) : v_(std::move(s)) {}
  AttributeValue(const char* s) : v_(std::string(s)) {}
  AttributeValue(Number n) : v_(std::move(n)) {}
  AttributeValue(Binary b) : v_(std::move(b)) {}
  AttributeValue(bool b) : v_(b) {}
  AttributeValue(Null n) : v_(n) {}
  AttributeValue(Map m) : v_(std::move(m)) {}
  AttributeValue(List l) : v_(std::move(l)) {}
  AttributeValue(StringSet s) : v_(std::move(s)) {}
  AttributeValue(NumberSet s) : v_(std::move(s)) {}
  AttributeValue(BinarySet s) : v_(std::move(s)) {}

  // Convenience for tests and literals: a number from its text; throws UsageError if invalid.
  static AttributeValue number(std::string_view text);

  AttrType type() const { return static_cast<AttrType>(v_.index()); }
  template <class T> bool is() const { return std::holds_alternative<T>(v_); }
  template <class T> const T& as() const { return std::get<T>(v_); }
  template <class T> T& as() { return std::get<T>(v_); }
  template <class T> const T* get_if() const { return std::get_if<T>(&v_); }
  template <class T> T* get_if() { return std::get_if<T>(&v_); }
  const Storage& storage() const { return v_; }

  // DynamoDB equality: same type and value; sets and maps compare without regard to order;
  // numbers compare by value.
  bool operator==(const AttributeValue& other) const;

 private:
  Storage v_;
};

inline std::size_t Map::size() const { return entries_.size(); }
inline bool Map::empty() const { return entries_.empty(); }
inline void Map::reserve(std::size_t n) { entries_.reserve(n); }
inline void Map::clear() { entries_.clear(); }

using Item = Map;

// The item's size as DynamoDB counts it (names + values), for the 400 KB limit and capacity.
std::size_t item_size(const Item& item);
std::size_t value_size(const AttributeValue& v);

// Compact human-readable rendering in DynamoDB JSON, for messages and diffs.
std::string to_debug_string(const AttributeValue& v);
std::string to_debug_string(const Item& item);

}  // namespace dynamorph::dynamo
