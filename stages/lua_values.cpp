#include "stages/lua_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "expr/expr_functions.h"

namespace dynamorph::stages::lua {

using dynamo::AttributeValue;
using dynamo::Binary;
using dynamo::Decimal;
using dynamo::Item;
using dynamo::Number;

// Every full userdata a script can reach is one of these (the allowed libraries make none), and
// each starts with its kind; the metatable is checked as well.
enum class Kind : std::uint8_t { N, B, SS, NS, BS, Null, Delete };

namespace {

constexpr int kMaxDepth = 32;  // DynamoDB's nesting limit for maps and lists
constexpr const char* kKindNames[kTypedKinds] = {
    "dynamorph.N",  "dynamorph.B",    "dynamorph.SS",    "dynamorph.NS",
    "dynamorph.BS", "dynamorph.null", "dynamorph.delete"};
struct alignas(8) Header {
  Kind kind;
};
struct DecimalBox {
  Header h;
  Decimal value;
};
constexpr std::size_t kBinaryOffset = sizeof(Header);  // B: the bytes follow the header

// What the script assigns through the proxy lands in the store, nil as this tombstone.
char kTombstone;

// ---- typed values ------------------------------------------------------------------------------

Header* header_of(lua_State* L, int idx, const Vm& vm) {
  if (lua_type(L, idx) != LUA_TUSERDATA) return nullptr;
  auto* h = static_cast<Header*>(lua_touserdata(L, idx));
  const int k = static_cast<int>(h->kind);
  if (k < 0 || k >= kTypedKinds || !lua_getmetatable(L, idx)) return nullptr;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.mt_kind[k]);
  const bool ours = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return ours ? h : nullptr;
}

}  // namespace

const char* type_name(lua_State* L, int idx, const Vm& vm) {
  if (Header* h = header_of(L, idx, vm)) return kKindNames[static_cast<int>(h->kind)];
  return luaL_typename(L, idx);
}

Mark mark_of(lua_State* L, int idx, const Vm& vm) {
  if (!lua_getmetatable(L, idx)) return Mark::None;
  Mark m = Mark::None;
  for (auto [ref, mark] : {std::pair{vm.mt_item, Mark::Item}, std::pair{vm.mt_map, Mark::M},
                           std::pair{vm.mt_list, Mark::L}, std::pair{vm.mt_many, Mark::Many}}) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    const bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (same) {
      m = mark;
      break;
    }
  }
  lua_pop(L, 1);
  return m;
}

bool is_delete(lua_State* L, int idx, const Vm& vm) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_delete);
  const bool same = lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  return same;
}

namespace {

void set_mark(lua_State* L, int idx, int ref) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_setmetatable(L, idx);
}

void* new_typed(lua_State* L, const Vm& vm, Kind kind, std::size_t size, int user_values = 0) {
  void* p = lua_newuserdatauv(L, size, user_values);
  static_cast<Header*>(p)->kind = kind;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.mt_kind[static_cast<int>(kind)]);
  lua_setmetatable(L, -2);
  return p;
}

void push_binary(lua_State* L, const Vm& vm, std::string_view bytes) {
  auto* p = static_cast<char*>(new_typed(L, vm, Kind::B, kBinaryOffset + bytes.size()));
  if (!bytes.empty()) std::memcpy(p + kBinaryOffset, bytes.data(), bytes.size());
}

std::string_view binary_bytes(lua_State* L, int idx) {
  auto* p = static_cast<const char*>(lua_touserdata(L, idx));
  return {p + kBinaryOffset, lua_rawlen(L, idx) - kBinaryOffset};
}

// An N: a Lua integer when it is an integer that fits, else an exact decimal.
void push_decimal(lua_State* L, const Vm& vm, const Decimal& d) {
  if (auto i = d.to_int64()) {
    lua_pushinteger(L, *i);
    return;
  }
  auto* box = static_cast<DecimalBox*>(new_typed(L, vm, Kind::N, sizeof(DecimalBox)));
  box->value = d;
}

void push_number(lua_State* L, const Vm& vm, const Number& n) {
  const std::string& t = n.text();
  std::int64_t i = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), i);
  if (ec == std::errc() && p == t.data() + t.size()) {
    lua_pushinteger(L, i);
    return;
  }
  push_decimal(L, vm, n.value());
}

// A Lua float as its shortest round-trip decimal; nullopt for inf and NaN or out of range.
std::optional<Decimal> float_decimal(double x, std::string* why) {
  if (!std::isfinite(x)) {
    if (why) *why = fmt::format("{} is not a number DynamoDB can store", x);
    return std::nullopt;
  }
  char buf[40];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return Decimal::parse(std::string_view(buf, static_cast<std::size_t>(p - buf)), why);
}

// The exact value of a Lua number or decimal at idx; false when it is neither (or a float that
// cannot be stored, with *why).
bool to_decimal(lua_State* L, int idx, const Vm& vm, Decimal& out, std::string* why) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      out = Decimal::from_int(lua_tointeger(L, idx));
      return true;
    }
    auto d = float_decimal(lua_tonumber(L, idx), why);
    if (!d) return false;
    out = *d;
    return true;
  }
  Header* h = header_of(L, idx, vm);
  if (!h || h->kind != Kind::N) {
    if (why) *why = fmt::format("{} is not a number", luaL_typename(L, idx));
    return false;
  }
  out = reinterpret_cast<DecimalBox*>(h)->value;
  return true;
}

// ---- into Lua ----------------------------------------------------------------------------------

// A set: user value 1 is the array of its elements (arrival order), user value 2 a lazily built
// index from each element's key (its string, bytes, or canonical number text) to its position.
void new_set(lua_State* L, const Vm& vm, Kind kind, int size_hint) {
  new_typed(L, vm, kind, sizeof(Header), 2);
  lua_createtable(L, size_hint, 0);
  lua_setiuservalue(L, -2, 1);
}

}  // namespace

