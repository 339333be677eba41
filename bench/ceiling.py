#!/usr/bin/env python3
"""dynamorph bench next to the raw server ceiling, on one DynamoDB Local it starts itself.

  /usr/bin/python3 bench/ceiling.py --peers DIR [--n 100000] [--reps 3] [--bin build/cli/dynamorph]

Scan: `dynamorph bench scan --segments 8` and the peers' `ceiling.cjs scan` (hand-rolled HTTP
keep-alive POSTs with a fixed signature, 8 segments, 1 MB pages) over the same seeded table,
alternating, after one unmeasured warm-up scan. Write: `dynamorph bench write --in-flight N`
and `ceiling.cjs write` (BatchWriteItem bodies serialized before the clock starts) at 4, 16
and 64 requests in flight, each into an empty table, ~300-byte items. Server CPU is read from
/proc for DynamoDB Local's pid around each job. Prints a Markdown table (medians of the reps)
and appends one JSON line per job to --out.

DIR holds the baseline scripts (ceiling.cjs, node_common.cjs, dataset.py and their npm cache):
run, never imported into dynamorph."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dynamorph_ceiling_")
        url = subprocess.run([os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "start", self.dir],
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        self.endpoint = url
        self.pid = int(open(os.path.join(self.dir, "pid")).read())

    def cpu_s(self):
        f = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "stop", self.dir], check=False)


def create_keyed_table(ddb, table):
    """An on-demand table keyed by PK and SK (strings), as the benchmarks' items are."""
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"}
                                           for k in ("PK", "SK")],
                     KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                {"AttributeName": "SK", "KeyType": "RANGE"}])


