// Shared by the Lua pipeline tests: a realistic Lua job (a JSON string attribute parsed into a
// map by a small JSON decoder written in Lua) and the data it works on, with the expected map
// built independently in C++. Header-only, like pipeline_support.h.
#pragma once

#include <string>

#include "stages/step_spec.h"
#include "tests/pipeline/pipeline_support.h"

namespace dynamorph::test {

// A JSON decoder in Lua: objects become maps, arrays lists (both marked, so that {} and [] keep
// their type), numbers exact (dynamorph.N), null dynamorph.null.
inline constexpr const char* kLuaJsonDecoder = R"LUA(
local D = dynamorph
local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
                  r = "\r", t = "\t" }

local function decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "u" then
          out[#out + 1] = utf8.char(tonumber(s:sub(i + 2, i + 5), 16)); i = i + 6
        else
          out[#out + 1] = assert(escapes[e], "bad escape"); i = i + 2
        end
      else
        local j = assert(s:find('["\\]', i), "unterminated string")
        out[#out + 1] = s:sub(i, j - 1); i = j
      end
    end
  end
  local value
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = D.map()
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws(); local k = str(); ws(); pos = pos + 1  -- ':'
        t[k] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "}" then return t end
      end
    elseif c == "[" then
      local t = D.list()
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "]" then return t end
      end
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return D.null
    end
    local num = assert(s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos), "bad JSON at " .. pos)
    pos = pos + #num
    return D.N(num)
  end
  return value()
end
)LUA";

inline stages::TransformSpec lua_step(std::string code, std::string chunk = "lua/test.lua") {
  stages::TransformSpec t;
  t.lua.code = std::move(code);
  t.lua.chunk_name = std::move(chunk);
  return t;
}

// The preferences of user u, varied (nesting, empty map and list, escapes, exact numbers), and
// the same as JSON text.
inline AttributeValue prefs_of(int u) {
  using dynamo::List;
  using dynamo::Map;
  using dynamo::Null;
  Map nested{{"x", AttributeValue(List{N(std::to_string(u % 7)),
                                       AttributeValue(Map{{"y", AttributeValue(Null{})}})})},
             {"e", AttributeValue(Map{})}};
  Map m{{"theme", S(u % 2 ? "dark" : "light")},
        {"n", N(std::to_string(u))},
        {"ratio", N(u % 3 ? "0.125" : "-12345678901234567890.5")},
        {"big", N("1000")},  // written 1e3 in the JSON
        {"tags", AttributeValue(List{S("t" + std::to_string(u % 5)), S("all")})},
        {"nested", AttributeValue(nested)},
        {"on", AttributeValue(u % 4 == 0)},
        {"s", S("q\"uote\\ \xC3\xA9\xC3\xA9\n/")},
        {"empty", AttributeValue(List{})}};
  return AttributeValue(std::move(m));
}

inline std::string prefs_json(int u) {
  return "{\"theme\":\"" + std::string(u % 2 ? "dark" : "light") + "\",\"n\":" + std::to_string(u) +
         ",\"ratio\":" + (u % 3 ? "0.125" : "-12345678901234567890.5") +
         ",\"big\":1e3,\"tags\":[\"t" + std::to_string(u % 5) + "\", \"all\"],\"nested\":{\"x\":[" +
         std::to_string(u % 7) +
         ",{\"y\":null}],\"e\":{}},\"on\":" + (u % 4 == 0 ? "true" : "false") +
         ",\"s\":\"q\\\"uote\\\\ \xC3\xA9\\u00e9\\n\\/\",\"empty\":[ ]}";
}

// make_dataset(users) with a `prefs_json` string on every profile.
inline DataSet dataset_with_prefs(int users, unsigned seed = 7) {
  DataSet d = make_dataset(users, seed);
  for (auto& [k, item] : d.items) {
    if (item.find("SK")->as<std::string>() != "PROFILE") continue;
    int u = std::stoi(item.find("PK")->as<std::string>().substr(5)) - 1000;
    item.set("prefs_json", S(prefs_json(u)));
  }
  return d;
}

// What the JSON job makes of the data set: prefs parsed, prefs_json removed, visits + 1.
inline std::map<std::string, Item> after_prefs_job(const DataSet& d, std::int64_t version) {
  auto expected = d.items;
  for (auto& [k, item] : expected) {
    if (item.find("SK")->as<std::string>() != "PROFILE") continue;
    int u = std::stoi(item.find("PK")->as<std::string>().substr(5)) - 1000;
    item.erase("prefs_json");
    item.set("prefs", prefs_of(u));
    const auto* v = item.find("visits");
    item.set("visits", N(std::to_string(*v->as<dynamo::Number>().value().to_int64() + 1)));
    item.set("_v", N(std::to_string(version)));
  }
  return expected;
}

inline std::string prefs_job_lua() {
  return std::string(kLuaJsonDecoder) + R"LUA(
function transform(item, ctx)
  if item.SK ~= "PROFILE" then return nil end
  item.prefs = decode(item.prefs_json)
  item.prefs_json = nil
  item.visits = item.visits + 1   -- not idempotent: version_attribute makes it exactly once
  return item
end
)LUA";
}

}  // namespace dynamorph::test
