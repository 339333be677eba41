#!/usr/bin/python3
"""Fault-injecting HTTP/1.1 proxy for dynamorph's integration tests.

Sits between a DynamoDB client and an upstream DynamoDB-compatible server (DynamoDB Local) and
injects throttling, 5xx answers, dropped connections, partial batch results and delays, as told
by rules that tests set at run time.  Standard library only.

    fault_proxy.py --upstream http://127.0.0.1:8000 [--port 0] [--rules FILE] [--verbose]
                   [--exit-on-stdin-eof]

Listens on 127.0.0.1 only; the first stdout line is "PORT <n>" (flushed), nothing else goes to
stdout.  Control endpoint on the same port (paths starting with /__proxy__/):

    POST /__proxy__/rules   body: JSON list of rules, replaces the rules (fresh rule counters)
    GET  /__proxy__/rules   the current rules with their counters
    GET  /__proxy__/stats   {"requests": {op: n}, "faults": {kind: n}, "total_requests": n,
                             "total_faults": n, "upstream_connections": n, "rules": [...]}
    GET  /__proxy__/log     the newest requests (at most 20,000), oldest first: [{"op", "t" (epoch
                            seconds when the request arrived), "bytes" (request body size),
                            "tables" (the tables it names), "fault" (kind or null), "key"
                            (the SigV4 access key id, or null), "done" (epoch seconds when
                            its answer was written or its connection dropped; null while it
                            is in flight or when it hangs)}]
    POST /__proxy__/reset   clears rules, stats and the log

Rules (a JSON list; a single object is accepted too; unknown keys are rejected with HTTP 400):

    {"op": "BatchWriteItem" | ["PutItem", "GetItem"] | "*",   # X-Amz-Target operation, default *
     "fault": KIND,
     "count": N,          # times to fire; default unlimited
     "probability": p,    # default 1.0
     "after": K,          # let the first K matching requests through; default 0
     "seed": S,           # seeds this rule's random generator (deterministic probability)
     "ms": N,             # delay only
     "rst": true,         # drop_* only: reset the connection (RST) instead of closing it (FIN)
     "message": "...",    # overrides the message of an error kind
     "status": 4xx|5xx, "type": "ns#Name",   # the generic "error" kind only
     "body_contains": "..."}   # only requests whose body holds this text match (seen/fired)

KIND: throttle, throttling, request_limit, http500, http503 (an answer in the server's place,
not forwarded), error (same, with your status/type/message), drop_before (close without
forwarding), drop_after (forward, read the whole answer, close without answering), hang (never
forward, never answer: the connection stays open until the client closes it, as a request on
the wire when its sender is killed), delay (sleep ms, then forward), partial_unprocessed (BatchWriteItem/BatchGetItem: forward the first
half, rounded up, of each table's requests and answer with the left-out ones added to
UnprocessedItems/UnprocessedKeys in DynamoDB's format; with one item per table the last table's
item is left out; a batch of a single item is not a match), truncate_body (forward, then send the
answer's head and only the first half of its body, and close: a connection cut mid-body),
malformed_json (forward, then answer 200 with the body cut to its first half, with a matching
Content-Length and x-amz-crc32: a complete HTTP answer that is not JSON).

Per request, every rule whose op matches counts it ("seen"); the first rule in list order whose
"after" is passed, whose "count" is not used up and whose probability draw succeeds fires
("fired").  One fault per request.  Setting rules gives fresh rule counters; stats are kept until
reset.  Injected answers carry a random x-amzn-RequestId, Content-Type application/x-amz-json-1.0,
Date and a correct x-amz-crc32; forwarded answers keep every upstream header (x-amz-crc32 is
recomputed when partial_unprocessed rewrites the body).  Upstream connections are pooled
(keep-alive).  --exit-on-stdin-eof makes the proxy exit when its stdin closes (its parent died).
"""

import argparse
import asyncio
import collections
import copy
import email.utils
import gzip
import json
import os
import random
import socket
import string
import struct
import sys
import threading
import time
import urllib.parse
import zlib

CONTROL_PREFIX = b"/__proxy__/"
JSON_CT = "application/x-amz-json-1.0"
HEAD_LIMIT = 1 << 20          # max bytes of a request/response head
MAX_IDLE_UPSTREAM = 64        # idle keep-alive connections kept to the upstream
LOG_LIMIT = 20000             # requests kept in the log