void push_value(lua_State* L, const Vm& vm, const AttributeValue& v) {
  luaL_checkstack(L, 4, "item nested too deeply");
  switch (v.type()) {
    case dynamo::AttrType::S: {
      const auto& s = v.as<std::string>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case dynamo::AttrType::N: push_number(L, vm, v.as<Number>()); return;
    case dynamo::AttrType::B: push_binary(L, vm, v.as<Binary>().bytes); return;
    case dynamo::AttrType::BOOL: lua_pushboolean(L, v.as<bool>()); return;
    case dynamo::AttrType::NUL: lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_null); return;
    case dynamo::AttrType::M: {
      const auto& m = v.as<dynamo::Map>();
      lua_createtable(L, 0, static_cast<int>(m.size()));
      for (const auto& [name, value] : m) {
        lua_pushlstring(L, name.data(), name.size());
        push_value(L, vm, value);
        lua_rawset(L, -3);
      }
      set_mark(L, -1, vm.mt_map);
      return;
    }
    case dynamo::AttrType::L: {
      const auto& l = v.as<dynamo::List>();
      lua_createtable(L, static_cast<int>(l.size()), 0);
      lua_Integer i = 0;
      for (const auto& value : l) {
        push_value(L, vm, value);
        lua_rawseti(L, -2, ++i);
      }
      set_mark(L, -1, vm.mt_list);
      return;
    }
    case dynamo::AttrType::SS: {
      const auto& s = v.as<dynamo::StringSet>();
      new_set(L, vm, Kind::SS, static_cast<int>(s.size()));
      lua_getiuservalue(L, -1, 1);
      lua_Integer i = 0;
      for (const auto& e : s) {
        lua_pushlstring(L, e.data(), e.size());
        lua_rawseti(L, -2, ++i);
      }
      lua_pop(L, 1);
      return;
    }
    case dynamo::AttrType::NS: {
      const auto& s = v.as<dynamo::NumberSet>();
      new_set(L, vm, Kind::NS, static_cast<int>(s.size()));
      lua_getiuservalue(L, -1, 1);
      lua_Integer i = 0;
      for (const auto& e : s) {
        push_number(L, vm, e);
        lua_rawseti(L, -2, ++i);
      }
      lua_pop(L, 1);
      return;
    }
    case dynamo::AttrType::BS: {
      const auto& s = v.as<dynamo::BinarySet>();
      new_set(L, vm, Kind::BS, static_cast<int>(s.size()));
      lua_getiuservalue(L, -1, 1);
      lua_Integer i = 0;
      for (const auto& e : s) {
        push_binary(L, vm, e.bytes);
        lua_rawseti(L, -2, ++i);
      }
      lua_pop(L, 1);
      return;
    }
  }
}

namespace {

bool is_tombstone(lua_State* L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &kTombstone;
}

void check_current(lua_State* L, const Vm& vm) {
  if (lua_topointer(L, 1) != vm.proxy || !vm.item)
    luaL_error(L,
               "this item table belongs to an earlier call of transform (copy what you need "
               "from it)");
}

// __index(proxy, key): from the store, else converted from the item on first use.
int item_index(lua_State* L) {
  const Vm& vm = *vm_of(L);
  check_current(L, vm);
  lua_settop(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_store);  // 3
  lua_pushvalue(L, 2);
  if (lua_rawget(L, 3) != LUA_TNIL) {  // 4
    if (is_tombstone(L, 4)) lua_pushnil(L);
    return 1;
  }
  if (lua_type(L, 2) != LUA_TSTRING) return 1;
  std::size_t len = 0;
  const char* k = lua_tolstring(L, 2, &len);
  const AttributeValue* v = vm.item->find(std::string_view(k, len));
  if (!v) return 1;
  push_value(L, vm, *v);  // 5
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 5);
  lua_rawset(L, 3);
  return 1;
}

// __newindex(proxy, key, value): into the store; nil as the tombstone.
int item_newindex(lua_State* L) {
  const Vm& vm = *vm_of(L);
  check_current(L, vm);
  lua_settop(L, 3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_store);  // 4
  lua_pushvalue(L, 2);
  if (lua_isnil(L, 3))
    lua_pushlightuserdata(L, &kTombstone);
  else
    lua_pushvalue(L, 3);
  lua_rawset(L, 4);
  return 0;
}

int item_next(lua_State* L) {
  const Vm& vm = *vm_of(L);
  check_current(L, vm);
  lua_settop(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_store);  // 3
  lua_pushvalue(L, 2);
  while (lua_next(L, 3)) {
    if (!is_tombstone(L, -1)) return 2;
    lua_pop(L, 1);
  }
  return 0;
}

// __pairs(proxy): converts what is not converted yet, then walks the store.
int item_pairs(lua_State* L) {
  const Vm& vm = *vm_of(L);
  check_current(L, vm);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_store);  // 2
  for (const auto& [name, value] : *vm.item) {
    lua_pushlstring(L, name.data(), name.size());
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 2) != LUA_TNIL) {
      lua_pop(L, 2);
      continue;
    }
    lua_pop(L, 1);
    push_value(L, vm, value);
    lua_rawset(L, 2);
  }
  lua_pushcfunction(L, item_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

}  // namespace

void push_proxy(lua_State* L, Vm& vm, const Item& item) {
  lua_createtable(L, 0, 4);
  lua_rawseti(L, LUA_REGISTRYINDEX, vm.ref_store);
  lua_createtable(L, 0, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.mt_item);
  lua_setmetatable(L, -2);
  vm.proxy = lua_topointer(L, -1);
  vm.item = &item;
}

// ---- out of Lua (no allocation, no Lua error: runs outside lua_pcall) ------------------------

// Where a value stands, for messages: attribute 'a', then .key or [index] below it.
struct Path {
  const Path* parent = nullptr;
  std::string_view name;
  lua_Integer index = 0;  // 1-based list position when name is empty
};

std::string path_text(const Path* p) {
  std::vector<const Path*> chain;
  for (; p; p = p->parent) chain.push_back(p);
  std::string inner;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if ((*it)->name.data() == nullptr) {
      inner += fmt::format("[{}]", (*it)->index);
    } else {
      if (!inner.empty()) inner += '.';
      inner += (*it)->name;
    }
  }
  return fmt::format("attribute '{}'", inner);
}

bool Reader::number(int idx, const Path* path, Number& out) {
  if (lua_isinteger(L_, idx)) {
    char buf[24];
    auto [p, ec] =
        std::to_chars(buf, buf + sizeof buf, static_cast<long long>(lua_tointeger(L_, idx)));
    out = Number::from_canonical(std::string(buf, static_cast<std::size_t>(p - buf)));
    return true;
  }
  if (lua_type(L_, idx) == LUA_TNUMBER) {
    std::string why;
    auto d = float_decimal(lua_tonumber(L_, idx), &why);
    if (!d) return fail(path, why);
    out = Number::from_decimal(*d);
    return true;
  }
  Header* h = header_of(L_, idx, vm_);
  if (!h || h->kind != Kind::N)
    return fail(path, fmt::format("a number set holds a {}", type_name(L_, idx, vm_)));
  out = Number::from_decimal(reinterpret_cast<DecimalBox*>(h)->value);
  return true;
}

