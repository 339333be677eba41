#!/usr/bin/python3
"""Tests for tests/support/fault_proxy.py against DynamoDB Local.

    /usr/bin/python3 tests/support/fault_proxy_test.py            # run the tests (-v for names)
    /usr/bin/python3 tests/support/fault_proxy_test.py --bench    # proxy overhead, medians of 3

Starts DynamoDB Local with scripts/dynamodb-local.sh in its own temporary state dir and stops
it at the end.  boto3 clients make exactly one attempt, so every injected fault is visible.
"""

import asyncio
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib
from pathlib import Path

for _v in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_v, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402
from botocore.config import Config  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROXY = HERE / "fault_proxy.py"
DDB_SCRIPT = ROOT / "scripts" / "dynamodb-local.sh"
PY = "/usr/bin/python3"

TABLE = "fp_items"
OTHER = "fp_other"
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0")

THROTTLE_BODY = (b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
                 b'"message":"The level of configured provisioned throughput for the table was '
                 b'exceeded. Consider increasing your provisioning level with the UpdateTable API."}')

ddb_url = None
ddb_state = None
proxy = None


class ProxyProcess:
    """One fault_proxy.py child process."""

    def __init__(self, upstream, *extra):
        self.proc = subprocess.Popen([PY, str(PROXY), "--upstream", upstream,
                                      "--exit-on-stdin-eof", *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("fault_proxy did not print its port: %r" % line)
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, method, name, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = None if body is None else (body if isinstance(body, (bytes, str))
                                              else json.dumps(body))
            c.request(method, "/__proxy__/" + name, body=data)
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def set_rules(self, rules):
        status, resp = self.control("POST", "rules", rules)
        if status != 200:
            raise AssertionError("rules rejected: %s" % resp)

    def stats(self):
        return self.control("GET", "stats")[1]

    def reset(self):
        self.control("POST", "reset")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                f.close()


def client(endpoint, **kw):
    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                 connect_timeout=5, read_timeout=kw.pop("read_timeout", 20),
                 max_pool_connections=kw.pop("max_pool_connections", 10), **kw)
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test", config=cfg)


def start_ddb():
    global ddb_url, ddb_state
    ddb_state = tempfile.mkdtemp(prefix="fp-test-ddb-")
    out = subprocess.run(["bash", str(DDB_SCRIPT), "start", ddb_state], check=True,
                         stdout=subprocess.PIPE, text=True)
    ddb_url = out.stdout.strip().splitlines()[-1]
    return ddb_url


def stop_ddb():
    if ddb_state:
        subprocess.run(["bash", str(DDB_SCRIPT), "stop", ddb_state], check=False)
        shutil.rmtree(ddb_state, ignore_errors=True)


def create_table(c, name):
    c.create_table(TableName=name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                   BillingMode="PAY_PER_REQUEST")
    c.get_waiter("table_exists").wait(TableName=name)


def setUpModule():
    global proxy
    start_ddb()
    try:
        d = client(ddb_url)
        create_table(d, TABLE)
        create_table(d, OTHER)
        d.close()
        proxy = ProxyProcess(ddb_url)
    except BaseException:
        stop_ddb()
        raise


def tearDownModule():
    try:
        if proxy:
            proxy.stop()
    finally:
        stop_ddb()


def raw_request(op, body, extra_headers=()):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    head = ["POST / HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-amz-json-1.0",
            "X-Amz-Target: DynamoDB_20120810." + op, "Authorization: " + AUTH,
            "Content-Length: %d" % len(body), *extra_headers, "", ""]
    return "\r\n".join(head).encode() + body


def read_response(f):
    """Read one HTTP response from a binary file object; returns (status, headers, body)."""
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", 0)))
    return status, headers, body


class Base(unittest.TestCase):
    def setUp(self):
        proxy.reset()
        self.direct = self.client(ddb_url)
        self.via = self.client(proxy.url)
        self.prefix = self.id().rsplit(".", 1)[-1] + "#"

    def client(self, url, **kw):
        c = client(url, **kw)
        self.addCleanup(c.close)
        return c

    def key(self, i):
        return {"pk": {"S": "%s%s" % (self.prefix, i)}}

    def item(self, i, **extra):
        it = self.key(i)
        it["v"] = {"N": str(i) if isinstance(i, int) else "0"}
        for k, v in extra.items():
            it[k] = {"S": v}
        return it

    def present(self, key, table=TABLE):
        return "Item" in self.direct.get_item(TableName=table, Key=key, ConsistentRead=True)

    def put_via(self, i, c=None):
        (c or self.via).put_item(TableName=TABLE, Item=self.item(i))


class PassThroughTest(Base):
    def test_forwards_requests_and_headers(self):
        self.put_via(1)
        r = self.via.get_item(TableName=TABLE, Key=self.key(1))
        self.assertEqual(r["Item"], self.item(1))
        h = r["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual(h["content-type"], "application/x-amz-json-1.0")
        self.assertIn("x-amz-crc32", h)          # upstream's, passed through
        self.assertIn("x-amzn-requestid", h)
        st = proxy.stats()
        self.assertEqual(st["requests"], {"PutItem": 1, "GetItem": 1})
        self.assertEqual(st["faults"], {})
        self.assertEqual(st["total_requests"], 2)

    def test_upstream_errors_pass_through(self):
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            self.via.get_item(TableName="no_such_table", Key=self.key(1))
        self.assertEqual(cm.exception.response["Error"]["Code"], "ResourceNotFoundException")

    def test_keep_alive_and_upstream_pool(self):
        c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        sock_ids = set()
        for i in range(50):
            c.request("POST", "/", body=json.dumps({"TableName": TABLE, "Key": self.key(i)}),
                      headers={"Content-Type": "application/x-amz-json-1.0",
                               "X-Amz-Target": "DynamoDB_20120810.GetItem", "Authorization": AUTH})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            sock_ids.add(id(c.sock))
        c.close()
        self.assertEqual(len(sock_ids), 1)       # one client connection for all 50
        st = proxy.stats()
        self.assertEqual(st["requests"], {"GetItem": 50})
        self.assertLessEqual(st["upstream_connections"], 3)   # pooled, not one per request

    def test_expect_100_continue(self):
        body = json.dumps({"TableName": TABLE, "Item": self.item(1, pad="x" * 4000)}).encode()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            f = s.makefile("rb")
            head = raw_request("PutItem", b"", ["Expect: 100-continue"])
            head = head.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body))
            s.sendall(head)
            self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
            self.assertEqual(f.readline(), b"\r\n")
            s.sendall(body)
            status, headers, rbody = read_response(f)
            self.assertEqual(status, 200, rbody)
            # the same connection stays usable
            s.sendall(raw_request("GetItem", {"TableName": TABLE, "Key": self.key(1)}))
            status, headers, rbody = read_response(f)
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(rbody)["Item"]["pad"]["S"], "x" * 4000)

    def test_curl_with_expect(self):
        if not shutil.which("curl"):
            self.skipTest("no curl")
        body = json.dumps({"TableName": TABLE, "Item": self.item(2, pad="y" * 3000)})
        out = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
             "-H", "Expect: 100-continue", "-H", "Content-Type: application/x-amz-json-1.0",
             "-H", "X-Amz-Target: DynamoDB_20120810.PutItem", "-H", "Authorization: " + AUTH,
             "--data-binary", body, proxy.url + "/"], stdout=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(out.stdout, "200")
        self.assertTrue(self.present(self.key(2)))

    def test_pipelined_and_chunked_requests(self):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            f = s.makefile("rb")
            body = json.dumps({"TableName": TABLE, "Item": self.item(3)}).encode()
            chunked = raw_request("PutItem", b"").replace(
                b"Content-Length: 0", b"Transfer-Encoding: chunked")
            chunked += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
            get = raw_request("GetItem", {"TableName": TABLE, "Key": self.key(3),
                                          "ConsistentRead": True})
            s.sendall(chunked + get)             # two requests in one write
            st1, _, b1 = read_response(f)
            st2, _, b2 = read_response(f)
            self.assertEqual((st1, st2), (200, 200), (b1, b2))
            self.assertEqual(json.loads(b2)["Item"], self.item(3))

    def test_connection_close_is_honoured(self):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            f = s.makefile("rb")
            s.sendall(raw_request("GetItem", {"TableName": TABLE, "Key": self.key(1)},
                                  ["Connection: close"]))
            status, headers, _ = read_response(f)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("connection"), "close")
            self.assertEqual(f.read(), b"")

    def test_concurrent_clients(self):
        errors = []

        def work(t):
            c = self.client(proxy.url)
            try:
                for i in range(40):
                    self.put_via("%d-%d" % (t, i), c)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(proxy.stats()["requests"], {"PutItem": 320})
        for t in range(8):
            self.assertTrue(self.present(self.key("%d-39" % t)))

    def test_large_item(self):
        big = "z" * (390 * 1024)
        self.via.put_item(TableName=TABLE, Item=self.item(4, big=big))
        r = self.via.get_item(TableName=TABLE, Key=self.key(4))
        self.assertEqual(r["Item"]["big"]["S"], big)


