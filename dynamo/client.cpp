#include "dynamo/client.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <ctime>
#include <future>
#include <random>
#include <thread>

#include "dynamo/clock.h"
#include "dynamo/credentials.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"
#include "dynamo/json_read.h"

namespace dynamorph::dynamo {
namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return gen;
}

// A ClientRequestToken: 128 random bits as 32 hex digits (DynamoDB takes 1-36 characters).
std::string make_token() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::uniform_int_distribution<unsigned> d(0, 255);
    for (auto& b : bytes) b = static_cast<unsigned char>(d(rng()));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(32, '0');
  for (std::size_t i = 0; i < sizeof bytes; ++i) {
    text[2 * i] = kHex[bytes[i] >> 4];
    text[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return text;
}

template <class T, class F>
Outcome<T> typed(Outcome<RawResponse> raw, F&& parse) {
  if (!raw) return std::move(raw.error());
  return parse(raw.value().body);
}

// An error found on this side of the wire (a response that does not add up, a wait that timed
// out): typed like the server's, so callers handle one kind of error.
ServiceError local_error(std::string_view operation, std::string type, std::string message,
                         int attempts = 1) {
  ServiceError e;
  e.operation = std::string(operation);
  e.type = std::move(type);
  e.message = std::move(message);
  e.http_status = 200;
  e.attempts = attempts;
  return e;
}

// A write the fence stopped: never signed, never sent, never retried.
ServiceError lock_lost(std::string_view operation, std::int64_t deadline_ms, int attempts) {
  ServiceError e;
  e.operation = std::string(operation);
  e.type = "LockLost";
  e.message = fmt::format(
      "not sent: the lock's lease was not renewed in time and nothing is written after its "
      "safety margin ({})",
      iso_utc(deadline_ms));
  e.http_status = -1;
  e.attempts = attempts;
  return e;
}

// A 200 answer must be one whole JSON document; a cut or garbled one (a proxy, a connection
// cut mid-body that still looked complete) is retried, never parsed into wrong items.
bool is_json_document(const std::string& body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  return !parser.parse(body.data(), body.size(), body.capacity() - body.size() <
                                                     simdjson::SIMDJSON_PADDING)
              .get(doc);
}

// Serialize, call, parse: the shape of every typed synchronous operation.
template <class T, class Request, class Write, class Parse>
Outcome<T> request_of(Client& client, std::string_view operation, const Request& request,
                      Write write, Parse parse) {
  std::string body;
  write(body, request);
  return typed<T>(client.call(operation, std::move(body)), parse);
}

}  // namespace

std::chrono::milliseconds full_jitter_backoff(const RetryPolicy& policy, int attempt,
                                              bool throttled) {
  auto base = throttled ? policy.throttle_base : policy.base;
  double ceiling =
      static_cast<double>(base.count()) * static_cast<double>(1LL << std::min(attempt, 20));
  ceiling = std::min(ceiling, static_cast<double>(policy.cap.count()));
  std::uniform_real_distribution<double> dist(0, ceiling);
  return std::chrono::milliseconds(static_cast<long long>(dist(rng())));
}

std::optional<std::int64_t> clock_skew_ms(const std::string& http_date) {
  std::tm tm{};
  if (!strptime(http_date.c_str(), "%a, %d %b %Y %H:%M:%S", &tm)) return std::nullopt;
  const std::int64_t server_ms = static_cast<std::int64_t>(timegm(&tm)) * 1000;
  const auto local_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  return server_ms - local_ms;
}

std::string endpoint_host(std::string_view endpoint) {
  std::string_view rest = endpoint;
  bool https = false;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
    https = true;
  }
  rest = rest.substr(0, rest.find('/'));
  // Default ports are left out of the Host header, as curl sends it.
  if (!https && rest.size() > 3 && rest.substr(rest.size() - 3) == ":80") rest.remove_suffix(3);
  if (https && rest.size() > 4 && rest.substr(rest.size() - 4) == ":443") rest.remove_suffix(4);
  return std::string(rest);
}

