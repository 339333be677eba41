// HTTP transport: one I/O thread drives libcurl's multi socket interface (an epoll set of the
// sockets libcurl names, and an eventfd that wakes it for new work); any thread submits requests
// and gets a completion callback on the I/O thread. Callbacks must be short and must not block:
// they hand the response to whoever waits for it. Keep-alive connections are pooled by the
// multi handle; timers (retry back-off) run on the same thread, so nobody sleeps to wait.
// Note: when a reused keep-alive connection turns out to be closed before any byte of the answer
// arrives, libcurl itself sends the request once more on a fresh connection (it has no switch for
// this). Such a re-send is not seen as an attempt by the client: writes must be, and are, safe to
// apply twice (whole-item puts, conditional updates, transactions with a ClientRequestToken).
#pragma once

#include <atomic>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dynamorph::dynamo {

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::shared_ptr<const std::string> body;  // shared so a retry re-sends without a copy
  std::string method = "POST";              // "POST", "GET" (body ignored) or "PUT"
  // S3 objects: every response header is kept (HttpResponse::headers), and no Accept-Encoding
  // is sent, so the body arrives exactly as stored (byte ranges and MD5s refer to those bytes).
  bool raw = false;
  // Non-zero: this request's whole-transfer timeout, when shorter than the transport's.
  std::chrono::milliseconds timeout{0};
};

struct HttpResponse {
  long status = 0;           // 0 when no response arrived
  std::string body;          // padded for simdjson (see pad_for_parsing)
  std::string request_id;    // x-amzn-RequestId
  std::string date;          // Date header, for clock-skew correction
  int curl_code = 0;         // CURLcode; non-zero means a transport failure
  std::string curl_error;    // one line describing the transport failure
  // Only for raw requests: every header of the final response, names lowercased.
  std::vector<std::pair<std::string, std::string>> headers;

  const std::string* header(std::string_view lowercase_name) const;
};

struct TransportOptions {
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds request_timeout{30000};
  long max_connections = 64;  // per host
  // https: the peer's certificate is always verified (chain and host name); this file of PEM
  // certificates is trusted instead of the system's (AWS_CA_BUNDLE, a profile's ca_bundle).
  // Empty: the system's store.
  std::string ca_bundle;
  // Plain http to a host that is not loopback, with signed requests: refused unless true
  // (`allow_insecure_http` in dynamorph.yaml; see check_plain_http in aws_config.h).
  bool allow_insecure_http = false;
};

// HTTP requests submitted and not yet answered, over every transport of the process. Lock-free:
// a signal handler may read it (the CLI's "stopping: waiting for N requests").
const std::atomic<std::int64_t>& requests_in_flight();

class HttpTransport {
 public:
  using Callback = std::function<void(HttpResponse&&)>;

  explicit HttpTransport(TransportOptions options = {});
  ~HttpTransport();  // lets what is in flight finish (or time out), fires due timers, joins
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Thread-safe. `done` runs on the I/O thread exactly once.
  void submit(HttpRequest request, Callback done);
  // Runs `fn` on the I/O thread at `when` (or right away if past). Thread-safe.
  void schedule(std::chrono::steady_clock::time_point when, std::function<void()> fn);
  bool on_io_thread() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamorph::dynamo
