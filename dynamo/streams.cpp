#include "dynamo/streams.h"

#include <fmt/format.h>

#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/json_read.h"

namespace dynamorph::dynamo {
namespace {

using simdjson::ondemand::value;

[[noreturn]] void malformed(std::string_view what) {
  throw Error(fmt::format("unexpected DynamoDB Streams response: {}", what));
}

template <class F>
void for_each_field(value v, F&& f) {
  simdjson::ondemand::object obj;
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
  simdjson::ondemand::array arr;
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

template <class F>
void parse_document(const std::string& body, F&& f) {
  auto& parser = detail::thread_parser();
  auto doc = parser.iterate(detail::padded(body));
  value root;
  if (doc.get_value().get(root)) malformed("not JSON");
  f(root);
}

bool is_aws_endpoint(std::string_view endpoint) {
  auto host = endpoint_host(endpoint);
  if (auto colon = host.find(':'); colon != std::string::npos) host.resize(colon);
  return host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
}

std::string_view strip_zeros(std::string_view s) {
  while (s.size() > 1 && s.front() == '0') s.remove_prefix(1);
  return s;
}

}  // namespace

std::string_view to_string(IteratorType t) {
  switch (t) {
    case IteratorType::TrimHorizon: return "TRIM_HORIZON";
    case IteratorType::Latest: return "LATEST";
    case IteratorType::AtSequence: return "AT_SEQUENCE_NUMBER";
    case IteratorType::AfterSequence: return "AFTER_SEQUENCE_NUMBER";
  }
  return "?";
}

std::string resolve_streams_endpoint(std::string_view dynamodb_endpoint, std::string_view region,
                                     const GetEnv& getenv) {
  if (auto v = getenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")) {
    // Checked like every endpoint: resolve_endpoint's rules, given as a flag.
    return resolve_endpoint(*v, region, getenv);
  }
  if (!is_aws_endpoint(dynamodb_endpoint)) return std::string(dynamodb_endpoint);
  const std::string_view suffix =
      region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  return fmt::format("https://streams.dynamodb.{}{}", region, suffix);
}

ClientOptions streams_client_options(const ClientOptions& dynamodb, const GetEnv& getenv) {
  ClientOptions o = dynamodb;
  o.endpoint = resolve_streams_endpoint(dynamodb.endpoint, dynamodb.region, getenv);
  o.target_prefix = "DynamoDBStreams_20120810";
  check_plain_http(o.endpoint, "the DynamoDB Streams endpoint", o.transport.allow_insecure_http);
  return o;
}

void write_describe_stream(std::string& out, std::string_view arn,
                           std::string_view exclusive_start_shard) {
  out += "{\"StreamArn\":";
  write_json_string(out, arn);
  if (!exclusive_start_shard.empty()) {
    out += ",\"ExclusiveStartShardId\":";
    write_json_string(out, exclusive_start_shard);
  }
  out += '}';
}

void write_get_shard_iterator(std::string& out, std::string_view arn, std::string_view shard,
                              IteratorType type, std::string_view sequence) {
  out += "{\"StreamArn\":";
  write_json_string(out, arn);
  out += ",\"ShardId\":";
  write_json_string(out, shard);
  out += ",\"ShardIteratorType\":";
  write_json_string(out, to_string(type));
  if (type == IteratorType::AtSequence || type == IteratorType::AfterSequence) {
    out += ",\"SequenceNumber\":";
    write_json_string(out, sequence);
  }
  out += '}';
}

void write_get_records(std::string& out, std::string_view iterator, int limit) {
  out += "{\"ShardIterator\":";
  write_json_string(out, iterator);
  if (limit > 0) fmt::format_to(std::back_inserter(out), ",\"Limit\":{}", limit);
  out += '}';
}

std::pair<StreamDescription, std::string> parse_describe_stream(const std::string& body) {
  std::pair<StreamDescription, std::string> r;
  auto& d = r.first;
  bool found = false;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k != "StreamDescription") return;
      found = true;
      for_each_field(x, [&](std::string_view f, value v) {
        if (f == "StreamArn")
          d.arn = str(v);
        else if (f == "StreamStatus")
          d.status = str(v);
        else if (f == "StreamViewType")
          d.view_type = str(v);
        else if (f == "TableName")
          d.table = str(v);
        else if (f == "LastEvaluatedShardId")
          r.second = str(v);
        else if (f == "Shards") {
          for_each_element(v, [&](value e) {
            StreamShard s;
            for_each_field(e, [&](std::string_view a, value y) {
              if (a == "ShardId")
                s.id = str(y);
              else if (a == "ParentShardId")
                s.parent = str(y);
              else if (a == "SequenceNumberRange") {
                for_each_field(y, [&](std::string_view b, value z) {
                  if (b == "StartingSequenceNumber") s.starting_sequence = str(z);
                  if (b == "EndingSequenceNumber") s.ending_sequence = str(z);
                });
              }
            });
            d.shards.push_back(std::move(s));
          });
        }
      });
    });
  });
  if (!found) malformed("no StreamDescription");
  return r;
}

