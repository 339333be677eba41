#include "dynamo/sigv4.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>

#include "dynamo/errors.h"

namespace dynamorph::dynamo {
namespace {

using Clock = std::chrono::system_clock;
using Digest = std::array<unsigned char, 32>;

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

constexpr std::array<bool, 256> make_unreserved() {
  std::array<bool, 256> table{};
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  table['-'] = table['.'] = table['_'] = table['~'] = true;
  return table;
}
constexpr std::array<bool, 256> kUnreserved = make_unreserved();

constexpr std::array<signed char, 256> make_hex_values() {
  std::array<signed char, 256> table{};
  for (auto& v : table) v = -1;
  for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<signed char>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<signed char>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[c] = static_cast<signed char>(c - 'A' + 10);
  return table;
}
constexpr std::array<signed char, 256> kHexValue = make_hex_values();

[[noreturn]] void throw_openssl(const char* what) {
  throw Error(std::string("OpenSSL ") + what + " failed");
}

// Fetched once: the implicit fetch behind EVP_sha256() costs a provider lookup on every init.
// Never freed on purpose: a static destructor could run after OpenSSL's own atexit cleanup.
const EVP_MD* sha256_md() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw_openssl("fetch of SHA256");
    return fetched;
  }();
  return md;
}

EVP_MAC* hmac_mac() {
  static EVP_MAC* const mac = [] {
    EVP_MAC* fetched = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (fetched == nullptr) throw_openssl("fetch of HMAC");
    return fetched;
  }();
  return mac;
}

struct DigestCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* ctx) const noexcept { EVP_MAC_CTX_free(ctx); }
};

// One context of each kind per thread, reused: allocating and configuring a context costs more
// than hashing a few hundred bytes.
EVP_MD_CTX* digest_ctx() {
  thread_local const std::unique_ptr<EVP_MD_CTX, DigestCtxFree> ctx{EVP_MD_CTX_new()};
  if (!ctx) throw std::bad_alloc();
  return ctx.get();
}

using MacCtx = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

MacCtx new_hmac_sha256_ctx() {
  MacCtx made{EVP_MAC_CTX_new(hmac_mac())};
  if (!made) throw std::bad_alloc();
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(made.get(), params) != 1) throw_openssl("HMAC-SHA256 setup");
  return made;
}

EVP_MAC_CTX* mac_ctx() {
  thread_local const MacCtx ctx = new_hmac_sha256_ctx();
  return ctx.get();
}

Digest sha256(std::string_view data) {
  EVP_MD_CTX* ctx = digest_ctx();
  Digest out;
  unsigned int length = 0;
  if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, out.data(), &length) != 1 || length != out.size()) {
    throw_openssl("SHA-256");
  }
  return out;
}

// HMAC-SHA256 of `data` on `ctx`; a null `key` reuses the key the context already holds.
Digest hmac_sha256_on(EVP_MAC_CTX* ctx, const unsigned char* key, std::size_t key_length,
                      std::string_view data) {
  Digest out;
  std::size_t length = 0;
  if (EVP_MAC_init(ctx, key, key_length, nullptr) != 1 ||
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
      EVP_MAC_final(ctx, out.data(), &length, out.size()) != 1 || length != out.size()) {
    throw_openssl("HMAC-SHA256");
  }
  return out;
}

Digest hmac_sha256(const unsigned char* key, std::size_t key_length, std::string_view data) {
  return hmac_sha256_on(mac_ctx(), key, key_length, data);
}

// The request signature's HMAC. Its key, the day's signing key, is the same for thousands of
// requests in a row, so each thread keeps a context keyed with it: re-initializing a context
// with the key it holds (a null key) restarts from the stored pads instead of setting up both
// digests and hashing the key into them again. The derivation chain keeps mac_ctx().
Digest hmac_with_signing_key(const Digest& key, std::string_view data) {
  struct Keyed {
    MacCtx ctx = new_hmac_sha256_ctx();
    Digest key{};
    bool keyed = false;
  };
  thread_local Keyed k;
  const bool reuse = k.keyed && k.key == key;
  k.keyed = false;  // until the HMAC below succeeds
  const Digest out =
      hmac_sha256_on(k.ctx.get(), reuse ? nullptr : key.data(), reuse ? 0 : key.size(), data);
  k.key = key;
  k.keyed = true;
  return out;
}

