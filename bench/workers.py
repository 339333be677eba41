#!/usr/bin/env python3
"""Throughput of `up --worker` with 1, 2 and 3 worker processes on one DynamoDB Local it starts.

  /usr/bin/python3 bench/workers.py [--items 60000] [--segments 24] [--reps 3]
                                    [--mode batch|update] [--bin build/cli/dynamorph]

Each job: a fresh table of --items ~60-byte profile items (seeded with `dynamorph bench seed`
would change their shape, so they are written here with BatchWriteItem), one migration
(`SET visits = visits + :one` in update mode with version_attribute, or with `migrated = :one`
in batch mode), N processes `up --worker` each in a folder of its own. Wall time from the first
start to the last exit, the server's CPU seconds (/proc of DynamoDB Local's pid) and the
client processes' CPU seconds. Prints a Markdown table of medians and appends JSON lines to
--out.

All workers and the one server share this machine's cores: what this shows is the cost of
coordination (leases, barrier, settle) and whether the server is the bound, not how workers
scale against DynamoDB, where each has its own partitions and network."""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from ceiling import Server, create_keyed_table, put_items  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=60000)
    ap.add_argument("--segments", type=int, default=24)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mode", choices=["batch", "update"], default="batch")
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli", "dynamorph"))
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)  # the workers run in folders of their own
    import boto3
    srv = Server()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_REGION="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=srv.endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    out = open(a.out, "a") if a.out else None
    counts = [int(x) for x in a.workers.split(",")]
    results = {n: [] for n in counts}
    try:
        for rep in range(a.reps):
            for n in counts:
                ns = f"w{uuid.uuid4().hex[:6]}-"
                table = ns + "app"
                create_keyed_table(ddb, table)
                put_items(ddb, table, [{"PK": {"S": f"USER#{i:07}"}, "SK": {"S": "PROFILE"},
                                        "visits": {"N": str(i % 17)}} for i in range(a.items)])
                base = tempfile.mkdtemp(prefix="dynamorph_wbench_")
                os.makedirs(os.path.join(base, "migrations"))
                with open(os.path.join(base, "dynamorph.yaml"), "w") as f:
                    f.write(f"endpoint: {srv.endpoint}\nregion: us-east-1\nnamespace: {ns}\n"
                            "lock_ttl: 10s\n")
                write = ("{ mode: update, version_attribute: _v }" if a.mode == "update"
                         else "{ mode: batch }")
                update = ("SET visits = visits + :one" if a.mode == "update"
                          else "SET visits = visits + :one, migrated = :one")
                with open(os.path.join(base, "migrations", "1_visits.yaml"), "w") as f:
                    f.write(f"""version: 1
name: visits
up:
  - pipeline:
      values: {{ ":one": 1 }}
      source: {{ table: app, segments: {a.segments} }}
      transform:
        - update: "{update}"
      write: {write}
""")
                dirs = []
                for _ in range(n):
                    d = tempfile.mkdtemp(prefix="dynamorph_wbench_w")
                    shutil.copytree(base, d, dirs_exist_ok=True)
                    dirs.append(d)
                cpu0 = srv.cpu_s()
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.monotonic()
                procs = [subprocess.Popen([a.bin, "-q", "up", "--worker"], cwd=d, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                         for d in dirs]
                errs = [p.communicate()[1] for p in procs]
                wall = time.monotonic() - t0
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                server_cpu = srv.cpu_s() - cpu0
                client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                codes = [p.returncode for p in procs]
                if codes != [0] * n:
                    raise SystemExit(f"workers exited {codes}: {errs}")
                row = {"workers": n, "items": a.items, "segments": a.segments, "mode": a.mode,
                       "wall_s": round(wall, 2), "items_per_s": round(a.items / wall),
                       "server_cpu_s": round(server_cpu, 2), "client_cpu_s": round(client_cpu, 2),
                       "load1": os.getloadavg()[0]}
                log(json.dumps(row))
                results[n].append(row)
                if out:
                    out.write(json.dumps(row) + "\n")
                ddb.delete_table(TableName=table)
                for d in dirs + [base]:
                    shutil.rmtree(d, True)
    finally:
        srv.stop()
    print(f"| workers | items/s (median of {a.reps}) | wall s | server CPU s | client CPU s |")
    print("|---|---|---|---|---|")
    for n in counts:
        rs = results[n]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"| {n} | {med('items_per_s'):,.0f} | {med('wall_s'):.1f} | {med('server_cpu_s'):.1f} "
              f"| {med('client_cpu_s'):.1f} |")


if __name__ == "__main__":
    main()
