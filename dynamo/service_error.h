// The typed error every DynamoDB call can end with, the Outcome that carries it as a value, and
// the one table that decides what is retryable. Plain values; thread-safe.
#pragma once

#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dynamorph::dynamo {

struct ServiceError {
  std::string operation;  // "BatchWriteItem"
  // DynamoDB's __type without its namespace; for transport failures one of UnknownHost,
  // ConnectionRefused, Timeout, ConnectionReset, TransportError.
  std::string type;
  std::string message;
  long http_status = 0;  // 0: no HTTP response; -1: not sent (no credentials)
  std::string request_id;
  int attempts = 1;
  // TransactionCanceledException: one code per action ("None", "ConditionalCheckFailed", …).
  std::vector<std::string> cancellation_reasons;
  std::string service = "DynamoDB";  // who answered, or did not: "DynamoDB", "S3"

  bool transport() const { return http_status == 0; }

  bool throttling() const;
  bool retryable() const;
  bool conditional_check_failed() const;  // ConditionalCheckFailed or a cancel for that reason
  // A TransactionCanceledException only for a concurrent transaction or throttling (no failed
  // condition): nothing was applied, and sending the same actions again is right.
  bool transient_cancellation() const;
  bool clock_skew() const;
  // The server refused the request for what is in its items, not for the request's sake: a
  // ValidationException (an item over 400 KB, a wrong type for an index key, an empty key
  // value), an item collection over its size limit, or a transaction cancelled for a
  // ValidationError or ItemCollectionSizeLimitExceeded. Nothing of the request was applied.
  bool item_rejected() const;
  // One line: "Scan on 'app': ResourceNotFoundException: Requested resource not found
  // (HTTP 400, request id ABC, 1 attempt)".
  std::string to_string() const;
};

// A request that could not be signed (no credentials): never sent, never retried.
ServiceError missing_credentials(std::string service, std::string operation, std::string why,
                                 int attempts);

// Classification of one error by name and status (the single retryability table).
struct ErrorClass {
  bool retryable;
  bool throttling;
};
ErrorClass classify(std::string_view type, long http_status);

template <class T>
class [[nodiscard]] Outcome {
 public:
  Outcome(T value) : v_(std::move(value)) {}
  Outcome(ServiceError error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  const ServiceError& error() const { return std::get<1>(v_); }
  ServiceError& error() { return std::get<1>(v_); }

 private:
  std::variant<T, ServiceError> v_;
};

}  // namespace dynamorph::dynamo
