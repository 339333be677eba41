#include "dynamo/requests.h"

#include <fmt/format.h>

#include <map>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/json_read.h"

namespace dynamorph::dynamo {

using simdjson::ondemand::array;
using simdjson::ondemand::object;
using simdjson::ondemand::value;

namespace {

// ---- writing helpers -----------------------------------------------------------------------
void key_string(std::string& out, std::string_view key) {
  write_json_string(out, key);
  out.push_back(':');
}

void field_string(std::string& out, std::string_view key, std::string_view v) {
  key_string(out, key);
  write_json_string(out, v);
}

void write_names_values(std::string& out, const std::map<std::string, std::string>& names,
                        const std::map<std::string, AttributeValue>& values) {
  if (!names.empty()) {
    out += ",\"ExpressionAttributeNames\":{";
    bool first = true;
    for (const auto& [k, v] : names) {
      if (!first) out.push_back(',');
      first = false;
      field_string(out, k, v);
    }
    out.push_back('}');
  }
  if (!values.empty()) {
    out += ",\"ExpressionAttributeValues\":{";
    bool first = true;
    for (const auto& [k, v] : values) {
      if (!first) out.push_back(',');
      first = false;
      key_string(out, k);
      write_value(out, v);
    }
    out.push_back('}');
  }
}

// Several expressions of one request share one names/values map.
void merge_into(std::map<std::string, std::string>& names,
                std::map<std::string, AttributeValue>& values, const WireExpression& e) {
  for (const auto& [k, v] : e.names) names.emplace(k, v);
  for (const auto& [k, v] : e.values) values.emplace(k, v);
}

void write_key_schema(std::string& out, const KeyAttribute& pk, const std::optional<KeyAttribute>& sk) {
  out += "\"KeySchema\":[{\"AttributeName\":";
  write_json_string(out, pk.name);
  out += ",\"KeyType\":\"HASH\"}";
  if (sk) {
    out += ",{\"AttributeName\":";
    write_json_string(out, sk->name);
    out += ",\"KeyType\":\"RANGE\"}";
  }
  out.push_back(']');
}

void write_projection(std::string& out, const Projection& p) {
  out += "\"Projection\":{\"ProjectionType\":\"";
  out += p.kind == Projection::Kind::All ? "ALL" : p.kind == Projection::Kind::KeysOnly ? "KEYS_ONLY" : "INCLUDE";
  out.push_back('"');
  if (p.kind == Projection::Kind::Include) {
    out += ",\"NonKeyAttributes\":[";
    for (std::size_t i = 0; i < p.non_key_attributes.size(); ++i) {
      if (i) out.push_back(',');
      write_json_string(out, p.non_key_attributes[i]);
    }
    out.push_back(']');
  }
  out.push_back('}');
}

void write_throughput(std::string& out, const Throughput& t) {
  fmt::format_to(std::back_inserter(out),
                 "\"ProvisionedThroughput\":{{\"ReadCapacityUnits\":{},\"WriteCapacityUnits\":{}}}",
                 t.read, t.write);
}

void write_index(std::string& out, const IndexDefinition& ix, bool global) {
  out += "{\"IndexName\":";
  write_json_string(out, ix.name);
  out.push_back(',');
  write_key_schema(out, ix.partition_key, ix.sort_key);
  out.push_back(',');
  write_projection(out, ix.projection);
  if (global && ix.throughput) {
    out.push_back(',');
    write_throughput(out, *ix.throughput);
  }
  out.push_back('}');
}

void add_attribute_definition(std::vector<KeyAttribute>& defs, const KeyAttribute& a) {
  for (const auto& d : defs) {
    if (d.name == a.name) return;
  }
  defs.push_back(a);
}

void write_attribute_definitions(std::string& out, const std::vector<KeyAttribute>& defs) {
  out += "\"AttributeDefinitions\":[";
  for (std::size_t i = 0; i < defs.size(); ++i) {
    if (i) out.push_back(',');
    out += "{\"AttributeName\":";
    write_json_string(out, defs[i].name);
    out += ",\"AttributeType\":\"";
    out += type_tag(defs[i].type);
    out += "\"}";
  }
  out.push_back(']');
}

// ---- reading helpers -----------------------------------------------------------------------
[[noreturn]] void malformed(std::string_view what) {
  throw Error(fmt::format("unexpected DynamoDB response: {}", what));
}

template <class F>
void for_each_field(value v, F&& f) {
  object obj;
  if (v.get_object().get(obj)) malformed("expected an object");
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) malformed("bad key");
    value x;
    if (field.value().get(x)) malformed("bad value");
    f(key, x);
  }
}