DDB = "com.amazonaws.dynamodb.v20120810#"
CORAL = "com.amazon.coral.availability#"

# kind -> (HTTP status, __type, message) for the faults that answer in the server's place.
ERROR_FAULTS = {
    "throttle": (400, DDB + "ProvisionedThroughputExceededException",
                 "The level of configured provisioned throughput for the table was exceeded. "
                 "Consider increasing your provisioning level with the UpdateTable API."),
    "throttling": (400, CORAL + "ThrottlingException",
                   "Rate of requests exceeds the allowed throughput."),
    "request_limit": (400, DDB + "RequestLimitExceeded",
                      "Throughput exceeds the current throughput limit for your account. "
                      "Please contact AWS Support at https://aws.amazon.com/support "
                      "request a limit increase"),
    "http500": (500, DDB + "InternalServerError", "Internal server error"),
    "http503": (503, CORAL + "ServiceUnavailableException",
                "The service is currently unavailable or busy."),
}
OTHER_FAULTS = {"drop_before", "drop_after", "partial_unprocessed", "delay", "error", "hang",
                "truncate_body", "malformed_json"}
FAULTS = set(ERROR_FAULTS) | OTHER_FAULTS
BATCH_OPS = {"BatchWriteItem", "BatchGetItem"}

# Keys a rule may carry.  "ms" is required for delay; "status"/"type" for the generic "error"
# kind ("message" optional, also overrides the message of the fixed error kinds); "rst" makes
# the drop kinds reset the connection (RST) instead of closing it (FIN); "date_offset_s" shifts
# the Date header of an injected answer (a server clock that is ahead or behind, for clock-skew
# correction tests).
RULE_KEYS = {"op", "fault", "count", "probability", "after", "seed", "ms", "status", "type",
             "message", "rst", "comment", "date_offset_s", "body_contains"}

REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
           413: "Payload Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
              b"trailer", b"upgrade", b"expect", b"content-length"}

_ID_CHARS = string.ascii_uppercase + string.digits
_id_rng = random.Random()

VERBOSE = False


def log(msg):
    sys.stderr.write("fault_proxy: %s\n" % msg)
    sys.stderr.flush()


def request_id():
    return "".join(_id_rng.choices(_ID_CHARS, k=52))


class RuleError(ValueError):
    pass


