// The AWS credentials chain: explicit, environment, shared files, container endpoint, IMDSv2.
// Thread-safe: providers are shared by all threads; refreshing ones fetch under their own lock.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "dynamo/aws_config.h"
#include "dynamo/sigv4.h"

namespace dynamorph::dynamo {

// Expiring credentials are renewed this long before they expire (or half-way through their
// lifetime when they live shorter than twice this), on the provider's own background thread.
inline constexpr std::chrono::minutes kCredentialsRefreshWindow{5};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;

  // Credentials valid now, without waiting on the network while the cached ones are valid:
  // expiring ones are renewed ahead of expiry by a background thread (a failed renewal is tried
  // again 1 s, 2 s … 30 s later while the old ones serve). Only with none yet, or expired ones,
  // does get() fetch itself (one caller at a time). Throws ConfigError when no valid
  // credentials can be had.
  virtual Credentials get() = 0;

  // Where the credentials come from, for messages ("environment", "profile [dev]
  // (~/.aws/credentials:3)", "IMDSv2 http://169.254.169.254 role web"). Never a secret.
  virtual std::string describe() const = 0;
};

struct CredentialSources {
  std::optional<Credentials> explicit_credentials;
  std::optional<std::string> profile;  // --profile
  GetEnv getenv = system_getenv;
  // Whole-request limit for the container endpoint and IMDS; connecting gets at most 1 s of it
  // so that a machine without IMDS fails fast.
  std::chrono::milliseconds http_timeout{2000};
  // Base that AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is appended to; tests point it at 127.0.0.1.
  std::string container_base = "http://169.254.170.2";
};

// Tries, in order: explicit credentials; AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN; the profile (see choose_profile) in AWS_SHARED_CREDENTIALS_FILE and
// AWS_CONFIG_FILE; the container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI,
// with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN); IMDSv2
// (AWS_EC2_METADATA_SERVICE_ENDPOINT, off with AWS_EC2_METADATA_DISABLED=true). Returns the
// provider of the first source that yields credentials, already holding them. Throws ConfigError:
// when a source is present but unusable (a key without its secret, a profile named by --profile or
// AWS_PROFILE that exists in neither file, a profile that needs role_arn/sso/credential_process, a
// failing container endpoint), and, when nothing yields credentials, one line listing what was
// tried.
std::shared_ptr<CredentialsProvider> default_credentials_chain(const CredentialSources& sources);

// Fixed credentials (explicit ones, or read once from the environment or a file).
std::shared_ptr<CredentialsProvider> static_credentials(Credentials credentials,
                                                        std::string description);

}  // namespace dynamorph::dynamo
