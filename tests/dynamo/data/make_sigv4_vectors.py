#!/usr/bin/python3
"""Regenerates sigv4_botocore_vectors.json: SigV4 signatures computed by botocore.

Run with Debian's interpreter, which has python3-botocore (tested with 1.29.27):
    /usr/bin/python3 tests/dynamo/data/make_sigv4_vectors.py > tests/dynamo/data/sigv4_botocore_vectors.json

Each case holds only the headers the caller asks to sign; botocore adds Host, X-Amz-Date and
X-Amz-Security-Token exactly as dynamo::Signer does, so the expected Authorization header is
comparable byte for byte. Canonical request and string to sign are recorded too so that a
mismatch in the C++ test shows where the two signers part ways.
"""

import datetime
import json
import sys
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = ("IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJGMEQCIBexample+/=token"
         "//////////wEaDDEyMzQ1Njc4OTAxMiIMexampleSESSIONtoken==")
DDB_JSON = "application/x-amz-json-1.0"


def target(op):
    return ("X-Amz-Target", "DynamoDB_20120810." + op)


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


# name, when (UTC), region, service, scheme, host, path, query, headers, body, token
CASES = [
    dict(name="put-item", when="2024-05-17T13:01:30Z",
         headers=[("Content-Type", DDB_JSON), target("PutItem")],
         body='{"TableName":"app","Item":{"PK":{"S":"USER#1"},"SK":{"S":"PROFILE"}}}'),
    dict(name="session-token", when="2024-05-17T13:01:30Z", token=TOKEN,
         headers=[("Content-Type", DDB_JSON), target("Scan")],
         body='{"TableName":"app","Segment":3,"TotalSegments":8}'),
    dict(name="odd-header-spacing", when="2024-05-17T13:01:30Z",
         headers=[("Content-Type", DDB_JSON), target("GetItem"),
                  ("X-Spaced", "   a   b \t  c   "), ("X-Quoted", ' "a   b   c" '),
                  ("x-tab", "\tleading\ttab\t"), ("X-Empty", "")],
         body='{"TableName":"app"}'),
    dict(name="duplicate-headers", when="2024-05-17T13:01:30Z",
         headers=[("X-Dup", "value2"), ("Content-Type", DDB_JSON), ("x-dup", "  value2 "),
                  ("X-DUP", "value1"), target("Query"), ("My-Header", "a,b")],
         body='{"TableName":"app"}'),
    dict(name="header-name-case-sort", when="2024-05-17T13:01:30Z",
         headers=[("ZZZ-Last", "z"), ("aaa-first", "A"), ("Content-Type", DDB_JSON),
                  ("X-Amz-Target", "DynamoDB_20120810.DescribeTable"), ("x-amz-user-agent", "dynamorph")],
         body='{"TableName":"app"}'),
    dict(name="day-boundary-before", when="2024-02-29T23:59:59Z",
         headers=[("Content-Type", DDB_JSON), target("PutItem")], body='{"TableName":"t"}'),
    dict(name="day-boundary-after", when="2024-03-01T00:00:00Z",
         headers=[("Content-Type", DDB_JSON), target("PutItem")], body='{"TableName":"t"}'),
    dict(name="year-boundary", when="1999-12-31T23:59:59Z",
         headers=[("Content-Type", DDB_JSON), target("PutItem")], body='{"TableName":"t"}'),
    dict(name="after-2038", when="2038-01-19T03:14:08Z",
         headers=[("Content-Type", DDB_JSON), target("PutItem")], body='{"TableName":"t"}'),
    dict(name="utf8-body", when="2024-05-17T13:01:30Z",
         headers=[("Content-Type", DDB_JSON), target("PutItem")],
         body='{"TableName":"app","Item":{"PK":{"S":"h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c\u8a9e \U0001F680"},'
              '"N":{"S":"\u00df\u00e6\u00f8\u00e5 \u0416\u0438\u0437\u043d\u044c"}}}'),
    dict(name="empty-body", when="2024-05-17T13:01:30Z",
         headers=[("Content-Type", DDB_JSON), target("ListTables")], body=""),
    dict(name="large-body", when="2024-05-17T13:01:30Z",
         headers=[("Content-Type", DDB_JSON), target("BatchWriteItem")],
         body='{"RequestItems":{"app":[' + ",".join(
             '{"PutRequest":{"Item":{"PK":{"S":"USER#%d"},"v":{"N":"%d"}}}}' % (i, i * 7)
             for i in range(300)) + "]}}"),
    dict(name="path-needs-encoding", when="2024-05-17T13:01:30Z",
         path="/my table/\u00fcn\u00efcode/a+b=c/%41/(x)*!'$&;,:@",
         headers=[("Content-Type", "application/json")], body="{}"),
    dict(name="path-dot-segments", when="2024-05-17T13:01:30Z",
         path="//a/./b/../c//d/", headers=[("Content-Type", "application/json")], body="{}"),
    dict(name="query-sorted", when="2024-05-17T13:01:30Z", method="GET",
         query="b=2&a=10&a=1&A=z&empty=&flag", headers=[], body=""),
    dict(name="query-encoded", when="2024-05-17T13:01:30Z", method="GET",
         query="key%20one=v%2Fx&x=%E2%82%AC&tilde=a~b-c_d.e", headers=[], body=""),
    dict(name="local-endpoint-port", when="2024-05-17T13:01:30Z", scheme="http",
         host="127.0.0.1:8000", region="us-west-2",
         headers=[("Content-Type", DDB_JSON), target("CreateTable")],
         body='{"TableName":"dynamorph_state"}'),
    dict(name="other-region-service", when="2023-11-22T10:15:00Z", region="eu-west-1",
         service="streams.dynamodb", host="streams.dynamodb.eu-west-1.amazonaws.com",
         headers=[("Content-Type", DDB_JSON), ("X-Amz-Target", "DynamoDBStreams_20120810.ListStreams")],
         body="{}", token=TOKEN),
    dict(name="other-secret", when="2023-11-22T10:15:00Z", akid="ASIAXAMPLEOTHERKEY00",
         secret="je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY+/=", token="short-token",
         headers=[("Content-Type", DDB_JSON), target("UpdateItem")], body='{"TableName":"x"}'),
]