template <class F>
void for_each_element(value v, F&& f) {
  array arr;
  if (v.get_array().get(arr)) malformed("expected an array");
  for (auto e : arr) {
    value x;
    if (e.get(x)) malformed("bad array element");
    f(x);
  }
}

std::string str(value v) {
  std::string_view s;
  if (v.get_string().get(s)) malformed("expected a string");
  return std::string(s);
}

std::int64_t integer(value v) {
  std::int64_t i;
  if (v.get_int64().get(i)) {
    double d;
    if (v.get_double().get(d)) malformed("expected a number");
    // Out of int64 range the cast is undefined.
    if (!(d >= -9.2e18 && d <= 9.2e18)) malformed("number out of range");
    return static_cast<std::int64_t>(d);
  }
  return i;
}

double real(value v) {
  double d;
  if (v.get_double().get(d)) malformed("expected a number");
  return d;
}

double consumed_units(value v) {
  // {"TableName":…, "CapacityUnits": x} or a list of those.
  double total = 0;
  // Checked, not compared: the comparison's implicit conversion throws simdjson_error on a
  // malformed value (found by fuzz/response_fuzz), and callers expect dynamorph::Error.
  simdjson::ondemand::json_type type;
  if (v.type().get(type)) malformed("ConsumedCapacity: bad value");
  if (type == simdjson::ondemand::json_type::array) {
    for_each_element(v, [&](value e) { total += consumed_units(e); });
    return total;
  }
  for_each_field(v, [&](std::string_view k, value x) {
    if (k == "CapacityUnits") total += real(x);
  });
  return total;
}

template <class F>
void parse_document(const std::string& body, F&& f) {
  auto& parser = detail::thread_parser();
  auto doc = parser.iterate(detail::padded(body));
  value root;
  if (doc.get_value().get(root)) malformed("not JSON");
  f(root);
}

struct KeySchemaParts {
  std::string hash, range;
};

KeySchemaParts read_key_schema(value v) {
  KeySchemaParts parts;
  for_each_element(v, [&](value e) {
    std::string name, type;
    for_each_field(e, [&](std::string_view k, value x) {
      if (k == "AttributeName") name = str(x);
      if (k == "KeyType") type = str(x);
    });
    (type == "HASH" ? parts.hash : parts.range) = name;
  });
  return parts;
}

Projection read_projection(value v) {
  Projection p;
  for_each_field(v, [&](std::string_view k, value x) {
    if (k == "ProjectionType") {
      std::string t = str(x);
      p.kind = t == "ALL" ? Projection::Kind::All : t == "KEYS_ONLY" ? Projection::Kind::KeysOnly : Projection::Kind::Include;
    } else if (k == "NonKeyAttributes") {
      for_each_element(x, [&](value e) { p.non_key_attributes.push_back(str(e)); });
    }
  });
  return p;
}

struct RawIndex {
  IndexDescription desc;
  KeySchemaParts keys;
};

RawIndex read_index(value v) {
  RawIndex ix;
  ix.desc.status = "ACTIVE";
  for_each_field(v, [&](std::string_view k, value x) {
    if (k == "IndexName") ix.desc.name = str(x);
    else if (k == "IndexStatus") ix.desc.status = str(x);
    else if (k == "KeySchema") ix.keys = read_key_schema(x);
    else if (k == "Projection") ix.desc.projection = read_projection(x);
    else if (k == "Backfilling") {
      bool b = false;
      if (!x.get_bool().get(b)) ix.desc.backfilling = b;
    }
  });
  return ix;
}

}  // namespace