ServiceError parse_service_error(std::string_view operation, const HttpResponse& response) {
  ServiceError e;
  e.operation = std::string(operation);
  e.http_status = response.status;
  e.request_id = response.request_id;
  if (response.status == 0) {
    // Name the transport failure so the retry table can tell a typo from a hiccup.
    switch (response.curl_code) {
      case 6: e.type = "UnknownHost"; break;        // CURLE_COULDNT_RESOLVE_HOST
      case 7: e.type = "ConnectionRefused"; break;  // CURLE_COULDNT_CONNECT
      case 28: e.type = "Timeout"; break;           // CURLE_OPERATION_TIMEDOUT
      case 60:                                      // CURLE_PEER_FAILED_VERIFICATION
      case 77: e.type = "TlsVerificationFailed"; break;  // CURLE_SSL_CACERT_BADFILE
      case 52:
      case 55:
      case 56: e.type = "ConnectionReset"; break;  // nothing / send / recv
      default: e.type = "TransportError";
    }
    e.message = response.curl_error;
    if (e.type == "TlsVerificationFailed")
      e.message = fmt::format(
          "TLS verification of the server's certificate failed ({}); trust its CA with "
          "AWS_CA_BUNDLE or ca_bundle in the AWS profile",
          response.curl_error);
    return e;
  }
  try {
    auto& parser = detail::thread_parser();
    auto doc = parser.iterate(detail::padded(response.body));
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj)) throw Error("not an object");
    for (auto field : obj) {
      std::string_view key;
      if (field.unescaped_key().get(key)) break;
      if (key == "__type") {
        std::string_view t;
        if (!field.value().get_string().get(t)) {
          auto hash = t.rfind('#');
          e.type = std::string(hash == std::string_view::npos ? t : t.substr(hash + 1));
        }
      } else if (key == "message" || key == "Message") {
        std::string_view m;
        if (!field.value().get_string().get(m)) e.message = std::string(m);
      } else if (key == "CancellationReasons") {
        simdjson::ondemand::array arr;
        if (field.value().get_array().get(arr)) continue;
        for (auto r : arr) {
          simdjson::ondemand::object ro;
          if (r.get_object().get(ro)) continue;
          std::string code = "None";
          for (auto f : ro) {
            std::string_view k;
            if (f.unescaped_key().get(k)) break;
            std::string_view c;
            if (k == "Code" && !f.value().get_string().get(c)) code = std::string(c);
          }
          e.cancellation_reasons.push_back(code);
        }
      }
    }
  } catch (const std::exception&) {
    // Not DynamoDB JSON (a proxy's HTML page, say): keep a short excerpt.
    e.message = response.body.substr(0, 200);
  }
  if (e.type == "TransactionCanceledException" && e.cancellation_reasons.empty()) {
    // DynamoDB Local lists the reasons only in the message: "… reasons [ConditionalCheckFailed,
    // None]".
    auto open = e.message.rfind('['), close = e.message.rfind(']');
    if (open != std::string::npos && close != std::string::npos && close > open) {
      std::string_view list(e.message.data() + open + 1, close - open - 1);
      while (!list.empty()) {
        auto comma = list.find(',');
        std::string_view item = list.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        e.cancellation_reasons.emplace_back(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  if (e.message.empty()) e.message = fmt::format("HTTP {}", response.status);
  return e;
}

struct Client::Call {
  std::string operation;
  std::shared_ptr<const std::string> body;
  RawDone done;
  int attempt = 0;
  int throttled = 0;
  std::chrono::steady_clock::time_point sent;  // this attempt's (timed calls only)
  bool fenced = false;  // a write outside a RequestScope that exempts it
  std::optional<std::chrono::steady_clock::time_point> deadline;  // from the RequestScope
  std::optional<std::chrono::steady_clock::time_point> reconnecting_since;
  int reconnect_round = 0;
};

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      url_(options_.endpoint),
      host_(endpoint_host(options_.endpoint)),
      signer_(options_.region),
      transport_(std::make_unique<HttpTransport>(options_.transport)) {
  if (!url_.empty() && url_.back() != '/') url_ += '/';
}

Client::~Client() = default;

HttpRequest Client::build_request(const Call& call) {
  Credentials creds = options_.credentials->get();
  std::string target = options_.target_prefix + "." + call.operation;
  SignRequest sr;
  sr.method = "POST";
  sr.host = host_;
  sr.path = "/";
  sr.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", target}};
  sr.body = *call.body;
  auto now = std::chrono::system_clock::now() + std::chrono::milliseconds(skew_ms_.load());
  HttpRequest req;
  req.url = url_;
  req.body = call.body;
  req.headers.reserve(6);
  req.headers.push_back("Content-Type: application/x-amz-json-1.0");
  req.headers.push_back("X-Amz-Target: " + target);
  req.headers.push_back("User-Agent: dynamorph/0.1");
  for (auto& [k, v] : signer_.sign(sr, creds, now)) req.headers.push_back(k + ": " + v);
  return req;
}

void Client::call_async(std::string_view operation, std::string body, RawDone done) {
  auto call = std::make_shared<Call>();
  call->operation = std::string(operation);
  call->body = std::make_shared<const std::string>(std::move(body));
  call->done = std::move(done);
  const RequestScope* scope = RequestScope::current();
  call->fenced = is_write_operation(call->operation) && !(scope && scope->exempt());
  if (scope) call->deadline = scope->deadline();
  send(std::move(call));
}

void Client::send(std::shared_ptr<Call> call) {
  ++call->attempt;
  // Checked right before each attempt, retries included: the fence may have closed while this
  // one waited for capacity or back-off.
  if (call->fenced && !fence_.admit(now_epoch_ms())) {
    call->done(lock_lost(call->operation, fence_.deadline_ms(), call->attempt));
    return;
  }
  std::chrono::milliseconds timeout{0};
  if (call->deadline) {
    timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        *call->deadline - std::chrono::steady_clock::now());
    if (timeout.count() <= 0) {
      call->done(local_error(call->operation, "DeadlineExceeded",
                             "not sent: past the caller's deadline", call->attempt));
      return;
    }
  }
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  HttpRequest req;
  try {
    req = build_request(*call);
  } catch (const std::exception& ex) {
    // Credentials could not be had: not retryable, reported like a service error.
    call->done(missing_credentials("DynamoDB", call->operation, ex.what(), call->attempt));
    return;
  }
  req.timeout = timeout;
  if (options_.on_attempt) call->sent = std::chrono::steady_clock::now();
  transport_->submit(std::move(req),
                     [this, call](HttpResponse&& r) { on_response(call, std::move(r)); });
}

std::chrono::milliseconds Client::backoff(int attempt, bool throttled) const {
  return full_jitter_backoff(options_.retry, attempt, throttled);
}

void Client::on_success(const std::shared_ptr<Call>& call, HttpResponse&& response) {
  RawResponse raw;
  raw.body = std::move(response.body);
  raw.request_id = std::move(response.request_id);
  raw.attempts = call->attempt;
  raw.throttled = call->throttled;
  call->done(std::move(raw));
}

std::optional<std::chrono::milliseconds> Client::retry_delay(Call& call, const ServiceError& e,
                                                             bool throttled, bool skew) {
  if (!e.retryable()) return std::nullopt;
  const RetryPolicy& policy = options_.retry;
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::milliseconds> delay;
  // A refused connection to an endpoint that answered before is a server restarting: keep
  // trying for reconnect_for (later failures of the same request count as the same outage).
  // Never answered: most often a wrong endpoint, so give up after a short while.
  const bool reconnect = policy.reconnect_for.count() > 0 && e.transport() && answered_.load() &&
                         (e.type == "ConnectionRefused" || call.reconnecting_since);
  if (reconnect) {
    if (!call.reconnecting_since) call.reconnecting_since = now;
    if (now - *call.reconnecting_since >= policy.reconnect_for) return std::nullopt;
    delay = std::min(std::chrono::milliseconds(2000),
                     std::chrono::milliseconds(100) * (1 << std::min(call.reconnect_round++, 5)));
    stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
  } else {
    int max_attempts = e.type == "ConnectionRefused" ? std::min(3, policy.max_attempts)
                                                     : policy.max_attempts;
    if (call.attempt >= max_attempts) return std::nullopt;
    delay = skew ? std::chrono::milliseconds(0) : backoff(call.attempt, throttled);
  }
  if (call.deadline && now + *delay >= *call.deadline) return std::nullopt;
  return delay;
}

void Client::on_response(std::shared_ptr<Call> call, HttpResponse&& response) {
  if (response.status != 0) answered_.store(true, std::memory_order_relaxed);
  if (options_.on_attempt && response.status == 200) {
    options_.on_attempt(
        {call->operation, std::chrono::steady_clock::now() - call->sent, 200, false});
  }
  ServiceError e;
  if (response.status == 200) {
    if (is_json_document(response.body)) return on_success(call, std::move(response));
    stats_.malformed.fetch_add(1, std::memory_order_relaxed);
    e = local_error(call->operation, "MalformedResponse",
                    fmt::format("the answer's body ({} bytes) is not a JSON document",
                                response.body.size()),
                    call->attempt);
    e.request_id = response.request_id;
  } else {
    e = parse_service_error(call->operation, response);
    e.attempts = call->attempt;
  }
  bool skew = e.clock_skew();
  if (skew) {
    if (auto skew_ms = clock_skew_ms(response.date)) skew_ms_.store(*skew_ms);
  }
  bool throttled = e.throttling();
  if (options_.on_attempt && response.status != 200) {
    options_.on_attempt({call->operation, std::chrono::steady_clock::now() - call->sent,
                         response.status, throttled});
  }
  if (throttled) {
    ++call->throttled;
    stats_.throttles.fetch_add(1, std::memory_order_relaxed);
  }
  auto delay = retry_delay(*call, e, throttled, skew);
  if (!delay) {
    if (call->reconnecting_since) {
      e.message += fmt::format(
          " (no connection for {:.1f} s: reconnect_for spent)",
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        *call->reconnecting_since)
              .count());
    }
    call->done(std::move(e));
    return;
  }
  stats_.retries.fetch_add(1, std::memory_order_relaxed);
  transport_->schedule(std::chrono::steady_clock::now() + *delay, [this, call] { send(call); });
}

Outcome<RawResponse> Client::call(std::string_view operation, std::string body) {
  if (transport_->on_io_thread())
    throw Error("internal: synchronous DynamoDB call on the I/O thread");
  std::promise<Outcome<RawResponse>> promise;
  auto future = promise.get_future();
  call_async(operation, std::move(body),
             [&promise](Outcome<RawResponse> r) { promise.set_value(std::move(r)); });
  return future.get();
}

// ---- batch write with UnprocessedItems -------------------------------------------------------

namespace {
struct BatchState {
  std::string body;  // the next round's request, without ReturnConsumedCapacity
  std::function<void(Outcome<BatchWriteSummary>)> done;
  BatchWriteSummary summary;
  int rounds = 0;
  bool meter = true;
};
}  // namespace

void Client::batch_write_async(std::vector<BatchWriteEntry> entries,
                               std::function<void(Outcome<BatchWriteSummary>)> done, bool meter) {
  std::string body;
  body.reserve(entries.size() * 400 + 64);
  write_batch_write(body, entries, false);
  batch_write_body_async(std::move(body), std::move(done), meter);
}

void Client::batch_write_body_async(std::string body,
                                    std::function<void(Outcome<BatchWriteSummary>)> done,
                                    bool meter) {
  auto state = std::make_shared<BatchState>();
  state->meter = meter;
  state->body = std::move(body);
  state->done = std::move(done);
  state->summary.requests = 0;
  auto round = std::make_shared<std::function<void()>>();
  // The round function holds itself only through the callbacks it schedules; the cycle ends
  // when a round does not schedule another.
  *round = [this, state, weak = std::weak_ptr<std::function<void()>>(round)]() {
    std::string body = std::move(state->body);
    if (state->meter) add_return_consumed_capacity(body);
    ++state->summary.requests;
    auto self = weak.lock();
    call_async("BatchWriteItem", std::move(body), [this, state, self](Outcome<RawResponse> r) {
      if (!r) {
        state->done(std::move(r.error()));
        return;
      }
      state->summary.throttled += r.value().throttled;
      BatchWriteResult parsed;
      try {
        parsed = parse_batch_write(r.value().body);
      } catch (const std::exception& ex) {
        state->done(local_error("BatchWriteItem", "MalformedResponse", ex.what()));
        return;
      }
      state->summary.consumed_capacity += parsed.consumed_capacity;
      if (parsed.unprocessed.empty()) {
        state->done(state->summary);
        return;
      }
      ++state->rounds;
      ++state->summary.throttled;
      if (state->rounds > options_.retry.max_unprocessed_rounds) {
        state->done(local_error("BatchWriteItem", "UnprocessedItems",
                                fmt::format("{} items still unprocessed after {} re-sends",
                                            parsed.unprocessed.size(), state->rounds - 1),
                                state->summary.requests));
        return;
      }
      stats_.unprocessed_resent.fetch_add(parsed.unprocessed.size(), std::memory_order_relaxed);
      state->body.clear();
      write_batch_write(state->body, parsed.unprocessed, false);
      auto delay = backoff(state->rounds, true);
      transport_->schedule(std::chrono::steady_clock::now() + delay, [self] { (*self)(); });
    });
  };
  (*round)();
}

Outcome<BatchWriteSummary> Client::batch_write(std::vector<BatchWriteEntry> entries) {
  std::promise<Outcome<BatchWriteSummary>> promise;
  auto future = promise.get_future();
  batch_write_async(std::move(entries),
                    [&promise](Outcome<BatchWriteSummary> r) { promise.set_value(std::move(r)); });
  return future.get();
}

void Client::transact_write_async(std::vector<TransactAction> actions, std::string token,
                                  std::function<void(Outcome<double>)> done) {
  if (token.empty()) token = make_token();
  std::string body;
  write_transact_write(body, actions, token);
  call_async("TransactWriteItems", std::move(body),
             [done = std::move(done)](Outcome<RawResponse> r) {
               if (!r) return done(std::move(r.error()));
               done(parse_consumed_total(r.value().body));
             });
}

Outcome<double> Client::transact_write(std::vector<TransactAction> actions, std::string token) {
  std::promise<Outcome<double>> promise;
  auto future = promise.get_future();
  transact_write_async(std::move(actions), std::move(token),
                       [&promise](Outcome<double> r) { promise.set_value(std::move(r)); });
  return future.get();
}

// ---- typed synchronous operations ------------------------------------------------------------

Outcome<TableDescription> Client::create_table(const CreateTableRequest& request) {
  return request_of<TableDescription>(*this, "CreateTable", request, write_create_table,
                                      parse_table_description);
}

Outcome<TableDescription> Client::describe_table(std::string_view table) {
  std::string body;
  write_table_name(body, table);
  return typed<TableDescription>(call("DescribeTable", std::move(body)), parse_table_description);
}

Outcome<TableDescription> Client::update_table(std::string_view table,
                                               const std::vector<GlobalIndexUpdate>& updates,
                                               const std::optional<Throughput>& throughput) {
  std::string body;
  write_update_table(body, table, updates, throughput);
  return typed<TableDescription>(call("UpdateTable", std::move(body)), parse_table_description);
}

Outcome<TableDescription> Client::update_stream(std::string_view table, bool enabled,
                                                std::string_view view) {
  std::string body;
  write_update_stream(body, table, enabled, view);
  return typed<TableDescription>(call("UpdateTable", std::move(body)), parse_table_description);
}

Outcome<TableDescription> Client::delete_table(std::string_view table) {
  std::string body;
  write_table_name(body, table);
  return typed<TableDescription>(call("DeleteTable", std::move(body)), parse_table_description);
}

Outcome<std::vector<std::string>> Client::list_tables() {
  std::vector<std::string> all;
  std::string start;
  do {
    std::string body;
    write_list_tables(body, start);
    auto r = call("ListTables", std::move(body));
    if (!r) return std::move(r.error());
    auto [names, next] = parse_list_tables(r.value().body);
    all.insert(all.end(), names.begin(), names.end());
    start = std::move(next);
  } while (!start.empty());
  return all;
}

Outcome<TimeToLive> Client::update_ttl(std::string_view table, std::string_view attribute,
                                       bool enabled) {
  std::string body;
  write_update_ttl(body, table, attribute, enabled);
  return typed<TimeToLive>(call("UpdateTimeToLive", std::move(body)), [&](const std::string&) {
    return TimeToLive{enabled ? "ENABLED" : "DISABLED", std::string(attribute)};
  });
}

Outcome<TimeToLive> Client::describe_ttl(std::string_view table) {
  std::string body;
  write_table_name(body, table);
  return typed<TimeToLive>(call("DescribeTimeToLive", std::move(body)), parse_describe_ttl);
}

Outcome<Page> Client::scan(const ScanRequest& request) {
  return request_of<Page>(*this, "Scan", request, write_scan, parse_page);
}

Outcome<Page> Client::query(const QueryRequest& request) {
  return request_of<Page>(*this, "Query", request, write_query, parse_page);
}

Outcome<std::optional<Item>> Client::get_item(const GetItemRequest& request) {
  std::string body;
  write_get_item(body, request);
  return typed<std::optional<Item>>(call("GetItem", std::move(body)),
                                    [](const std::string& b) { return parse_get_item(b); });
}

Outcome<WriteResult> Client::put_item(const PutItemRequest& request) {
  return request_of<WriteResult>(*this, "PutItem", request, write_put_item, parse_write_result);
}

Outcome<WriteResult> Client::update_item(const UpdateItemRequest& request) {
  return request_of<WriteResult>(*this, "UpdateItem", request, write_update_item,
                                 parse_write_result);
}

Outcome<WriteResult> Client::delete_item(const DeleteItemRequest& request) {
  return request_of<WriteResult>(*this, "DeleteItem", request, write_delete_item,
                                 parse_write_result);
}

Outcome<std::vector<Item>> Client::batch_get(const BatchGetRequest& request) {
  std::vector<Item> found;
  std::vector<Item> pending = request.keys;
  int rounds = 0;
  while (!pending.empty()) {
    BatchGetRequest chunk{request.table, {}, request.consistent_read};
    std::size_t n = std::min<std::size_t>(pending.size(), 100);
    chunk.keys.assign(std::make_move_iterator(pending.end() - static_cast<long>(n)),
                      std::make_move_iterator(pending.end()));
    pending.resize(pending.size() - n);
    std::string body;
    write_batch_get(body, chunk);
    auto r = call("BatchGetItem", std::move(body));
    if (!r) return std::move(r.error());
    auto parsed = parse_batch_get(r.value().body, request.table);
    found.insert(found.end(), std::make_move_iterator(parsed.items.begin()),
                 std::make_move_iterator(parsed.items.end()));
    if (!parsed.unprocessed_keys.empty()) {
      if (++rounds > options_.retry.max_unprocessed_rounds) {
        return local_error("BatchGetItem", "UnprocessedKeys",
                           fmt::format("{} keys still unprocessed after {} re-sends",
                                       parsed.unprocessed_keys.size(), rounds - 1));
      }
      stats_.unprocessed_resent.fetch_add(parsed.unprocessed_keys.size(),
                                          std::memory_order_relaxed);
      std::this_thread::sleep_for(backoff(rounds, true));  // sync path: the caller's own thread
      for (auto& k : parsed.unprocessed_keys) pending.push_back(std::move(k));
    }
  }
  return found;
}

Outcome<TableDescription> Client::wait_until_active(
    std::string_view table, std::chrono::seconds timeout,
    const std::function<void(const TableDescription&)>& tick) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(50);
  while (true) {
    auto d = describe_table(table);
    if (!d) return d;
    if (tick) tick(d.value());
    bool active = d.value().status == "ACTIVE";
    for (const auto& ix : d.value().global_indexes)
      active = active && ix.status == "ACTIVE" && !ix.backfilling;
    if (active) return d;
    if (std::chrono::steady_clock::now() > deadline) {
      return local_error("DescribeTable", "Timeout",
                         fmt::format("table '{}' not ACTIVE after {} s (status {})", table,
                                     timeout.count(), d.value().status));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

Outcome<bool> Client::wait_until_deleted(std::string_view table, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(50);
  while (true) {
    auto d = describe_table(table);
    if (!d) {
      if (d.error().type == "ResourceNotFoundException") return true;
      return std::move(d.error());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return local_error("DescribeTable", "Timeout",
                         fmt::format("table '{}' still exists after {} s", table, timeout.count()));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace dynamorph::dynamo