def put_items(ddb, table, items, threads=8):
    """Every item, with BatchWriteItem of 25 from `threads` threads, unprocessed ones sent again."""
    from concurrent.futures import ThreadPoolExecutor

    def put(chunk):
        req = {table: [{"PutRequest": {"Item": i}} for i in chunk]}
        while req:
            req = ddb.batch_write_item(RequestItems=req).get("UnprocessedItems")
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, [items[k:k + 25] for k in range(0, len(items), 25)]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", required=True)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli", "dynamorph"))
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    peers = os.path.abspath(a.peers)
    srv = Server()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_REGION="us-east-1", DDB_ENDPOINT=srv.endpoint)
    out = open(a.out, "a") if a.out else None
    rows = []

    def record(job, setting, items_per_s, server_cpu, client_cpu, extra=None):
        rec = {"job": job, "setting": setting, "items_per_s": items_per_s, "server_cpu_s": server_cpu,
               "client_cpu_s": client_cpu, "load1": os.getloadavg()[0], **(extra or {})}
        rows.append(rec)
        log(json.dumps(rec))
        if out:
            out.write(json.dumps(rec) + "\n")
            out.flush()

    def dynamorph(*args):
        c0 = srv.cpu_s()
        r = subprocess.run([a.bin, "--endpoint", srv.endpoint, "--json", "bench", *args], env=env,
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1]), srv.cpu_s() - c0

    def ceiling(mode, **kw):
        c0 = srv.cpu_s()
        r = subprocess.run(["node", "--no-warnings", os.path.join(peers, "ceiling.cjs"), mode],
                           env=dict(env, **{k: str(v) for k, v in kw.items()}), capture_output=True,
                           text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1]), srv.cpu_s() - c0

    try:
        table = "ceiling_scan"
        dynamorph("seed", "--items", str(a.n), "--table", table)
        ceiling("scan", DDB_TABLE=table, SEGMENTS=8, CLIENT="raw")  # warm-up, unmeasured
        for rep in range(a.reps):
            res, cpu = dynamorph("scan", "--table", table, "--segments", "8")
            record("dynamorph bench scan", "8 segments", res["items_per_s"], cpu, res["client_cpu_s"],
                   {"rep": rep, "p50_ms": res["latency_ms"]["Scan"]["p50"], "p99_ms": res["latency_ms"]["Scan"]["p99"]})
            c, cpu = ceiling("scan", DDB_TABLE=table, SEGMENTS=8, CLIENT="raw")
            record("ceiling.cjs scan (raw)", "8 segments", c["items_per_s"], cpu, c["client_cpu_s_timed"] if "client_cpu_s_timed" in c else c["client_cpu_s"], {"rep": rep})
        res, _ = dynamorph("scan", "--table", table, "--segments", "1,2,4,8,16,32")
        for run in res["runs"]:
            record("dynamorph bench scan sweep", f"{run['segments']} segments", run["items_per_s"], None,
                   run["client_cpu_s"], {"p50_ms": run["latency_ms"]["Scan"]["p50"], "p99_ms": run["latency_ms"]["Scan"]["p99"]})
        log("sweep best:", res["best"])

        sys.path.insert(0, peers)
        import dataset  # the peers' generator: low-level DynamoDB JSON items with PK/SK
        items_file = os.path.join(srv.dir, "items.jsonl")
        with open(items_file, "w") as f:
            for it in dataset.generate(a.n, 42):
                f.write(json.dumps(it, separators=(",", ":")) + "\n")
        import boto3
        ddb = boto3.client("dynamodb", endpoint_url=srv.endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")

        def empty_table(name):
            try:
                ddb.delete_table(TableName=name)
                ddb.get_waiter("table_not_exists").wait(TableName=name)
            except ddb.exceptions.ResourceNotFoundException:
                pass
            ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                                   {"AttributeName": "SK", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                        {"AttributeName": "SK", "KeyType": "RANGE"}])
            ddb.get_waiter("table_exists").wait(TableName=name)

        for rep in range(a.reps):
            for conc in (4, 16, 64):
                res, cpu = dynamorph("write", "--items", str(a.n), "--in-flight", str(conc))
                record("dynamorph bench write batch", f"{conc} in flight", res["items_per_s"], cpu,
                       res["client_cpu_s"], {"rep": rep, "p50_ms": res["latency_ms"]["BatchWriteItem"]["p50"],
                                              "p99_ms": res["latency_ms"]["BatchWriteItem"]["p99"]})
                empty_table("ceiling_write")
                c, cpu = ceiling("write", DDB_TABLE="ceiling_write", CONCURRENCY=conc, CLIENT="raw",
                                 ITEMS_FILE=items_file)
                record("ceiling.cjs write (raw)", f"{conc} in flight", c["items_per_s"], cpu,
                       c.get("client_cpu_s_timed", c["client_cpu_s"]), {"rep": rep})
    finally:
        srv.stop()

    print("| job | setting | items/s (median) | server CPU s / 100k | client CPU s / 100k | vs ceiling |")
    print("|---|---|---|---|---|---|")
    keys = []
    for r in rows:
        if (r["job"], r["setting"]) not in keys:
            keys.append((r["job"], r["setting"]))
    med = {}
    for k in keys:
        rs = [r for r in rows if (r["job"], r["setting"]) == k]
        med[k] = statistics.median(r["items_per_s"] for r in rs)
    for job, setting in keys:
        rs = [r for r in rows if (r["job"], r["setting"]) == (job, setting)]
        srv_cpu = [r["server_cpu_s"] for r in rs if r["server_cpu_s"] is not None]
        scale = 100_000 / a.n
        ceil_job = "ceiling.cjs scan (raw)" if "scan" in job else "ceiling.cjs write (raw)"
        ratio = med[(job, setting)] / med[(ceil_job, setting)] if (ceil_job, setting) in med and not job.startswith("ceiling") else None
        print(f"| {job} | {setting} | {med[(job, setting)]:,.0f} | "
              f"{statistics.median(srv_cpu) * scale:.2f} | " if srv_cpu else f"| {job} | {setting} | {med[(job, setting)]:,.0f} | – | ",
              end="")
        print(f"{statistics.median(r['client_cpu_s'] for r in rs) * scale:.2f} | "
              f"{'' if ratio is None else f'{ratio:.0%}'} |")


if __name__ == "__main__":
    main()
