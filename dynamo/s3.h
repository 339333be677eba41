// The few Amazon S3 calls dynamorph needs — GetObject (whole or a byte range), PutObject,
// ListObjectsV2 — signed with SigV4 for service "s3" and sent through an HttpTransport of their
// own, with the DynamoDB client's retry rules (5xx, throttling, resets; full-jitter back-off;
// clock skew corrected from the Date header). Thread-safe: one S3Client serves every thread.
// Every call is synchronous: it blocks the calling thread (a reader thread) and must never be
// made from the transport's I/O thread, where it throws dynamorph::Error.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/aws_config.h"
#include "dynamo/client.h"
#include "dynamo/http_transport.h"
#include "dynamo/service_error.h"
#include "dynamo/sigv4.h"

namespace dynamorph::dynamo {

class CredentialsProvider;

// s3://bucket/key (key without the leading '/', possibly empty or a prefix).
struct S3Url {
  std::string bucket;
  std::string key;

  std::string to_string() const;  // "s3://bucket/key"
};
// Throws UsageError naming the URL when it does not start with s3://, has no bucket, or the
// bucket is not a valid bucket name (3-63 of a-z 0-9 . -).
S3Url parse_s3_url(std::string_view url);
bool is_s3_url(std::string_view text);  // starts with "s3://"

// AWS's URI encoding of an object key for the request path: every byte but A-Z a-z 0-9 - . _ ~
// and '/' percent-encoded. The same text is sent and signed (S3 does not encode twice).
std::string s3_encode_key(std::string_view key);

// Where a request for bucket/key goes: path-style `endpoint/bucket/key`, or virtual-hosted
// `bucket.host/key` (AWS's own endpoints, buckets that are one DNS label).
struct S3Target {
  std::string url;   // without query
  std::string host;  // Host header, as curl sends it
  std::string path;  // as on the request line and as signed
};
S3Target s3_target(std::string_view endpoint, bool path_style, std::string_view bucket,
                   std::string_view key);

struct S3ClientOptions {
  std::string endpoint;  // http(s)://host[:port]
  std::string region;
  std::shared_ptr<CredentialsProvider> credentials;
  // Path-style URLs; false sends virtual-hosted requests to buckets whose names allow it.
  bool path_style = true;
  RetryPolicy retry;
  TransportOptions transport;
};
// Endpoint from resolve_s3_endpoint (path style for custom endpoints), the given region and
// credentials; the request timeout is raised to 120 s for object bodies.
S3ClientOptions s3_client_options(std::string region,
                                  std::shared_ptr<CredentialsProvider> credentials,
                                  const GetEnv& getenv = system_getenv);
// The S3 client that goes with a DynamoDB client: its region, credentials and TLS settings (CA
// bundle, allow_insecure_http). Throws ConfigError when check_plain_http refuses the endpoint.
S3ClientOptions s3_client_options_for(const ClientOptions& dynamodb,
                                      const GetEnv& getenv = system_getenv);

struct S3Object {
  std::string body;
  std::string etag;               // as the server sent it, quotes included
  std::uint64_t object_size = 0;  // the whole object (Content-Range's total for a range)
  std::string request_id;
  int attempts = 1;
};

struct S3ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
};

struct S3ListPage {
  std::vector<S3ObjectInfo> objects;
  std::string next_token;  // empty on the last page
};

class S3Client {
 public:
  explicit S3Client(S3ClientOptions options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  Outcome<S3Object> get_object(std::string_view bucket, std::string_view key);
  // Bytes first..last (inclusive) of the object; fewer when the object ends before `last`.
  // A non-empty `if_match` (an ETag) makes the server refuse with PreconditionFailed when the
  // object has changed. A range that starts at or past the end is InvalidRange (HTTP 416).
  Outcome<S3Object> get_object_range(std::string_view bucket, std::string_view key,
                                     std::uint64_t first, std::uint64_t last,
                                     std::string_view if_match = {});
  // Returns the new object's ETag. The body is sent with its SHA-256 and Content-MD5.
  Outcome<std::string> put_object(std::string_view bucket, std::string_view key, std::string body,
                                  std::string_view content_type = "application/octet-stream");
  // One ListObjectsV2 page (max_keys ≤ 1000) of the keys that start with `prefix`, in key order.
  Outcome<S3ListPage> list_objects_page(std::string_view bucket, std::string_view prefix,
                                        std::string_view continuation_token = {},
                                        int max_keys = 1000);
  // Every page.
  Outcome<std::vector<S3ObjectInfo>> list_objects(std::string_view bucket, std::string_view prefix,
                                                  int page_size = 1000);

  const ClientStats& stats() const { return stats_; }
  const std::string& endpoint() const { return options_.endpoint; }
  const std::string& region() const { return options_.region; }

 private:
  struct Call;
  Outcome<HttpResponse> perform(std::shared_ptr<Call> call);
  void send(std::shared_ptr<Call> call);
  void on_response(std::shared_ptr<Call> call, HttpResponse&& response);
  std::chrono::milliseconds backoff(int attempt, bool throttled) const;

  S3ClientOptions options_;
  Signer signer_;
  std::atomic<std::int64_t> skew_ms_{0};
  ClientStats stats_;
  std::unique_ptr<HttpTransport> transport_;  // last: its thread stops before the rest dies
};

// An S3 error response (XML <Error><Code/><Message/></Error>, or just a status) as a
// ServiceError with service "S3"; `operation` names the call and its object, e.g.
// "GetObject s3://bucket/key".
ServiceError parse_s3_error(std::string_view operation, const HttpResponse& response);

}  // namespace dynamorph::dynamo