// ---- serialization -------------------------------------------------------------------------
void write_table_name(std::string& out, std::string_view table) {
  out += '{';
  field_string(out, "TableName", table);
  out += '}';
}

void write_create_table(std::string& out, const CreateTableRequest& r) {
  std::vector<KeyAttribute> defs;
  add_attribute_definition(defs, r.partition_key);
  if (r.sort_key) add_attribute_definition(defs, *r.sort_key);
  for (const auto* list : {&r.global_indexes, &r.local_indexes}) {
    for (const auto& ix : *list) {
      add_attribute_definition(defs, ix.partition_key);
      if (ix.sort_key) add_attribute_definition(defs, *ix.sort_key);
    }
  }
  out += '{';
  field_string(out, "TableName", r.table);
  out.push_back(',');
  write_attribute_definitions(out, defs);
  out.push_back(',');
  write_key_schema(out, r.partition_key, r.sort_key);
  if (r.provisioned) {
    out += ",\"BillingMode\":\"PROVISIONED\",";
    write_throughput(out, *r.provisioned);
  } else {
    out += ",\"BillingMode\":\"PAY_PER_REQUEST\"";
  }
  if (!r.global_indexes.empty()) {
    out += ",\"GlobalSecondaryIndexes\":[";
    for (std::size_t i = 0; i < r.global_indexes.size(); ++i) {
      if (i) out.push_back(',');
      IndexDefinition ix = r.global_indexes[i];
      if (r.provisioned && !ix.throughput) ix.throughput = r.provisioned;
      write_index(out, ix, true);
    }
    out.push_back(']');
  }
  if (!r.local_indexes.empty()) {
    out += ",\"LocalSecondaryIndexes\":[";
    for (std::size_t i = 0; i < r.local_indexes.size(); ++i) {
      if (i) out.push_back(',');
      write_index(out, r.local_indexes[i], false);
    }
    out.push_back(']');
  }
  if (r.stream_view_type) {
    out += ",\"StreamSpecification\":{\"StreamEnabled\":true,\"StreamViewType\":";
    write_json_string(out, *r.stream_view_type);
    out.push_back('}');
  }
  out.push_back('}');
}

void write_update_table(std::string& out, std::string_view table,
                        const std::vector<GlobalIndexUpdate>& updates,
                        const std::optional<Throughput>& table_throughput) {
  out += '{';
  field_string(out, "TableName", table);
  std::vector<KeyAttribute> defs;
  for (const auto& u : updates) {
    if (u.kind != GlobalIndexUpdate::Kind::Create) continue;
    add_attribute_definition(defs, u.index.partition_key);
    if (u.index.sort_key) add_attribute_definition(defs, *u.index.sort_key);
  }
  if (!defs.empty()) {
    out.push_back(',');
    write_attribute_definitions(out, defs);
  }
  if (!updates.empty()) {
    out += ",\"GlobalSecondaryIndexUpdates\":[";
    for (std::size_t i = 0; i < updates.size(); ++i) {
      if (i) out.push_back(',');
      if (updates[i].kind == GlobalIndexUpdate::Kind::Create) {
        out += "{\"Create\":";
        write_index(out, updates[i].index, true);
        out += '}';
      } else {
        out += "{\"Delete\":{";
        field_string(out, "IndexName", updates[i].index.name);
        out += "}}";
      }
    }
    out.push_back(']');
  }
  if (table_throughput) {
    out.push_back(',');
    write_throughput(out, *table_throughput);
  }
  out.push_back('}');
}

void write_update_stream(std::string& out, std::string_view table, bool enabled,
                         std::string_view view) {
  out += '{';
  field_string(out, "TableName", table);
  if (enabled) {
    out += ",\"StreamSpecification\":{\"StreamEnabled\":true,";
    field_string(out, "StreamViewType", view);
    out += "}}";
  } else {
    out += ",\"StreamSpecification\":{\"StreamEnabled\":false}}";
  }
}