class ErrorFaultTest(Base):
    CASES = {
        "throttle": (400, "ProvisionedThroughputExceededException",
                     "The level of configured provisioned throughput for the table was exceeded. "
                     "Consider increasing your provisioning level with the UpdateTable API."),
        "throttling": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
        "request_limit": (400, "RequestLimitExceeded", None),
        "http500": (500, "InternalServerError", "Internal server error"),
        "http503": (503, "ServiceUnavailableException", None),
    }

    def test_each_error_kind(self):
        for n, (kind, (status, code, message)) in enumerate(self.CASES.items()):
            with self.subTest(kind=kind):
                proxy.set_rules([{"op": "PutItem", "fault": kind, "count": 1}])
                with self.assertRaises(botocore.exceptions.ClientError) as cm:
                    self.put_via(n)
                resp = cm.exception.response
                self.assertEqual(resp["Error"]["Code"], code)
                if message is not None:
                    self.assertEqual(resp["Error"]["Message"], message)
                meta = resp["ResponseMetadata"]
                self.assertEqual(meta["HTTPStatusCode"], status)
                self.assertEqual(meta["HTTPHeaders"]["content-type"], "application/x-amz-json-1.0")
                self.assertEqual(len(meta["HTTPHeaders"]["x-amzn-requestid"]), 52)
                self.assertIn("date", meta["HTTPHeaders"])
                self.assertFalse(self.present(self.key(n)))   # never reached the server
                self.put_via(n)                                # count=1: next one passes
                self.assertTrue(self.present(self.key(n)))
        st = proxy.stats()
        self.assertEqual(st["faults"], {k: 1 for k in self.CASES})
        self.assertEqual(st["requests"], {"PutItem": 2 * len(self.CASES)})

    def test_exact_throttle_body_and_headers(self):
        proxy.set_rules([{"op": "GetItem", "fault": "throttle"}])
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            f = s.makefile("rb")
            ids = set()
            for _ in range(2):   # the connection stays open after an injected error
                s.sendall(raw_request("GetItem", {"TableName": TABLE, "Key": self.key(1)}))
                status, headers, body = read_response(f)
                self.assertEqual(status, 400)
                self.assertEqual(body, THROTTLE_BODY)
                self.assertEqual(headers["content-type"], "application/x-amz-json-1.0")
                self.assertEqual(headers["x-amz-crc32"], str(zlib.crc32(body)))
                ids.add(headers["x-amzn-requestid"])
            self.assertEqual(len(ids), 2)                      # random per response

    def test_generic_error_kind(self):
        proxy.set_rules([{"op": "PutItem", "fault": "error", "status": 400, "count": 1,
                          "type": "com.amazonaws.dynamodb.v20120810#ValidationException",
                          "message": "nope"}])
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            self.put_via(1)
        self.assertEqual(cm.exception.response["Error"]["Code"], "ValidationException")
        self.assertEqual(cm.exception.response["Error"]["Message"], "nope")


