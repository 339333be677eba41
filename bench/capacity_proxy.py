#!/usr/bin/python3
"""bench/capacity_proxy.py -- a capacity-enforcing HTTP proxy in front of DynamoDB Local, which
enforces no capacity at all: it makes tables behave as if provisioned, for benches and tests of
dynamorph's rate limiter.

    capacity_proxy.py --upstream http://127.0.0.1:PORT [--port 0] [--rcu 3000] [--wcu 1000]
                      [--burst-s 300] [--exit-on-stdin-eof] [--verbose]

Built on tests/support/fault_proxy.py (its HTTP plumbing, upstream pool, control endpoint and
fault rules, which still apply to the operations this proxy does not meter). Loopback only; the
first stdout line is "PORT <n>".

Capacity. Every table gets a read and a write token bucket, refilled at --rcu / --wcu units per
second, that keeps at most --burst-s (300) seconds of unused capacity, as DynamoDB's burst
capacity does. A bucket starts EMPTY (when its table is first metered after a start or a reset),
so a run of a few minutes measures the sustained rate, not the burst.

Charging. The proxy asks DynamoDB Local what each request consumed: it sets
ReturnConsumedCapacity (TOTAL, unless the client asked for INDEXES) in the forwarded request,
charges the table(s) the ConsumedCapacity of the answer, and removes ConsumedCapacity from the
answer when the client did not ask for it (x-amz-crc32 is recomputed for every rewritten
answer). Before the answer is known, a request books an estimate (a put: its item's size by
DynamoDB's rules, 1 KB per unit; any other write: 1 unit; a read: nothing) which the answer then
settles; a write that fails (a condition, a validation error) keeps its estimate charged, as
DynamoDB charges failed writes.

Admission, per request, like the service:
- a single-item write, a transaction: admitted when every bucket it charges holds its estimate;
  a read: when its bucket is not in debt (reads are charged after the fact, as by DynamoDB);
  otherwise HTTP 400 com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException.
- BatchWriteItem: the requests that fit, in order, per table, are forwarded; the rest are
  answered in UnprocessedItems (DynamoDB's partial success); when none fits, the whole batch is
  answered with ProvisionedThroughputExceededException, as DynamoDB does. BatchGetItem is
  admitted whole or throttled whole.

DescribeTable answers report the provisioned throughput (--rcu / --wcu, BillingMode PROVISIONED)
so that a client's `--capacity-percent` sees it.

Control (on the same port):
    GET  /__proxy__/capacity         stats: per table, for each second since the reset, read and
                                     write units consumed, read and write requests, throttled
                                     ones, partial batches and their unprocessed items (and
                                     the sums); totals; the buckets' levels
    POST /__proxy__/capacity/reset   empties every bucket, clears the stats (the clock restarts)
    POST /__proxy__/capacity/config  {"rcu": N, "wcu": N, "burst_s": S}: new rates, then a reset
"""

import argparse
import asyncio
import base64
import json
import math
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "support"))
import fault_proxy as fp  # noqa: E402

READ_OPS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
THROTTLE = fp.ERROR_FAULTS["throttle"]


# --------------------------------------------------------------------------------------------
# DynamoDB's size rules, for the estimate of a put


def value_size(v):
    (t, x), = v.items()
    if t == "S":
        return len(x.encode("utf-8"))
    if t == "N":
        digits = x.lstrip("-+").split("e")[0].split("E")[0].replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if t == "B":
        return len(base64.b64decode(x))
    if t in ("BOOL", "NULL"):
        return 1
    if t == "SS":
        return sum(len(s.encode("utf-8")) for s in x)
    if t == "NS":
        return sum(value_size({"N": n}) for n in x)
    if t == "BS":
        return sum(len(base64.b64decode(b)) for b in x)
    if t == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(e) for k, e in x.items())
    return 0


def put_units(item):
    size = sum(len(k.encode("utf-8")) + value_size(v) for k, v in item.items())
    return max(1, math.ceil(size / 1024))


def write_estimate(request):
    """Units a BatchWriteItem request (PutRequest / DeleteRequest) is booked at."""
    put = request.get("PutRequest")
    return put_units(put["Item"]) if put else 1


# --------------------------------------------------------------------------------------------
# buckets and stats