class Rule:
    __slots__ = ("spec", "ops", "fault", "count", "probability", "after", "rng", "ms",
                 "status", "type", "message", "rst", "seen", "fired", "date_offset_s",
                 "body_contains")

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise RuleError("a rule must be a JSON object, got %r" % (spec,))
        unknown = set(spec) - RULE_KEYS
        if unknown:
            raise RuleError("unknown rule key(s) %s in %s" % (sorted(unknown), json.dumps(spec)))
        self.spec = spec
        op = spec.get("op", "*")
        if isinstance(op, str):
            self.ops = None if op == "*" else frozenset([op])
        elif isinstance(op, list) and op and all(isinstance(o, str) for o in op):
            self.ops = None if "*" in op else frozenset(op)
        else:
            raise RuleError("rule op must be a string or a list of strings: %s" % json.dumps(spec))
        self.fault = spec.get("fault")
        if self.fault not in FAULTS:
            raise RuleError("unknown fault %r (one of %s)" % (self.fault, ", ".join(sorted(FAULTS))))
        count = spec.get("count")
        if count is not None and (not _is_int(count) or count < 0):
            raise RuleError("count must be a non-negative integer: %s" % json.dumps(spec))
        self.count = count
        p = spec.get("probability", 1.0)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise RuleError("probability must be a number in [0, 1]: %s" % json.dumps(spec))
        self.probability = float(p)
        after = spec.get("after", 0)
        if not _is_int(after) or after < 0:
            raise RuleError("after must be a non-negative integer: %s" % json.dumps(spec))
        self.after = after
        seed = spec.get("seed")
        if seed is not None and not _is_int(seed):
            raise RuleError("seed must be an integer: %s" % json.dumps(spec))
        self.rng = random.Random(seed) if seed is not None else random.Random()
        ms = spec.get("ms", 0)
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
            raise RuleError("ms must be a non-negative number: %s" % json.dumps(spec))
        if self.fault == "delay" and "ms" not in spec:
            raise RuleError("delay needs \"ms\": %s" % json.dumps(spec))
        self.ms = float(ms)
        self.status = spec.get("status")
        self.type = spec.get("type")
        self.message = spec.get("message")
        if self.fault == "error":
            if not _is_int(self.status) or not 400 <= self.status <= 599:
                raise RuleError("error needs an integer \"status\" 400..599: %s" % json.dumps(spec))
            if not isinstance(self.type, str):
                raise RuleError("error needs a string \"type\": %s" % json.dumps(spec))
        if self.message is not None and not isinstance(self.message, str):
            raise RuleError("message must be a string: %s" % json.dumps(spec))
        self.rst = bool(spec.get("rst", False))
        offset = spec.get("date_offset_s", 0)
        if isinstance(offset, bool) or not isinstance(offset, (int, float)):
            raise RuleError("date_offset_s must be a number: %s" % json.dumps(spec))
        self.date_offset_s = float(offset)
        needle = spec.get("body_contains")
        if needle is not None and (not isinstance(needle, str) or not needle):
            raise RuleError("body_contains must be a non-empty string: %s" % json.dumps(spec))
        self.body_contains = needle.encode("utf-8") if needle is not None else None
        self.seen = 0     # requests that matched op (and, for partial_unprocessed, could apply)
        self.fired = 0    # times the fault was injected

    def matches(self, op, splittable, body=b""):
        if self.ops is not None and op not in self.ops:
            return False
        if self.body_contains is not None and self.body_contains not in body:
            return False
        if self.fault == "partial_unprocessed":
            # only batch requests with at least two items can be split
            return op in BATCH_OPS and splittable
        return True

    def error_response(self):
        if self.fault == "error":
            status, typ, msg = self.status, self.type, self.message or ""
        else:
            status, typ, msg = ERROR_FAULTS[self.fault]
            if self.message is not None:
                msg = self.message
        return status, typ, msg

    def describe(self):
        d = dict(self.spec)
        d["seen"] = self.seen
        d["fired"] = self.fired
        return d


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def parse_rules(data):
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    try:
        specs = json.loads(data) if isinstance(data, str) else data
    except ValueError as e:
        raise RuleError("rules are not valid JSON: %s" % e)
    if isinstance(specs, dict):
        specs = [specs]
    if not isinstance(specs, list):
        raise RuleError("rules must be a JSON list of objects")
    return [Rule(s) for s in specs]


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class BadRequest(Exception):
    pass


class Message:
    """A parsed HTTP request or response: start line, headers, body."""
    __slots__ = ("start", "headers", "hmap", "body")

    def __init__(self, start, headers, body=b""):
        self.start = start        # (method, target, version) or (version, status, reason)
        self.headers = headers    # list of (name bytes, value bytes), original case
        self.hmap = {}            # lower-case name -> value (last wins)
        for k, v in headers:
            self.hmap[k.lower()] = v
        self.body = body

    def get(self, name, default=None):
        return self.hmap.get(name, default)


