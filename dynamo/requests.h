// Request and response shapes of the DynamoDB operations dynamorph uses, with the functions that
// serialize requests (fmt, into a caller's buffer) and parse responses (simdjson, on the calling
// thread's parser). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/wire_expression.h"

namespace dynamorph::dynamo {

// ---- tables --------------------------------------------------------------------------------
struct KeyAttribute {
  std::string name;
  AttrType type = AttrType::S;  // S, N or B
  bool operator==(const KeyAttribute&) const = default;
};

struct Throughput {
  std::int64_t read = 0;
  std::int64_t write = 0;
  bool operator==(const Throughput&) const = default;
};

struct Projection {
  enum class Kind { All, KeysOnly, Include };
  Kind kind = Kind::All;
  std::vector<std::string> non_key_attributes;
  bool operator==(const Projection&) const = default;
};

struct IndexDefinition {
  std::string name;
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
  Projection projection;
  std::optional<Throughput> throughput;  // GSIs on provisioned tables
};

struct CreateTableRequest {
  std::string table;
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
  std::optional<Throughput> provisioned;  // nullopt: on-demand (PAY_PER_REQUEST)
  std::vector<IndexDefinition> global_indexes;
  std::vector<IndexDefinition> local_indexes;
  std::optional<std::string> stream_view_type;  // NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY
};

struct IndexDescription {
  std::string name;
  std::string status;  // CREATING, ACTIVE, DELETING, UPDATING ("ACTIVE" for LSIs)
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
  Projection projection;
  bool backfilling = false;
};

struct TableDescription {
  std::string name;
  std::string status;  // CREATING, ACTIVE, DELETING, UPDATING
  KeyAttribute partition_key;
  std::optional<KeyAttribute> sort_key;
  std::optional<Throughput> provisioned;  // nullopt for on-demand
  std::int64_t item_count = 0;
  std::int64_t size_bytes = 0;
  std::vector<IndexDescription> global_indexes;
  std::vector<IndexDescription> local_indexes;
  std::optional<std::string> stream_view_type;  // set only while the stream is enabled
  std::string latest_stream_arn;                // the newest stream, enabled or not

