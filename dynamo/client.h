// The DynamoDB client: signs, sends through the HTTP transport's I/O thread, retries with
// full-jitter back-off, corrects clock skew, and returns typed outcomes. Thread-safe: one
// Client serves every thread. Async calls complete on the I/O thread (keep callbacks short);
// sync calls block the caller and must never be made from the I/O thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/http_transport.h"
#include "dynamo/requests.h"
#include "dynamo/service_error.h"
#include "dynamo/sigv4.h"
#include "dynamo/write_fence.h"

namespace dynamorph::dynamo {

class CredentialsProvider;

struct RetryPolicy {
  int max_attempts = 10;                         // per request, first try included
  std::chrono::milliseconds base{25};            // back-off base for 5xx and transport errors
  std::chrono::milliseconds throttle_base{100};  // back-off base for throttling
  std::chrono::milliseconds cap{20000};
  int max_unprocessed_rounds = 12;  // BatchWriteItem / BatchGetItem re-sends of leftovers
  // Once the endpoint has answered at least once, a request that meets a connection failure
  // (refused, reset, timed out: the server restarting) is sent again, beyond max_attempts, for
  // up to this long after its first such failure, 100 ms -> 2 s apart. 0: off. An endpoint
  // never reached still fails after a few tries (most often a wrong address).
  std::chrono::milliseconds reconnect_for{30000};
};

// The back-off before attempt `attempt` + 1 (full jitter: uniform in [0, min(cap, base·2^attempt)],
// with the throttling base for throttled attempts). Shared by the DynamoDB and S3 clients.
std::chrono::milliseconds full_jitter_backoff(const RetryPolicy& policy, int attempt,
                                              bool throttled);
// Server clock minus ours in milliseconds, from an HTTP Date header; nullopt when unreadable.
std::optional<std::int64_t> clock_skew_ms(const std::string& http_date);

// One finished HTTP attempt, as the client saw it: for latency profiles (dynamorph bench).
struct AttemptRecord {
  std::string_view operation;  // "Scan", "BatchWriteItem", …
  std::chrono::nanoseconds latency;  // request handed to the transport → answer (or error)
  long status = 0;                   // HTTP status; 0: transport error (reset, timeout)
  bool throttled = false;
};

struct ClientOptions {
  std::string endpoint;  // http(s)://host[:port]
  std::string region;
  // The X-Amz-Target prefix: DynamoDB's, or "DynamoDBStreams_20120810" for a Streams client.
  std::string target_prefix = "DynamoDB_20120810";
  std::shared_ptr<CredentialsProvider> credentials;
  RetryPolicy retry;
  TransportOptions transport;
  // Called on the I/O thread after every attempt (first tries and retries alike): keep it to a
  // few increments. Empty: nothing is timed.
  std::function<void(const AttemptRecord&)> on_attempt;
};

struct RawResponse {
  std::string body;  // padded for parsing
  std::string request_id;
  int attempts = 1;
  int throttled = 0;  // attempts that ended in throttling
};

// Counters over the client's life; read at any time (relaxed).
struct ClientStats {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> throttles{0};
  std::atomic<std::uint64_t> unprocessed_resent{0};
  std::atomic<std::uint64_t> malformed{0};   // 200 answers whose body was not JSON (retried)
  std::atomic<std::uint64_t> reconnects{0};  // attempts sent again while reconnecting
};

struct BatchWriteSummary {
  double consumed_capacity = 0;
  int requests = 1;
  int throttled = 0;  // throttled attempts plus rounds that left items unprocessed
};

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  using RawDone = std::function<void(Outcome<RawResponse>)>;

  // One operation ("Scan", "BatchWriteItem", …) with a JSON body; retried as the policy says.
  void call_async(std::string_view operation, std::string body, RawDone done);
  Outcome<RawResponse> call(std::string_view operation, std::string body);

  // BatchWriteItem of ≤ 25 entries; UnprocessedItems are re-sent (with back-off) until none
  // remain. Fails only when the retry budget is spent; then nothing is known about which
  // entries were written, so the caller must treat the whole batch as not written. meter false:
  // no ReturnConsumedCapacity (consumed_capacity stays 0).
  void batch_write_async(std::vector<BatchWriteEntry> entries,
                         std::function<void(Outcome<BatchWriteSummary>)> done, bool meter = true);
  // The same with the request already written (write_batch_write with return_consumed_capacity
  // false): a caller that queues batches holds their bytes, not their parsed items.
  void batch_write_body_async(std::string body,
                              std::function<void(Outcome<BatchWriteSummary>)> done,
                              bool meter = true);
  Outcome<BatchWriteSummary> batch_write(std::vector<BatchWriteEntry> entries);

