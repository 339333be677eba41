#!/usr/bin/env python3
"""Soak: a long `up` under every fault of the proxy, killed with SIGKILL and resumed many times.

  /usr/bin/python3 bench/soak.py [--items 200000] [--cycles 20] [--segments 16] [--seed 1]
                                 [--page-size 250] [--bin build/cli/dynamorph]
                                 [--out bench/results/soak.jsonl]

One DynamoDB Local it starts, tests/support/fault_proxy.py in front of it answering every
request (data and state table alike) with, in rule order: a throttling error 5%, HTTP 500 2%,
HTTP 503 2%, a connection dropped before forwarding 1%, one dropped after the server applied the
request 1%, and 30% of BatchWriteItem calls half unprocessed. The migration is non-idempotent
(`SET visits = visits + :one`) in `update` mode with `version_attribute: _v`, so an item
applied twice or never shows in its value.

Each cycle starts `dynamorph up` through the proxy, lets it run a random 3-12 s (seeded), reads
its peak RSS (VmHWM), kills it with SIGKILL, and releases the dead holder's lock with `dynamorph
unlock`. After the cycles, one `up` runs to the end, still under every fault. Then every item is
read back from the server (not through the proxy): lost = visits unchanged, twice = visits + 2.
Prints a Markdown summary and appends one JSON line per cycle and one for the run to --out.
Never a test: it takes minutes and reports figures."""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from ceiling import Server, create_keyed_table, put_items  # noqa: E402
from fault_proxy import Spawned as Proxy  # noqa: E402