class DropFaultTest(Base):
    def test_drop_before_never_reaches_server(self):
        proxy.set_rules([{"op": "PutItem", "fault": "drop_before", "count": 1}])
        with self.assertRaises(botocore.exceptions.ConnectionClosedError):
            self.put_via(1)
        self.assertFalse(self.present(self.key(1)))
        self.put_via(2)   # the client reconnects and the next request goes through
        self.assertTrue(self.present(self.key(2)))
        self.assertEqual(proxy.stats()["faults"], {"drop_before": 1})

    def test_drop_after_is_applied_by_server(self):
        proxy.set_rules([{"op": "PutItem", "fault": "drop_after", "count": 1}])
        with self.assertRaises(botocore.exceptions.ConnectionClosedError):
            self.put_via(1)
        self.assertTrue(self.present(self.key(1)))
        self.assertEqual(proxy.stats()["faults"], {"drop_after": 1})

    def test_hang_never_reaches_server_nor_answers(self):
        proxy.set_rules([{"op": "PutItem", "fault": "hang", "count": 1}])
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(raw_request("PutItem", {"TableName": TABLE, "Item": self.item(1)}))
            s.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                s.recv(100)   # no answer, and the connection is still open
        time.sleep(0.2)
        self.assertFalse(self.present(self.key(1)))
        self.put_via(2)
        self.assertTrue(self.present(self.key(2)))
        self.assertEqual(proxy.stats()["faults"], {"hang": 1})

    def test_drop_with_reset(self):
        for kind, applied in (("drop_before", False), ("drop_after", True)):
            with self.subTest(kind=kind):
                proxy.set_rules([{"op": "PutItem", "fault": kind, "count": 1, "rst": True}])
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
                    s.sendall(raw_request("PutItem", {"TableName": TABLE, "Item": self.item(kind)}))
                    with self.assertRaises(ConnectionResetError):
                        s.recv(100)
                self.assertEqual(self.present(self.key(kind)), applied)

    def test_drop_before_with_expect_continue(self):
        proxy.set_rules([{"op": "PutItem", "fault": "drop_before"}])
        body = json.dumps({"TableName": TABLE, "Item": self.item(5, pad="p" * 2000)}).encode()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            f = s.makefile("rb")
            head = raw_request("PutItem", b"", ["Expect: 100-continue"])
            s.sendall(head.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body)))
            self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
            f.readline()
            s.sendall(body)
            self.assertEqual(f.read(), b"")     # closed without an answer
        self.assertFalse(self.present(self.key(5)))