bool Reader::set(int idx, Kind kind, const Path* path, AttributeValue& out) {
  lua_getiuservalue(L_, idx, 1);
  const int arr = lua_gettop(L_);
  const auto n = static_cast<lua_Integer>(lua_rawlen(L_, arr));
  const char* word = kind == Kind::SS   ? "string set"
                     : kind == Kind::NS ? "number set"
                                        : "binary set";
  if (n == 0) {
    lua_pop(L_, 1);
    return fail(path, fmt::format("an empty {}: DynamoDB has no empty sets (assign nil to "
                                  "remove the attribute)",
                                  word));
  }
  bool ok = true;
  if (kind == Kind::SS) {
    dynamo::StringSet s;
    s.reserve(static_cast<std::size_t>(n));
    for (lua_Integer i = 1; i <= n && ok; ++i) {
      lua_rawgeti(L_, arr, i);
      std::size_t len = 0;
      const char* p = lua_tolstring(L_, -1, &len);  // elements are strings (add() checks)
      s.emplace_back(p, len);
      lua_pop(L_, 1);
    }
    out = AttributeValue(std::move(s));
  } else if (kind == Kind::NS) {
    dynamo::NumberSet s;
    s.reserve(static_cast<std::size_t>(n));
    for (lua_Integer i = 1; i <= n && ok; ++i) {
      lua_rawgeti(L_, arr, i);
      Number num;
      ok = number(-1, path, num);
      s.push_back(std::move(num));
      lua_pop(L_, 1);
    }
    out = AttributeValue(std::move(s));
  } else {
    dynamo::BinarySet s;
    s.reserve(static_cast<std::size_t>(n));
    for (lua_Integer i = 1; i <= n && ok; ++i) {
      lua_rawgeti(L_, arr, i);
      s.push_back(Binary{std::string(binary_bytes(L_, -1))});
      lua_pop(L_, 1);
    }
    out = AttributeValue(std::move(s));
  }
  lua_pop(L_, 1);
  return ok;
}

bool Reader::table(int idx, const Path* path, int depth, AttributeValue& out) {
  idx = lua_absindex(L_, idx);
  if (depth >= kMaxDepth)
    return fail(path, fmt::format("nested deeper than DynamoDB's {} levels (or a table that "
                                  "contains itself)",
                                  kMaxDepth));
  if (!lua_checkstack(L_, 6)) return fail(path, "nested too deeply");
  const Mark mark = mark_of(L_, idx, vm_);
  if (mark == Mark::Many)
    return fail(path, "dynamorph.many{...} is a result of transform, not a value to store");
  if (mark == Mark::Item) {  // the item itself, stored inside something else
    Item m;
    if (!fresh(idx, *vm_.item, m)) return false;
    out = AttributeValue(std::move(m));
    return true;
  }
  // What keys does it have?
  std::size_t count = 0;
  bool strings = true, integers = true;  // every key a string / a positive integer
  lua_Integer max_index = 0;
  lua_pushnil(L_);
  while (lua_next(L_, idx)) {
    ++count;
    if (lua_type(L_, -2) == LUA_TSTRING) {
      integers = false;
    } else {
      strings = false;
      if (lua_isinteger(L_, -2) && lua_tointeger(L_, -2) >= 1)
        max_index = std::max(max_index, lua_tointeger(L_, -2));
      else
        integers = false;
    }
    lua_pop(L_, 1);
  }
  const bool sequence = integers && static_cast<std::size_t>(max_index) == count;  // 1..n
  bool as_list = false;
  if (mark == Mark::M) {
    if (!strings)
      return fail(path, "a map (from an M or dynamorph.map) has a key that is not a string");
  } else if (mark == Mark::L) {
    if (!sequence && count > 0)
      return fail(path, "a list (from an L or dynamorph.list) has keys other than 1..n");
    as_list = true;
  } else if (count == 0) {
    as_list = false;  // the rule for a new empty table: an empty map
  } else if (sequence) {
    as_list = true;
  } else if (integers) {
    return fail(path, "a list with holes (its keys are not 1..n)");
  } else if (!strings) {
    return fail(path, "a table whose keys are neither all strings (a map) nor 1..n (a list)");
  }
  if (as_list) {
    dynamo::List l;
    l.reserve(count);
    for (lua_Integer i = 1; i <= static_cast<lua_Integer>(count); ++i) {
      lua_rawgeti(L_, idx, i);
      Path here{path, {}, i};
      AttributeValue v;
      const bool ok = value(-1, &here, depth + 1, v);
      lua_pop(L_, 1);
      if (!ok) return false;
      l.push_back(std::move(v));
    }
    out = AttributeValue(std::move(l));
    return true;
  }
  dynamo::Map m;
  m.reserve(count);
  lua_pushnil(L_);
  while (lua_next(L_, idx)) {
    std::size_t len = 0;
    const char* k = lua_tolstring(L_, -2, &len);  // a string: checked above
    Path here{path, std::string_view(k, len), 0};
    AttributeValue v;
    if (!value(-1, &here, depth + 1, v)) {
      lua_pop(L_, 2);
      return false;
    }
    m.append(std::string(k, len), std::move(v));
    lua_pop(L_, 1);
  }
  out = AttributeValue(std::move(m));
  return true;
}

bool Reader::value(int idx, const Path* path, int depth, AttributeValue& out) {
  switch (lua_type(L_, idx)) {
    case LUA_TSTRING: {
      std::size_t len = 0;
      const char* p = lua_tolstring(L_, idx, &len);
      out = AttributeValue(std::string(p, len));
      return true;
    }
    case LUA_TNUMBER: {
      Number n;
      if (!number(idx, path, n)) return false;
      out = AttributeValue(std::move(n));
      return true;
    }
    case LUA_TBOOLEAN: out = AttributeValue(lua_toboolean(L_, idx) != 0); return true;
    case LUA_TTABLE: return table(idx, path, depth, out);
    case LUA_TUSERDATA: {
      Header* h = header_of(L_, idx, vm_);
      if (!h) break;
      switch (h->kind) {
        case Kind::N:
          out = AttributeValue(Number::from_decimal(reinterpret_cast<DecimalBox*>(h)->value));
          return true;
        case Kind::B: out = AttributeValue(Binary{std::string(binary_bytes(L_, idx))}); return true;
        case Kind::Null: out = AttributeValue(dynamo::Null{}); return true;
        case Kind::SS:
        case Kind::NS:
        case Kind::BS: return set(idx, h->kind, path, out);
        case Kind::Delete:
          return fail(path, "dynamorph.delete is a result of transform, not a value to store");
      }
      break;
    }
    case LUA_TNIL: return fail(path, "nil in a list (lists have no holes)");
    default: break;
  }
  return fail(path, fmt::format("a {} cannot be stored in DynamoDB", type_name(L_, idx, vm_)));
}