RULES = [
    {"fault": "throttle", "probability": 0.05},
    {"fault": "http500", "probability": 0.02},
    {"fault": "http503", "probability": 0.02},
    {"fault": "drop_before", "probability": 0.01},
    {"fault": "drop_after", "probability": 0.01},
    {"op": "BatchWriteItem", "fault": "partial_unprocessed", "probability": 0.30},
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--segments", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    # Checkpoints advance per page: pages that take a minute to write would never be saved
    # between kills 3-12 s apart (the run would still be exact, but would only move forward
    # through conditional rejections of what it already applied).
    ap.add_argument("--page-size", type=int, default=250)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli", "dynamorph"))
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    rng = random.Random(a.seed)
    log(f"soak: seed {a.seed}, {a.items} items, {a.cycles} kill -9 cycles")
    import boto3
    srv = Server()
    proxy = Proxy(srv.endpoint)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_REGION="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=srv.endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    out = open(a.out, "a") if a.out else None
    project = tempfile.mkdtemp(prefix="dynamorph_soak_")
    try:
        ns = f"s{uuid.uuid4().hex[:6]}-"
        table = ns + "app"
        create_keyed_table(ddb, table)
        original = {f"USER#{i:07}": i % 17 for i in range(a.items)}
        t0 = time.monotonic()
        put_items(ddb, table, [{"PK": {"S": k}, "SK": {"S": "PROFILE"}, "visits": {"N": str(v)},
                                "bio": {"S": "x" * 64}} for k, v in original.items()])
        log(f"seeded {a.items} items in {time.monotonic() - t0:.0f} s")

        os.makedirs(os.path.join(project, "migrations"))
        with open(os.path.join(project, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {proxy.url}\nregion: us-east-1\nnamespace: {ns}\nlock_ttl: 20s\n")
        with open(os.path.join(project, "migrations", "1_visits.yaml"), "w") as f:
            f.write(f"""version: 1
name: visits
up:
  - pipeline:
      values: {{ ":one": 1 }}
      source: {{ table: app, segments: {a.segments}, page_size: {a.page_size} }}
      transform:
        - update: "SET visits = visits + :one"
      write: {{ mode: update, version_attribute: _v }}
""")
        proxy.control("POST", "rules", RULES)

        def cli(*args, endpoint=None):
            extra = ["--endpoint", endpoint] if endpoint else []
            return subprocess.run([a.bin, *extra, *args], cwd=project, env=env,
                                  capture_output=True, text=True, timeout=600)

        cycles = []
        start = time.monotonic()
        finished_early = False
        for c in range(a.cycles):
            wait = rng.uniform(3, 12)
            p = subprocess.Popen([a.bin, "-q", "up"], cwd=project, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            t = time.monotonic()
            rss = None
            while time.monotonic() - t < wait and p.poll() is None:
                rss = peak_rss_mib(p.pid) or rss
                time.sleep(0.2)
            if p.poll() is not None:
                err = p.communicate()[1]
                if p.returncode != 0:
                    raise SystemExit(f"cycle {c}: up exited {p.returncode}: {err}")
                finished_early = True
                log(f"cycle {c}: up finished before its kill ({time.monotonic() - t:.1f} s)")
                break
            rss = peak_rss_mib(p.pid) or rss
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.stderr.close()
            u = cli("unlock")
            if u.returncode != 0:
                raise SystemExit(f"cycle {c}: unlock exited {u.returncode}: {u.stderr}")
            st = json.loads([ln for ln in cli("--json", "status", endpoint=srv.endpoint)
                             .stdout.splitlines() if ln.strip()][0])
            written = (st.get("counters") or {}).get("written")
            row = {"cycle": c, "ran_s": round(wait, 2), "peak_rss_mib": rss and round(rss, 1),
                   "state": st.get("state"), "written_so_far": written}
            log(json.dumps(row))
            cycles.append(row)
            if out:
                out.write(json.dumps({"soak_cycle": row}) + "\n")
        if not finished_early:
            t = time.monotonic()
            r = cli("up")
            if r.returncode != 0:
                raise SystemExit(f"final up exited {r.returncode}: {r.stderr}")
            log(f"final up: {time.monotonic() - t:.0f} s")
        wall = time.monotonic() - start
        stats = proxy.control("GET", "stats")

        got = {}
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for i in page["Items"]:
                got[i["PK"]["S"]] = (int(i["visits"]["N"]), i.get("_v", {}).get("N"))
        lost = sum(1 for k, v in original.items() if got.get(k, (None,))[0] == v)
        twice = sum(1 for k, v in original.items() if got.get(k, (None,))[0] == v + 2)
        wrong = sum(1 for k, v in original.items() if got.get(k) != (v + 1, "1"))
        missing = sum(1 for k in original if k not in got)
        rss = [r["peak_rss_mib"] for r in cycles if r["peak_rss_mib"]]
        summary = {"items": a.items, "cycles_killed": len(cycles), "seed": a.seed,
                   "wall_s": round(wall, 1), "lost": lost, "applied_twice": twice,
                   "wrong": wrong, "missing": missing,
                   "peak_rss_mib_min": min(rss) if rss else None,
                   "peak_rss_mib_max": max(rss) if rss else None,
                   "requests": stats.get("total_requests"), "faults": stats.get("faults"),
                   "load1": os.getloadavg()[0]}
        if out:
            out.write(json.dumps({"soak": summary}) + "\n")
        print("| items | kill -9 cycles | wall s | lost | applied twice | wrong | "
              "peak RSS MiB (min-max) | requests | faults injected |")
        print("|---|---|---|---|---|---|---|---|---|")
        faults = ", ".join(f"{k} {v}" for k, v in sorted((stats.get("faults") or {}).items()))
        print(f"| {a.items:,} | {len(cycles)} | {wall:.0f} | {lost} | {twice} | {wrong} | "
              f"{summary['peak_rss_mib_min']}-{summary['peak_rss_mib_max']} | "
              f"{stats.get('total_requests')} | {faults} |")
        if wrong or missing:
            raise SystemExit(f"soak: {wrong} items wrong ({lost} lost, {twice} twice, "
                             f"{missing} missing)")
    finally:
        proxy.stop()
        srv.stop()
        shutil.rmtree(project, True)


if __name__ == "__main__":
    main()