  // TransactWriteItems (≤ 100 actions) with a ClientRequestToken, so that a retry after a lost
  // response is not applied twice. An empty token gets a fresh one.
  void transact_write_async(std::vector<TransactAction> actions, std::string token,
                            std::function<void(Outcome<double>)> done);
  Outcome<double> transact_write(std::vector<TransactAction> actions, std::string token = {});

  // ---- typed synchronous operations (schema steps, tests, state table) ---------------------
  Outcome<TableDescription> create_table(const CreateTableRequest& request);
  Outcome<TableDescription> describe_table(std::string_view table);
  Outcome<TableDescription> update_table(std::string_view table,
                                         const std::vector<GlobalIndexUpdate>& updates,
                                         const std::optional<Throughput>& throughput = {});
  Outcome<TableDescription> delete_table(std::string_view table);
  Outcome<std::vector<std::string>> list_tables();  // every page
  Outcome<TimeToLive> update_ttl(std::string_view table, std::string_view attribute, bool enabled);
  Outcome<TimeToLive> describe_ttl(std::string_view table);
  // UpdateTable's StreamSpecification: on with `view` (NEW_IMAGE …), or off.
  Outcome<TableDescription> update_stream(std::string_view table, bool enabled,
                                          std::string_view view);
  Outcome<Page> scan(const ScanRequest& request);
  Outcome<Page> query(const QueryRequest& request);
  Outcome<std::optional<Item>> get_item(const GetItemRequest& request);
  Outcome<WriteResult> put_item(const PutItemRequest& request);
  Outcome<WriteResult> update_item(const UpdateItemRequest& request);
  Outcome<WriteResult> delete_item(const DeleteItemRequest& request);
  // BatchGetItem in chunks of 100 keys; UnprocessedKeys re-sent.
  Outcome<std::vector<Item>> batch_get(const BatchGetRequest& request);

  // Polls DescribeTable until the table (and every GSI) is ACTIVE or `timeout` passes.
  Outcome<TableDescription> wait_until_active(
      std::string_view table, std::chrono::seconds timeout,
      const std::function<void(const TableDescription&)>& tick = {});
  // Polls until DescribeTable says ResourceNotFound.
  Outcome<bool> wait_until_deleted(std::string_view table, std::chrono::seconds timeout);

  // Runs `fn` on the I/O thread at `when`: how callers wait (back-off, rate limits) without
  // blocking a thread.
  void schedule(std::chrono::steady_clock::time_point when, std::function<void()> fn) {
    transport_->schedule(when, std::move(fn));
  }

  const ClientStats& stats() const { return stats_; }
  // The fence every write attempt passes (open unless a lease closes it; see write_fence.h).
  WriteFence& write_fence() { return fence_; }
  const WriteFence& write_fence() const { return fence_; }
  const std::string& endpoint() const { return options_.endpoint; }
  const std::string& region() const { return options_.region; }
  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<CredentialsProvider>& credentials() const { return options_.credentials; }
  // Server time minus local time, learnt from a clock-skew error's Date header.
  std::chrono::milliseconds clock_skew() const {
    return std::chrono::milliseconds(skew_ms_.load());
  }

 private:
  struct Call;
  void send(std::shared_ptr<Call> call);
  void on_response(std::shared_ptr<Call> call, HttpResponse&& response);
  void on_success(const std::shared_ptr<Call>& call, HttpResponse&& response);
  // When `e` is to be retried, how long to wait first; nullopt: give up with `e`.
  std::optional<std::chrono::milliseconds> retry_delay(Call& call, const ServiceError& e,
                                                       bool throttled, bool skew);
  std::chrono::milliseconds backoff(int attempt, bool throttled) const;
  HttpRequest build_request(const Call& call);

  ClientOptions options_;
  std::string url_;
  std::string host_;  // Host header value
  Signer signer_;
  std::atomic<std::int64_t> skew_ms_{0};
  std::atomic<bool> answered_{false};  // any HTTP answer yet (reconnect_for applies)
  ClientStats stats_;
  WriteFence fence_;
  std::unique_ptr<HttpTransport> transport_;  // last: its thread stops before the rest dies
};

// "https://dynamodb.us-east-1.amazonaws.com" → host part with port when not default.
std::string endpoint_host(std::string_view endpoint);

// Parses an error response into a ServiceError (DynamoDB's __type, message, CancellationReasons).
ServiceError parse_service_error(std::string_view operation, const HttpResponse& response);

}  // namespace dynamorph::dynamo
