// libFuzzer target for SigV4 canonicalization and signing (dynamo/sigv4.*).
//
// Input: a flags byte (1: S3 rules, 2: a session token, 4: an S3 payload hash), four bytes of
// time, then newline-separated method, host, path and query, header lines "name:value" up to an
// empty line, and the body. Signing never throws; the canonical request has the shape AWS
// defines (method, a path without empty or dot segments, a query already canonical — encoding
// it again changes nothing —, sorted lowercase header names with host and x-amz-date, the
// payload hash); signing twice (the second time from the cached key) gives the same headers.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dynamo/sigv4.h"
#include "fuzz/fuzz_support.h"

namespace {

using namespace dynamorph;
using namespace dynamorph::dynamo;

constexpr const char* kTarget = "sigv4_fuzz";

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = text.find('\n', begin);
    out.push_back(text.substr(begin, end == std::string_view::npos ? end : end - begin));
    if (end == std::string_view::npos) return out;
    begin = end + 1;
  }
}

void check_path(std::string_view path, bool s3, std::string_view given) {
  if (s3) {
    if (path != (given.empty() ? std::string_view("/") : given))
      fuzz::finding(kTarget, "an S3 path is not signed as given");
    return;
  }
  if (path.empty() || path.front() != '/') fuzz::finding(kTarget, "the canonical path is not absolute");
  std::string_view rest = path.substr(1);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return;
  std::size_t begin = 0;
  while (begin <= rest.size()) {
    std::size_t end = rest.find('/', begin);
    if (end == std::string_view::npos) end = rest.size();
    const std::string_view segment = rest.substr(begin, end - begin);
    if (segment.empty() || segment == "." || segment == "..")
      fuzz::finding(kTarget, "the canonical path keeps an empty or dot segment");
    begin = end + 1;
  }
}

void check_headers(std::string_view signed_headers) {
  std::string_view previous;
  bool host = false, date = false;
  std::size_t begin = 0;
  while (begin <= signed_headers.size()) {
    std::size_t end = signed_headers.find(';', begin);
    if (end == std::string_view::npos) end = signed_headers.size();
    const std::string_view name = signed_headers.substr(begin, end - begin);
    for (const char c : name)
      if (c >= 'A' && c <= 'Z') fuzz::finding(kTarget, "a signed header name is not lowercase");
    if (begin > 0 && !(previous < name))
      fuzz::finding(kTarget, "signed header names are not sorted and unique");
    host = host || name == "host";
    date = date || name == "x-amz-date";
    previous = name;
    begin = end + 1;
  }
  if (!host || !date) fuzz::finding(kTarget, "host or x-amz-date is not signed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t flags = in.byte();
  std::uint32_t seconds = 0;
  for (int i = 0; i < 4; ++i) seconds = (seconds << 8) | in.byte();
  const std::string method(in.field('\n'));
  const std::string host(in.field('\n'));
  const std::string path(in.field('\n'));
  const std::string query(in.field('\n'));
  std::vector<std::pair<std::string, std::string>> headers;
  while (true) {
    const std::string_view line = in.field('\n');
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    // Header names are HTTP tokens (the signer's callers name their own headers): a ';' or a
    // space in one would be sent that way by no client.
    if (line.substr(0, colon).find_first_of(" \t;,()/<>@[]\\?={}\"") != std::string_view::npos)
      continue;
    headers.emplace_back(std::string(line.substr(0, colon)),
                         colon == std::string_view::npos ? "" : std::string(line.substr(colon + 1)));
  }
  const std::string body(in.rest());

  SignRequest request;
  request.method = method;
  request.host = host;
  request.path = path;
  request.query = query;
  request.headers = headers;
  request.body = body;
  request.s3 = (flags & 1) != 0;
  const std::string payload_hash = sha256_hex(body);
  if (flags & 4) request.payload_hash = payload_hash;
  Credentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          (flags & 2) ? "session-token" : "", std::nullopt};
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
  const Signer signer("us-east-1", request.s3 ? "s3" : "dynamodb");

  const std::string canonical = signer.canonical_request(request, credentials, now);
  const std::vector<std::string_view> lines = lines_of(canonical);
  // method, path, query, the header lines, "", signed headers, payload hash
  if (lines.size() < 7) fuzz::finding(kTarget, "the canonical request has too few lines");
  check_path(lines[1], request.s3, path);
  check_headers(lines[lines.size() - 2]);
  if (lines.back() != payload_hash) fuzz::finding(kTarget, "the payload hash is not SHA-256 of the body");

  SignRequest again = request;
  const std::string canonical_query(lines[2]);
  again.query = canonical_query;
  const std::string recanonical = signer.canonical_request(again, credentials, now);
  if (lines_of(recanonical)[2] != canonical_query)
    fuzz::finding(kTarget, "canonicalizing a canonical query changes it");

  const auto first = signer.sign(request, credentials, now);
  const auto second = signer.sign(request, credentials, now);
  if (first != second) fuzz::finding(kTarget, "signing twice gives different headers");
  if (first.back().second.find("SignedHeaders=" + std::string(lines[lines.size() - 2]) + ",") ==
      std::string::npos)
    fuzz::finding(kTarget, "Authorization does not repeat the signed headers");
  return 0;
}
