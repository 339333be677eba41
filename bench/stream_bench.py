#!/usr/bin/python3
"""bench/stream_bench.py -- `follow: stream` replay lag and catch-up throughput, on DynamoDB Local.

  /usr/bin/python3 bench/stream_bench.py --bin build/cli/dynamorph [--endpoint URL]
                                         [--rate 500] [--seconds 60] [--backlog 100000] [--reps 3]

Without --endpoint it starts its own DynamoDB Local (scripts/dynamodb-local.sh, in memory) on a
free port and stops it at the end. Tables live in a random namespace and are deleted at the end.

lag: a version copying `app` into `copy` with `follow: stream` is applied, then `dynamorph
  follow` runs while writers put --rate items/s into `app` for --seconds. A probe thread writes
  one extra item every 100 ms; a poller asks the target for every outstanding probe
  (BatchGetItem, every ~50 ms) and notes when each arrives: lag = seen - written, end to end
  (the write, the stream, the replay, the target). Reports p50/p90/p99/max over the probes.
catch-up: with nobody following, --backlog changes are made in `app` (--keys items, each
  rewritten backlog/keys times by in-place dynamorph versions), then `dynamorph follow`
  starts; throughput = backlog / the time until the replay's checkpoints have examined every
  one of them (read from the state table), in records/s. Checked: the target equals the transform of the source, item by item.
Every figure is printed as one JSON line and the medians at the end; the machine's load (from
/proc/loadavg) is printed with each, since the cores are shared.
"""
import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MIGRATIONS = {
    "1_tables.yaml": """\
version: 1
up:
  - enable_stream: { table: app, view: new_and_old_images }
  - create_table: { table: copy, partition_key: PK:string }
""",
    "2_copy.yaml": """\
version: 2
up:
  - pipeline:
      source: { table: app, follow: stream }
      transform:
        - update: "SET label = upper(label)"
      write: { table: copy }
""",
}


def loadavg():
    return open("/proc/loadavg").read().split()[0]