bool Reader::same_set(int idx, Kind kind, const AttributeValue& v) {
  constexpr std::size_t kSmall = 16;  // larger sets are converted and compared
  lua_getiuservalue(L_, idx, 1);
  const int arr = lua_gettop(L_);
  const std::size_t n = lua_rawlen(L_, arr);
  auto each = [&](const auto& elements, auto equal) {
    if (elements.size() != n || n > kSmall) return false;
    for (std::size_t i = 1; i <= n; ++i) {
      lua_rawgeti(L_, arr, static_cast<lua_Integer>(i));
      bool found = false;
      for (const auto& e : elements) found = found || equal(e);
      lua_pop(L_, 1);
      if (!found) return false;
    }
    return true;  // n distinct elements, each in a set of n: the same set
  };
  bool same = false;
  if (kind == Kind::SS && v.is<dynamo::StringSet>()) {
    same = each(v.as<dynamo::StringSet>(), [&](const std::string& e) {
      std::size_t len = 0;
      const char* p = lua_tolstring(L_, -1, &len);
      return std::string_view(p, len) == e;
    });
  } else if (kind == Kind::NS && v.is<dynamo::NumberSet>()) {
    same = each(v.as<dynamo::NumberSet>(), [&](const Number& e) { return this->same(-1, e); });
  } else if (kind == Kind::BS && v.is<dynamo::BinarySet>()) {
    same = each(v.as<dynamo::BinarySet>(),
                [&](const Binary& e) { return binary_bytes(L_, -1) == e.bytes; });
  }
  lua_settop(L_, arr - 1);
  return same;
}

bool Reader::same(int idx, const AttributeValue& v, int depth) {
  idx = lua_absindex(L_, idx);
  switch (lua_type(L_, idx)) {
    case LUA_TSTRING: {
      const auto* s = v.get_if<std::string>();
      if (!s) return false;
      std::size_t len = 0;
      const char* p = lua_tolstring(L_, idx, &len);
      return std::string_view(p, len) == *s;
    }
    case LUA_TNUMBER: {
      const auto* n = v.get_if<Number>();
      if (!n || !lua_isinteger(L_, idx)) return false;
      char buf[24];
      auto [p, ec] =
          std::to_chars(buf, buf + sizeof buf, static_cast<long long>(lua_tointeger(L_, idx)));
      return std::string_view(buf, static_cast<std::size_t>(p - buf)) == n->text();
    }
    case LUA_TBOOLEAN: {
      const auto* b = v.get_if<bool>();
      return b && *b == (lua_toboolean(L_, idx) != 0);
    }
    case LUA_TUSERDATA: {
      Header* h = header_of(L_, idx, vm_);
      if (!h) return false;
      switch (h->kind) {
        case Kind::Null: return v.is<dynamo::Null>();
        case Kind::B: return v.is<Binary>() && v.as<Binary>().bytes == binary_bytes(L_, idx);
        case Kind::N:
          return v.is<Number>() &&
                 v.as<Number>().value() == reinterpret_cast<DecimalBox*>(h)->value;
        case Kind::SS:
        case Kind::NS:
        case Kind::BS: return lua_checkstack(L_, 4) && same_set(idx, h->kind, v);
        case Kind::Delete: return false;
      }
      return false;
    }
    case LUA_TTABLE: {
      // Only a table marked as the type it came from: anything else goes through value().
      if (depth >= kMaxDepth || !lua_checkstack(L_, 4)) return false;
      const Mark mark = mark_of(L_, idx, vm_);
      const auto* map = v.get_if<dynamo::Map>();
      const auto* list = v.get_if<dynamo::List>();
      if (!(mark == Mark::M && map) && !(mark == Mark::L && list)) return false;
      std::size_t count = 0;
      bool same = true;
      lua_pushnil(L_);
      while (same && lua_next(L_, idx)) {
        ++count;
        if (map) {
          const AttributeValue* e = nullptr;
          if (lua_type(L_, -2) == LUA_TSTRING) {
            std::size_t len = 0;
            const char* k = lua_tolstring(L_, -2, &len);
            e = map->find(std::string_view(k, len));
          }
          same = e && this->same(-1, *e, depth + 1);
        } else {
          const lua_Integer i = lua_isinteger(L_, -2) ? lua_tointeger(L_, -2) : 0;
          same = i >= 1 && static_cast<std::size_t>(i) <= list->size() &&
                 this->same(-1, (*list)[static_cast<std::size_t>(i - 1)], depth + 1);
        }
        lua_pop(L_, same ? 1 : 2);  // on a difference, stop iterating: drop the key too
      }
      return same && count == (map ? map->size() : list->size());
    }
    default: return false;
  }
}

bool Reader::item_table(int idx) {
  if (mark_of(L_, idx, vm_) == Mark::L) return fail(nullptr, "an item must be a map, not a list");
  if (!lua_checkstack(L_, 8)) return fail(nullptr, "no stack space");
  return true;
}

bool Reader::attribute_name(std::string_view& name) {
  if (lua_type(L_, -2) != LUA_TSTRING)
    return fail(nullptr, "an item's attribute names must be strings");
  std::size_t len = 0;
  const char* k = lua_tolstring(L_, -2, &len);
  name = std::string_view(k, len);
  if (name.empty()) return fail(nullptr, "an attribute name must not be empty");
  return true;
}

bool Reader::proxy(int idx, bool& is_proxy) {
  is_proxy = mark_of(L_, idx, vm_) == Mark::Item;
  if (is_proxy && (lua_topointer(L_, idx) != vm_.proxy || !vm_.item))
    return fail(nullptr, "an item table from an earlier call of transform");
  return true;
}

bool Reader::apply_store(Item& target) {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, vm_.ref_store);
  const int store = lua_gettop(L_);
  lua_pushnil(L_);
  while (lua_next(L_, store)) {
    if (is_tombstone(L_, -1)) {  // item.x = nil: x goes (a nil under another key is nothing)
      if (lua_type(L_, -2) == LUA_TSTRING) {
        std::size_t len = 0;
        const char* k = lua_tolstring(L_, -2, &len);
        target.erase(std::string_view(k, len));
      }
      lua_pop(L_, 1);
      continue;
    }
    std::string_view name;
    if (!attribute_name(name)) {
      lua_settop(L_, store - 1);
      return false;
    }
    AttributeValue* old = target.find(name);
    if (!old || !same(-1, *old)) {
      Path here{nullptr, name, 0};
      AttributeValue v;
      if (!value(-1, &here, 1, v)) {
        lua_settop(L_, store - 1);
        return false;
      }
      if (!old)
        target.append(std::string(name), std::move(v));
      else if (!(v == *old))  // equal by value (a number written differently): keep it
        *old = std::move(v);
    }
    lua_pop(L_, 1);
  }
  lua_settop(L_, store - 1);
  return true;
}

bool Reader::update(int idx, Item& item) {
  idx = lua_absindex(L_, idx);
  bool is_proxy = false;
  if (!item_table(idx) || !proxy(idx, is_proxy)) return false;
  if (is_proxy) return apply_store(item);
  Item out;
  if (!fresh(idx, item, out)) return false;
  item = std::move(out);
  return true;
}

