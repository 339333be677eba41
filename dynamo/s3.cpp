#include "dynamo/s3.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <future>
#include <random>

#include "dynamo/credentials.h"
#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::dynamo {
namespace {

constexpr char kHexUpper[] = "0123456789ABCDEF";

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void append_uri_encoded(std::string& out, std::string_view text, bool keep_slash) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      const char encoded[3] = {'%', kHexUpper[c >> 4], kHexUpper[c & 0xF]};
      out.append(encoded, 3);
    }
  }
}

std::string query_encoded(std::string_view text) {
  std::string out;
  append_uri_encoded(out, text, false);
  return out;
}

bool valid_bucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (const char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return alnum(b.front()) && alnum(b.back());
}

// A bucket that can be the first label of a TLS host name (dots would break the wildcard
// certificate, so such buckets are addressed path-style).
bool dns_label_bucket(std::string_view b) {
  return valid_bucket(b) && b.find('.') == std::string_view::npos;
}

// XML character data with the predefined and numeric entities decoded; anything else (an HTML
// entity some servers emit) is kept as written.
std::string xml_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out.push_back(text[i]);
      continue;
    }
    const std::size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    const std::string_view name = text.substr(i + 1, semi - i - 1);
    std::optional<std::uint32_t> cp;
    if (name == "amp")
      cp = '&';
    else if (name == "lt")
      cp = '<';
    else if (name == "gt")
      cp = '>';
    else if (name == "quot")
      cp = '"';
    else if (name == "apos")
      cp = '\'';
    else if (name.size() > 1 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      std::string_view digits = name.substr(hex ? 2 : 1);
      std::uint32_t v = 0;
      auto [p, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), v, hex ? 16 : 10);
      if (ec == std::errc() && p == digits.data() + digits.size() && !digits.empty() &&
          v <= 0x10FFFF) {
        cp = v;
      }
    }
    if (!cp) {
      out.push_back('&');
      continue;
    }
    append_utf8(out, *cp);
    i = semi;
  }
  return out;
}

// Finds the next <tag>…</tag> at or after `pos`; sets `inner` to its raw content and moves `pos`
// past it. Only for the flat, attribute-free elements of S3's answers.
bool next_element(std::string_view xml, std::string_view tag, std::size_t& pos,
                  std::string_view& inner) {
  const std::string open = fmt::format("<{}>", tag);
  const std::string close = fmt::format("</{}>", tag);
  const std::size_t start = xml.find(open, pos);
  if (start == std::string_view::npos) return false;
  const std::size_t body = start + open.size();
  const std::size_t end = xml.find(close, body);
  if (end == std::string_view::npos) return false;
  inner = xml.substr(body, end - body);
  pos = end + close.size();
  return true;
}

std::string element_text(std::string_view xml, std::string_view tag) {
  std::size_t pos = 0;
  std::string_view inner;
  return next_element(xml, tag, pos, inner) ? xml_decode(inner) : std::string();
}

std::uint64_t to_u64(std::string_view text) {
  std::uint64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

std::string md5_base64(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr) != 1) {
    throw Error("OpenSSL MD5 failed");
  }
  std::string out;
  base64_encode(out, std::string_view(reinterpret_cast<const char*>(digest), length));
  return out;
}

struct EndpointParts {
  std::string scheme;     // "http" or "https"
  std::string authority;  // host[:port] as written
  std::string base_path;  // "" or "/something" without trailing '/'
};

EndpointParts split_endpoint(std::string_view endpoint) {
  EndpointParts p;
  const std::size_t sep = endpoint.find("://");
  p.scheme = sep == std::string_view::npos ? "https" : std::string(endpoint.substr(0, sep));
  std::string_view rest = sep == std::string_view::npos ? endpoint : endpoint.substr(sep + 3);
  const std::size_t slash = rest.find('/');
  p.authority = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    p.base_path = std::string(path);
  }
  return p;
}

ServiceError local_error(std::string operation, std::string type, std::string message,
                         int attempts) {
  ServiceError e;
  e.service = "S3";
  e.operation = std::move(operation);
  e.type = std::move(type);
  e.message = std::move(message);
  e.http_status = 200;
  e.attempts = attempts;
  return e;
}

}  // namespace

// ---- URLs -------------------------------------------------------------------------------------

std::string S3Url::to_string() const { return fmt::format("s3://{}/{}", bucket, key); }

bool is_s3_url(std::string_view text) { return text.starts_with("s3://"); }