void write_update_ttl(std::string& out, std::string_view table, std::string_view attribute,
                      bool enabled) {
  out += '{';
  field_string(out, "TableName", table);
  out += ",\"TimeToLiveSpecification\":{";
  field_string(out, "AttributeName", attribute);
  out += enabled ? ",\"Enabled\":true}}" : ",\"Enabled\":false}}";
}

void write_list_tables(std::string& out, std::string_view exclusive_start) {
  out += '{';
  if (!exclusive_start.empty()) field_string(out, "ExclusiveStartTableName", exclusive_start);
  out += '}';
}

void write_scan(std::string& out, const ScanRequest& r) {
  out += '{';
  field_string(out, "TableName", r.table);
  if (r.index) {
    out.push_back(',');
    field_string(out, "IndexName", *r.index);
  }
  if (r.total_segments > 1) {
    fmt::format_to(std::back_inserter(out), ",\"Segment\":{},\"TotalSegments\":{}", r.segment,
                   r.total_segments);
  }
  if (r.limit > 0) fmt::format_to(std::back_inserter(out), ",\"Limit\":{}", r.limit);
  if (r.consistent_read) out += ",\"ConsistentRead\":true";
  if (!r.filter.empty()) {
    out.push_back(',');
    field_string(out, "FilterExpression", r.filter.text);
    write_names_values(out, r.filter.names, r.filter.values);
  }
  if (r.exclusive_start_key) {
    out += ",\"ExclusiveStartKey\":";
    write_item(out, *r.exclusive_start_key);
  }
  out += ",\"ReturnConsumedCapacity\":\"TOTAL\"}";
}

void write_query(std::string& out, const QueryRequest& r) {
  out += '{';
  field_string(out, "TableName", r.table);
  if (r.index) {
    out.push_back(',');
    field_string(out, "IndexName", *r.index);
  }
  out.push_back(',');
  field_string(out, "KeyConditionExpression", r.key_condition.text);
  if (!r.filter.empty()) {
    out.push_back(',');
    field_string(out, "FilterExpression", r.filter.text);
  }
  std::map<std::string, std::string> names = r.key_condition.names;
  std::map<std::string, AttributeValue> values = r.key_condition.values;
  merge_into(names, values, r.filter);
  write_names_values(out, names, values);
  if (r.limit > 0) fmt::format_to(std::back_inserter(out), ",\"Limit\":{}", r.limit);
  if (r.consistent_read) out += ",\"ConsistentRead\":true";
  if (!r.scan_forward) out += ",\"ScanIndexForward\":false";
  if (r.exclusive_start_key) {
    out += ",\"ExclusiveStartKey\":";
    write_item(out, *r.exclusive_start_key);
  }
  out += ",\"ReturnConsumedCapacity\":\"TOTAL\"}";
}

void write_get_item(std::string& out, const GetItemRequest& r) {
  out += '{';
  field_string(out, "TableName", r.table);
  out += ",\"Key\":";
  write_item(out, r.key);
  if (r.consistent_read) out += ",\"ConsistentRead\":true";
  out += ",\"ReturnConsumedCapacity\":\"TOTAL\"}";
}

namespace {
void write_condition(std::string& out, const WireExpression& c) {
  if (c.empty()) return;
  out.push_back(',');
  field_string(out, "ConditionExpression", c.text);
}
// Closes a write request's object; NONE is the default, so it is simply left out.
void end_write(std::string& out, bool return_consumed_capacity) {
  if (return_consumed_capacity) out += kReturnConsumedCapacityTotal;
  out += '}';
}
}  // namespace

void write_put_item(std::string& out, const PutItemRequest& r) {
  out += '{';
  field_string(out, "TableName", r.table);
  out += ",\"Item\":";
  write_item(out, r.item);
  write_condition(out, r.condition);
  write_names_values(out, r.condition.names, r.condition.values);
  end_write(out, r.return_consumed_capacity);
}

