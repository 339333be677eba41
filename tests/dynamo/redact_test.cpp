// The redaction of secrets from printed and stored text: remembered secret values (raw and
// percent-encoded) and the shapes of a signed request, and what it must leave alone.
#include "dynamo/redact.h"

#include <gtest/gtest.h>

#include "dynamo/sigv4.h"

namespace dynamorph::dynamo {
namespace {

TEST(Redact, RemembersSecretKeyAndSessionTokenOfCredentials) {
  Credentials c{"AKIDREDACTTEST", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYredacttest", "FQoGZXIvYXdz+token/x=", {}};
  remember_secrets(c);
  EXPECT_EQ(redact("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYredacttest here"), "secret <redacted> here");
  EXPECT_EQ(redact("token=FQoGZXIvYXdz+token/x= and FQoGZXIvYXdz%2Btoken%2Fx%3D"),
            "token=<redacted> and <redacted>");
  // A header holding a remembered token is one mark, not two.
  EXPECT_EQ(redact("X-Amz-Security-Token: FQoGZXIvYXdz+token/x=\nHost: h"), "<redacted>\nHost: h");
  // The access key id is not a secret: it names the key in messages such as AccessDenied.
  EXPECT_EQ(redact("key AKIDREDACTTEST"), "key AKIDREDACTTEST");
}

TEST(Redact, SecretsRepeatedAndAdjacentAreAllMasked) {
  remember_secret("s3cr3t-value-one");
  EXPECT_EQ(redact("s3cr3t-value-ones3cr3t-value-one|s3cr3t-value-one"),
            "<redacted><redacted>|<redacted>");
}

TEST(Redact, ShortValuesAreNotRemembered) {
  remember_secret("abc");
  EXPECT_EQ(redact("abc abcd"), "abc abcd");
}

TEST(Redact, AuthorizationHeaderGoesToTheEndOfItsLine) {
  EXPECT_EQ(redact("POST /\nAuthorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/"
                   "dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcdef0123\n"
                   "Host: x"),
            "POST /\n<redacted>\nHost: x");
  EXPECT_EQ(redact("{\"authorization\": \"AWS4-HMAC-SHA256 Credential=K\"}"), "{\"<redacted>");
}

TEST(Redact, SignatureAndSecurityTokenParametersAndHeaders) {
  EXPECT_EQ(redact("GET /b/k?X-Amz-Signature=0a1b2c&X-Amz-Expires=60"),
            "GET /b/k?<redacted>&X-Amz-Expires=60");
  EXPECT_EQ(redact("..., Signature=0a1b2c3d4e, more"), "..., <redacted>, more");
  EXPECT_EQ(redact("x-amz-security-token:IQoJb3JpZ2luX2VjE\nx-amz-date:20240101T000000Z"),
            "<redacted>\nx-amz-date:20240101T000000Z");
  EXPECT_EQ(redact("aws_secret_access_key = abc/def\nregion = us-east-1"),
            "<redacted>\nregion = us-east-1");
}

TEST(Redact, OrdinaryTextIsLeftAlone) {
  const std::string texts[] = {
      "Scan on 'app': ResourceNotFoundException: Requested resource not found (HTTP 400)",
      "InvalidSignatureException: The request signature we calculated does not match",
      "no response from DynamoDB (ConnectionRefused): Failed to connect to 127.0.0.1 port 9",
      "",
  };
  for (const auto& text : texts) EXPECT_EQ(redact(text), text);
}

}  // namespace
}  // namespace dynamorph::dynamo