class Bucket:
    """A token bucket: `rate` units per second, at most `burst_s` seconds of them kept, empty at
    the start; may go into debt (a request charged more than it was booked at)."""

    def __init__(self, rate, burst_s, now):
        self.rate = rate
        self.limit = rate * burst_s
        self.tokens = 0.0
        self.at = now

    def level(self, now):
        self.tokens = min(self.limit, self.tokens + self.rate * (now - self.at))
        self.at = now
        return self.tokens

    def take(self, units, now):
        self.level(now)
        self.tokens -= units


class Meter:
    """Buckets per (table, read|write), and what happened per second since the reset."""

    FIELDS = ("rcu", "wcu", "read_requests", "write_requests", "read_throttled",
              "write_throttled", "partial_batches", "unprocessed_items")

    def __init__(self, rcu, wcu, burst_s):
        self.rcu, self.wcu, self.burst_s = rcu, wcu, burst_s
        self.reset()

    def reset(self):
        self.t0 = time.monotonic()
        self.buckets = {}
        self.seconds = {}   # table -> {second: a list of FIELDS}
        self.totals = {"requests": 0, "throttled_requests": 0, "partial_batches": 0,
                       "unprocessed_items": 0, "rcu": 0.0, "wcu": 0.0}

    def bucket(self, table, kind, now):
        key = (table, kind)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(self.rcu if kind == "read" else self.wcu,
                                           self.burst_s, now)
        return b

    def _row(self, table, now):
        per = self.seconds.setdefault(table, {})
        return per.setdefault(int(now - self.t0), [0.0, 0.0, 0, 0, 0, 0, 0, 0])

    def count(self, table, kind, now, throttled=False, unprocessed=0):
        """One answered request to `table` (kind: read or write)."""
        row = self._row(table, now)
        w = kind == "write"
        row[3 if w else 2] += 1
        self.totals["requests"] += 1
        if throttled:
            row[5 if w else 4] += 1
            self.totals["throttled_requests"] += 1
        if unprocessed:
            row[6] += 1
            row[7] += unprocessed
            self.totals["partial_batches"] += 1
            self.totals["unprocessed_items"] += unprocessed

    def charge(self, table, kind, units, now):
        """Books (or, negative, refunds) units; only what the answer says is in the stats."""
        self.bucket(table, kind, now).take(units, now)

    def consumed(self, table, kind, units, now):
        self._row(table, now)[0 if kind == "read" else 1] += units
        self.totals["rcu" if kind == "read" else "wcu"] += units

    def stats(self):
        now = time.monotonic()
        tables = {}
        for table, per in self.seconds.items():
            last = max(per) if per else -1
            series = {f: [] for f in self.FIELDS}
            for s in range(last + 1):
                row = per.get(s, [0.0] * 2 + [0] * 6)
                for f, v in zip(self.FIELDS, row):
                    series[f].append(round(v, 2) if isinstance(v, float) else v)
            levels = {kind: round(b.level(now), 2) for (t, kind), b in self.buckets.items()
                      if t == table}
            tables[table] = {"per_second": series, "bucket_levels": levels,
                             "rcu": round(sum(series["rcu"]), 2),
                             "wcu": round(sum(series["wcu"]), 2),
                             **{f: sum(series[f]) for f in self.FIELDS[2:]}}
        out = dict(self.totals)
        out.update({"rcu": round(out["rcu"], 2), "wcu": round(out["wcu"], 2),
                    "elapsed_s": round(now - self.t0, 3),
                    "config": {"rcu": self.rcu, "wcu": self.wcu, "burst_s": self.burst_s},
                    "tables": tables})
        return out


# --------------------------------------------------------------------------------------------
# the proxy


def consumed_entries(payload):
    cc = payload.get("ConsumedCapacity")
    if cc is None:
        return []
    return cc if isinstance(cc, list) else [cc]


def transact_tables(payload):
    tables = []
    for entry in payload.get("TransactItems", []):
        for part in entry.values():
            if isinstance(part, dict) and part.get("TableName") not in (None, *tables):
                tables.append(part["TableName"])
    return tables


