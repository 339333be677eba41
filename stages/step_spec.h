// What one `pipeline` step of a migration file asks for, as plain data: the loader in
// migrations/ fills it from YAML, the pipeline compiles and runs it. Immutable once built.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"

namespace dynamorph::stages {

enum class WriteMode { Batch, Update, Transact, Delete, None };
enum class Guard { Default, None, Unchanged };  // Default: unchanged for update/transact, else none
// What one item that cannot be written does to the run: stop it (the default), or go to the
// dead letters (`on_item_error: skip`) while the run goes on.
enum class OnItemError { Stop, Skip };

// Every expression carries a label used as its error prefix: "migrations/x.yaml:14: where".
struct Expression {
  std::string text;
  std::string label;
  bool empty() const { return text.empty(); }
};

struct SourceSpec {
  // The registered source kind (source.h): "scan", "query", "export". Empty: "query" when
  // query_key is set, else "scan".
  std::string kind;
  std::string table;                 // physical name (namespace applied)
  std::optional<std::string> index;  // scan or query an index
  int segments = 0;                  // 0: the run's --segments
  Expression filter;                 // server-side FilterExpression
  Expression query_key;              // set: Query with this KeyConditionExpression
  int page_size = 0;                 // Limit per request; 0: server default (1 MB)
  bool consistent_read = false;
  bool scan_forward = true;
  std::string export_location;  // export: a local folder or s3://bucket/prefix
  // kind "keys": read exactly these items (their keys, in this order) with consistent reads
  // (`up --retry-dead-letters`).
  std::vector<dynamo::Item> keys;
  // `follow: stream` (a copy): backfill, then replay the table's stream (kind "stream" runs the
  // replay) until its lag is under catch_up_lag_s; a negative lag never ends it (`follow`).
  bool follow_stream = false;
  double catch_up_lag_s = 5;
};

// `lua: { file: F }` or `lua: { code: TEXT }` (lua_transform.h): the script's text and where it
// came from. Limits of 0 take the defaults.
struct LuaSpec {
  std::string code;        // the script
  std::string chunk_name;  // its name in messages: "migrations/lua/x.lua" ("" = no Lua step)
  int first_line = 1;      // the line of chunk_name where `code` begins (inline code)
  std::int64_t max_instructions = 0;  // per item
  std::int64_t max_memory_bytes = 0;  // per VM (one VM per worker)
  bool empty() const { return chunk_name.empty(); }
};

struct TransformSpec {
  Expression update;                                   // an update expression …
  std::string stage;                                   // … or the name of a registered C++ stage
  std::map<std::string, dynamo::AttributeValue> args;  // the C++ stage's arguments, typed
  LuaSpec lua = {};                                    // … or a Lua function
};

struct WriteSpec {
  std::string table;  // physical name; empty: the source table
  WriteMode mode = WriteMode::Batch;
  Guard guard = Guard::Default;
  std::string version_attribute;  // empty: none
};

struct StepSpec {
  std::string label;                         // "migrations/x.yaml:9: pipeline", for messages
  std::map<std::string, std::string> names;  // "#n" -> "name"
  std::map<std::string, dynamo::AttributeValue> values;  // ":v" -> value
  SourceSpec source;
  Expression where;
  std::vector<TransformSpec> transform;
  WriteSpec write;
  // An item the transform or the server rejects (a transform error, a ValidationException, an
  // item over 400 KB): `stop` fails the run; `skip` sends it to the dead letters, up to
  // max_item_errors items in all (0: no limit), and goes on.
  OnItemError on_item_error = OnItemError::Stop;
  std::int64_t max_item_errors = 0;
};

std::string_view to_string(WriteMode m);
std::optional<WriteMode> parse_write_mode(std::string_view s);

}  // namespace dynamorph::stages