S3Url parse_s3_url(std::string_view url) {
  if (!is_s3_url(url)) throw UsageError(fmt::format("'{}' is not an s3://bucket/key URL", url));
  std::string_view rest = url.substr(5);
  const std::size_t slash = rest.find('/');
  S3Url out;
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) out.key = std::string(rest.substr(slash + 1));
  if (out.bucket.empty()) throw UsageError(fmt::format("'{}' has no bucket name", url));
  if (!valid_bucket(out.bucket)) {
    throw UsageError(fmt::format(
        "'{}': '{}' is not a bucket name (3 to 63 of a-z, 0-9, '.', '-', starting and ending with "
        "a letter or digit)",
        url, out.bucket));
  }
  return out;
}

std::string s3_encode_key(std::string_view key) {
  std::string out;
  out.reserve(key.size() + 8);
  append_uri_encoded(out, key, true);
  return out;
}

S3Target s3_target(std::string_view endpoint, bool path_style, std::string_view bucket,
                   std::string_view key) {
  const EndpointParts ep = split_endpoint(endpoint);
  const std::string authority = endpoint_host(fmt::format("{}://{}", ep.scheme, ep.authority));
  S3Target t;
  std::string encoded_key = s3_encode_key(key);
  if (!path_style && dns_label_bucket(bucket)) {
    t.host = fmt::format("{}.{}", bucket, authority);
    t.path = fmt::format("{}/{}", ep.base_path, encoded_key);
  } else {
    t.host = authority;
    t.path = key.empty() ? fmt::format("{}/{}", ep.base_path, bucket)
                         : fmt::format("{}/{}/{}", ep.base_path, bucket, encoded_key);
  }
  t.url = fmt::format("{}://{}{}", ep.scheme, t.host, t.path);
  return t;
}

S3ClientOptions s3_client_options(std::string region,
                                  std::shared_ptr<CredentialsProvider> credentials,
                                  const GetEnv& getenv) {
  S3Endpoint endpoint = resolve_s3_endpoint(region, getenv);
  S3ClientOptions o;
  o.endpoint = std::move(endpoint.url);
  o.path_style = endpoint.custom;
  o.region = std::move(region);
  o.credentials = std::move(credentials);
  o.transport.request_timeout = std::chrono::milliseconds(120000);
  return o;
}

S3ClientOptions s3_client_options_for(const ClientOptions& dynamodb, const GetEnv& getenv) {
  S3ClientOptions o = s3_client_options(dynamodb.region, dynamodb.credentials, getenv);
  o.transport.ca_bundle = dynamodb.transport.ca_bundle;
  o.transport.allow_insecure_http = dynamodb.transport.allow_insecure_http;
  check_plain_http(o.endpoint, "the S3 endpoint", o.transport.allow_insecure_http);
  return o;
}

// ---- errors -----------------------------------------------------------------------------------

ServiceError parse_s3_error(std::string_view operation, const HttpResponse& response) {
  ServiceError e = parse_service_error(operation, response);  // transport failures, status
  e.service = "S3";
  if (const std::string* id = response.header("x-amz-request-id")) e.request_id = *id;
  if (response.status == 0) return e;
  e.type.clear();
  e.message.clear();
  e.cancellation_reasons.clear();
  const std::string_view body(response.body);
  if (body.find("<Error>") != std::string_view::npos) {
    e.type = element_text(body, "Code");
    e.message = element_text(body, "Message");
    if (e.request_id.empty()) e.request_id = element_text(body, "RequestId");
  }
  if (e.type.empty()) {
    // No XML (a HEAD, a proxy): name the status as S3's SDKs do.
    switch (response.status) {
      case 301: e.type = "PermanentRedirect"; break;
      case 400: e.type = "BadRequest"; break;
      case 403: e.type = "Forbidden"; break;
      case 404: e.type = "NotFound"; break;
      case 412: e.type = "PreconditionFailed"; break;
      case 416: e.type = "InvalidRange"; break;
      case 503: e.type = "SlowDown"; break;
      default: e.type = fmt::format("HTTP{}", response.status);
    }
  }
  if (e.message.empty()) {
    e.message = body.empty() ? fmt::format("HTTP {}", response.status)
                             : std::string(body.substr(0, std::min<std::size_t>(body.size(), 200)));
  }
  return e;
}

// ---- the client -------------------------------------------------------------------------------

struct S3Client::Call {
  std::string operation;
  std::string method;
  S3Target target;
  std::string query;                                         // as on the wire, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // signed, besides the signer's own
  std::shared_ptr<const std::string> body;
  std::string payload_hash;
  std::function<void(Outcome<HttpResponse>)> done;
  int attempt = 0;
};

S3Client::S3Client(S3ClientOptions options)
    : options_(std::move(options)),
      signer_(options_.region, "s3"),
      transport_(std::make_unique<HttpTransport>(options_.transport)) {
  while (!options_.endpoint.empty() && options_.endpoint.back() == '/')
    options_.endpoint.pop_back();
}