void append_hex(std::string& out, const Digest& digest) {
  const std::size_t at = out.size();
  out.resize(at + 2 * digest.size());
  char* p = out.data() + at;
  for (const unsigned char byte : digest) {
    *p++ = kHexLower[byte >> 4];
    *p++ = kHexLower[byte & 0xF];
  }
}

void append_percent(std::string& out, unsigned char byte) {
  const char encoded[3] = {'%', kHexUpper[byte >> 4], kHexUpper[byte & 0xF]};
  out.append(encoded, 3);
}

// Percent-encodes every byte outside AWS's unreserved set; runs of safe bytes go in one append.
void append_encoded(std::string& out, std::string_view text) {
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (kUnreserved[byte]) continue;
    out.append(text.data() + run, i - run);
    append_percent(out, byte);
    run = i + 1;
  }
  out.append(text.data() + run, text.size() - run);
}

// Decodes %XX sequences first so that a name or value arrives in one canonical form however
// the caller encoded it; a '%' not followed by two hex digits is taken literally.
void append_reencoded(std::string& out, std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '%' && i + 2 < text.size()) {
      const int high = kHexValue[static_cast<unsigned char>(text[i + 1])];
      const int low = kHexValue[static_cast<unsigned char>(text[i + 2])];
      if (high >= 0 && low >= 0) {
        byte = static_cast<unsigned char>(high * 16 + low);
        i += 2;
      }
    }
    if (kUnreserved[byte]) {
      out.push_back(static_cast<char>(byte));
    } else {
      append_percent(out, byte);
    }
  }
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

// Orders as the lowercased strings would, without making lowercase copies.
int compare_lower(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(to_lower(a[i]));
    const auto y = static_cast<unsigned char>(to_lower(b[i]));
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

bool equals_lower(std::string_view name, std::string_view lower) {
  return name.size() == lower.size() && compare_lower(name, lower) == 0;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// AWS's Trimall: no leading or trailing white space, every inner run becomes one space.
void append_trimmed(std::string& out, std::string_view value) {
  bool gap = false;
  bool started = false;
  for (const char c : value) {
    if (is_space(c)) {
      gap = started;
      continue;
    }
    if (gap) out.push_back(' ');
    gap = false;
    started = true;
    out.push_back(c);
  }
}

void append_lower(std::string& out, std::string_view text) {
  const std::size_t at = out.size();
  out.resize(at + text.size());
  std::transform(text.begin(), text.end(), out.begin() + static_cast<std::ptrdiff_t>(at), to_lower);
}

struct HeaderRef {
  std::string_view name;
  std::string_view value;
  std::uint32_t order;  // keeps repeated names in the order sent when their values are joined
};

struct QueryParam {
  std::uint32_t key_pos, key_len, value_pos, value_len;
};

// Per-thread buffers: after the first requests of a thread, signing allocates only its result.
struct Scratch {
  std::vector<HeaderRef> headers;
  std::vector<QueryParam> params;
  std::vector<std::string_view> segments;
  std::string query;
  std::string canonical;
  std::string to_sign;
};

Scratch& scratch() {
  thread_local Scratch buffers;
  return buffers;
}

// RFC 3986 dot-segment removal plus dropping empty segments, as AWS (and botocore) do.
void append_canonical_path(std::string& out, std::vector<std::string_view>& segments,
                           std::string_view path) {
  if (path.empty() || path == "/") {
    out.push_back('/');
    return;
  }
  segments.clear();
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(begin, end - begin);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    begin = end + 1;
  }
  out.push_back('/');
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    append_encoded(out, segments[i]);
  }
  if (path.back() == '/' && !segments.empty()) out.push_back('/');
}

