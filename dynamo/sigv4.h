// AWS Signature Version 4 for DynamoDB and S3 requests (OpenSSL HMAC/SHA-256), once per request.
// Thread-safe: one Signer serves every thread; its only mutable state is the per-day key cache.
#pragma once

#include <array>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dynamorph::dynamo {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;                                        // empty for long-term keys
  std::optional<std::chrono::system_clock::time_point> expiration;  // none: never expire
};

struct SignRequest {
  std::string_view method;  // "POST"
  std::string_view host;    // host[:port] exactly as sent in the Host header
  // Path as on the request line, i.e. already percent-encoded for the wire ("/" for DynamoDB).
  // The signer removes dot segments and empty segments and percent-encodes it once more, which
  // is AWS's double-encoding rule for every service but S3; "" means "/".
  std::string_view path;
  // Query string without '?', as on the wire. Each name and value is percent-decoded and
  // re-encoded with AWS's unreserved set ('+' stays a literal plus, sent as %2B), so a query
  // already in canonical form passes unchanged.
  std::string_view query;
  // Extra headers to sign, e.g. content-type and x-amz-target, in the order they are sent.
  // Host, X-Amz-Date, X-Amz-Security-Token and Authorization belong to the signer: entries with
  // those names are ignored.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view body;
  // S3's rules: the path is signed exactly as given (already percent-encoded once by the caller,
  // no dot or empty segments removed), and the payload hash is `payload_hash` (the value sent in
  // x-amz-content-sha256, which the caller also passes in `headers`) instead of SHA-256(body).
  bool s3 = false;
  std::string_view payload_hash = {};
};

// Lowercase hex SHA-256 of `data`: the x-amz-content-sha256 value of a signed S3 payload.
std::string sha256_hex(std::string_view data);

class Signer {
 public:
  explicit Signer(std::string region, std::string service = "dynamodb");

  // The headers to add to the request: X-Amz-Date, X-Amz-Security-Token (when the credentials
  // carry a session token) and Authorization, in that order. Only whole seconds of `now` count.
  std::vector<std::pair<std::string, std::string>> sign(
      const SignRequest& request, const Credentials& credentials,
      std::chrono::system_clock::time_point now) const;

  // The intermediate strings of sign(), for tests and for diagnosing a SignatureDoesNotMatch;
  // sign() itself does not keep them.
  std::string canonical_request(const SignRequest& request, const Credentials& credentials,
                                std::chrono::system_clock::time_point now) const;
  std::string string_to_sign(const SignRequest& request, const Credentials& credentials,
                             std::chrono::system_clock::time_point now) const;

  const std::string& region() const { return region_; }
  const std::string& service() const { return service_; }

 private:
  using Key = std::array<unsigned char, 32>;
  struct CachedKey {
    std::array<char, 8> date{};  // yyyymmdd
    std::string secret;
    Key key{};
  };

  // HMAC chain "AWS4"+secret → date → region → service → "aws4_request", cached per day.
  Key signing_key(std::string_view date, std::string_view secret) const;

  std::string region_;
  std::string service_;
  mutable std::mutex key_mutex_;
  mutable std::optional<CachedKey> cached_key_;  // guarded by key_mutex_
};

}  // namespace dynamorph::dynamo