std::string parse_shard_iterator(const std::string& body) {
  std::string it;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "ShardIterator") it = str(x);
    });
  });
  if (it.empty()) malformed("no ShardIterator");
  return it;
}

RecordsPage parse_get_records(const std::string& body) {
  RecordsPage page;
  parse_document(body, [&](value root) {
    for_each_field(root, [&](std::string_view k, value x) {
      if (k == "NextShardIterator") {
        // Checked, not converted: is_null() on a malformed value is an error result, whose
        // conversion to bool throws simdjson_error (found by fuzz/streams_fuzz).
        bool null = false;
        if (x.is_null().get(null)) malformed("NextShardIterator");
        if (null) return;
        page.next_iterator = str(x);
      } else if (k == "Records") {
        for_each_element(x, [&](value e) {
          StreamRecord r;
          std::string name;
          for_each_field(e, [&](std::string_view a, value y) {
            if (a == "eventName") {
              name = str(y);
            } else if (a == "dynamodb") {
              for_each_field(y, [&](std::string_view b, value z) {
                if (b == "Keys")
                  r.keys = detail::read_item(z);
                else if (b == "NewImage")
                  r.new_image = detail::read_item(z);
                else if (b == "OldImage")
                  r.old_image = detail::read_item(z);
                else if (b == "SequenceNumber")
                  r.sequence = str(z);
                else if (b == "ApproximateCreationDateTime") {
                  double secs = 0;
                  if (z.get_double().get(secs)) malformed("ApproximateCreationDateTime");
                  // Out of int64 range the cast is undefined (found by fuzz/streams_fuzz).
                  if (!(secs >= -9.2e15 && secs <= 9.2e15))
                    malformed("ApproximateCreationDateTime out of range");
                  r.created_ms = static_cast<std::int64_t>(secs * 1000.0);
                }
              });
            }
          });
          if (name == "INSERT")
            r.event = StreamRecord::Event::Insert;
          else if (name == "MODIFY")
            r.event = StreamRecord::Event::Modify;
          else if (name == "REMOVE")
            r.event = StreamRecord::Event::Remove;
          else
            malformed(fmt::format("eventName '{}'", name));
          if (r.sequence.empty()) malformed("a record without SequenceNumber");
          page.records.push_back(std::move(r));
        });
      }
    });
  });
  return page;
}

int compare_sequence(std::string_view a, std::string_view b) {
  a = strip_zeros(a);
  b = strip_zeros(b);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  int c = a.compare(b);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

Outcome<StreamDescription> StreamsClient::describe(std::string_view arn) {
  StreamDescription all;
  std::string start;
  while (true) {
    std::string body;
    write_describe_stream(body, arn, start);
    auto r = client_.call("DescribeStream", std::move(body));
    if (!r) return std::move(r.error());
    auto [page, last] = parse_describe_stream(r.value().body);
    if (all.arn.empty()) {
      auto shards = std::move(all.shards);
      all = std::move(page);
      for (auto& s : shards) all.shards.push_back(std::move(s));
    } else {
      for (auto& s : page.shards) all.shards.push_back(std::move(s));
    }
    if (last.empty() || last == start) return all;
    start = std::move(last);
  }
}

Outcome<std::string> StreamsClient::iterator(std::string_view arn, std::string_view shard,
                                             IteratorType type, std::string_view sequence) {
  std::string body;
  write_get_shard_iterator(body, arn, shard, type, sequence);
  auto r = client_.call("GetShardIterator", std::move(body));
  if (!r) return std::move(r.error());
  return parse_shard_iterator(r.value().body);
}

Outcome<RawResponse> StreamsClient::get_records_raw(std::string_view iterator, int limit) {
  std::string body;
  write_get_records(body, iterator, limit);
  return client_.call("GetRecords", std::move(body));
}

}  // namespace dynamorph::dynamo