void write_update_item(std::string& out, const UpdateItemRequest& r) {
  out += '{';
  field_string(out, "TableName", r.table);
  out += ",\"Key\":";
  write_item(out, r.key);
  if (!r.update.empty()) {
    out.push_back(',');
    field_string(out, "UpdateExpression", r.update.text);
  }
  write_condition(out, r.condition);
  std::map<std::string, std::string> names = r.update.names;
  std::map<std::string, AttributeValue> values = r.update.values;
  merge_into(names, values, r.condition);
  write_names_values(out, names, values);
  if (r.return_values != "NONE") {
    out.push_back(',');
    field_string(out, "ReturnValues", r.return_values);
  }
  end_write(out, r.return_consumed_capacity);
}

void write_delete_item(std::string& out, const DeleteItemRequest& r) {
  out += '{';
  field_string(out, "TableName", r.table);
  out += ",\"Key\":";
  write_item(out, r.key);
  write_condition(out, r.condition);
  write_names_values(out, r.condition.names, r.condition.values);
  end_write(out, r.return_consumed_capacity);
}

void write_batch_write(std::string& out, const std::vector<BatchWriteEntry>& entries,
                       bool return_consumed_capacity) {
  out += "{\"RequestItems\":{";
  // Group by table, keeping the first-seen order of tables.
  std::vector<std::string_view> tables;
  for (const auto& e : entries) {
    if (std::find(tables.begin(), tables.end(), e.table) == tables.end()) tables.push_back(e.table);
  }
  for (std::size_t t = 0; t < tables.size(); ++t) {
    if (t) out.push_back(',');
    key_string(out, tables[t]);
    out.push_back('[');
    bool first = true;
    for (const auto& e : entries) {
      if (e.table != tables[t]) continue;
      if (!first) out.push_back(',');
      first = false;
      out += e.kind == BatchWriteEntry::Kind::Put ? "{\"PutRequest\":{\"Item\":" : "{\"DeleteRequest\":{\"Key\":";
      write_item(out, e.item);
      out += "}}";
    }
    out.push_back(']');
  }
  out.push_back('}');
  end_write(out, return_consumed_capacity);
}

void add_return_consumed_capacity(std::string& body) {
  if (body.empty() || body.back() != '}')
    throw Error("internal: a request body that does not end its JSON object");
  body.pop_back();
  end_write(body, true);
}

void write_batch_get(std::string& out, const BatchGetRequest& r) {
  out += "{\"RequestItems\":{";
  key_string(out, r.table);
  out += "{\"Keys\":[";
  for (std::size_t i = 0; i < r.keys.size(); ++i) {
    if (i) out.push_back(',');
    write_item(out, r.keys[i]);
  }
  out += "]";
  if (r.consistent_read) out += ",\"ConsistentRead\":true";
  out += "}},\"ReturnConsumedCapacity\":\"TOTAL\"}";
}

void write_transact_write(std::string& out, const std::vector<TransactAction>& actions,
                          std::string_view client_request_token) {
  out += "{\"TransactItems\":[";
  for (std::size_t i = 0; i < actions.size(); ++i) {
    const auto& a = actions[i];
    if (i) out.push_back(',');
    switch (a.kind) {
      case TransactAction::Kind::Put: out += "{\"Put\":{\"Item\":"; break;
      case TransactAction::Kind::Update: out += "{\"Update\":{\"Key\":"; break;
      case TransactAction::Kind::Delete: out += "{\"Delete\":{\"Key\":"; break;
      case TransactAction::Kind::ConditionCheck: out += "{\"ConditionCheck\":{\"Key\":"; break;
    }
    write_item(out, a.item);
    out.push_back(',');
    field_string(out, "TableName", a.table);
    if (a.kind == TransactAction::Kind::Update) {
      out.push_back(',');
      field_string(out, "UpdateExpression", a.update.text);
    }
    write_condition(out, a.condition);
    std::map<std::string, std::string> names = a.update.names;
    std::map<std::string, AttributeValue> values = a.update.values;
    merge_into(names, values, a.condition);
    write_names_values(out, names, values);
    out += "}}";
  }
  out += "]";
  if (!client_request_token.empty()) {
    out.push_back(',');
    field_string(out, "ClientRequestToken", client_request_token);
  }
  out += ",\"ReturnConsumedCapacity\":\"TOTAL\"}";
}