void append_canonical_query(std::string& out, Scratch& s, std::string_view query) {
  if (query.empty()) return;
  s.query.clear();
  s.params.clear();
  std::size_t begin = 0;
  while (begin <= query.size()) {
    std::size_t end = query.find('&', begin);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(begin, end - begin);
    const std::size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    QueryParam param{};
    param.key_pos = static_cast<std::uint32_t>(s.query.size());
    append_reencoded(s.query, key);
    param.key_len = static_cast<std::uint32_t>(s.query.size() - param.key_pos);
    param.value_pos = static_cast<std::uint32_t>(s.query.size());
    append_reencoded(s.query, value);
    param.value_len = static_cast<std::uint32_t>(s.query.size() - param.value_pos);
    s.params.push_back(param);
    begin = end + 1;
  }
  const std::string_view buffer = s.query;
  const auto key = [&](const QueryParam& p) { return buffer.substr(p.key_pos, p.key_len); };
  const auto value = [&](const QueryParam& p) { return buffer.substr(p.value_pos, p.value_len); };
  std::sort(s.params.begin(), s.params.end(), [&](const QueryParam& a, const QueryParam& b) {
    const int by_key = key(a).compare(key(b));
    return by_key != 0 ? by_key < 0 : value(a) < value(b);
  });
  for (std::size_t i = 0; i < s.params.size(); ++i) {
    if (i > 0) out.push_back('&');
    out.append(key(s.params[i]));
    out.push_back('=');
    out.append(value(s.params[i]));
  }
}

bool owned_by_signer(std::string_view name) {
  return equals_lower(name, "host") || equals_lower(name, "x-amz-date") ||
         equals_lower(name, "x-amz-security-token") || equals_lower(name, "authorization");
}

struct Span {
  std::size_t pos = 0;
  std::size_t len = 0;
};

// Appends the canonical request to `out`; returns where its SignedHeaders line sits in `out`,
// which the Authorization header repeats.
Span append_canonical_request(std::string& out, Scratch& s, const SignRequest& request,
                              std::string_view timestamp, std::string_view session_token) {
  for (const char c : request.method) out.push_back(to_upper(c));
  out.push_back('\n');
  if (request.s3) {
    out.append(request.path.empty() ? std::string_view("/") : request.path);
  } else {
    append_canonical_path(out, s.segments, request.path);
  }
  out.push_back('\n');
  append_canonical_query(out, s, request.query);
  out.push_back('\n');

  s.headers.clear();
  std::uint32_t order = 0;
  s.headers.push_back({"host", request.host, order++});
  s.headers.push_back({"x-amz-date", timestamp, order++});
  if (!session_token.empty()) s.headers.push_back({"x-amz-security-token", session_token, order++});
  for (const auto& [name, value] : request.headers) {
    if (!owned_by_signer(name)) s.headers.push_back({name, value, order++});
  }
  std::sort(s.headers.begin(), s.headers.end(), [](const HeaderRef& a, const HeaderRef& b) {
    const int by_name = compare_lower(a.name, b.name);
    return by_name != 0 ? by_name < 0 : a.order < b.order;
  });

  const auto& headers = s.headers;
  for (std::size_t i = 0; i < headers.size();) {
    append_lower(out, headers[i].name);
    out.push_back(':');
    append_trimmed(out, headers[i].value);
    std::size_t j = i + 1;
    for (; j < headers.size() && compare_lower(headers[j].name, headers[i].name) == 0; ++j) {
      out.push_back(',');
      append_trimmed(out, headers[j].value);
    }
    out.push_back('\n');
    i = j;
  }
  out.push_back('\n');

  Span signed_headers{out.size(), 0};
  for (std::size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && compare_lower(headers[i].name, headers[i - 1].name) == 0) continue;
    if (i > 0) out.push_back(';');
    append_lower(out, headers[i].name);
  }
  signed_headers.len = out.size() - signed_headers.pos;
  out.push_back('\n');
  if (request.s3 && !request.payload_hash.empty()) {
    out.append(request.payload_hash);
  } else {
    append_hex(out, sha256(request.body));
  }
  return signed_headers;
}

void append_string_to_sign(std::string& out, std::string_view timestamp, std::string_view region,
                           std::string_view service, const Digest& canonical_hash) {
  out.append(kAlgorithm);
  out.push_back('\n');
  out.append(timestamp);
  out.push_back('\n');
  out.append(timestamp.substr(0, 8));
  out.push_back('/');
  out.append(region);
  out.push_back('/');
  out.append(service);
  out.push_back('/');
  out.append(kTerminator);
  out.push_back('\n');
  append_hex(out, canonical_hash);
}

// "yyyymmddThhmmssZ" in UTC.
struct Timestamp {
  std::array<char, 16> text{};
  std::string_view view() const { return {text.data(), text.size()}; }
  std::string_view date() const { return {text.data(), 8}; }
};