class CapacityProxy(fp.Proxy):
    def __init__(self, host, port, meter, verbose=False):
        super().__init__(host, port, [], verbose)
        self.meter = meter

    def control(self, method, target, body):
        path = target.decode("latin-1").split("?", 1)[0]
        name = path[len("/__proxy__/"):].strip("/")
        if name == "capacity" and method == b"GET":
            return 200, self.meter.stats()
        if name == "capacity/reset" and method == b"POST":
            self.meter.reset()
            return 200, {"ok": True}
        if name == "capacity/config" and method == b"POST":
            try:
                cfg = json.loads(body or b"{}")
                for key in cfg:
                    if key not in ("rcu", "wcu", "burst_s") or not isinstance(cfg[key], (int, float)) \
                            or cfg[key] <= 0:
                        raise ValueError("%s must be a positive number" % key)
            except ValueError as e:
                return 400, {"error": "capacity config: %s" % e}
            self.meter.rcu = cfg.get("rcu", self.meter.rcu)
            self.meter.wcu = cfg.get("wcu", self.meter.wcu)
            self.meter.burst_s = cfg.get("burst_s", self.meter.burst_s)
            self.meter.reset()
            return 200, {"ok": True, "config": self.meter.stats()["config"]}
        return super().control(method, target, body)

    async def proxy_request(self, req, writer, close):
        hdr = req.get(b"x-amz-target", b"")
        op = hdr.rsplit(b".", 1)[-1].decode("latin-1") if hdr else ""
        if op not in READ_OPS and op not in WRITE_OPS and op != "DescribeTable":
            return await super().proxy_request(req, writer, close)
        self.total_requests += 1
        self.req_counts[op] = self.req_counts.get(op, 0) + 1
        try:
            payload = json.loads(req.body)
        except ValueError:
            return await self._forward_raw(req, writer, close)
        if op == "DescribeTable":
            return await self._describe(req, payload, writer, close)
        return await self._metered(op, req, payload, writer, close)

    # ---- forwarding

    async def _exchange(self, req, body):
        headers = [(k, v) for k, v in req.headers if k.lower() != b"accept-encoding"]
        start = b"%s %s HTTP/1.1" % (req.start[0], req.start[1])
        return await self.upstream.exchange(fp.build_head(start, headers, len(body)), body)

    def _answer(self, writer, resp, body, close):
        headers = [(k, str(zlib.crc32(body)).encode() if k.lower() == b"x-amz-crc32" else v)
                   for k, v in resp.headers]
        writer.write(fp.build_head(b"HTTP/1.1 %d %s" % (resp.start[1], resp.start[2]),
                                   headers, len(body), close) + body)

    def _throttle(self, writer, close):
        status, typ, msg = THROTTLE
        writer.write(fp.simple_response(status, json.dumps({"__type": typ, "message": msg}),
                                        close=close))

    def _bad_gateway(self, writer, e, close):
        fp.log(str(e))
        writer.write(fp.simple_response(502, json.dumps(
            {"__type": "capacity_proxy#BadGateway", "message": str(e)}), close=close))

    async def _forward_raw(self, req, writer, close):
        try:
            resp = await self._exchange(req, req.body)
        except fp.UpstreamError as e:
            self._bad_gateway(writer, e, close)
            return True
        self._answer(writer, resp, resp.body, close)
        return True

    async def _describe(self, req, payload, writer, close):
        try:
            resp = await self._exchange(req, req.body)
        except fp.UpstreamError as e:
            self._bad_gateway(writer, e, close)
            return True
        body = resp.body
        if resp.start[1] == 200:
            answer = json.loads(body)
            t = answer.get("Table", {})
            pt = dict(t.get("ProvisionedThroughput") or {})
            pt.update({"ReadCapacityUnits": max(1, round(self.meter.rcu)),
                       "WriteCapacityUnits": max(1, round(self.meter.wcu))})
            t["ProvisionedThroughput"] = pt
            t["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
            body = json.dumps(answer, separators=(",", ":")).encode("utf-8")
        self._answer(writer, resp, body, close)
        return True

    # ---- metering

    async def _metered(self, op, req, payload, writer, close):
        kind = "read" if op in READ_OPS else "write"
        now = time.monotonic()
        meter = self.meter
        asked = payload.get("ReturnConsumedCapacity", "NONE")
        payload["ReturnConsumedCapacity"] = "INDEXES" if asked == "INDEXES" else "TOTAL"

        left = None          # BatchWriteItem: what did not fit, by table
        booked = {}          # table -> units booked before forwarding
        if op == "BatchWriteItem":
            fwd, left, booked = self._split_writes(payload["RequestItems"], now)
            if not fwd:
                for table in payload["RequestItems"]:
                    meter.count(table, kind, now, throttled=True)
                self._throttle(writer, close)
                return True
            payload["RequestItems"] = fwd
        else:
            if op == "BatchGetItem":
                tables = list(payload.get("RequestItems", {}))
            elif op.startswith("Transact"):
                tables = transact_tables(payload)
            else:
                tables = [payload.get("TableName", "")]
            estimate = 0
            if kind == "write":
                item = payload.get("Item")
                estimate = put_units(item) if op == "PutItem" and isinstance(item, dict) else 1
            levels = [meter.bucket(t, kind, now).level(now) for t in tables]
            if any(lv < estimate if kind == "write" else lv < 0 for lv in levels):
                for t in tables:
                    meter.count(t, kind, now, throttled=True)
                self._throttle(writer, close)
                return True
            booked = {t: estimate for t in tables}
        for table, units in booked.items():
            meter.charge(table, kind, units, now)

        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        try:
            resp = await self._exchange(req, body)
        except fp.UpstreamError as e:
            for table, units in booked.items():      # never reached the server
                meter.charge(table, kind, -units, time.monotonic())
            self._bad_gateway(writer, e, close)
            return True
        now = time.monotonic()
        unprocessed = {t: len(v) for t, v in (left or {}).items()}
        for table in booked:
            meter.count(table, kind, now, unprocessed=unprocessed.get(table, 0))
        if resp.start[1] != 200:
            self._answer(writer, resp, resp.body, close)   # failed writes keep their booking
            return True
        answer = json.loads(resp.body)
        for entry in consumed_entries(answer):
            table = entry.get("TableName", "")
            units = float(entry.get("CapacityUnits", 0))
            meter.charge(table, kind, units - booked.pop(table, 0), now)
            meter.consumed(table, kind, units, now)
        if asked not in ("TOTAL", "INDEXES"):
            answer.pop("ConsumedCapacity", None)
        if left:
            answer = fp.merge_unprocessed(op, answer, left)
        self._answer(writer, resp, json.dumps(answer, separators=(",", ":")).encode("utf-8"),
                     close)
        return True

    def _split_writes(self, request_items, now):
        """(forwarded, left out, booked units) per table: the prefix of each table's requests
        whose estimates fit in its write bucket."""
        fwd, left, booked = {}, {}, {}
        for table, requests in request_items.items():
            level = self.meter.bucket(table, "write", now).level(now)
            units, n = 0, 0
            for r in requests:
                cost = write_estimate(r)
                if units + cost > level:
                    break
                units += cost
                n += 1
            if n:
                fwd[table] = requests[:n]
                booked[table] = units
            if n < len(requests):
                left[table] = requests[n:]
        return fwd, left, booked


class Spawned(fp.Spawned):
    """This proxy in a child process (benches, tests): ready when constructed (`url`), stats(),
    reset(), config(rcu, wcu), stop()."""

    def __init__(self, upstream, rcu=3000, wcu=1000, burst_s=300):
        super().__init__(upstream, script=os.path.abspath(__file__),
                         args=["--rcu", str(rcu), "--wcu", str(wcu), "--burst-s", str(burst_s)])

    def stats(self):
        return self.control("GET", "capacity")

    def reset(self):
        return self.control("POST", "capacity/reset", {})

    def config(self, **cfg):
        return self.control("POST", "capacity/config", cfg)


async def amain(args):
    host, port = fp.parse_upstream(args.upstream)
    proxy = CapacityProxy(host, port, Meter(args.rcu, args.wcu, args.burst_s), args.verbose)
    await fp.serve(proxy, args.port, args.exit_on_stdin_eof)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Capacity-enforcing proxy for DynamoDB Local")
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of DynamoDB Local")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--rcu", type=float, default=3000, help="read capacity units per second")
    ap.add_argument("--wcu", type=float, default=1000, help="write capacity units per second")
    ap.add_argument("--burst-s", type=float, default=300, help="seconds of unused capacity kept")
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