class Bench:
    def __init__(self, args):
        self.args = args
        self.ns = f"sb{uuid.uuid4().hex[:6]}-"
        self.dir = tempfile.mkdtemp(prefix="stream_bench_")
        kw = dict(endpoint_url=args.endpoint, region_name="us-east-1",
                  aws_access_key_id="bench", aws_secret_access_key="bench")
        self.kw = kw
        self.ddb = boto3.client("dynamodb", **kw)
        self.app, self.copy = self.ns + "app", self.ns + "copy"
        self.state = self.ns + "dynamorph_state"
        os.makedirs(os.path.join(self.dir, "migrations"))
        with open(os.path.join(self.dir, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {args.endpoint}\nregion: us-east-1\nnamespace: {self.ns}\n")
        for name, text in MIGRATIONS.items():
            with open(os.path.join(self.dir, "migrations", name), "w") as f:
                f.write(text)
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")

    def run(self, *a):
        return subprocess.run([self.args.bin, *a], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=600)

    def start(self, *a):
        return subprocess.Popen([self.args.bin, *a], cwd=self.dir, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def setup(self):
        self.ddb.create_table(TableName=self.app, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}])
        self.ddb.get_waiter("table_exists").wait(TableName=self.app)
        self.put_many([{"PK": {"S": f"k{i}"}, "label": {"S": f"v{i}"}} for i in range(self.args.keys)])
        r = self.run("up")
        assert r.returncode == 0, r.stdout + r.stderr

    def put_many(self, items, client=None):
        c = client or self.ddb
        for s in range(0, len(items), 25):
            req = {self.app: [{"PutRequest": {"Item": i}} for i in items[s:s + 25]]}
            while req:
                req = c.batch_write_item(RequestItems=req).get("UnprocessedItems")

    def drop(self):
        for t in (self.app, self.copy, self.state):
            try:
                self.ddb.delete_table(TableName=t)
            except Exception:
                pass

    def check_exact(self):
        def scan(t):
            out, kw = {}, {"TableName": t, "ConsistentRead": True}
            while True:
                p = self.ddb.scan(**kw)
                for i in p["Items"]:
                    out[i["PK"]["S"]] = i
                if "LastEvaluatedKey" not in p:
                    return out
                kw["ExclusiveStartKey"] = p["LastEvaluatedKey"]
        src, dst = scan(self.app), scan(self.copy)
        want = {k: dict(v, label={"S": v["label"]["S"].upper()}) for k, v in src.items()}
        assert want == dst, f"target differs: {len(want)} vs {len(dst)} items"

    def follow_scanned(self):
        r = self.ddb.query(TableName=self.state, ConsistentRead=True,
                           KeyConditionExpression="pk = :p AND begins_with(sk, :f)",
                           ExpressionAttributeValues={":p": {"S": "dynamorph"}, ":f": {"S": "follow#"}})
        return sum(int(i["counters"]["M"]["scanned"]["N"]) for i in r["Items"])

    # ---- lag under a steady writer -----------------------------------------------------------
    def lag(self):
        a = self.args
        proc = self.start("follow")
        time.sleep(2)
        stop = threading.Event()
        written = [0]
        wlock = threading.Lock()

        def writer(idx, n_writers):
            c = boto3.client("dynamodb", **self.kw)
            rng = random.Random(idx)
            per = a.rate / n_writers / 25.0  # batches per second for this writer
            t0 = time.monotonic()
            n = 0
            while not stop.is_set():
                keys = set()
                while len(keys) < 25:  # a batch may not hold a key twice
                    keys.add(f"w{rng.randrange(50000)}")
                items = [{"PK": {"S": k}, "label": {"S": f"x{rng.random()}"}} for k in keys]
                self.put_many(items, c)
                with wlock:
                    written[0] += 25
                n += 1
                pause = t0 + n / per - time.monotonic()
                if pause > 0:
                    time.sleep(pause)

        n_writers = 4
        threads = [threading.Thread(target=writer, args=(i, n_writers), daemon=True)
                   for i in range(n_writers)]
        w0 = time.monotonic()
        for t in threads:
            t.start()
        lags = []
        outstanding = {}  # probe key -> when it was written
        lock = threading.Lock()
        probes_done = threading.Event()

        def prober():
            c = boto3.client("dynamodb", **self.kw)
            end = time.monotonic() + a.seconds
            i = 0
            while time.monotonic() < end:
                key = f"probe{i}"
                i += 1
                t0 = time.monotonic()
                c.put_item(TableName=self.app, Item={"PK": {"S": key}, "label": {"S": "p"}})
                with lock:
                    outstanding[key] = t0
                time.sleep(max(0, 0.1 - (time.monotonic() - t0)))
            probes_done.set()

        pt = threading.Thread(target=prober, daemon=True)
        pt.start()
        c = boto3.client("dynamodb", **self.kw)
        deadline = time.monotonic() + a.seconds + 60
        while not (probes_done.is_set() and not outstanding):
            with lock:
                keys = list(outstanding)[:100]
            if keys:
                r = c.batch_get_item(RequestItems={self.copy: {"Keys": [{"PK": {"S": k}} for k in keys],
                                                                "ProjectionExpression": "PK"}})
                now = time.monotonic()
                with lock:
                    for it in r["Responses"].get(self.copy, []):
                        t0 = outstanding.pop(it["PK"]["S"], None)
                        if t0 is not None:
                            lags.append(now - t0)
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(outstanding)} probes not replicated within 60 s")
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        achieved = written[0] / (time.monotonic() - w0)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        self.check_exact()
        lags.sort()
        q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
        return {"bench": "lag", "rate": a.rate, "achieved_rate": round(achieved), "probes": len(lags), "p50_s": round(q(0.5), 3),
                "p90_s": round(q(0.9), 3), "p99_s": round(q(0.99), 3), "max_s": round(lags[-1], 3),
                "load": loadavg()}

    # ---- catching up a backlog --------------------------------------------------------------
    def catch_up(self):
        """The backlog is made by dynamorph itself, fast: versions that rewrite every item of
        `app` in place (SET label = concat(label, 'x')), `--backlog` / `--keys` of them, applied
        while nobody follows: one stream record per item and version."""
        a = self.args
        before = self.follow_scanned()
        rounds = max(1, a.backlog // a.keys)
        for v in range(3, 3 + rounds):
            with open(os.path.join(self.dir, "migrations", f"{v}_bump.yaml"), "w") as f:
                f.write(f"""version: {v}
up:
  - pipeline:
      source: {{ table: app, segments: 4 }}
      where: "begins_with(PK, :k)"
      values: {{ ":k": k }}
      transform:
        - update: "SET label = concat(label, 'x')"
      write: {{ mode: batch }}
""")
        t_write = time.monotonic()
        r = self.run("up")
        assert r.returncode == 0, r.stdout + r.stderr
        write_s = time.monotonic() - t_write
        wanted = rounds * a.keys
        t0 = time.monotonic()
        proc = self.start("follow")
        while self.follow_scanned() - before < wanted:
            time.sleep(0.2)
            if time.monotonic() - t0 > 900:
                raise SystemExit("backlog not replayed within 15 minutes")
        wall = time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        self.check_exact()
        return {"bench": "catch_up", "records": wanted, "wall_s": round(wall, 2),
                "records_per_s": round(wanted / wall), "backlog_written_s": round(write_s, 1),
                "load": loadavg()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli", "dynamorph"))
    ap.add_argument("--endpoint")
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--backlog", type=int, default=100000)
    ap.add_argument("--keys", type=int, default=20000, help="items in the source")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["lag", "catch_up"])
    args = ap.parse_args()
    server_dir = None
    if not args.endpoint:
        server_dir = tempfile.mkdtemp(prefix="stream_bench_ddb_")
        out = subprocess.run([os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "start", server_dir],
                             check=True, capture_output=True, text=True).stdout
        args.endpoint = out.strip().splitlines()[-1]
    results = []
    try:
        for rep in range(args.reps):
            b = Bench(args)
            try:
                b.setup()
                for what in (["lag", "catch_up"] if not args.only else [args.only]):
                    r = getattr(b, what)()
                    r["rep"] = rep
                    print(json.dumps(r), flush=True)
                    results.append(r)
            finally:
                b.drop()
    finally:
        if server_dir:
            subprocess.run([os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "stop", server_dir])
    for what, keys in (("lag", ["p50_s", "p90_s", "p99_s", "max_s"]), ("catch_up", ["records_per_s", "wall_s"])):
        rs = [r for r in results if r["bench"] == what]
        if rs:
            print(json.dumps({"bench": what, "median_of": len(rs),
                              **{k: statistics.median(r[k] for r in rs) for k in keys}}))


if __name__ == "__main__":
    sys.exit(main())