class CutBodyTest(Base):
    def test_truncate_body_closes_mid_body_after_the_server_applied(self):
        proxy.set_rules([{"op": "GetItem", "fault": "truncate_body", "count": 1}])
        self.put_via(1)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(raw_request("GetItem", {"TableName": TABLE, "Key": self.key(1)}))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertEqual(len(body), length // 2)   # then the connection closed
        self.assertEqual(proxy.stats()["faults"], {"truncate_body": 1})
        self.assertEqual(self.via.get_item(TableName=TABLE, Key=self.key(1))["Item"], self.item(1))

    def test_malformed_json_is_a_complete_answer_that_is_not_json(self):
        proxy.set_rules([{"op": "PutItem", "fault": "malformed_json", "count": 1}])
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(raw_request("PutItem", {"TableName": TABLE, "Item": self.item(1),
                                              "ReturnValues": "ALL_OLD"}))
            resp = http.client.HTTPResponse(s)
            resp.begin()
            body = resp.read()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("x-amz-crc32"), str(zlib.crc32(body)))
        with self.assertRaises(ValueError):
            json.loads(body)
        self.assertTrue(self.present(self.key(1)))  # forwarded: the server applied it
        self.assertEqual(proxy.stats()["faults"], {"malformed_json": 1})


class RequestLogTest(Base):
    def test_log_names_op_time_size_tables_and_fault(self):
        proxy.set_rules([{"op": "GetItem", "fault": "throttle", "count": 1}])
        t0 = time.time()
        self.put_via(1)
        with self.assertRaises(botocore.exceptions.ClientError):
            self.via.get_item(TableName=TABLE, Key=self.key(1))
        self.via.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": self.item(2)}}]})
        status, log = proxy.control("GET", "log")
        self.assertEqual(status, 200)
        self.assertEqual([(e["op"], e["tables"], e["fault"]) for e in log],
                         [("PutItem", [TABLE], None), ("GetItem", [TABLE], "throttle"),
                          ("BatchWriteItem", [TABLE], None)])
        self.assertTrue(all(t0 <= e["t"] <= e["done"] <= time.time() for e in log))
        self.assertTrue(all(e["bytes"] > 0 for e in log))
        self.assertEqual({e["key"] for e in log}, {"test"})  # the clients' access key id
        proxy.reset()
        self.assertEqual(proxy.control("GET", "log")[1], [])


class PartialUnprocessedTest(Base):
    def test_batch_write_item(self):
        # a pre-existing item in the other table, deleted by the batch
        self.direct.put_item(TableName=OTHER, Item=self.item("old"))
        mine = [{"PutRequest": {"Item": self.item(i)}} for i in range(10)]
        other = [{"PutRequest": {"Item": self.item("o1")}},
                 {"DeleteRequest": {"Key": self.key("old")}},
                 {"PutRequest": {"Item": self.item("o3")}}]
        proxy.set_rules([{"op": "BatchWriteItem", "fault": "partial_unprocessed", "count": 1}])
        r = self.via.batch_write_item(RequestItems={TABLE: mine, OTHER: other})
        un = r["UnprocessedItems"]
        # exactly the left-out requests, in DynamoDB's format: the second half of each table
        self.assertEqual(un, {TABLE: mine[5:], OTHER: other[2:]})
        for i in range(10):
            self.assertEqual(self.present(self.key(i)), i < 5, i)
        self.assertTrue(self.present(self.key("o1"), OTHER))
        self.assertFalse(self.present(self.key("old"), OTHER))   # the delete was applied
        self.assertFalse(self.present(self.key("o3"), OTHER))
        # the client re-sends them; count=1 so this goes through whole
        r = self.via.batch_write_item(RequestItems=un)
        self.assertEqual(r["UnprocessedItems"], {})
        for i in range(10):
            self.assertTrue(self.present(self.key(i)))
        self.assertTrue(self.present(self.key("o3"), OTHER))
        st = proxy.stats()
        self.assertEqual(st["faults"], {"partial_unprocessed": 1})
        self.assertEqual(st["requests"], {"BatchWriteItem": 2})

    def test_general_property_and_resend_loop(self):
        # unlimited rule: every re-send is cut again, until single items pass
        proxy.set_rules([{"op": "*", "fault": "partial_unprocessed"}])
        pending = {TABLE: [{"PutRequest": {"Item": self.item(i)}} for i in range(25)]}
        rounds = 0
        while pending:
            sent = [json.dumps(w, sort_keys=True) for w in pending[TABLE]]
            r = self.via.batch_write_item(RequestItems=pending)
            un = r["UnprocessedItems"]
            left = [json.dumps(w, sort_keys=True) for w in un.get(TABLE, [])]
            if len(sent) > 1:
                self.assertTrue(0 < len(left) < len(sent))
            self.assertTrue(set(left) <= set(sent))
            for w in pending[TABLE]:
                k = w["PutRequest"]["Item"]["pk"]
                self.assertEqual(self.present({"pk": k}), json.dumps(w, sort_keys=True) not in left)
            pending = un
            rounds += 1
        self.assertEqual(rounds, 5)     # 25 -> 12 -> 6 -> 3 -> 1 (a single item is not split)
        for i in range(25):
            self.assertTrue(self.present(self.key(i)))
        self.assertEqual(proxy.stats()["faults"], {"partial_unprocessed": 4})

    def test_single_item_batch_is_not_split(self):
        proxy.set_rules([{"op": "BatchWriteItem", "fault": "partial_unprocessed"}])
        r = self.via.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": self.item(1)}}]})
        self.assertEqual(r["UnprocessedItems"], {})
        self.assertTrue(self.present(self.key(1)))
        self.assertEqual(proxy.stats()["faults"], {})

    def test_one_item_per_table(self):
        proxy.set_rules([{"op": "BatchWriteItem", "fault": "partial_unprocessed"}])
        a = [{"PutRequest": {"Item": self.item("a")}}]
        b = [{"PutRequest": {"Item": self.item("b")}}]
        r = self.via.batch_write_item(RequestItems={TABLE: a, OTHER: b})
        self.assertEqual(r["UnprocessedItems"], {OTHER: b})
        self.assertTrue(self.present(self.key("a"), TABLE))
        self.assertFalse(self.present(self.key("b"), OTHER))

    def test_batch_get_item(self):
        for i in range(6):
            self.direct.put_item(TableName=TABLE, Item=self.item(i, extra="e"))
        keys = [self.key(i) for i in range(6)]
        req = {"Keys": keys, "ProjectionExpression": "#p, v", "ExpressionAttributeNames": {"#p": "pk"},
               "ConsistentRead": True}
        proxy.set_rules([{"op": "BatchGetItem", "fault": "partial_unprocessed", "count": 1}])
        r = self.via.batch_get_item(RequestItems={TABLE: req})
        got = sorted(it["pk"]["S"] for it in r["Responses"][TABLE])
        self.assertEqual(got, sorted(k["pk"]["S"] for k in keys[:3]))
        for it in r["Responses"][TABLE]:
            self.assertNotIn("extra", it)        # projection was kept in the forwarded request
        expect = dict(req)
        expect["Keys"] = keys[3:]
        self.assertEqual(r["UnprocessedKeys"], {TABLE: expect})
        r = self.via.batch_get_item(RequestItems=r["UnprocessedKeys"])
        self.assertEqual(sorted(it["pk"]["S"] for it in r["Responses"][TABLE]),
                         sorted(k["pk"]["S"] for k in keys[3:]))

    def test_partial_response_checksum_is_valid(self):
        proxy.set_rules([{"op": "BatchWriteItem", "fault": "partial_unprocessed"}])
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            f = s.makefile("rb")
            s.sendall(raw_request("BatchWriteItem", {"RequestItems": {TABLE: [
                {"PutRequest": {"Item": self.item(i)}} for i in range(4)]}}))
            status, headers, body = read_response(f)
            self.assertEqual(status, 200)
            self.assertEqual(headers["x-amz-crc32"], str(zlib.crc32(body)))
            self.assertEqual(len(json.loads(body)["UnprocessedItems"][TABLE]), 2)

    def test_other_ops_unaffected(self):
        proxy.set_rules([{"op": "*", "fault": "partial_unprocessed"}])
        self.put_via(1)
        self.assertTrue(self.present(self.key(1)))
        self.assertEqual(proxy.stats()["faults"], {})


