#include "dynamo/service_error.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "dynamo/redact.h"

namespace dynamorph::dynamo {

ErrorClass classify(std::string_view type, long http_status) {
  // Throttling: the request was fine, capacity was not.
  static constexpr std::string_view kThrottling[] = {"ProvisionedThroughputExceededException",
                                                     "ThrottlingException",
                                                     "RequestLimitExceeded",
                                                     "Throttling",
                                                     "TooManyRequestsException",
                                                     "SlowDown",
                                                     "TransactionInProgressException"};
  // Transient server-side or signing-time conditions worth another try.
  static constexpr std::string_view kTransient[] = {"InternalServerError",
                                                    "InternalFailure",
                                                    "ServiceUnavailable",
                                                    "ServiceUnavailableException",
                                                    "InternalServerErrorException",
                                                    "TransactionConflictException",
                                                    "LimitExceededException",
                                                    "RequestTimeout",
                                                    "RequestTimeoutException",
                                                    "PriorRequestNotComplete",
                                                    "RequestExpired",
                                                    "RequestTimeTooSkewed",
                                                    // a 200 whose body is not JSON (client.cpp)
                                                    "MalformedResponse"};
  for (auto t : kThrottling) {
    if (type == t) return {true, true};
  }
  for (auto t : kTransient) {
    if (type == t) return {true, false};
  }
  // Reset, refused, timeout; a certificate that fails verification will fail again.
  if (http_status == 0) return {type != "UnknownHost" && type != "TlsVerificationFailed", false};
  if (http_status < 0) return {false, false};  // failed before sending (no credentials)
  if (http_status == 429) return {true, true};
  if (http_status >= 500) return {true, false};
  return {false, false};
}

ServiceError missing_credentials(std::string service, std::string operation, std::string why,
                                 int attempts) {
  ServiceError e;
  e.service = std::move(service);
  e.operation = std::move(operation);
  e.type = "MissingCredentials";
  e.message = std::move(why);
  e.http_status = -1;
  e.attempts = attempts;
  return e;
}

bool ServiceError::throttling() const { return classify(type, http_status).throttling; }

bool ServiceError::retryable() const {
  if (clock_skew()) return true;
  return classify(type, http_status).retryable;
}

bool ServiceError::conditional_check_failed() const {
  if (type == "ConditionalCheckFailedException") return true;
  if (type == "TransactionCanceledException") {
    for (const auto& r : cancellation_reasons) {
      if (r == "ConditionalCheckFailed") return true;
    }
  }
  return false;
}

bool ServiceError::transient_cancellation() const {
  // Cancellation reasons that say "nothing was wrong with this action": another transaction
  // held the item, or capacity ran short. Any other reason (a failed condition, a validation
  // error) makes sending the same actions again pointless.
  static constexpr std::string_view kTransientReasons[] = {
      "None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"};
  if (type != "TransactionCanceledException" || cancellation_reasons.empty()) return false;
  for (const auto& r : cancellation_reasons) {
    if (std::find(std::begin(kTransientReasons), std::end(kTransientReasons), r) ==
        std::end(kTransientReasons))
      return false;
  }
  return true;
}

bool ServiceError::item_rejected() const {
  if (type == "ValidationException" || type == "ItemCollectionSizeLimitExceededException")
    return true;
  if (type != "TransactionCanceledException") return false;
  return std::any_of(cancellation_reasons.begin(), cancellation_reasons.end(), [](const auto& r) {
    return r == "ValidationError" || r == "ItemCollectionSizeLimitExceeded";
  });
}

bool ServiceError::clock_skew() const {
  if (type == "RequestTimeTooSkewed" || type == "RequestExpired") return true;
  return type == "InvalidSignatureException" &&
         (message.find("Signature expired") != std::string::npos ||
          message.find("Signature not yet current") != std::string::npos);
}

std::string ServiceError::to_string() const {
  std::string out = fmt::format("{}: ", operation);
  if (http_status == 0) {
    out += fmt::format("no response from {} ({}): {}", service, type, message);
  } else if (http_status < 0) {
    out += message;  // never sent, e.g. no credentials
  } else {
    out += fmt::format("{}: {} (HTTP {}", type.empty() ? "error" : type, message, http_status);
    if (!request_id.empty()) out += fmt::format(", request id {}", request_id);
    out += ")";
  }
  if (attempts > 1) out += fmt::format(" after {} attempts", attempts);
  return redact(out);  // a server may echo the request (canonical request, headers) back
}

}  // namespace dynamorph::dynamo
