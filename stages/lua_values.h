// The values of Lua transforms (docs/guide.md "Lua transforms"): the one conversion pair
// between the item model and Lua (push_value / Reader), the item proxy a call receives, the
// typed values (exact decimal N, B, the sets, null, delete) with their metatables, the
// `dynamorph` library and ctx's helpers. lua_transform.cpp builds the VM and runs the calls.
// Everything here works on one worker's VM, on that worker's thread.
//
// Two rules keep C++ and Lua's longjmp-based errors apart:
// - everything that can raise a Lua error (allocating, calling Lua) runs inside lua_pcall, in C
//   functions whose frames hold no object with a destructor while they may raise (scratch
//   strings live in the Vm);
// - what runs outside lua_pcall (the Reader) uses only API calls that neither allocate nor
//   raise (lua_next, lua_rawgeti, lua_to* on values of the right type).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <lua.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/attribute_value.h"
#include "stages/transform.h"

namespace dynamorph::stages::lua {

inline constexpr int kTypedKinds = 7;  // the kinds of typed userdata (lua_values.cpp)
enum class Kind : std::uint8_t;

// One worker's VM: the lua_State and its limits, the registry references of the typed values'
// metatables, the current call's item, scratch. Its address sits in the state's extra space.
struct Vm final : TransformState {
  lua_State* L = nullptr;
  std::string chunk;      // the script's name in messages
  std::string chunk_at;   // "@" + chunk: Lua's name for it
  std::string short_src;  // what Lua prints for it (cut to LUA_IDSIZE), then ':'
  // Memory: what Lua holds, the cap, and a hard ceiling above it (lua_transform.cpp).
  std::size_t used = 0, cap = 0, hard_cap = 0;
  bool over_cap = false, refused = false;
  // Instructions of the current call.
  std::int64_t budget = 0, executed = 0;
  int hook_step = 0;
  enum class Trip { None, Budget, Memory } trip = Trip::None;
  int trip_line = 0, last_line = 0, transform_line = 0;
  // Registry references.
  int ref_transform = LUA_NOREF, ref_ctx = LUA_NOREF;
  int mt_kind[kTypedKinds] = {};
  int mt_map = LUA_NOREF, mt_list = LUA_NOREF, mt_many = LUA_NOREF, mt_item = LUA_NOREF;
  int ref_store = LUA_NOREF;  // the current item's store (push_proxy)
  int ref_null = LUA_NOREF, ref_delete = LUA_NOREF;
  const dynamo::Item* item = nullptr;  // the current call's item, while it runs
  const void* proxy = nullptr;         // and its proxy table
  const TransformContext* ctx_for = nullptr;
  std::string broken;  // set when this VM could not be built; every apply() reports it
  // Scratch, reused for every call.
  std::string scratch;
  std::vector<std::string_view> fields;

  ~Vm() override {
    if (L) lua_close(L);
  }
  std::string where(int line) const { return line > 0 ? fmt::format("{}:{}", chunk, line) : chunk; }
};

inline Vm* vm_of(lua_State* L) { return *static_cast<Vm**>(lua_getextraspace(L)); }

// The typed values' metatables, the item proxy's and the `dynamorph` global; fills vm's
// references. Protected mode (it allocates).
void open_values(lua_State* L, Vm& vm);
// Pushes v. Protected mode.
void push_value(lua_State* L, const Vm& vm, const dynamo::AttributeValue& v);
// Pushes the proxy of this call's item: an empty table whose metamethods convert an attribute
// when the script first reads it and record what it assigns. Protected mode. Until the result
// is read, vm.item and vm.proxy name it; clearing them ends its life.
void push_proxy(lua_State* L, Vm& vm, const dynamo::Item& item);
// Pushes ctx: version, now, the step's values and the helpers. Protected mode.
void push_ctx(lua_State* L, const Vm& vm, const TransformContext& ctx);

// Table markers: tables made from M and L keep their type through their metatable; Many marks
// dynamorph.many{...}, Item the current call's proxy.
enum class Mark { None, M, L, Many, Item };
Mark mark_of(lua_State* L, int idx, const Vm& vm);
bool is_delete(lua_State* L, int idx, const Vm& vm);
// A value's type for messages: "string", "dynamorph.N", "function" …
const char* type_name(lua_State* L, int idx, const Vm& vm);

struct Path;
std::string path_text(const Path* p);

// Reads Lua values back into the item model, outside lua_pcall (see the rules above).
class Reader {
 public:
  Reader(lua_State* L, const Vm& vm) : L_(L), vm_(vm) {}
  const std::string& error() const { return error_; }

  bool value(int idx, const Path* path, int depth, dynamo::AttributeValue& out);
  // `item` (the current call's) becomes the item table at idx: for the call's proxy, what the
  // script assigned is applied in place; another table replaces it. Attributes equal to those of
  // `item` keep their exact bytes. On false `item` may be half updated.
  bool update(int idx, dynamo::Item& item);
  // A new item from the table at idx (the proxy, or another table); attributes equal to those
  // of `base` (the current call's item) are copied from it.
  bool fresh(int idx, const dynamo::Item& base, dynamo::Item& out);

 private:
  bool fail(const Path* path, std::string what) {
    error_ = path ? fmt::format("{}: {}", path_text(path), what) : std::move(what);
    return false;
  }
  bool table(int idx, const Path* path, int depth, dynamo::AttributeValue& out);
  bool set(int idx, Kind kind, const Path* path, dynamo::AttributeValue& out);
  bool number(int idx, const Path* path, dynamo::Number& out);
  // True when the Lua value at idx converts to exactly `v`, found without converting it (and
  // so without allocating); false when it differs, or when telling would need a conversion.
  bool same(int idx, const dynamo::AttributeValue& v, int depth = 0);
  bool same_set(int idx, Kind kind, const dynamo::AttributeValue& v);
  // The checks shared by update() and fresh(): the table is an item; the key at -2 is a name.
  bool item_table(int idx);
  bool attribute_name(std::string_view& name);
  // The current proxy at idx? Sets the error for a stale one.
  bool proxy(int idx, bool& is_proxy);
  // What the script assigned through the proxy, applied to `target`.
  bool apply_store(dynamo::Item& target);

  lua_State* L_;
  const Vm& vm_;
  std::string error_;
};

}  // namespace dynamorph::stages::lua
