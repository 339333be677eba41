#!/usr/bin/python3
"""Regenerates s3_sigv4_botocore_vectors.json: S3 SigV4 signatures computed by botocore.

Run with Debian's interpreter, which has python3-botocore (tested with 1.29.27):
    /usr/bin/python3 tests/dynamo/data/make_s3_sigv4_vectors.py > tests/dynamo/data/s3_sigv4_botocore_vectors.json

botocore's S3SigV4Auth signs the path exactly as sent (no normalization, no second encoding)
and adds X-Amz-Content-SHA256; each case records that value so that the C++ test passes it the
way dynamo::S3Client does. Canonical request and string to sign are kept for diagnosis.
"""

import datetime
import hashlib
import base64
import json
import sys
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJGMEQCIBexample+/=token"


def md5_b64(text):
    return base64.b64encode(hashlib.md5(text.encode("utf-8")).digest()).decode()


BODY = '{"Item":{"PK":{"S":"USER#1"}}}\n'
CASES = [
    dict(name="get-range-virtual-host", method="GET", host="examplebucket.s3.amazonaws.com",
         path="/test.txt", headers=[("Range", "bytes=0-9")]),
    dict(name="get-range-if-match-path-style", method="GET", host="s3.eu-west-1.amazonaws.com",
         region="eu-west-1", path="/my-bucket/exports/AWSDynamoDB/01700000000000-abcd1234/data/x.json.gz",
         headers=[("Range", "bytes=4194304-8388607"), ("If-Match", '"9b2cf535f27731c974343645a3985328"')]),
    dict(name="put-object-encoded-key", method="PUT", host="127.0.0.1:9000", scheme="http",
         path="/dynamorph-test/dir/my%20file%2B%281%29%24%C3%A9%26.txt", body=BODY,
         headers=[("Content-Type", "application/octet-stream"), ("Content-MD5", md5_b64(BODY))]),
    dict(name="path-not-normalized", method="GET", host="127.0.0.1:9000", scheme="http",
         path="/dynamorph-test/a//b/./c/../d", headers=[]),
    dict(name="list-objects-v2", method="GET", host="127.0.0.1:9000", scheme="http",
         path="/dynamorph-test",
         query="list-type=2&max-keys=2&prefix=exports%2FAWSDynamoDB%2F&continuation-token=abc%2Bdef%3D%3D",
         headers=[]),
    dict(name="session-token", method="GET", host="examplebucket.s3.us-west-2.amazonaws.com",
         region="us-west-2", path="/photos/2024/cat.jpg", headers=[], token=TOKEN),
    dict(name="empty-key-listing-root", method="GET", host="examplebucket.s3.amazonaws.com",
         path="/", query="list-type=2&prefix=J&max-keys=1000", headers=[]),
]


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def sign(case):
    when = ts(case.get("when", "2024-05-17T13:01:30Z"))
    region = case.get("region", "us-east-1")
    scheme = case.get("scheme", "https")
    query = case.get("query", "")
    url = "%s://%s%s%s" % (scheme, case["host"], case["path"], "?" + query if query else "")
    creds = Credentials(AKID, SECRET, case.get("token"))
    auth = botocore.auth.S3SigV4Auth(creds, "s3", region)
    body = case.get("body", "")

    def request():
        req = AWSRequest(method=case["method"], url=url, data=body.encode("utf-8"))
        for name, value in case["headers"]:
            req.headers[name] = value
        return req

    req = request()
    req.context["timestamp"] = when.strftime(botocore.auth.SIGV4_TIMESTAMP)
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    sts = auth.string_to_sign(req, canonical)
    auth._inject_signature_to_request(req, auth.signature(sts, req))

    check = request()
    with mock.patch.object(botocore.auth, "datetime") as fake:
        fake.datetime.utcnow.return_value = when
        auth.add_auth(check)
    assert check.headers["Authorization"] == req.headers["Authorization"], case["name"]

    epoch = int((when - datetime.datetime(1970, 1, 1)).total_seconds())
    return {
        "name": case["name"],
        "access_key_id": creds.access_key,
        "secret_access_key": creds.secret_key,
        "session_token": creds.token or "",
        "region": region,
        "epoch_seconds": epoch,
        "method": case["method"],
        "host": case["host"],
        "path": case["path"],
        "query": query,
        "headers": [list(h) for h in case["headers"]],
        "body": body,
        "content_sha256": req.headers["X-Amz-Content-SHA256"],
        "expected": {
            "x_amz_date": req.headers["X-Amz-Date"],
            "authorization": req.headers["Authorization"],
            "canonical_request": canonical,
            "string_to_sign": sts,
        },
    }


def main():
    out = {
        "generator": "tests/dynamo/data/make_s3_sigv4_vectors.py",
        "botocore_version": botocore.__version__,
        "cases": [sign(c) for c in CASES],
    }
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