def sign(case):
    when = ts(case["when"])
    region = case.get("region", "us-east-1")
    service = case.get("service", "dynamodb")
    host = case.get("host", "dynamodb.%s.amazonaws.com" % region)
    scheme = case.get("scheme", "https")
    path = case.get("path", "/")
    query = case.get("query", "")
    url = "%s://%s%s%s" % (scheme, host, path, "?" + query if query else "")
    creds = Credentials(case.get("akid", AKID), case.get("secret", SECRET), case.get("token"))
    auth = botocore.auth.SigV4Auth(creds, service, region)

    def request():
        req = AWSRequest(method=case.get("method", "POST"), url=url,
                         data=case["body"].encode("utf-8"))
        # Assigning one by one keeps repeated names: HTTPHeaders appends, it does not replace.
        for name, value in case["headers"]:
            req.headers[name] = value
        return req

    # Step by step, as SigV4Auth.add_auth does, to capture the intermediate strings.
    req = request()
    req.context["timestamp"] = when.strftime(botocore.auth.SIGV4_TIMESTAMP)
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    sts = auth.string_to_sign(req, canonical)
    auth._inject_signature_to_request(req, auth.signature(sts, req))

    # And through the public entry point with the clock pinned: both must agree.
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
        "service": service,
        "epoch_seconds": epoch,
        "method": case.get("method", "POST"),
        "host": host,
        "path": path,
        "query": query,
        "headers": [list(h) for h in case["headers"]],
        "body": case["body"],
        "expected": {
            "x_amz_date": req.headers["X-Amz-Date"],
            "x_amz_security_token": req.headers.get("X-Amz-Security-Token", ""),
            "authorization": req.headers["Authorization"],
            "canonical_request": canonical,
            "string_to_sign": sts,
        },
    }


def main():
    out = {
        "generator": "tests/dynamo/data/make_sigv4_vectors.py",
        "botocore_version": botocore.__version__,
        "cases": [sign(c) for c in CASES],
    }
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
