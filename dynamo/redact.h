// Redaction of secrets from anything dynamorph prints or stores: error messages, -v lines,
// --json, the state table's error fields, bench reports. Two defences, applied together:
// the secret values themselves (every access key secret and session token the credential
// providers hand out is remembered here), and the shapes a signed request leaves in text
// (an Authorization header, a Signature= parameter, a security token header or parameter),
// so that a server echoing a request back (an InvalidSignatureException's canonical request, a
// proxy's error page) cannot carry one out either. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace dynamorph::dynamo {

struct Credentials;

// What every redacted part becomes. Names neither header nor parameter, so that a search of the
// output for "Authorization" or "Signature=" finds nothing.
inline constexpr std::string_view kRedacted = "<redacted>";

// Remembers a secret value (values shorter than 4 characters are ignored: they would mask
// ordinary text, and no real secret is that short).
void remember_secret(std::string_view value);
// The secret access key and the session token of `credentials`.
void remember_secrets(const Credentials& credentials);

// `text` with every remembered secret and every signed-request shape replaced by kRedacted.
std::string redact(std::string_view text);

}  // namespace dynamorph::dynamo
