// The VM of a Lua transform and its calls: a sandboxed lua_State per worker made with an
// allocator that holds the memory cap, a count hook for the instruction budget, a message
// handler that names file:line, and the Transform that runs `transform(item, ctx)` per item.
// The values the script sees are lua_values.h's.
#include "stages/lua_transform.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <lua.hpp>
#include <string>

#include "dynamo/errors.h"
#include "stages/lua_values.h"

namespace dynamorph::stages {
namespace {

using dynamo::Item;
using lua::Mark;
using lua::mark_of;
using lua::type_name;
using lua::Vm;
using lua::vm_of;

constexpr int kHookEvery = 1000;  // instructions between two looks at budget and memory

// ---- limits ------------------------------------------------------------------------------------

void count_hook(lua_State* L, lua_Debug* ar);

void arm(Vm& vm, int step) {
  vm.hook_step = step;
  lua_sethook(vm.L, count_hook, LUA_MASKCOUNT, step);
}

// Lua's allocator. Above `cap` the allocation still succeeds and the hook is armed to fire at
// the very next instruction, where it collects garbage and, if still above, stops the script
// with the line it stands on. Only beyond `hard_cap` is an allocation refused (Lua then raises
// "not enough memory", reported with the last line the hook saw).
void* allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
  auto* vm = static_cast<Vm*>(ud);
  const std::size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    vm->used -= old;
    return nullptr;
  }
  const std::size_t next = vm->used - old + nsize;
  if (nsize > old && next > vm->hard_cap) {
    vm->refused = true;
    if (vm->L) lua_sethook(vm->L, count_hook, LUA_MASKCOUNT, 1);  // async-safe by contract
    return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (!p) return nullptr;
  vm->used = next;
  if (next > vm->cap && !vm->over_cap && vm->L) {
    vm->over_cap = true;
    lua_sethook(vm->L, count_hook, LUA_MASKCOUNT, 1);
  }
  return p;
}

[[noreturn]] void raise_trip(lua_State* L, Vm& vm, Vm::Trip trip, int line) {
  if (vm.trip == Vm::Trip::None) {
    vm.trip = trip;
    vm.trip_line = line;
  }
  // From now on every instruction raises again, so no pcall in the script can swallow it.
  arm(vm, 1);
  lua_pushliteral(L, "dynamorph: limit reached");
  lua_error(L);
  std::abort();  // not reached: lua_error does not return
}

void count_hook(lua_State* L, lua_Debug* ar) {
  Vm& vm = *vm_of(L);
  vm.executed += vm.hook_step;
  if (lua_getinfo(L, "l", ar) && ar->currentline > 0) vm.last_line = ar->currentline;
  if (vm.trip != Vm::Trip::None) raise_trip(L, vm, vm.trip, vm.last_line);
  if (vm.over_cap || vm.refused) {
    lua_gc(L, LUA_GCCOLLECT);  // garbage does not count against the cap
    if (vm.used > vm.cap) raise_trip(L, vm, Vm::Trip::Memory, vm.last_line);
    vm.over_cap = vm.refused = false;
    arm(vm, static_cast<int>(std::min<std::int64_t>(kHookEvery, vm.budget)));
  }
  if (vm.executed > vm.budget) raise_trip(L, vm, Vm::Trip::Budget, vm.last_line);
}

void start_call(Vm& vm) {
  vm.executed = 0;
  vm.trip = Vm::Trip::None;
  vm.trip_line = vm.last_line = 0;
  vm.refused = false;
  vm.over_cap = vm.used > vm.cap;
  arm(vm, vm.over_cap ? 1 : static_cast<int>(std::min<std::int64_t>(kHookEvery, vm.budget)));
}

// Lua prints a chunk "@x" as x cut to LUA_IDSIZE (its last characters after "..."); messages
// get the whole name back.
std::string lua_short_src(const std::string& chunk) {
  constexpr std::size_t kKeep = LUA_IDSIZE - 4;  // luaO_chunkid: "..." + tail + NUL
  if (chunk.size() + 1 <= LUA_IDSIZE) return chunk + ":";
  return "..." + chunk.substr(chunk.size() - kKeep) + ":";
}

std::string full_names(const Vm& vm, std::string msg) {
  if (msg.starts_with(vm.short_src)) msg.replace(0, vm.short_src.size() - 1, vm.chunk);
  return msg;
}

// The message handler of every call: adds file:line to errors that carry none (error(x, 0),
// error objects that are not strings).
int message_handler(lua_State* L) {
  Vm& vm = *vm_of(L);
  if (vm.trip != Vm::Trip::None) return 1;  // apply() says what happened
  if (!lua_isstring(L, 1)) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      lua_replace(L, 1);
    } else {
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
      lua_replace(L, 1);
    }
  }
  lua_settop(L, 1);
  lua_Debug ar;
  int line = 0;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      line = ar.currentline;
      break;
    }
  }
  std::size_t len = 0;
  const char* msg = lua_tolstring(L, 1, &len);
  // Lua's own runtime and syntax errors start with "chunk:line:" already.
  if (!std::string_view(msg, len).starts_with(vm.short_src)) {
    if (line > 0)
      lua_pushfstring(L, "%s:%d: %s", vm.chunk.c_str(), line, msg);
    else
      lua_pushfstring(L, "%s: %s", vm.chunk.c_str(), msg);
  }
  return 1;
}