  bool is_key(std::string_view attribute) const {
    return attribute == partition_key.name || (sort_key && attribute == sort_key->name);
  }
  const IndexDescription* find_global_index(std::string_view n) const;
};

struct GlobalIndexUpdate {
  enum class Kind { Create, Delete };
  Kind kind = Kind::Create;
  IndexDefinition index;  // only the name for Delete
};

struct TimeToLive {
  std::string status;  // ENABLED, DISABLED, ENABLING, DISABLING
  std::string attribute;
};

// ---- reads ---------------------------------------------------------------------------------
struct ScanRequest {
  std::string table;
  std::optional<std::string> index;
  int segment = 0;
  int total_segments = 0;  // 0 or 1: no segmenting
  WireExpression filter;
  int limit = 0;  // 0: server default (1 MB pages)
  std::optional<Item> exclusive_start_key;
  bool consistent_read = false;
};

struct QueryRequest {
  std::string table;
  std::optional<std::string> index;
  WireExpression key_condition;  // names/values merged with the filter's when serialized
  WireExpression filter;
  int limit = 0;
  std::optional<Item> exclusive_start_key;
  bool consistent_read = false;
  bool scan_forward = true;
};

struct Page {
  std::vector<Item> items;
  std::int64_t count = 0;
  std::int64_t scanned_count = 0;
  std::optional<Item> last_evaluated_key;  // absent on the last page
  double consumed_capacity = 0;
};

struct GetItemRequest {
  std::string table;
  Item key;
  bool consistent_read = false;
};

// ---- writes --------------------------------------------------------------------------------
struct PutItemRequest {
  std::string table;
  Item item;
  WireExpression condition;
  bool return_consumed_capacity = true;  // ReturnConsumedCapacity TOTAL, else NONE
};

struct UpdateItemRequest {
  std::string table;
  Item key;
  WireExpression update;
  WireExpression condition;
  std::string return_values = "NONE";  // NONE, ALL_NEW, ALL_OLD, UPDATED_NEW, UPDATED_OLD
  bool return_consumed_capacity = true;
};

struct DeleteItemRequest {
  std::string table;
  Item key;
  WireExpression condition;
  bool return_consumed_capacity = true;
};

struct WriteResult {
  double consumed_capacity = 0;
  std::optional<Item> attributes;  // ReturnValues
};

// One entry of BatchWriteItem: a whole-item put or a delete by key.
struct BatchWriteEntry {
  enum class Kind { Put, Delete };
  std::string table;
  Kind kind = Kind::Put;
  Item item;  // the item (Put) or its key (Delete)
};

struct BatchWriteResult {
  std::vector<BatchWriteEntry> unprocessed;
  double consumed_capacity = 0;
};

struct TransactAction {
  enum class Kind { Put, Update, Delete, ConditionCheck };
  Kind kind = Kind::Put;
  std::string table;
  Item item;  // Put: the item; others: the key
  WireExpression update;  // Update only
  WireExpression condition;
};

struct BatchGetRequest {
  std::string table;
  std::vector<Item> keys;  // ≤ 100
  bool consistent_read = false;
};

struct BatchGetResult {
  std::vector<Item> items;
  std::vector<Item> unprocessed_keys;
  double consumed_capacity = 0;
};

// ---- serialization (append a request body to out) ------------------------------------------
void write_create_table(std::string& out, const CreateTableRequest& r);
void write_table_name(std::string& out, std::string_view table);  // {"TableName":"t"}
void write_update_table(std::string& out, std::string_view table,
                        const std::vector<GlobalIndexUpdate>& updates,
                        const std::optional<Throughput>& billing_change);
void write_update_stream(std::string& out, std::string_view table, bool enabled,
                         std::string_view view);
void write_update_ttl(std::string& out, std::string_view table, std::string_view attribute,
                      bool enabled);
void write_list_tables(std::string& out, std::string_view exclusive_start);
void write_scan(std::string& out, const ScanRequest& r);
void write_query(std::string& out, const QueryRequest& r);
void write_get_item(std::string& out, const GetItemRequest& r);
void write_put_item(std::string& out, const PutItemRequest& r);
void write_update_item(std::string& out, const UpdateItemRequest& r);
void write_delete_item(std::string& out, const DeleteItemRequest& r);
// return_consumed_capacity false: no ReturnConsumedCapacity (the answer then has none).
void write_batch_write(std::string& out, const std::vector<BatchWriteEntry>& entries,
                       bool return_consumed_capacity = true);
// Turns a request body written without ReturnConsumedCapacity into one that asks for the total:
// its last byte ('}') becomes kReturnConsumedCapacityTotal and '}'.
inline constexpr std::string_view kReturnConsumedCapacityTotal = ",\"ReturnConsumedCapacity\":\"TOTAL\"";
void add_return_consumed_capacity(std::string& body);
void write_batch_get(std::string& out, const BatchGetRequest& r);
void write_transact_write(std::string& out, const std::vector<TransactAction>& actions,
                          std::string_view client_request_token);

// ---- parsing (the body must be padded: see pad_for_parsing) --------------------------------
// Throw dynamorph::Error on a malformed body.
TableDescription parse_table_description(const std::string& body);  // Create/Describe/Update/Delete
std::pair<std::vector<std::string>, std::string> parse_list_tables(const std::string& body);
TimeToLive parse_describe_ttl(const std::string& body);
Page parse_page(const std::string& body);  // Scan and Query
std::optional<Item> parse_get_item(const std::string& body, double* consumed = nullptr);
WriteResult parse_write_result(const std::string& body);  // Put/Update/Delete
BatchWriteResult parse_batch_write(const std::string& body);
BatchGetResult parse_batch_get(const std::string& body, std::string_view table);
double parse_consumed_total(const std::string& body);  // sums ConsumedCapacity (object or list)

}  // namespace dynamorph::dynamo