// ---- parsing -------------------------------------------------------------------------------
const IndexDescription* TableDescription::find_global_index(std::string_view n) const {
  for (const auto& ix : global_indexes) {
    if (ix.name == n) return &ix;
  }
  return nullptr;
}

TableDescription parse_table_description(const std::string& body) {
  TableDescription d;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k != "Table" && k != "TableDescription") return;
      std::map<std::string, AttrType> types;
      KeySchemaParts keys;
      std::vector<RawIndex> gsis, lsis;
      std::string billing;
      std::optional<Throughput> throughput;
      for_each_field(x, [&](std::string_view f, value v) {
        if (f == "TableName") d.name = str(v);
        else if (f == "TableStatus") d.status = str(v);
        else if (f == "ItemCount") d.item_count = integer(v);
        else if (f == "TableSizeBytes") d.size_bytes = integer(v);
        else if (f == "KeySchema") keys = read_key_schema(v);
        else if (f == "AttributeDefinitions") {
          for_each_element(v, [&](value e) {
            std::string name, type;
            for_each_field(e, [&](std::string_view a, value y) {
              if (a == "AttributeName") name = str(y);
              if (a == "AttributeType") type = str(y);
            });
            types[name] = parse_type(type).value_or(AttrType::S);
          });
        } else if (f == "BillingModeSummary") {
          for_each_field(v, [&](std::string_view a, value y) {
            if (a == "BillingMode") billing = str(y);
          });
        } else if (f == "ProvisionedThroughput") {
          Throughput t;
          for_each_field(v, [&](std::string_view a, value y) {
            if (a == "ReadCapacityUnits") t.read = integer(y);
            if (a == "WriteCapacityUnits") t.write = integer(y);
          });
          throughput = t;
        } else if (f == "GlobalSecondaryIndexes") {
          for_each_element(v, [&](value e) { gsis.push_back(read_index(e)); });
        } else if (f == "LocalSecondaryIndexes") {
          for_each_element(v, [&](value e) { lsis.push_back(read_index(e)); });
        } else if (f == "StreamSpecification") {
          std::optional<std::string> view;
          bool enabled = false;
          for_each_field(v, [&](std::string_view a, value y) {
            if (a == "StreamEnabled") {
              bool b = false;
              if (!y.get_bool().get(b)) enabled = b;
            }
            if (a == "StreamViewType") view = str(y);
          });
          if (enabled) d.stream_view_type = view;
        } else if (f == "LatestStreamArn") {
          d.latest_stream_arn = str(v);
        }
      });
      auto key_attr = [&](const std::string& name) {
        auto it = types.find(name);
        return KeyAttribute{name, it == types.end() ? AttrType::S : it->second};
      };
      d.partition_key = key_attr(keys.hash);
      if (!keys.range.empty()) d.sort_key = key_attr(keys.range);
      // On-demand tables report zero provisioned throughput.
      if (billing != "PAY_PER_REQUEST" && throughput && (throughput->read || throughput->write)) {
        d.provisioned = throughput;
      }
      auto resolve = [&](std::vector<RawIndex>& raws, std::vector<IndexDescription>& out) {
        for (auto& raw : raws) {
          raw.desc.partition_key = key_attr(raw.keys.hash);
          if (!raw.keys.range.empty()) raw.desc.sort_key = key_attr(raw.keys.range);
          out.push_back(std::move(raw.desc));
        }
      };
      resolve(gsis, d.global_indexes);
      resolve(lsis, d.local_indexes);
    });
  });
  if (d.name.empty()) malformed("no table description");
  return d;
}

