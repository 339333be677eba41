// DynamoDB Streams: DescribeStream (every page, with each shard's parent), GetShardIterator
// (TRIM_HORIZON, LATEST, AT_ / AFTER_SEQUENCE_NUMBER) and GetRecords, sent through a Client made
// for the Streams endpoint and target prefix (streams_client_options). Request writers and
// response parsers are plain functions; StreamsClient adds the synchronous calls, renewing an
// expired iterator from the last sequence number read. Thread-safe as Client is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/attribute_value.h"
#include "dynamo/aws_config.h"
#include "dynamo/client.h"

namespace dynamorph::dynamo {

struct StreamShard {
  std::string id;
  std::string parent;             // empty: none (or trimmed away)
  std::string starting_sequence;  // SequenceNumberRange
  std::string ending_sequence;    // empty: the shard is open
  bool closed() const { return !ending_sequence.empty(); }
};

struct StreamDescription {
  std::string arn;
  std::string status;     // ENABLING, ENABLED, DISABLING, DISABLED
  std::string view_type;  // KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES
  std::string table;
  std::vector<StreamShard> shards;  // every page
};

enum class IteratorType { TrimHorizon, Latest, AtSequence, AfterSequence };
std::string_view to_string(IteratorType t);  // "TRIM_HORIZON" …

struct StreamRecord {
  enum class Event { Insert, Modify, Remove };
  Event event = Event::Insert;
  Item keys;
  std::optional<Item> new_image, old_image;
  std::string sequence;
  std::int64_t created_ms = 0;  // ApproximateCreationDateTime (DynamoDB Local: to the minute)
};

struct RecordsPage {
  std::vector<StreamRecord> records;
  std::optional<std::string> next_iterator;  // nullopt: the shard is closed and read to its end
};

// Streams' endpoint: AWS_ENDPOINT_URL_DYNAMODB_STREAMS; else, when DynamoDB's endpoint is a
// local or custom server (not *.amazonaws.com[.cn]), that same endpoint; else
// https://streams.dynamodb.<region>.amazonaws.com (.amazonaws.com.cn for cn- regions).
std::string resolve_streams_endpoint(std::string_view dynamodb_endpoint, std::string_view region,
                                     const GetEnv& getenv = system_getenv);
// A Streams client's options from a DynamoDB client's: endpoint as above, target prefix
// DynamoDBStreams_20120810, the same region, credentials and retry policy.
ClientOptions streams_client_options(const ClientOptions& dynamodb,
                                     const GetEnv& getenv = system_getenv);

void write_describe_stream(std::string& out, std::string_view arn,
                           std::string_view exclusive_start_shard);
void write_get_shard_iterator(std::string& out, std::string_view arn, std::string_view shard,
                              IteratorType type, std::string_view sequence);
void write_get_records(std::string& out, std::string_view iterator, int limit);
// The body must be padded (pad_for_parsing). DescribeStream: the page and its
// LastEvaluatedShardId ("" on the last page).
std::pair<StreamDescription, std::string> parse_describe_stream(const std::string& body);
std::string parse_shard_iterator(const std::string& body);
RecordsPage parse_get_records(const std::string& body);

// Sequence numbers are decimal strings of up to 40 digits: compared as numbers.
int compare_sequence(std::string_view a, std::string_view b);

class StreamsClient {
 public:
  explicit StreamsClient(ClientOptions streams_options) : client_(std::move(streams_options)) {}
  Client& client() { return client_; }
  Outcome<StreamDescription> describe(std::string_view arn);  // every page
  Outcome<std::string> iterator(std::string_view arn, std::string_view shard, IteratorType type,
                                std::string_view sequence = {});
  Outcome<RawResponse> get_records_raw(std::string_view iterator, int limit);

 private:
  Client client_;
};

}  // namespace dynamorph::dynamo