def parse_head(head):
    lines = head.split(b"\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        i = line.find(b":")
        if i <= 0:
            raise BadRequest("malformed header line %r" % line[:100])
        headers.append((line[:i].strip(), line[i + 1:].strip()))
    return first, headers


async def read_body(reader, msg, is_response=False, status=0, method=b""):
    """Read the body of msg (Content-Length or chunked; responses may also end at EOF)."""
    te = msg.get(b"transfer-encoding")
    if is_response and (100 <= status < 200 or status in (204, 304) or method == b"HEAD"):
        return b""
    if te is not None and te.lower() != b"identity":
        if b"chunked" not in te.lower():
            raise BadRequest("unsupported Transfer-Encoding %r" % te)
        parts = []
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:   # trailers
                    t = await reader.readuntil(b"\r\n")
                    if t == b"\r\n":
                        break
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return b"".join(parts)
    cl = msg.get(b"content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise BadRequest("bad Content-Length %r" % cl)
        if n < 0:
            raise BadRequest("bad Content-Length %r" % cl)
        return await reader.readexactly(n) if n else b""
    if is_response:
        return await reader.read()   # delimited by close
    return b""


def build_head(start_line, headers, body_len, close=False):
    out = [start_line]
    for k, v in headers:
        if k.lower() in HOP_BY_HOP:
            continue
        out.append(k + b": " + v)
    out.append(b"Content-Length: " + str(body_len).encode())
    if close:
        out.append(b"Connection: close")
    out.append(b"")
    out.append(b"")
    return b"\r\n".join(out)


def simple_response(status, body, content_type=JSON_CT, extra=(), close=False, date_offset_s=0.0):
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [(b"Content-Type", content_type.encode()),
               (b"x-amzn-RequestId", request_id().encode()),
               (b"x-amz-crc32", str(zlib.crc32(body)).encode()),
               (b"Date", email.utils.formatdate(time.time() + date_offset_s, usegmt=True).encode())]
    headers.extend(extra)
    start = ("HTTP/1.1 %d %s" % (status, REASONS.get(status, "Error"))).encode()
    return build_head(start, headers, len(body), close) + body


class UpstreamError(Exception):
    pass


class Upstream:
    """A pool of keep-alive connections to the upstream server."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.idle = []
        self.connects = 0

    async def _connect(self):
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
        self.connects += 1
        return reader, writer

    def _release(self, conn):
        if len(self.idle) < MAX_IDLE_UPSTREAM and not conn[1].is_closing():
            self.idle.append(conn)
        else:
            conn[1].close()

    async def exchange(self, head, body):
        """Send one request, return the response Message.  When a reused idle connection turns
        out to be closed before any response byte arrives (the server timed it out), the request
        is sent again on another connection, as HTTP clients do."""
        while True:
            while self.idle and (self.idle[-1][1].is_closing()
                                 or self.idle[-1][0].at_eof()):
                self.idle.pop()[1].close()
            reused = bool(self.idle)
            if reused:
                conn = self.idle.pop()
            else:
                try:
                    conn = await self._connect()
                except OSError as e:
                    raise UpstreamError("cannot connect to upstream %s:%d: %s"
                                        % (self.host, self.port, e))
            reader, writer = conn
            got_bytes = False
            try:
                writer.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    writer.write(body)
                await writer.drain()
                while True:
                    try:
                        rhead = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError as e:
                        got_bytes = bool(e.partial)
                        raise ConnectionResetError("upstream closed the connection")
                    got_bytes = True
                    first, headers = parse_head(rhead[:-4])
                    parts = first.split(b" ", 2)
                    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                        raise UpstreamError("bad upstream status line %r" % first[:100])
                    status = int(parts[1])
                    if 100 <= status < 200:
                        continue    # interim response
                    resp = Message((parts[0], status, parts[2] if len(parts) > 2 else b""),
                                   headers)
                    resp.body = await read_body(reader, resp, True, status)
                    break
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
                writer.close()
                if reused and not got_bytes:
                    continue
                raise UpstreamError("upstream %s:%d: %s" % (self.host, self.port, e or type(e).__name__))
            except BaseException:
                writer.close()
                raise
            conn_hdr = resp.get(b"connection", b"").lower()
            if b"close" in conn_hdr or (resp.get(b"content-length") is None
                                       and resp.get(b"transfer-encoding") is None
                                       and status not in (204, 304)):
                writer.close()
            else:
                self._release(conn)
            return resp

    def close(self):
        for _, w in self.idle:
            w.close()
        self.idle.clear()


# --------------------------------------------------------------------------------------------
# partial_unprocessed


def _split_counts(sizes):
    """For per-table item counts, how many of each to keep (forward).  Keeps the first half
    (rounded up) of each table; guarantees at least one item left out and one forwarded."""
    keep = [n - n // 2 for n in sizes]
    if sum(keep) == sum(sizes):     # every table has a single item: leave out the last table's
        keep[-1] = 0
    return keep


def batch_items(op, body):
    """Return (payload, [(table, list)]) for a batch request, or None if not a batch."""
    try:
        payload = json.loads(body)
        ri = payload["RequestItems"]
        tables = []
        for table, entry in ri.items():
            items = entry if op == "BatchWriteItem" else entry["Keys"]
            if not isinstance(items, list):
                return None
            tables.append((table, items))
        return payload, tables
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def access_key(authorization):
    """The access key id a SigV4 Authorization header names ("Credential=AKID/..."), or None."""
    i = authorization.find(b"Credential=")
    if i < 0:
        return None
    return authorization[i + len(b"Credential="):].split(b"/", 1)[0].decode("latin-1")


def request_tables(body):
    """The tables a DynamoDB request names (TableName, RequestItems keys, TransactItems), for
    the log; [] when the body is not such JSON."""
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        return []
    if not isinstance(payload, dict):
        return []
    names = []
    if isinstance(payload.get("TableName"), str):
        names.append(payload["TableName"])
    if isinstance(payload.get("RequestItems"), dict):
        names.extend(payload["RequestItems"])
    for item in payload.get("TransactItems") or []:
        if isinstance(item, dict):
            for action in item.values():
                if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                    names.append(action["TableName"])
    return sorted(set(names))


def split_batch(op, payload, tables):
    """Build the forwarded payload and the left-out part in DynamoDB's Unprocessed* format."""
    keep = _split_counts([len(items) for _, items in tables])
    fwd_ri = {}
    left = {}
    ri = payload["RequestItems"]
    for (table, items), k in zip(tables, keep):
        kept, rest = items[:k], items[k:]
        if op == "BatchWriteItem":
            if kept:
                fwd_ri[table] = kept
            if rest:
                left[table] = rest
        else:
            entry = ri[table]
            if kept:
                e = dict(entry)
                e["Keys"] = kept
                fwd_ri[table] = e
            if rest:
                e = dict(entry)
                e["Keys"] = rest
                left[table] = e
    fwd = dict(payload)
    fwd["RequestItems"] = fwd_ri
    return fwd, left


def merge_unprocessed(op, resp_payload, left):
    key = "UnprocessedItems" if op == "BatchWriteItem" else "UnprocessedKeys"
    merged = copy.deepcopy(resp_payload.get(key) or {})
    for table, part in left.items():
        if op == "BatchWriteItem":
            merged.setdefault(table, []).extend(part)
        else:
            if table in merged:
                merged[table]["Keys"].extend(part["Keys"])
            else:
                merged[table] = part
    resp_payload[key] = merged
    return resp_payload


# --------------------------------------------------------------------------------------------
# the proxy


class Proxy:
    def __init__(self, upstream_host, upstream_port, rules=None, verbose=False):
        self.upstream = Upstream(upstream_host, upstream_port)
        self.rules = rules or []
        self.verbose = verbose
        self.reset_stats()
        self.client_writers = set()

    def reset_stats(self):
        self.req_counts = {}
        self.fault_counts = {}
        self.total_requests = 0
        self.total_faults = 0
        self.upstream.connects = 0
        self.log = collections.deque(maxlen=LOG_LIMIT)

    def stats(self):
        return {
            "requests": dict(self.req_counts),
            "faults": dict(self.fault_counts),
            "total_requests": self.total_requests,
            "total_faults": self.total_faults,
            "upstream_connections": self.upstream.connects,
            "upstream_idle": len(self.upstream.idle),
            "rules": [r.describe() for r in self.rules],
        }

    def pick_rule(self, op, splittable, body=b""):
        """Every rule whose op (and body_contains) matches counts the request; the first one in
        list order whose 'after' is passed, 'count' not exhausted and probability draw succeeds
        fires."""
        chosen = None
        for r in self.rules:
            if not r.matches(op, splittable, body):
                continue
            r.seen += 1
            if chosen is not None or r.seen <= r.after:
                continue
            if r.count is not None and r.fired >= r.count:
                continue
            if r.probability < 1.0 and not r.rng.random() < r.probability:
                continue
            r.fired += 1
            chosen = r
        return chosen

    # ---- control endpoint

    def control(self, method, target, body):
        path = urllib.parse.urlsplit(target.decode("latin-1")).path
        name = path[len("/__proxy__/"):].strip("/")
        if name == "rules" and method in (b"POST", b"PUT"):
            try:
                self.rules = parse_rules(body)
            except RuleError as e:
                return 400, {"error": str(e)}
            return 200, {"ok": True, "rules": len(self.rules)}
        if name == "rules" and method == b"GET":
            return 200, [r.describe() for r in self.rules]
        if name == "stats" and method == b"GET":
            return 200, self.stats()
        if name == "log" and method == b"GET":
            return 200, list(self.log)
        if name == "reset" and method == b"POST":
            self.rules = []
            self.reset_stats()
            return 200, {"ok": True}
        return 404, {"error": "unknown control call %s %s" % (method.decode(), path)}

    # ---- connections

    async def handle(self, reader, writer):
        self.client_writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except BadRequest as e:
            try:
                writer.write(simple_response(400, json.dumps({"error": str(e)}), close=True))
            except Exception:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never let one connection take the proxy down
            log("connection error: %r" % (e,))
        finally:
            self.client_writers.discard(writer)
            writer.close()

    async def _serve(self, reader, writer):
        transport = writer.transport
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return   # client closed between requests
            first, headers = parse_head(head[:-4])
            parts = first.split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                raise BadRequest("bad request line %r" % first[:100])
            method, target, version = parts
            req = Message((method, target, version), headers)
            if (req.get(b"expect", b"").lower() == b"100-continue"
                    and version == b"HTTP/1.1"):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            req.body = await read_body(reader, req)
            conn_hdr = req.get(b"connection", b"").lower()
            close = b"close" in conn_hdr or (version == b"HTTP/1.0"
                                              and b"keep-alive" not in conn_hdr)

            if target.startswith(CONTROL_PREFIX):
                status, obj = self.control(method, target, req.body)
                writer.write(simple_response(status, json.dumps(obj), "application/json",
                                             close=close))
            else:
                keep_going = await self.proxy_request(req, writer, close)
                if keep_going == "hang":
                    await reader.read()   # until the client closes the connection
                    return
                if not keep_going:
                    return
            if transport.get_write_buffer_size() > 65536:
                await writer.drain()
            if close:
                await writer.drain()
                return

    async def proxy_request(self, req, writer, close):
        """Forward one request (maybe with a fault).  Returns False if the connection was
        dropped on purpose."""
        t0 = time.monotonic()
        target_hdr = req.get(b"x-amz-target", b"")
        op = target_hdr.rsplit(b".", 1)[-1].decode("latin-1") if target_hdr else ""
        self.total_requests += 1
        self.req_counts[op or "(none)"] = self.req_counts.get(op or "(none)", 0) + 1

        batch = None
        if op in BATCH_OPS and self.rules:
            batch = batch_items(op, req.body)
        splittable = batch is not None and sum(len(i) for _, i in batch[1]) >= 2
        rule = self.pick_rule(op, splittable, req.body) if self.rules else None
        fault = rule.fault if rule else None
        if fault:
            self.total_faults += 1
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        entry = {"op": op, "t": time.time(), "bytes": len(req.body),
                 "tables": request_tables(req.body), "fault": fault,
                 "key": access_key(req.get(b"authorization", b"")), "done": None}
        self.log.append(entry)

        status = "-"
        try:
            if fault in ERROR_FAULTS or fault == "error":
                st, typ, msg = rule.error_response()
                writer.write(simple_response(st, json.dumps({"__type": typ, "message": msg},
                                                        separators=(",", ":")),
                                             close=close, date_offset_s=rule.date_offset_s))
                status = st
                return True
            if fault == "drop_before":
                self._drop(writer, rule.rst)
                status = "dropped"
                return False
            if fault == "hang":
                status = "hung"
                return "hang"
            if fault == "delay":
                await asyncio.sleep(rule.ms / 1000.0)

            body = req.body
            left = None
            headers = req.headers
            if fault == "partial_unprocessed":
                fwd, left = split_batch(op, *batch)
                body = json.dumps(fwd, separators=(",", ":")).encode("utf-8")
                headers = [(k, v) for k, v in headers if k.lower() != b"accept-encoding"]

            start = b"%s %s %s" % (req.start[0], req.start[1], b"HTTP/1.1")
            try:
                resp = await self.upstream.exchange(build_head(start, headers, len(body)), body)
            except UpstreamError as e:
                log(str(e))
                writer.write(simple_response(502, json.dumps(
                    {"__type": "fault_proxy#BadGateway", "message": str(e)}), close=close))
                status = 502
                return True

            if fault == "drop_after":
                self._drop(writer, rule.rst)
                status = "dropped after %d" % resp.start[1]
                return False
            if fault == "truncate_body":
                head = build_head(b"%s %d %s" % (b"HTTP/1.1", resp.start[1], resp.start[2]),
                                  resp.headers, len(resp.body), True)
                writer.write(head + resp.body[:len(resp.body) // 2])
                await writer.drain()
                self._drop(writer, False)
                status = "truncated %d" % resp.start[1]
                return False

            rbody = resp.body
            rheaders = resp.headers
            if left is not None and resp.start[1] == 200:
                rbody, rheaders = self._rewrite_batch_response(op, resp, left)
            if fault == "malformed_json" and resp.start[1] == 200:
                rbody, rheaders = self._cut_body(resp)
            st = resp.start[1]
            status = st
            writer.write(build_head(b"%s %d %s" % (b"HTTP/1.1", st, resp.start[2]),
                                    rheaders, len(rbody), close) + rbody)
            return True
        finally:
            if status != "hung":
                entry["done"] = time.time()
            if self.verbose:
                log("%s %s fault=%s -> %s in %.1f ms" % (req.start[0].decode(), op or "-", fault,
                                                        status, (time.monotonic() - t0) * 1e3))

    def _rewrite_batch_response(self, op, resp, left):
        rbody = resp.body
        headers = resp.headers
        if resp.get(b"content-encoding", b"").lower() == b"gzip":
            rbody = gzip.decompress(rbody)
            headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
        payload = json.loads(rbody)
        payload = merge_unprocessed(op, payload, left)
        rbody = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        crc = str(zlib.crc32(rbody)).encode()
        out = []
        for k, v in headers:
            if k.lower() == b"x-amz-crc32":
                v = crc
            out.append((k, v))
        return rbody, out

    @staticmethod
    def _cut_body(resp):
        rbody = resp.body
        headers = resp.headers
        if resp.get(b"content-encoding", b"").lower() == b"gzip":
            rbody = gzip.decompress(rbody)
            headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
        rbody = rbody[:max(1, len(rbody) // 2)]
        crc = str(zlib.crc32(rbody)).encode()
        return rbody, [(k, crc if k.lower() == b"x-amz-crc32" else v) for k, v in headers]

    @staticmethod
    def _drop(writer, rst):
        if rst:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        else:
            writer.close()


def parse_upstream(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit("fault_proxy: --upstream must be http://HOST:PORT, got %r" % url)
    return u.hostname, u.port or 80


async def amain(args):
    host, port = parse_upstream(args.upstream)
    rules = []
    if args.rules:
        with open(args.rules, "rb") as f:
            try:
                rules = parse_rules(f.read())
            except RuleError as e:
                raise SystemExit("fault_proxy: %s: %s" % (args.rules, e))
    await serve(Proxy(host, port, rules, args.verbose), args.port, args.exit_on_stdin_eof)


async def serve(proxy, port, exit_on_stdin_eof):
    """Serves `proxy` (this file's Proxy or a subclass, e.g. bench/capacity_proxy.py's) on
    127.0.0.1:port until SIGTERM, SIGINT or (exit_on_stdin_eof) the end of stdin; prints
    "PORT <n>" first."""
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", port, limit=HEAD_LIMIT,
                                        backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write("PORT %d\n" % bound)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if exit_on_stdin_eof:
        def watch():
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            loop.call_soon_threadsafe(stop.set)
        threading.Thread(target=watch, daemon=True).start()
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        server.close()
        for w in list(proxy.client_writers):
            w.close()
        proxy.upstream.close()


class Spawned:
    """This proxy in a child process of the caller (tests, bench): started in front of
    `upstream`, ready when constructed (`url`), told its rules with control(), ended by stop()
    (it also exits by itself when the caller dies, --exit-on-stdin-eof). `script` and `args`:
    another proxy built on this one (bench/capacity_proxy.py) and its own options."""

    def __init__(self, upstream, script=None, args=()):
        import subprocess
        self.proc = subprocess.Popen(["/usr/bin/python3", script or os.path.abspath(__file__),
                                      "--upstream", upstream, "--exit-on-stdin-eof", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError("fault proxy did not start: %r" % line)
        self.url = "http://127.0.0.1:%d" % int(line.split()[1])

    def control(self, method, name, body=None):
        import urllib.request
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + CONTROL_PREFIX.decode() + name, data=data,
                                     method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fault-injecting HTTP/1.1 proxy for DynamoDB tests")
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the real server")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--rules", help="JSON file with the initial list of rules")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin reaches EOF (the parent died or closed the pipe)")
    args = ap.parse_args(argv)
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