std::pair<std::vector<std::string>, std::string> parse_list_tables(const std::string& body) {
  std::pair<std::vector<std::string>, std::string> r;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "TableNames") for_each_element(x, [&](value e) { r.first.push_back(str(e)); });
      if (k == "LastEvaluatedTableName") r.second = str(x);
    });
  });
  return r;
}

TimeToLive parse_describe_ttl(const std::string& body) {
  TimeToLive t;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k != "TimeToLiveDescription") return;
      for_each_field(x, [&](std::string_view f, value v) {
        if (f == "TimeToLiveStatus") t.status = str(v);
        if (f == "AttributeName") t.attribute = str(v);
      });
    });
  });
  return t;
}

Page parse_page(const std::string& body) {
  Page p;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "Items") {
        array arr;
        if (x.get_array().get(arr)) malformed("Items must be an array");
        for (auto e : arr) {
          value v;
          if (e.get(v)) malformed("bad item");
          object obj;
          if (v.get_object().get(obj)) malformed("an item must be an object");
          Item& item = p.items.emplace_back();
          item.reserve(8);
          detail::read_item_into(obj, item);
        }
      } else if (k == "Count") {
        p.count = integer(x);
      } else if (k == "ScannedCount") {
        p.scanned_count = integer(x);
      } else if (k == "LastEvaluatedKey") {
        p.last_evaluated_key = detail::read_item(x);
      } else if (k == "ConsumedCapacity") {
        p.consumed_capacity = consumed_units(x);
      }
    });
  });
  return p;
}

std::optional<Item> parse_get_item(const std::string& body, double* consumed) {
  std::optional<Item> item;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "Item") item = detail::read_item(x);
      if (k == "ConsumedCapacity" && consumed) *consumed = consumed_units(x);
    });
  });
  return item;
}

WriteResult parse_write_result(const std::string& body) {
  WriteResult r;
  if (body.empty()) return r;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "Attributes") r.attributes = detail::read_item(x);
      if (k == "ConsumedCapacity") r.consumed_capacity = consumed_units(x);
    });
  });
  return r;
}

BatchWriteResult parse_batch_write(const std::string& body) {
  BatchWriteResult r;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "ConsumedCapacity") {
        r.consumed_capacity = consumed_units(x);
      } else if (k == "UnprocessedItems") {
        for_each_field(x, [&](std::string_view table, value list) {
          std::string t(table);
          for_each_element(list, [&](value req) {
            for_each_field(req, [&](std::string_view kind, value body_v) {
              BatchWriteEntry e;
              e.table = t;
              e.kind = kind == "PutRequest" ? BatchWriteEntry::Kind::Put : BatchWriteEntry::Kind::Delete;
              for_each_field(body_v, [&](std::string_view, value item) { e.item = detail::read_item(item); });
              r.unprocessed.push_back(std::move(e));
            });
          });
        });
      }
    });
  });
  return r;
}

BatchGetResult parse_batch_get(const std::string& body, std::string_view table) {
  BatchGetResult r;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "ConsumedCapacity") {
        r.consumed_capacity = consumed_units(x);
      } else if (k == "Responses") {
        for_each_field(x, [&](std::string_view t, value list) {
          if (t != table) return;
          for_each_element(list, [&](value item) { r.items.push_back(detail::read_item(item)); });
        });
      } else if (k == "UnprocessedKeys") {
        for_each_field(x, [&](std::string_view t, value spec) {
          if (t != table) return;
          for_each_field(spec, [&](std::string_view f, value keys) {
            if (f == "Keys") for_each_element(keys, [&](value key) { r.unprocessed_keys.push_back(detail::read_item(key)); });
          });
        });
      }
    });
  });
  return r;
}

double parse_consumed_total(const std::string& body) {
  double total = 0;
  if (body.empty()) return 0;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "ConsumedCapacity") total = consumed_units(x);
    });
  });
  return total;
}

}  // namespace dynamorph::dynamo