S3Client::~S3Client() = default;

std::chrono::milliseconds S3Client::backoff(int attempt, bool throttled) const {
  return full_jitter_backoff(options_.retry, attempt, throttled);
}

void S3Client::send(std::shared_ptr<Call> call) {
  ++call->attempt;
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  HttpRequest req;
  try {
    const Credentials creds = options_.credentials->get();
    SignRequest sr;
    sr.method = call->method;
    sr.host = call->target.host;
    sr.path = call->target.path;
    sr.query = call->query;
    sr.headers = call->headers;
    sr.body = call->body ? std::string_view(*call->body) : std::string_view();
    sr.s3 = true;
    sr.payload_hash = call->payload_hash;
    const auto now = std::chrono::system_clock::now() + std::chrono::milliseconds(skew_ms_.load());
    req.url = call->query.empty() ? call->target.url
                                  : fmt::format("{}?{}", call->target.url, call->query);
    req.method = call->method;
    req.body = call->body;
    req.raw = true;
    req.headers.reserve(call->headers.size() + 5);
    for (const auto& [k, v] : call->headers) req.headers.push_back(fmt::format("{}: {}", k, v));
    req.headers.push_back("User-Agent: dynamorph/0.1");
    for (auto& [k, v] : signer_.sign(sr, creds, now)) {
      req.headers.push_back(fmt::format("{}: {}", k, v));
    }
  } catch (const std::exception& ex) {
    // Credentials could not be had: not retryable, reported like a service error.
    call->done(missing_credentials("S3", call->operation, ex.what(), call->attempt));
    return;
  }
  transport_->submit(std::move(req),
                     [this, call](HttpResponse&& r) { on_response(call, std::move(r)); });
}

void S3Client::on_response(std::shared_ptr<Call> call, HttpResponse&& response) {
  if (response.status >= 200 && response.status < 300) {
    call->done(std::move(response));
    return;
  }
  ServiceError e = parse_s3_error(call->operation, response);
  e.attempts = call->attempt;
  const bool skew = e.clock_skew();
  if (skew) {
    if (auto skew_ms = clock_skew_ms(response.date)) skew_ms_.store(*skew_ms);
  }
  const bool throttled = e.throttling();
  if (throttled) stats_.throttles.fetch_add(1, std::memory_order_relaxed);
  // A refused connection is most often a wrong endpoint: give up after a short while.
  const int max_attempts = e.type == "ConnectionRefused" ? std::min(3, options_.retry.max_attempts)
                                                         : options_.retry.max_attempts;
  if (!e.retryable() || call->attempt >= max_attempts) {
    call->done(std::move(e));
    return;
  }
  stats_.retries.fetch_add(1, std::memory_order_relaxed);
  const auto delay = skew ? std::chrono::milliseconds(0) : backoff(call->attempt, throttled);
  transport_->schedule(std::chrono::steady_clock::now() + delay, [this, call] { send(call); });
}

Outcome<HttpResponse> S3Client::perform(std::shared_ptr<Call> call) {
  if (transport_->on_io_thread()) {
    throw Error("internal: synchronous S3 call on the I/O thread");
  }
  std::promise<Outcome<HttpResponse>> promise;
  auto future = promise.get_future();
  call->done = [&promise](Outcome<HttpResponse> r) { promise.set_value(std::move(r)); };
  send(std::move(call));
  return future.get();
}

namespace {

const std::string& empty_payload_hash() {
  static const std::string hash = sha256_hex("");
  return hash;
}

}  // namespace