class DelayTest(Base):
    def test_delay(self):
        self.put_via(1)
        proxy.set_rules([{"op": "GetItem", "fault": "delay", "ms": 300, "count": 1}])
        t0 = time.monotonic()
        r = self.via.get_item(TableName=TABLE, Key=self.key(1))
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual(r["Item"], self.item(1))
        t0 = time.monotonic()
        self.via.get_item(TableName=TABLE, Key=self.key(1))
        self.assertLess(time.monotonic() - t0, 0.3)

    def test_delay_does_not_block_other_connections(self):
        proxy.set_rules([{"op": "PutItem", "fault": "delay", "ms": 1500}])
        t = threading.Thread(target=self.put_via, args=(1, self.client(proxy.url)))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.1)
        self.via.get_item(TableName=TABLE, Key=self.key(2))
        self.assertLess(time.monotonic() - t0, 1.0)
        t.join()
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        self.assertTrue(self.present(self.key(1)))

    def test_client_timeout_during_delay_still_applies(self):
        proxy.set_rules([{"op": "PutItem", "fault": "delay", "ms": 800, "count": 1}])
        with self.assertRaises(botocore.exceptions.ReadTimeoutError):
            self.put_via(1, self.client(proxy.url, read_timeout=0.3))
        time.sleep(1.0)
        self.assertTrue(self.present(self.key(1)))