bool Reader::fresh(int idx, const Item& base, Item& out) {
  idx = lua_absindex(L_, idx);
  bool is_proxy = false;
  if (!item_table(idx) || !proxy(idx, is_proxy)) return false;
  if (is_proxy) {
    out = *vm_.item;
    return apply_store(out);
  }
  out.clear();
  lua_pushnil(L_);
  while (lua_next(L_, idx)) {
    std::string_view name;
    if (!attribute_name(name)) {
      lua_pop(L_, 2);
      return false;
    }
    const AttributeValue* old = base.find(name);
    if (old && same(-1, *old)) {
      out.append(std::string(name), *old);
      lua_pop(L_, 1);
      continue;
    }
    Path here{nullptr, name, 0};
    AttributeValue v;
    if (!value(-1, &here, 1, v)) {
      lua_pop(L_, 2);
      return false;
    }
    lua_pop(L_, 1);
    out.append(std::string(name), old && v == *old ? *old : std::move(v));
  }
  return true;
}

namespace {

// ---- the `dynamorph` library and the typed values' methods -------------------------------------

Vm& vm_here(lua_State* L) { return *vm_of(L); }

[[noreturn]] void raise(lua_State* L, const std::string& message) {
  lua_pushlstring(L, message.data(), message.size());
  lua_error(L);
  std::abort();
}

// Messages built in C++ go to the Vm's scratch before raising, so that no object with a
// destructor is alive when Lua unwinds.
Decimal check_decimal(lua_State* L, int idx, const char* what) {
  Decimal d;
  bool ok = false;
  {
    std::string why;
    ok = to_decimal(L, idx, vm_here(L), d, &why);
    if (!ok) vm_here(L).scratch = fmt::format("{}: {}", what, why);
  }
  if (!ok) raise(L, vm_here(L).scratch);
  return d;
}

template <class Op>
int decimal_arith(lua_State* L, Op op, const char* what) {
  const Decimal a = check_decimal(L, 1, what), b = check_decimal(L, 2, what);
  std::optional<Decimal> r;
  {
    std::string why;
    r = op(a, b, &why);
    if (!r) vm_here(L).scratch = fmt::format("{}: {}", what, why);
  }
  if (!r) raise(L, vm_here(L).scratch);
  push_decimal(L, vm_here(L), *r);
  return 1;
}

int n_add(lua_State* L) { return decimal_arith(L, Decimal::add, "decimal +"); }
int n_sub(lua_State* L) { return decimal_arith(L, Decimal::subtract, "decimal -"); }
int n_mul(lua_State* L) { return decimal_arith(L, Decimal::multiply, "decimal *"); }
int n_div(lua_State* L) { return decimal_arith(L, Decimal::divide, "decimal /"); }
int n_unm(lua_State* L) {
  const Decimal a = check_decimal(L, 1, "decimal -");
  push_decimal(L, vm_here(L), *Decimal::subtract(Decimal{}, a));
  return 1;
}
int n_unsupported(lua_State* L) {
  return luaL_error(L,
                    "exact decimals support + - * / and comparisons only (%%, //, ^ and bitwise "
                    "operators are not defined)");
}
int n_eq(lua_State* L) {  // both are userdata: a decimal never equals a B or a set
  Decimal a, b;
  lua_pushboolean(L, to_decimal(L, 1, vm_here(L), a, nullptr) &&
                         to_decimal(L, 2, vm_here(L), b, nullptr) && a == b);
  return 1;
}
int n_lt(lua_State* L) {
  const Decimal a = check_decimal(L, 1, "decimal <"), b = check_decimal(L, 2, "decimal <");
  lua_pushboolean(L, a < b);
  return 1;
}
int n_le(lua_State* L) {
  const Decimal a = check_decimal(L, 1, "decimal <="), b = check_decimal(L, 2, "decimal <=");
  lua_pushboolean(L, a <= b);
  return 1;
}
void push_decimal_text(lua_State* L, const Decimal& d) {
  Vm& vm = vm_here(L);
  vm.scratch = d.to_string();
  lua_pushlstring(L, vm.scratch.data(), vm.scratch.size());
}
int n_tostring(lua_State* L) {
  push_decimal_text(L, check_decimal(L, 1, "tostring"));
  return 1;
}
int any_concat(lua_State* L) {
  luaL_tolstring(L, 1, nullptr);
  luaL_tolstring(L, 2, nullptr);
  lua_concat(L, 2);
  return 1;
}

int b_len(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(binary_bytes(L, 1).size()));
  return 1;
}
int b_tostring(lua_State* L) {
  auto bytes = binary_bytes(L, 1);
  lua_pushlstring(L, bytes.data(), bytes.size());
  return 1;
}
int b_eq(lua_State* L) {
  Header* a = header_of(L, 1, vm_here(L));
  Header* b = header_of(L, 2, vm_here(L));
  lua_pushboolean(L, a && b && a->kind == Kind::B && b->kind == Kind::B &&
                         binary_bytes(L, 1) == binary_bytes(L, 2));
  return 1;
}

int sentinel_tostring(lua_State* L) {
  Header* h = header_of(L, 1, vm_here(L));
  lua_pushstring(L, h && h->kind == Kind::Delete ? "dynamorph.delete" : "dynamorph.null");
  return 1;
}

// Sets ------------------------------------------------------------------------------------------

Kind check_set(lua_State* L, int idx) {
  Header* h = header_of(L, idx, vm_here(L));
  if (!h || (h->kind != Kind::SS && h->kind != Kind::NS && h->kind != Kind::BS))
    luaL_typeerror(L, idx, "dynamorph set");
  return h->kind;
}

// Normalizes the element at idx for a set of `kind` (a number to its integer or decimal, a
// string to B for a BS) and pushes it, then its key.
void push_element_and_key(lua_State* L, Kind kind, int idx) {
  Vm& vm = vm_here(L);
  idx = lua_absindex(L, idx);
  if (kind == Kind::SS) {
    if (lua_type(L, idx) != LUA_TSTRING)
      luaL_error(L, "a string set holds strings, not a %s", luaL_typename(L, idx));
    lua_pushvalue(L, idx);
    lua_pushvalue(L, idx);
    return;
  }
  if (kind == Kind::BS) {
    Header* h = header_of(L, idx, vm);
    if (lua_type(L, idx) == LUA_TSTRING) {
      std::size_t len = 0;
      const char* p = lua_tolstring(L, idx, &len);
      push_binary(L, vm, std::string_view(p, len));
      lua_pushvalue(L, idx);
      return;
    }
    if (!h || h->kind != Kind::B)
      luaL_error(L, "a binary set holds dynamorph.B values or strings, not a %s",
                 luaL_typename(L, idx));
    lua_pushvalue(L, idx);
    auto bytes = binary_bytes(L, idx);
    lua_pushlstring(L, bytes.data(), bytes.size());
    return;
  }
  Decimal d;
  if (lua_type(L, idx) == LUA_TSTRING) {
    std::optional<Decimal> parsed;
    {
      std::size_t len = 0;
      const char* p = lua_tolstring(L, idx, &len);
      std::string why;
      parsed = Decimal::parse(std::string_view(p, len), &why);
      if (!parsed) vm.scratch = fmt::format("a number set element: {}", why);
    }
    if (!parsed) raise(L, vm.scratch);
    d = *parsed;
  } else {
    d = check_decimal(L, idx, "a number set element");
  }
  push_decimal(L, vm, d);
  push_decimal_text(L, d);
}