void put_digits(char* p, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

Timestamp make_timestamp(Clock::time_point now) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(now);
  const auto day = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{seconds - day};
  const int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) throw Error("SigV4: timestamp year out of range");
  Timestamp ts;
  char* p = ts.text.data();
  put_digits(p, static_cast<unsigned>(year), 4);
  put_digits(p + 4, static_cast<unsigned>(ymd.month()), 2);
  put_digits(p + 6, static_cast<unsigned>(ymd.day()), 2);
  p[8] = 'T';
  put_digits(p + 9, static_cast<unsigned>(hms.hours().count()), 2);
  put_digits(p + 11, static_cast<unsigned>(hms.minutes().count()), 2);
  put_digits(p + 13, static_cast<unsigned>(hms.seconds().count()), 2);
  p[15] = 'Z';
  return ts;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  std::string out;
  append_hex(out, sha256(data));
  return out;
}

Signer::Signer(std::string region, std::string service)
    : region_(std::move(region)), service_(std::move(service)) {}

Signer::Key Signer::signing_key(std::string_view date, std::string_view secret) const {
  {
    std::lock_guard lock(key_mutex_);
    if (cached_key_ && std::string_view(cached_key_->date.data(), 8) == date &&
        cached_key_->secret == secret) {
      return cached_key_->key;
    }
  }
  // Derived outside the lock: threads racing here at midnight compute the same key.
  std::string seed;
  seed.reserve(4 + secret.size());
  seed.append("AWS4").append(secret);
  Digest key = hmac_sha256(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), date);
  OPENSSL_cleanse(seed.data(), seed.size());
  key = hmac_sha256(key.data(), key.size(), region_);
  key = hmac_sha256(key.data(), key.size(), service_);
  key = hmac_sha256(key.data(), key.size(), kTerminator);

  CachedKey fresh;
  std::copy(date.begin(), date.end(), fresh.date.begin());
  fresh.secret.assign(secret);
  fresh.key = key;
  std::lock_guard lock(key_mutex_);
  cached_key_ = std::move(fresh);
  return key;
}

std::vector<std::pair<std::string, std::string>> Signer::sign(const SignRequest& request,
                                                              const Credentials& credentials,
                                                              Clock::time_point now) const {
  const Timestamp ts = make_timestamp(now);
  Scratch& s = scratch();
  s.canonical.clear();
  const Span signed_headers =
      append_canonical_request(s.canonical, s, request, ts.view(), credentials.session_token);
  s.to_sign.clear();
  append_string_to_sign(s.to_sign, ts.view(), region_, service_, sha256(s.canonical));
  const Key key = signing_key(ts.date(), credentials.secret_access_key);
  const Digest signature = hmac_with_signing_key(key, s.to_sign);

  constexpr std::string_view kCredential = " Credential=";
  constexpr std::string_view kSignedHeaders = ", SignedHeaders=";
  constexpr std::string_view kSignature = ", Signature=";
  std::string authorization;
  authorization.reserve(kAlgorithm.size() + kCredential.size() + credentials.access_key_id.size() +
                        10 + region_.size() + service_.size() + kTerminator.size() + 2 +
                        kSignedHeaders.size() + signed_headers.len + kSignature.size() +
                        2 * signature.size());
  authorization.append(kAlgorithm).append(kCredential).append(credentials.access_key_id);
  authorization.push_back('/');
  authorization.append(ts.date()).append("/").append(region_).append("/").append(service_);
  authorization.append("/").append(kTerminator).append(kSignedHeaders);
  authorization.append(s.canonical, signed_headers.pos, signed_headers.len);
  authorization.append(kSignature);
  append_hex(authorization, signature);

  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(3);
  out.emplace_back("X-Amz-Date", std::string(ts.view()));
  if (!credentials.session_token.empty()) {
    out.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  out.emplace_back("Authorization", std::move(authorization));
  return out;
}

std::string Signer::canonical_request(const SignRequest& request, const Credentials& credentials,
                                      Clock::time_point now) const {
  const Timestamp ts = make_timestamp(now);
  std::string out;
  append_canonical_request(out, scratch(), request, ts.view(), credentials.session_token);
  return out;
}

std::string Signer::string_to_sign(const SignRequest& request, const Credentials& credentials,
                                   Clock::time_point now) const {
  const Timestamp ts = make_timestamp(now);
  std::string out;
  append_string_to_sign(out, ts.view(), region_, service_,
                        sha256(canonical_request(request, credentials, now)));
  return out;
}

}  // namespace dynamorph::dynamo