class RuleSemanticsTest(Base):
    def outcomes(self, n, op="GetItem"):
        res = []
        for i in range(n):
            try:
                if op == "GetItem":
                    self.via.get_item(TableName=TABLE, Key=self.key(i))
                else:
                    self.put_via(i)
                res.append("ok")
            except botocore.exceptions.ClientError as e:
                res.append(e.response["Error"]["Code"])
        return res

    def test_count(self):
        proxy.set_rules([{"op": "GetItem", "fault": "http500", "count": 2}])
        bad = "InternalServerError"
        self.assertEqual(self.outcomes(5), [bad, bad, "ok", "ok", "ok"])
        rule = proxy.stats()["rules"][0]
        self.assertEqual((rule["seen"], rule["fired"]), (5, 2))

    def test_count_zero_and_unlimited(self):
        proxy.set_rules([{"op": "GetItem", "fault": "http500", "count": 0}])
        self.assertEqual(self.outcomes(3), ["ok"] * 3)
        proxy.set_rules([{"op": "GetItem", "fault": "http500"}])
        self.assertEqual(self.outcomes(20), ["InternalServerError"] * 20)

    def test_after(self):
        proxy.set_rules([{"op": "GetItem", "fault": "throttle", "after": 2, "count": 1}])
        t = "ProvisionedThroughputExceededException"
        self.assertEqual(self.outcomes(5), ["ok", "ok", t, "ok", "ok"])

    def test_body_contains(self):
        proxy.set_rules([{"op": "PutItem", "fault": "http500", "body_contains": "marked"}])
        self.put_via(1)
        with self.assertRaises(botocore.exceptions.ClientError):
            self.via.put_item(TableName=TABLE, Item=self.item(2, note="marked"))
        self.assertFalse(self.present(self.key(2)))
        rule = proxy.stats()["rules"][0]
        self.assertEqual((rule["seen"], rule["fired"]), (1, 1))
        status, body = proxy.control("POST", "rules", [{"fault": "hang", "body_contains": ""}])
        self.assertEqual(status, 400)
        self.assertIn("body_contains", body["error"])

    def test_after_counts_only_matching_ops(self):
        proxy.set_rules([{"op": "PutItem", "fault": "throttle", "after": 1, "count": 1}])
        self.outcomes(3, "GetItem")     # do not count
        t = "ProvisionedThroughputExceededException"
        self.assertEqual(self.outcomes(3, "PutItem"), ["ok", t, "ok"])

    def test_probability_is_deterministic_with_seed(self):
        rules = [{"op": "GetItem", "fault": "http503", "probability": 0.5, "seed": 1234}]
        proxy.set_rules(rules)
        first = self.outcomes(60)
        proxy.set_rules(rules)              # fresh rule state, same seed
        second = self.outcomes(60)
        self.assertEqual(first, second)
        faults = first.count("ServiceUnavailableException")
        self.assertTrue(15 <= faults <= 45, faults)
        self.assertEqual(faults + first.count("ok"), 60)
        proxy.set_rules([dict(rules[0], seed=99)])
        self.assertNotEqual(self.outcomes(60), first)

    def test_probability_bounds(self):
        proxy.set_rules([{"op": "GetItem", "fault": "http500", "probability": 0.0}])
        self.assertEqual(self.outcomes(10), ["ok"] * 10)
        proxy.set_rules([{"op": "GetItem", "fault": "http500", "probability": 1}])
        self.assertEqual(self.outcomes(10), ["InternalServerError"] * 10)

    def test_probability_with_count(self):
        proxy.set_rules([{"op": "GetItem", "fault": "http500", "probability": 0.5, "seed": 5,
                          "count": 3}])
        self.assertEqual(self.outcomes(60).count("InternalServerError"), 3)

    def test_op_matching(self):
        proxy.set_rules([{"op": "BatchWriteItem", "fault": "http500"}])
        self.assertEqual(self.outcomes(2), ["ok", "ok"])
        proxy.set_rules([{"op": ["PutItem", "GetItem"], "fault": "http500"}])
        self.assertEqual(self.outcomes(2), ["InternalServerError"] * 2)
        proxy.set_rules([{"op": "*", "fault": "throttling"}])
        self.assertEqual(self.outcomes(1, "PutItem"), ["ThrottlingException"])
        with self.assertRaises(botocore.exceptions.ClientError):
            self.via.list_tables()

    def test_first_firing_rule_wins_and_all_matching_rules_count(self):
        proxy.set_rules([{"op": "GetItem", "fault": "http500", "count": 1},
                         {"op": "GetItem", "fault": "throttle", "after": 1, "count": 1},
                         {"op": "*", "fault": "http503", "after": 3, "count": 1}])
        self.assertEqual(self.outcomes(5), ["InternalServerError",
                                            "ProvisionedThroughputExceededException", "ok",
                                            "ServiceUnavailableException", "ok"])
        rules = proxy.stats()["rules"]
        self.assertEqual([(r["seen"], r["fired"]) for r in rules], [(5, 1), (5, 1), (5, 1)])