// setmetatable without __gc: finalizers run inside the collector, where no hook can stop them.
int safe_setmetatable(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: __gc metamethods are not available in dynamorph");
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

// Runs in protected mode: libraries, types, the `dynamorph` table.
int open_sandbox(lua_State* L) {
  Vm& vm = *vm_of(L);
  const std::pair<const char*, lua_CFunction> libs[] = {{LUA_GNAME, luaopen_base},
                                                        {LUA_STRLIBNAME, luaopen_string},
                                                        {LUA_TABLIBNAME, luaopen_table},
                                                        {LUA_MATHLIBNAME, luaopen_math},
                                                        {LUA_UTF8LIBNAME, luaopen_utf8}};
  for (const auto& [name, open] : libs) {
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
  }
  for (const char* name : {"dofile", "loadfile", "load", "collectgarbage", "print", "warn"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  lua_pushcfunction(L, safe_setmetatable);
  lua_setglobal(L, "setmetatable");
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua::open_values(L, vm);
  return 0;
}

struct Script {
  std::string text;  // with blank lines in front so that line numbers are the file's
  std::string chunk;
  std::int64_t budget = 0;
  std::size_t cap = 0;
};

// Why a call failed, as one line: the limit that stopped it, or Lua's message.
std::string failure(Vm& vm, int status) {
  std::string msg;
  if (vm.trip == Vm::Trip::None && status == LUA_ERRMEM) vm.trip = Vm::Trip::Memory;
  if (vm.trip == Vm::Trip::Budget) {
    msg = fmt::format(
        "{}: instruction budget exceeded ({} instructions per item; raise it with "
        "lua.max_instructions)",
        vm.where(vm.trip_line ? vm.trip_line : vm.last_line), vm.budget);
  } else if (vm.trip == Vm::Trip::Memory) {
    const int line = vm.trip_line ? vm.trip_line : vm.last_line;
    msg = fmt::format(
        "{}: memory cap exceeded ({} MiB per worker; raise it with "
        "lua.max_memory_mb)",
        vm.where(line ? line : vm.transform_line), vm.cap >> 20);
  } else {
    std::size_t len = 0;
    const char* p = lua_type(vm.L, -1) == LUA_TSTRING ? lua_tolstring(vm.L, -1, &len) : nullptr;
    msg = full_names(vm, p ? std::string(p, len) : std::string("error"));
  }
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return msg;
}

int run_chunk(lua_State* L) {
  auto* text = static_cast<const Script*>(lua_touserdata(L, 1));
  Vm& vm = *vm_of(L);
  if (luaL_loadbufferx(L, text->text.data(), text->text.size(), vm.chunk_at.c_str(), "t") != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 0);
  return 0;
}

// A ready VM, or one whose `broken` says why not.
std::unique_ptr<Vm> build_vm(const Script& s) {
  auto vm = std::make_unique<Vm>();
  vm->chunk = s.chunk;
  vm->chunk_at = "@" + s.chunk;
  vm->short_src = lua_short_src(s.chunk);
  vm->budget = s.budget;
  vm->cap = s.cap;
  vm->hard_cap = s.cap + std::max<std::size_t>(s.cap / 4, 1 << 20);
  lua_State* L = lua_newstate(allocate, vm.get());
  if (!L) {
    vm->broken = fmt::format("{}: cannot create a Lua VM within {} bytes", s.chunk, s.cap);
    return vm;
  }
  vm->L = L;
  *static_cast<Vm**>(lua_getextraspace(L)) = vm.get();
  lua_pushcfunction(L, open_sandbox);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    vm->broken = fmt::format("{}: cannot set up the Lua VM: {}", s.chunk,
                             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "no memory");
    return vm;
  }
  // Compile and run the top level, under the same limits as an item.
  start_call(*vm);
  lua_pushcfunction(L, message_handler);
  lua_pushcfunction(L, run_chunk);
  lua_pushlightuserdata(L, const_cast<Script*>(&s));
  const int status = lua_pcall(L, 1, 0, 1);
  if (status != LUA_OK) {
    vm->broken = failure(*vm, status);
    lua_settop(L, 0);
    return vm;
  }
  lua_settop(L, 0);
  if (lua_getglobal(L, "transform") != LUA_TFUNCTION) {
    vm->broken = fmt::format("{}: defines no function transform(item, ctx)", s.chunk);
    lua_settop(L, 0);
    return vm;
  }
  lua_Debug ar;
  lua_pushvalue(L, -1);
  if (lua_getinfo(L, ">S", &ar)) vm->transform_line = ar.linedefined;
  vm->ref_transform = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return vm;
}

struct CallArgs {
  Vm* vm;
  const Item* item;
  const TransformContext* ctx;
};

int call_transform(lua_State* L) {
  auto* a = static_cast<CallArgs*>(lua_touserdata(L, 1));
  Vm& vm = *a->vm;
  if (vm.ctx_for != a->ctx) {
    luaL_unref(L, LUA_REGISTRYINDEX, vm.ref_ctx);
    lua::push_ctx(L, vm, *a->ctx);
    vm.ref_ctx = luaL_ref(L, LUA_REGISTRYINDEX);
    vm.ctx_for = a->ctx;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_transform);
  lua::push_proxy(L, vm, *a->item);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm.ref_ctx);
  lua_call(L, 2, 1);
  return 1;
}

class LuaTransform final : public Transform {
 public:
  explicit LuaTransform(Script script) : script_(std::move(script)) {}

  std::unique_ptr<TransformState> make_local_state() const override { return build_vm(script_); }

  TransformResult apply(Item& item, TransformState* state,
                        const TransformContext& ctx) const override {
    Vm& vm = *static_cast<Vm*>(state);
    if (!vm.broken.empty()) return TransformResult::fail(vm.broken);
    lua_State* L = vm.L;
    lua_settop(L, 0);
    start_call(vm);
    CallArgs args{&vm, &item, &ctx};
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, call_transform);
    lua_pushlightuserdata(L, &args);
    const int status = lua_pcall(L, 1, 1, 1);
    TransformResult r =
        status == LUA_OK ? result(vm, item) : TransformResult::fail(failure(vm, status));
    vm.item = nullptr;  // the proxy is dead from now on
    vm.proxy = nullptr;
    lua_settop(L, 0);
    return r;
  }

  std::vector<std::string> reads() const override { return {}; }
  bool reads_everything() const override { return true; }
  std::optional<std::vector<std::string>> writes() const override { return std::nullopt; }
  std::string describe() const override { return "lua " + script_.chunk; }

 private:
  TransformResult result(Vm& vm, Item& item) const {
    lua_State* L = vm.L;
    const int top = lua_gettop(L);
    auto bad = [&](const std::string& what) {
      return TransformResult::fail(
          fmt::format("{}: transform returned {}", vm.where(vm.transform_line), what));
    };
    auto bad_value = [&](const std::string& what) {
      return TransformResult::fail(
          fmt::format("{}: transform's result: {}", vm.where(vm.transform_line), what));
    };
    switch (lua_type(L, top)) {
      case LUA_TNIL:
      case LUA_TNONE: return TransformResult::skip();
      case LUA_TUSERDATA: {
        if (lua::is_delete(L, top, vm)) return TransformResult::remove();
        return bad(
            fmt::format("a {}; expected the item, nil, dynamorph.delete or "
                        "dynamorph.many{{...}}",
                        type_name(L, top, vm)));
      }
      case LUA_TTABLE: break;
      default:
        return bad(
            fmt::format("a {}; expected the item, nil, dynamorph.delete or "
                        "dynamorph.many{{...}}",
                        luaL_typename(L, top)));
    }
    lua::Reader reader(L, vm);
    if (mark_of(L, top, vm) == Mark::Many) {
      const auto n = static_cast<lua_Integer>(lua_rawlen(L, top));
      std::vector<Item> items;
      items.reserve(static_cast<std::size_t>(n));
      for (lua_Integer i = 1; i <= n; ++i) {
        if (lua_rawgeti(L, top, i) != LUA_TTABLE) {
          std::string what = fmt::format("dynamorph.many{{...}} item {}: a {}, not an item table",
                                         i, type_name(L, -1, vm));
          lua_pop(L, 1);
          return bad_value(what);
        }
        Item out;
        const bool ok = reader.fresh(-1, item, out);
        lua_pop(L, 1);
        if (!ok)
          return bad_value(fmt::format("dynamorph.many{{...}} item {}: {}", i, reader.error()));
        items.push_back(std::move(out));
      }
      return TransformResult::many(std::move(items));
    }
    // On an error `item` may be half updated: the run stops on it anyway.
    if (!reader.update(top, item)) return bad_value(reader.error());
    return TransformResult::changed();
  }

  Script script_;
};

}  // namespace

std::unique_ptr<Transform> make_lua_transform(const LuaSpec& spec, const std::string& label) {
  Script s;
  s.chunk = spec.chunk_name;
  s.text.assign(static_cast<std::size_t>(std::max(0, spec.first_line - 1)), '\n');
  s.text += spec.code;
  s.budget = spec.max_instructions > 0 ? spec.max_instructions : kLuaDefaultInstructions;
  s.cap = static_cast<std::size_t>(spec.max_memory_bytes > 0 ? spec.max_memory_bytes
                                                             : kLuaDefaultMemoryBytes);
  auto probe = build_vm(s);
  if (!probe->broken.empty()) throw UsageError(fmt::format("{} ({})", probe->broken, label));
  return std::make_unique<LuaTransform>(std::move(s));
}

}  // namespace dynamorph::stages