// Pushes the set's index (building it on first use).
void push_index(lua_State* L, Kind kind, int set) {
  if (lua_getiuservalue(L, set, 2) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_getiuservalue(L, set, 1);
  const int arr = lua_gettop(L);
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, arr));
  lua_createtable(L, 0, static_cast<int>(n));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arr, i);
    push_element_and_key(L, kind, -1);  // element, key
    lua_pushinteger(L, i);
    lua_rawset(L, arr + 1);
    lua_pop(L, 2);
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, set, 2);
  lua_remove(L, arr);
}

// Adds the value at idx to the set whose array and index are at arr and index.
void set_add_one(lua_State* L, Kind kind, int arr, int index, int idx) {
  push_element_and_key(L, kind, idx);  // element, key
  lua_pushvalue(L, -1);
  if (lua_rawget(L, index) != LUA_TNIL) {
    lua_pop(L, 3);
    return;
  }
  lua_pop(L, 1);
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, arr)) + 1;
  lua_pushinteger(L, n);
  lua_rawset(L, index);  // index[key] = n
  lua_rawseti(L, arr, n);
}

int set_add(lua_State* L) {
  const Kind kind = check_set(L, 1);
  const int top = lua_gettop(L);
  lua_getiuservalue(L, 1, 1);
  push_index(L, kind, 1);
  for (int i = 2; i <= top; ++i) set_add_one(L, kind, top + 1, top + 2, i);
  lua_settop(L, 1);
  return 1;
}

int set_remove(lua_State* L) {
  const Kind kind = check_set(L, 1);
  const int top = lua_gettop(L);
  lua_getiuservalue(L, 1, 1);
  const int arr = top + 1;
  push_index(L, kind, 1);
  const int index = arr + 1;
  for (int i = 2; i <= top; ++i) {
    push_element_and_key(L, kind, i);  // element, key
    lua_pushvalue(L, -1);
    if (lua_rawget(L, index) != LUA_TNUMBER) {
      lua_pop(L, 3);
      continue;
    }
    const lua_Integer pos = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawset(L, index);  // index[key] = nil
    lua_pop(L, 1);
    const auto n = static_cast<lua_Integer>(lua_rawlen(L, arr));
    if (pos != n) {  // the last element moves into the hole
      lua_rawgeti(L, arr, n);
      push_element_and_key(L, kind, -1);
      lua_pushinteger(L, pos);
      lua_rawset(L, index);  // index[key of last] = pos
      lua_pop(L, 1);
      lua_rawseti(L, arr, pos);
    }
    lua_pushnil(L);
    lua_rawseti(L, arr, n);
  }
  lua_settop(L, 1);
  return 1;
}

int set_has(lua_State* L) {
  const Kind kind = check_set(L, 1);
  luaL_checkany(L, 2);
  push_index(L, kind, 1);
  const int index = lua_gettop(L);
  push_element_and_key(L, kind, 2);
  lua_pushboolean(L, lua_rawget(L, index) != LUA_TNIL);
  return 1;
}

int set_len(lua_State* L) {
  check_set(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_pushinteger(L, static_cast<lua_Integer>(lua_rawlen(L, -1)));
  return 1;
}

int set_items(lua_State* L) {
  check_set(L, 1);
  lua_getiuservalue(L, 1, 1);
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, -1));
  lua_createtable(L, static_cast<int>(n), 0);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  set_mark(L, -1, vm_here(L).mt_list);
  return 1;
}

int set_eq(lua_State* L) {
  Header* a = header_of(L, 1, vm_here(L));
  Header* b = header_of(L, 2, vm_here(L));
  if (!a || !b || a->kind != b->kind) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 2, 1);
  const auto n = lua_rawlen(L, 3);
  if (n != lua_rawlen(L, 4)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  push_index(L, a->kind, 2);  // 5
  for (lua_Integer i = 1; i <= static_cast<lua_Integer>(n); ++i) {
    lua_rawgeti(L, 3, i);
    push_element_and_key(L, a->kind, -1);
    if (lua_rawget(L, 5) == LUA_TNIL) {
      lua_pushboolean(L, 0);
      return 1;
    }
    lua_pop(L, 3);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int set_tostring(lua_State* L) {
  const Kind kind = check_set(L, 1);
  lua_getiuservalue(L, 1, 1);
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, -1));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, kind == Kind::SS ? "SS{" : kind == Kind::NS ? "NS{" : "BS{");
  for (lua_Integer i = 1; i <= n; ++i) {
    if (i > 1) luaL_addstring(&b, ", ");
    lua_rawgeti(L, 2, i);
    luaL_tolstring(L, -1, nullptr);
    lua_remove(L, -2);
    luaL_addvalue(&b);
  }
  luaL_addstring(&b, "}");
  luaL_pushresult(&b);
  return 1;
}

int make_set(lua_State* L, Kind kind) {
  const bool has_list = !lua_isnoneornil(L, 1);
  if (has_list) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  new_set(L, vm_here(L), kind, 0);  // 2
  if (has_list) {
    lua_getiuservalue(L, 2, 1);  // 3
    push_index(L, kind, 2);      // 4
    const auto n = static_cast<lua_Integer>(lua_rawlen(L, 1));
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, 1, i);
      set_add_one(L, kind, 3, 4, 5);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 2);
  return 1;
}
int lib_ss(lua_State* L) { return make_set(L, Kind::SS); }
int lib_ns(lua_State* L) { return make_set(L, Kind::NS); }
int lib_bs(lua_State* L) { return make_set(L, Kind::BS); }

int lib_n(lua_State* L) {
  luaL_checkany(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING) {
    std::optional<Decimal> d;
    {
      std::size_t len = 0;
      const char* p = lua_tolstring(L, 1, &len);
      std::string why;
      d = Decimal::parse(std::string_view(p, len), &why);
      if (!d) vm_here(L).scratch = fmt::format("dynamorph.N: {}", why);
    }
    if (!d) raise(L, vm_here(L).scratch);
    push_decimal(L, vm_here(L), *d);
    return 1;
  }
  push_decimal(L, vm_here(L), check_decimal(L, 1, "dynamorph.N"));
  return 1;
}