Outcome<S3Object> S3Client::get_object_range(std::string_view bucket, std::string_view key,
                                             std::uint64_t first, std::uint64_t last,
                                             std::string_view if_match) {
  auto call = std::make_shared<Call>();
  call->operation =
      fmt::format("GetObject {}", S3Url{std::string(bucket), std::string(key)}.to_string());
  call->method = "GET";
  call->target = s3_target(options_.endpoint, options_.path_style, bucket, key);
  call->payload_hash = empty_payload_hash();
  const bool ranged = last != UINT64_MAX || first != 0;
  if (ranged) call->headers.emplace_back("Range", fmt::format("bytes={}-{}", first, last));
  if (!if_match.empty()) call->headers.emplace_back("If-Match", std::string(if_match));
  call->headers.emplace_back("x-amz-content-sha256", call->payload_hash);
  const std::string operation = call->operation;
  auto r = perform(std::move(call));
  if (!r) return std::move(r.error());
  HttpResponse& resp = r.value();
  S3Object obj;
  if (const std::string* etag = resp.header("etag")) obj.etag = *etag;
  if (const std::string* id = resp.header("x-amz-request-id")) obj.request_id = *id;
  obj.object_size = resp.body.size();
  if (resp.status == 206) {
    // "bytes 0-9/443": the total follows the slash.
    const std::string* range = resp.header("content-range");
    const std::size_t slash = range ? range->rfind('/') : std::string::npos;
    if (slash == std::string::npos || range->substr(slash + 1) == "*") {
      return local_error(operation, "MalformedResponse",
                         "a partial answer without the object's size in Content-Range", 1);
    }
    obj.object_size = to_u64(std::string_view(*range).substr(slash + 1));
  } else if (ranged && first > 0) {
    // A server that ignores Range sends the whole object: keep the asked part.
    obj.object_size = resp.body.size();
    const std::size_t from =
        static_cast<std::size_t>(std::min<std::uint64_t>(first, resp.body.size()));
    const std::size_t count = static_cast<std::size_t>(
        std::min<std::uint64_t>(last - first + 1, resp.body.size() - from));
    resp.body = resp.body.substr(from, count);
  }
  obj.body = std::move(resp.body);
  return obj;
}

Outcome<S3Object> S3Client::get_object(std::string_view bucket, std::string_view key) {
  return get_object_range(bucket, key, 0, UINT64_MAX);
}

Outcome<std::string> S3Client::put_object(std::string_view bucket, std::string_view key,
                                          std::string body, std::string_view content_type) {
  auto call = std::make_shared<Call>();
  call->operation =
      fmt::format("PutObject {}", S3Url{std::string(bucket), std::string(key)}.to_string());
  call->method = "PUT";
  call->target = s3_target(options_.endpoint, options_.path_style, bucket, key);
  call->payload_hash = sha256_hex(body);
  call->headers.emplace_back("Content-Type", std::string(content_type));
  call->headers.emplace_back("Content-MD5", md5_base64(body));
  call->headers.emplace_back("x-amz-content-sha256", call->payload_hash);
  call->body = std::make_shared<const std::string>(std::move(body));
  auto r = perform(std::move(call));
  if (!r) return std::move(r.error());
  const std::string* etag = r.value().header("etag");
  return etag ? *etag : std::string();
}

Outcome<S3ListPage> S3Client::list_objects_page(std::string_view bucket, std::string_view prefix,
                                                std::string_view continuation_token, int max_keys) {
  auto call = std::make_shared<Call>();
  call->operation =
      fmt::format("ListObjectsV2 {}", S3Url{std::string(bucket), std::string(prefix)}.to_string());
  call->method = "GET";
  call->target = s3_target(options_.endpoint, options_.path_style, bucket, "");
  call->query = fmt::format("list-type=2&max-keys={}", std::clamp(max_keys, 1, 1000));
  if (!prefix.empty()) call->query += "&prefix=" + query_encoded(prefix);
  if (!continuation_token.empty()) {
    call->query += "&continuation-token=" + query_encoded(continuation_token);
  }
  call->payload_hash = empty_payload_hash();
  call->headers.emplace_back("x-amz-content-sha256", call->payload_hash);
  const std::string operation = call->operation;
  auto r = perform(std::move(call));
  if (!r) return std::move(r.error());
  const std::string_view xml(r.value().body);
  if (xml.find("<ListBucketResult") == std::string_view::npos) {
    return local_error(operation, "MalformedResponse", "the answer is not a ListBucketResult", 1);
  }
  S3ListPage page;
  std::size_t pos = 0;
  std::string_view contents;
  while (next_element(xml, "Contents", pos, contents)) {
    S3ObjectInfo info;
    info.key = element_text(contents, "Key");
    info.size = to_u64(element_text(contents, "Size"));
    info.etag = element_text(contents, "ETag");
    page.objects.push_back(std::move(info));
  }
  if (element_text(xml, "IsTruncated") == "true") {
    page.next_token = element_text(xml, "NextContinuationToken");
    if (page.next_token.empty()) {
      return local_error(operation, "MalformedResponse",
                         "a truncated listing without NextContinuationToken", 1);
    }
  }
  return page;
}

Outcome<std::vector<S3ObjectInfo>> S3Client::list_objects(std::string_view bucket,
                                                          std::string_view prefix, int page_size) {
  std::vector<S3ObjectInfo> all;
  std::string token;
  do {
    auto page = list_objects_page(bucket, prefix, token, page_size);
    if (!page) return std::move(page.error());
    for (auto& o : page.value().objects) all.push_back(std::move(o));
    token = std::move(page.value().next_token);
  } while (!token.empty());
  return all;
}

}  // namespace dynamorph::dynamo
