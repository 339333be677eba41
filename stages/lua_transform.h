// `lua: { file: F }` / `lua: { code: TEXT }`: a transform written as `function transform(item,
// ctx)` in Lua 5.4. The Transform itself is immutable and holds only the script; each worker
// owns one sandboxed VM (its TransformState from make_local_state()), so apply() runs on many
// threads at once without locks. docs/guide.md "Lua transforms" is the user's contract: type
// mapping, results, ctx, sandbox and limits.
#pragma once

#include <cstdint>
#include <memory>

#include "stages/step_spec.h"
#include "stages/transform.h"

namespace dynamorph::stages {

inline constexpr std::int64_t kLuaDefaultInstructions = 10'000'000;  // per item
inline constexpr std::int64_t kLuaDefaultMemoryBytes = 64LL << 20;   // per VM

// Compiles the script in a fresh sandboxed VM and runs its top level (under the same budget
// and memory cap as an item), so that a syntax error, a top-level error or a missing
// `transform` function is found before anything runs: throws UsageError whose message starts
// with the Lua file:line. `label` names the step for the rest of the message.
std::unique_ptr<Transform> make_lua_transform(const LuaSpec& spec, const std::string& label);

}  // namespace dynamorph::stages