// Exact division for any two numbers (an integer / an integer is a float in Lua).
int lib_div(lua_State* L) {
  const Decimal a = check_decimal(L, 1, "dynamorph.div"), b = check_decimal(L, 2, "dynamorph.div");
  std::optional<Decimal> r;
  {
    std::string why;
    r = Decimal::divide(a, b, &why);
    if (!r) vm_here(L).scratch = fmt::format("dynamorph.div: {}", why);
  }
  if (!r) raise(L, vm_here(L).scratch);
  push_decimal(L, vm_here(L), *r);
  return 1;
}

int lib_b(lua_State* L) {
  Header* h = header_of(L, 1, vm_here(L));
  if (h && h->kind == Kind::B) {
    lua_settop(L, 1);
    return 1;
  }
  std::size_t len = 0;
  const char* p = luaL_checklstring(L, 1, &len);
  push_binary(L, vm_here(L), std::string_view(p, len));
  return 1;
}

int mark_table(lua_State* L, int ref) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  set_mark(L, 1, ref);
  return 1;
}
int lib_map(lua_State* L) { return mark_table(L, vm_here(L).mt_map); }
int lib_list(lua_State* L) { return mark_table(L, vm_here(L).mt_list); }
int lib_many(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  return mark_table(L, vm_here(L).mt_many);
}

int lib_type(lua_State* L) {
  Vm& vm = vm_here(L);
  switch (lua_type(L, 1)) {
    case LUA_TSTRING: lua_pushliteral(L, "S"); return 1;
    case LUA_TNUMBER: lua_pushliteral(L, "N"); return 1;
    case LUA_TBOOLEAN: lua_pushliteral(L, "BOOL"); return 1;
    case LUA_TTABLE: {
      if (mark_of(L, 1, vm) == Mark::Item) {
        lua_pushliteral(L, "M");
        return 1;
      }
      const char* tag = nullptr;
      {
        AttributeValue v;
        Reader r(L, vm);
        if (r.value(1, nullptr, 0, v)) tag = v.is<dynamo::List>() ? "L" : "M";
      }
      if (tag)
        lua_pushstring(L, tag);
      else
        lua_pushnil(L);
      return 1;
    }
    case LUA_TUSERDATA: {
      Header* h = header_of(L, 1, vm);
      if (!h || h->kind == Kind::Delete) break;
      const char* tags[] = {"N", "B", "SS", "NS", "BS", "NULL"};
      lua_pushstring(L, tags[static_cast<int>(h->kind)]);
      return 1;
    }
    default: break;
  }
  lua_pushnil(L);
  return 1;
}

// ---- ctx helpers (the expression engine's extension functions) ---------------------------------