class StatsAndControlTest(Base):
    def test_stats_and_reset(self):
        proxy.set_rules([{"op": "PutItem", "fault": "throttle", "count": 2},
                         {"op": "GetItem", "fault": "http500", "count": 1}])
        for i in range(4):
            try:
                self.put_via(i)
            except botocore.exceptions.ClientError:
                pass
        for i in range(3):
            try:
                self.via.get_item(TableName=TABLE, Key=self.key(i))
            except botocore.exceptions.ClientError:
                pass
        self.via.list_tables()
        st = proxy.stats()
        self.assertEqual(st["requests"], {"PutItem": 4, "GetItem": 3, "ListTables": 1})
        self.assertEqual(st["faults"], {"throttle": 2, "http500": 1})
        self.assertEqual((st["total_requests"], st["total_faults"]), (8, 3))
        # setting rules keeps the counters; reset clears rules and counters
        proxy.set_rules([])
        self.assertEqual(proxy.stats()["total_requests"], 8)
        proxy.set_rules([{"op": "*", "fault": "http500"}])
        proxy.reset()
        st = proxy.stats()
        self.assertEqual((st["requests"], st["faults"], st["rules"]), ({}, {}, []))
        self.put_via(9)    # no rules any more

    def test_control_api(self):
        self.assertEqual(proxy.control("POST", "rules", b"not json")[0], 400)
        status, resp = proxy.control("POST", "rules", [{"op": "GetItem", "fault": "bogus"}])
        self.assertEqual(status, 400)
        self.assertIn("bogus", resp["error"])
        self.assertEqual(proxy.control("POST", "rules", [{"op": "GetItem", "fault": "throttle",
                                                          "cnt": 1}])[0], 400)
        self.assertEqual(proxy.control("POST", "rules", [{"fault": "delay"}])[0], 400)
        self.assertEqual(proxy.control("POST", "rules", [{"fault": "throttle",
                                                          "probability": 2}])[0], 400)
        self.assertEqual(proxy.control("GET", "nothing")[0], 404)
        rules = [{"op": "GetItem", "fault": "delay", "ms": 1}]
        self.assertEqual(proxy.control("POST", "rules", rules)[0], 200)
        self.assertEqual(proxy.control("GET", "rules")[1],
                         [dict(rules[0], seen=0, fired=0)])
        # control calls are not counted as requests
        self.assertEqual(proxy.stats()["total_requests"], 0)

    def test_rules_file_and_stdin_eof(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump([{"op": "ListTables", "fault": "request_limit", "count": 1}], f)
        p = ProxyProcess(ddb_url, "--rules", f.name)
        try:
            c = self.client(p.url)
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                c.list_tables()
            self.assertEqual(cm.exception.response["Error"]["Code"], "RequestLimitExceeded")
            c.list_tables()
            self.assertEqual(p.stats()["faults"], {"request_limit": 1})
            p.proc.stdin.close()                # the parent "dies": the proxy exits by itself
            self.assertEqual(p.proc.wait(10), 0)
        finally:
            p.stop()
            os.unlink(f.name)

    def test_bad_rules_file_fails_fast(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('[{"fault": "nope"}]')
        try:
            r = subprocess.run([PY, str(PROXY), "--upstream", ddb_url, "--rules", f.name],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"nope", r.stderr)
            self.assertEqual(r.stdout, b"")
        finally:
            os.unlink(f.name)

    def test_upstream_down_gives_502(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = ProxyProcess("http://127.0.0.1:%d" % port)
        try:
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                self.client(p.url).list_tables()
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 502)
        finally:
            p.stop()


CPP_MAIN = r"""
#include "fault_proxy.h"
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>
int main(int argc, char** argv) {
  if (argc < 2) return 2;
  pid_t pid;
  {
    dynamorph::test::FaultProxy p(argv[1]);
    pid = p.pid();
    std::printf("%s\n", p.endpoint().c_str());
    std::fflush(stdout);
    p.set_rules(R"([{"op":"ListTables","fault":"http500","count":1}])");
    try {
      p.set_rules(R"([{"fault":"bogus"}])");
      return 3;
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).find("bogus") == std::string::npos) return 4;
    }
    std::printf("%s\n", p.stats_json().c_str());
    std::fflush(stdout);
    std::getchar();   // the Python side sends requests through the proxy meanwhile
    std::printf("%s\n", p.stats_json().c_str());
    p.reset();
    std::printf("%s\n", p.stats_json().c_str());
    std::fflush(stdout);
  }
  return kill(pid, 0) == 0 ? 5 : 0;   // the child is gone (killed and reaped)
}
"""


class CppHelperTest(Base):
    def test_cpp_helper(self):
        gxx = shutil.which("g++")
        if not gxx or not Path("/usr/include/x86_64-linux-gnu/curl/curl.h").exists() and \
                not Path("/usr/include/curl/curl.h").exists():
            self.skipTest("no g++ or libcurl headers")
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "main.cpp"
            src.write_text(CPP_MAIN)
            exe = Path(d) / "t"
            subprocess.run([gxx, "-std=c++20", "-Wall", "-Wextra", "-Werror", "-O1",
                            "-I", str(HERE), str(HERE / "fault_proxy.cpp"), str(src),
                            "-lcurl", "-o", str(exe)], check=True)
            p = subprocess.Popen([str(exe), ddb_url], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            try:
                endpoint = p.stdout.readline().strip()
                self.assertRegex(endpoint, r"^http://127\.0\.0\.1:\d+$")
                st = json.loads(p.stdout.readline())
                self.assertEqual(st["rules"][0]["fault"], "http500")
                c = self.client(endpoint)
                with self.assertRaises(botocore.exceptions.ClientError):
                    c.list_tables()
                c.list_tables()
                p.stdin.write("\n")
                p.stdin.flush()
                st = json.loads(p.stdout.readline())
                self.assertEqual(st["requests"], {"ListTables": 2})
                self.assertEqual(st["faults"], {"http500": 1})
                st = json.loads(p.stdout.readline())
                self.assertEqual((st["requests"], st["rules"]), ({}, []))
                self.assertEqual(p.wait(30), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stdin.close()
                p.stdout.close()


# ------------------------------------------------------------------------------------------
# --bench: requests/s for small GetItem calls, direct vs through the proxy


async def _raw_load(port, seconds, conns, body):
    req = raw_request("GetItem", body)
    count = 0
    stop_at = time.monotonic() + seconds

    async def worker():
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop_at:
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                i = head.lower().find(b"content-length:")
                n = int(head[i + 15:head.index(b"\r\n", i)])
                await reader.readexactly(n)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head)
                count += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return count / (time.monotonic() - t0)


def _boto_load(url, seconds, key):
    c = client(url)
    try:
        return _boto_rate(c, seconds, key)
    finally:
        c.close()


def _boto_rate(c, seconds, key):
    c.get_item(TableName=TABLE, Key=key)   # warm the connection
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        c.get_item(TableName=TABLE, Key=key)
        n += 1
    return n / (time.monotonic() - t0)


CANNED_BODY = b'{"Item":{"pk":{"S":"bench"},"v":{"S":"' + b"x" * 100 + b'"}}}'
CANNED_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                 b"x-amzn-RequestId: canned\r\nx-amz-crc32: %d\r\nContent-Length: %d\r\n\r\n%s"
                 % (zlib.crc32(CANNED_BODY), len(CANNED_BODY), CANNED_BODY))


class _CannedProtocol(asyncio.Protocol):
    """A canned-answer HTTP/1.1 server, to measure the proxy's own capacity."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        out = []
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                break
            j = self.buf.lower().find(b"content-length:", 0, i)
            n = int(self.buf[j + 15:self.buf.index(b"\r\n", j)]) if j >= 0 else 0
            if len(self.buf) < i + 4 + n:
                break
            self.buf = self.buf[i + 4 + n:]
            out.append(CANNED_RESPONSE)
        if out:
            self.transport.write(b"".join(out))


def canned_upstream():
    async def run():
        server = await asyncio.get_running_loop().create_server(_CannedProtocol, "127.0.0.1", 0)
        print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()
    asyncio.run(run())


def bench():
    global proxy
    start_ddb()
    try:
        d = client(ddb_url)
        create_table(d, TABLE)
        key = {"pk": {"S": "bench"}}
        d.put_item(TableName=TABLE, Item={"pk": {"S": "bench"}, "v": {"S": "x" * 100}})
        proxy = ProxyProcess(ddb_url)
        ddb_port = int(ddb_url.rsplit(":", 1)[1])
        body = {"TableName": TABLE, "Key": key}
        # warm up the JVM and the proxy
        asyncio.run(_raw_load(ddb_port, 3, 8, body))
        asyncio.run(_raw_load(proxy.port, 3, 8, body))
        results = {}
        for name, fn in [
            ("raw HTTP client, 8 keep-alive connections",
             lambda port: asyncio.run(_raw_load(port, 3, 8, body))),
            ("raw HTTP client, 1 connection",
             lambda port: asyncio.run(_raw_load(port, 3, 1, body))),
            ("boto3, 1 client, sequential",
             lambda port: _boto_load("http://127.0.0.1:%d" % port, 3, key)),
        ]:
            direct, via = [], []
            for _ in range(3):
                direct.append(fn(ddb_port))
                via.append(fn(proxy.port))
            results[name] = (statistics.median(direct), statistics.median(via), direct, via)
        st = proxy.stats()
        proxy.stop()
        # the proxy's own capacity: in front of a canned-answer server instead
        canned = subprocess.Popen([PY, str(Path(__file__).resolve()), "--canned-upstream"],
                                stdout=subprocess.PIPE)
        try:
            canned_port = int(canned.stdout.readline().split()[1])
            proxy = ProxyProcess("http://127.0.0.1:%d" % canned_port)
            asyncio.run(_raw_load(proxy.port, 2, 8, body))
            for name, conns in (("canned upstream, raw client, 8 connections", 8),
                                ("canned upstream, raw client, 1 connection", 1)):
                direct, via = [], []
                for _ in range(3):
                    direct.append(asyncio.run(_raw_load(canned_port, 3, conns, body)))
                    via.append(asyncio.run(_raw_load(proxy.port, 3, conns, body)))
                results[name] = (statistics.median(direct), statistics.median(via), direct, via)
        finally:
            canned.terminate()
            canned.wait()
            canned.stdout.close()
        print("GetItem requests/s (medians of 3 runs of 3 s):")
        for name, (md, mv, direct, via) in results.items():
            print("  %-44s direct %7.0f  via proxy %7.0f  (%.0f%%)   runs direct %s via %s"
                  % (name, md, mv, 100.0 * mv / md, [round(x) for x in direct],
                     [round(x) for x in via]))
        print("  proxy upstream connections opened: %d for %d requests"
              % (st["upstream_connections"], st["total_requests"]))
    finally:
        if proxy:
            proxy.stop()
        stop_ddb()


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
    elif "--canned-upstream" in sys.argv:
        canned_upstream()
    else:
        unittest.main()