std::string_view check_sv(lua_State* L, int idx) {
  std::size_t len = 0;
  const char* p = luaL_checklstring(L, idx, &len);
  return {p, len};
}
int push_scratch(lua_State* L) {
  const std::string& s = vm_here(L).scratch;
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}
int fn_lower(lua_State* L) {
  auto s = check_sv(L, 1);
  vm_here(L).scratch.clear();
  expr::detail::append_lower(vm_here(L).scratch, s);
  return push_scratch(L);
}
int fn_upper(lua_State* L) {
  auto s = check_sv(L, 1);
  vm_here(L).scratch.clear();
  expr::detail::append_upper(vm_here(L).scratch, s);
  return push_scratch(L);
}
int fn_trim(lua_State* L) {
  auto s = expr::detail::trim_ascii(check_sv(L, 1));
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}
int fn_concat(lua_State* L) {
  const int n = lua_gettop(L);
  for (int i = 1; i <= n; ++i) check_sv(L, i);
  lua_concat(L, n);
  return 1;
}
int fn_substr(lua_State* L) {
  auto s = check_sv(L, 1);
  const lua_Integer start = luaL_checkinteger(L, 2);
  std::optional<std::uint64_t> count;
  if (!lua_isnoneornil(L, 3)) {
    const lua_Integer len = luaL_checkinteger(L, 3);
    luaL_argcheck(L, len >= 0, 3, "length must not be negative");
    count = static_cast<std::uint64_t>(len);
  }
  luaL_argcheck(L, start >= 1, 2, "start must be 1 or more (1 is the first character)");
  auto r = expr::detail::utf8_slice(s, static_cast<std::uint64_t>(start - 1), count);
  lua_pushlstring(L, r.data(), r.size());
  return 1;
}
int fn_replace(lua_State* L) {
  auto s = check_sv(L, 1), from = check_sv(L, 2), to = check_sv(L, 3);
  vm_here(L).scratch.clear();
  expr::detail::append_replaced(vm_here(L).scratch, s, from, to);
  return push_scratch(L);
}
int fn_strip_prefix(lua_State* L) {
  auto s = check_sv(L, 1), p = check_sv(L, 2);
  if (s.starts_with(p)) s.remove_prefix(p.size());
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}
int fn_split(lua_State* L) {
  auto s = check_sv(L, 1), sep = check_sv(L, 2);
  luaL_argcheck(L, !sep.empty(), 2, "the separator is empty");
  auto& fields = vm_here(L).fields;
  expr::detail::split_fields(fields, s, sep);
  lua_createtable(L, static_cast<int>(fields.size()), 0);
  for (std::size_t i = 0; i < fields.size(); ++i) {
    lua_pushlstring(L, fields[i].data(), fields[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  set_mark(L, -1, vm_here(L).mt_list);
  return 1;
}
int fn_split_part(lua_State* L) {
  auto s = check_sv(L, 1), sep = check_sv(L, 2);
  const lua_Integer field = luaL_checkinteger(L, 3);
  luaL_argcheck(L, !sep.empty(), 2, "the separator is empty");
  luaL_argcheck(L, field != 0, 3, "field number must not be 0 (1 is the first field, -1 the last)");
  auto& fields = vm_here(L).fields;
  expr::detail::split_fields(fields, s, sep);
  const auto count = static_cast<lua_Integer>(fields.size());
  const lua_Integer at = field > 0 ? field - 1 : count + field;
  if (at >= 0 && at < count)
    lua_pushlstring(L, fields[static_cast<std::size_t>(at)].data(),
                    fields[static_cast<std::size_t>(at)].size());
  else
    lua_pushliteral(L, "");
  return 1;
}
int fn_to_string(lua_State* L) {
  switch (lua_type(L, 1)) {
    case LUA_TSTRING: lua_settop(L, 1); return 1;
    case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, 1) ? "true" : "false"); return 1;
    default: push_decimal_text(L, check_decimal(L, 1, "to_string")); return 1;
  }
}
int fn_to_number(lua_State* L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    std::size_t len = 0;
    const char* p = lua_tolstring(L, 1, &len);
    auto d = Decimal::parse(std::string_view(p, len));
    if (!d) {
      lua_pushnil(L);
      return 1;
    }
    push_decimal(L, vm_here(L), *d);
    return 1;
  }
  push_decimal(L, vm_here(L), check_decimal(L, 1, "to_number"));
  return 1;
}
int fn_epoch_ms(lua_State* L) {
  auto ms = expr::detail::parse_epoch_ms(check_sv(L, 1));
  if (ms)
    lua_pushinteger(L, *ms);
  else
    lua_pushnil(L);
  return 1;
}
int fn_uuid(lua_State* L) {
  vm_here(L).scratch = expr::detail::make_uuid();
  return push_scratch(L);
}
int fn_ulid(lua_State* L) {
  vm_here(L).scratch = expr::detail::make_ulid();
  return push_scratch(L);
}
int fn_coalesce(lua_State* L) {
  const int n = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm_here(L).ref_null);
  const int null = n + 1;
  for (int i = 1; i <= n; ++i) {
    if (!lua_isnil(L, i) && !lua_rawequal(L, i, null)) {
      lua_pushvalue(L, i);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

constexpr luaL_Reg kCtxFunctions[] = {{"lower", fn_lower},
                                      {"upper", fn_upper},
                                      {"trim", fn_trim},
                                      {"concat", fn_concat},
                                      {"substr", fn_substr},
                                      {"replace", fn_replace},
                                      {"split", fn_split},
                                      {"strip_prefix", fn_strip_prefix},
                                      {"split_part", fn_split_part},
                                      {"to_string", fn_to_string},
                                      {"to_number", fn_to_number},
                                      {"epoch_ms", fn_epoch_ms},
                                      {"uuid", fn_uuid},
                                      {"ulid", fn_ulid},
                                      {"coalesce", fn_coalesce},
                                      {nullptr, nullptr}};

int new_metatable(lua_State* L, const char* name, const luaL_Reg* fns) {
  lua_newtable(L);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__metatable");  // getmetatable() gives the name, setmetatable() refuses
  if (fns) luaL_setfuncs(L, fns, 0);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

}  // namespace

void open_values(lua_State* L, Vm& vm) {
  const luaL_Reg n_fns[] = {{"__add", n_add},
                            {"__sub", n_sub},
                            {"__mul", n_mul},
                            {"__div", n_div},
                            {"__unm", n_unm},
                            {"__mod", n_unsupported},
                            {"__idiv", n_unsupported},
                            {"__pow", n_unsupported},
                            {"__band", n_unsupported},
                            {"__bor", n_unsupported},
                            {"__bxor", n_unsupported},
                            {"__shl", n_unsupported},
                            {"__shr", n_unsupported},
                            {"__bnot", n_unsupported},
                            {"__eq", n_eq},
                            {"__lt", n_lt},
                            {"__le", n_le},
                            {"__tostring", n_tostring},
                            {"__concat", any_concat},
                            {nullptr, nullptr}};
  const luaL_Reg b_fns[] = {{"__len", b_len},
                            {"__tostring", b_tostring},
                            {"__eq", b_eq},
                            {"__concat", any_concat},
                            {nullptr, nullptr}};
  const luaL_Reg set_fns[] = {{"__len", set_len},
                              {"__eq", set_eq},
                              {"__tostring", set_tostring},
                              {"__concat", any_concat},
                              {nullptr, nullptr}};
  const luaL_Reg sentinel_fns[] = {{"__tostring", sentinel_tostring}, {nullptr, nullptr}};
  const luaL_Reg set_methods[] = {{"add", set_add},
                                  {"remove", set_remove},
                                  {"has", set_has},
                                  {"items", set_items},
                                  {nullptr, nullptr}};
  vm.mt_kind[static_cast<int>(Kind::N)] = new_metatable(L, kKindNames[0], n_fns);
  vm.mt_kind[static_cast<int>(Kind::B)] = new_metatable(L, kKindNames[1], b_fns);
  for (Kind k : {Kind::SS, Kind::NS, Kind::BS}) {
    const int ref = new_metatable(L, kKindNames[static_cast<int>(k)], set_fns);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    luaL_newlib(L, set_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    vm.mt_kind[static_cast<int>(k)] = ref;
  }
  vm.mt_kind[static_cast<int>(Kind::Null)] = new_metatable(L, kKindNames[5], sentinel_fns);
  vm.mt_kind[static_cast<int>(Kind::Delete)] = new_metatable(L, kKindNames[6], sentinel_fns);
  vm.mt_map = new_metatable(L, "dynamorph.map", nullptr);
  vm.mt_list = new_metatable(L, "dynamorph.list", nullptr);
  vm.mt_many = new_metatable(L, "dynamorph.many", nullptr);
  const luaL_Reg item_fns[] = {{"__index", item_index},
                               {"__newindex", item_newindex},
                               {"__pairs", item_pairs},
                               {nullptr, nullptr}};
  vm.mt_item = new_metatable(L, "dynamorph.map", item_fns);
  lua_newtable(L);
  vm.ref_store = luaL_ref(L, LUA_REGISTRYINDEX);
  new_typed(L, vm, Kind::Null, sizeof(Header));
  vm.ref_null = luaL_ref(L, LUA_REGISTRYINDEX);
  new_typed(L, vm, Kind::Delete, sizeof(Header));
  vm.ref_delete = luaL_ref(L, LUA_REGISTRYINDEX);

  const luaL_Reg lib[] = {{"N", lib_n},       {"B", lib_b},       {"SS", lib_ss},
                          {"div", lib_div},   {"NS", lib_ns},     {"BS", lib_bs},
                          {"map", lib_map},   {"list", lib_list}, {"many", lib_many},
                          {"type", lib_type}, {nullptr, nullptr}};
  luaL_newlib(L, lib);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_null);
  lua_setfield(L, -2, "null");
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_delete);
  lua_setfield(L, -2, "delete");
  lua_setglobal(L, "dynamorph");
}

void push_ctx(lua_State* L, const Vm& vm, const TransformContext& ctx) {
  lua_createtable(L, 0, 20);
  lua_pushinteger(L, ctx.version);
  lua_setfield(L, -2, "version");
  lua_pushlstring(L, ctx.eval.now_iso.data(), ctx.eval.now_iso.size());
  lua_setfield(L, -2, "now");
  lua_createtable(L, 0, ctx.values ? static_cast<int>(ctx.values->size()) : 0);
  if (ctx.values) {
    for (const auto& [name, v] : *ctx.values) {
      lua_pushlstring(L, name.data(), name.size());
      push_value(L, vm, v);
      lua_rawset(L, -3);
    }
  }
  set_mark(L, -1, vm.mt_map);
  lua_setfield(L, -2, "values");
  luaL_setfuncs(L, kCtxFunctions, 0);
}

}  // namespace dynamorph::stages::lua
