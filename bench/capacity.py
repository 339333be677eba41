#!/usr/bin/python3
"""bench/capacity.py -- how much of a provisioned table's capacity a migration uses, and how
often it is throttled, through bench/capacity_proxy.py in front of one DynamoDB Local it starts.

  /usr/bin/python3 bench/capacity.py [--rcu 3000] [--wcu 1000] [--duration 300]
                                     [--percents 100,50] [--reps 1] [--peer FILE]
                                     [--bin build/cli/dynamorph] [--out bench/results/capacity-DATE]

The job is the benchmarks' one (bench/dataset.py: ~300-byte items, 80% of them profiles whose
username is lower-cased, one WCU per write), sized so that the allowed write rate needs at
least --duration seconds: N = duration * wcu * percent / 100 / 0.8 items, and 7% more.
Each job gets a table of its own, seeded directly (not through the proxy), so the proxy's
buckets for it are born empty when the job's first request reaches them: the run measures the
sustained rate, not a burst saved up before it.

Jobs:
- `dynamorph up --capacity-percent P` for each P of --percents: a batch-mode migration with
  8 segments, whose limiter takes P% of the WCU / RCU the proxy's DescribeTable reports;
- with --peer FILE: that baseline script (the AWS SDK for JavaScript v3 peer: 8 scan segments,
  up to 16 BatchWriteItem in flight, UnprocessedItems retried with exponential back-off, the
  SDK's standard retry mode for throttling errors) against the same proxy and capacity. It is
  run, never imported.

Per job: the data table's write units consumed per second (from the proxy's meter), the share
of them sustained over the first --duration seconds (the target: >= 95% of the allowance at
100%, >= 48% at 50%), the throttled requests (the proxy's ProvisionedThroughputExceeded
answers) and partial batches (UnprocessedItems) as shares of all requests to the table, client
CPU, the CPU burnt on the box by everything else (foreign CPU, from /proc/stat), and a
verification of every attribute of every item read back from the server. A job whose items are
not exact fails the bench (exit 1). Writes OUT.jsonl (raw) and OUT.md (the summary, the rate
per 30 s, the commands).
"""
import argparse
import datetime
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import capacity_proxy  # noqa: E402
import dataset  # noqa: E402
from ceiling import Server  # noqa: E402
from e2e import last_json, machine_busy_s  # noqa: E402

SEGMENTS = 8
PROFILE_SHARE = 0.8  # of the data set's items, the ones the job writes


def log(*a):
    print(f"[{datetime.datetime.now():%H:%M:%S}]", *a, file=sys.stderr, flush=True)


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


MIGRATION = """version: 1
name: normalize_usernames
up:
  - pipeline:
      values: {{ ":u": "USER#", ":profile": PROFILE, ":m": "{migrated_at}" }}
      source: {{ table: app, segments: {segments} }}
      where: "begins_with(PK, :u) AND SK = :profile"
      transform:
        - update: "SET username = lower(username), migratedAt = :m"
      write: {{ mode: batch }}
"""


def dynamorph_job(a, endpoint, ns, percent, env):
    """Runs `up --capacity-percent` in a project of its own; returns (its JSON summary, wall s)."""
    project = tempfile.mkdtemp(prefix="dynamorph_capacity_")
    try:
        os.makedirs(os.path.join(project, "migrations"))
        with open(os.path.join(project, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {endpoint}\nregion: us-east-1\nnamespace: {ns}\n")
        with open(os.path.join(project, "migrations", "1_normalize_usernames.yaml"), "w") as f:
            f.write(MIGRATION.format(migrated_at=dataset.MIGRATED_AT, segments=SEGMENTS))
        t0 = time.monotonic()
        r = subprocess.run([a.bin, "--json", "up", "--capacity-percent", str(percent)],
                           cwd=project, env=env, capture_output=True, text=True,
                           timeout=a.duration * 4 + 600)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit(f"dynamorph up exited {r.returncode}: {r.stderr[-2000:]}")
        lines = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("{")]
        return (json.loads(lines[-1]) if lines else {}), wall
    finally:
        shutil.rmtree(project, True)


def peer_job(a, endpoint, table, env):
    t0 = time.monotonic()
    r = subprocess.run(["node", "--no-warnings", os.path.abspath(a.peer)],
                       env=dict(env, DDB_ENDPOINT=endpoint, DDB_TABLE=table),
                       capture_output=True, text=True, timeout=a.duration * 4 + 600)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        # The peer gives up when the SDK's retries run out; that is a result, not a bench error.
        return {"failed": True, "exit": r.returncode, "stderr": r.stderr.strip()[-600:]}, wall
    return last_json(r.stdout), wall


def series_summary(stats, table, allowance, duration):
    """What the proxy saw for `table`: per-second write units, the sustained share, throttles."""
    t = stats["tables"].get(table)
    if not t:
        raise SystemExit(f"the proxy saw no request for {table}")
    per = t["per_second"]
    wcu = per["wcu"]
    # The job's first write opens the measured span; it lasts `duration` seconds or until the
    # job ends, whichever is first.
    first = next((i for i, v in enumerate(wcu) if v > 0), 0)
    span = wcu[first:first + duration]
    full = len(span) == duration
    requests = t["read_requests"] + t["write_requests"]
    throttled = t["read_throttled"] + t["write_throttled"]
    return {
        "first_write_s": first,
        "measured_s": len(span),
        "measured_full_duration": full,
        "wcu_consumed": round(sum(span), 1),
        "wcu_per_s": round(sum(span) / max(1, len(span)), 1),
        "share_of_allowance": round(sum(span) / max(1, len(span)) / allowance, 4),
        "requests": requests,
        "write_requests": t["write_requests"],
        "throttled_requests": throttled,
        "write_throttled": t["write_throttled"],
        "throttled_share": round(throttled / max(1, requests), 5),
        "partial_batches": t["partial_batches"],
        "unprocessed_items": t["unprocessed_items"],
        "partial_share": round(t["partial_batches"] / max(1, t["write_requests"]), 5),
        "per_30s": [round(sum(span[i:i + 30]) / len(span[i:i + 30]), 1)
                    for i in range(0, len(span), 30)],
        "per_second": {f: per[f][first:first + duration] for f in
                       ("wcu", "write_requests", "write_throttled", "partial_batches",
                        "unprocessed_items")},
        "wcu_total": t["wcu"],
        "rcu_total": t["rcu"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rcu", type=float, default=3000)
    ap.add_argument("--wcu", type=float, default=1000)
    ap.add_argument("--duration", type=int, default=300, help="seconds measured per job")
    ap.add_argument("--percents", default="100,50")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--peer", default="", metavar="FILE",
                    help="the AWS SDK v3 baseline script (with its npm packages beside it)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli", "dynamorph"))
    ap.add_argument("--out", default=os.path.join(
        ROOT, "bench", "results", f"capacity-{datetime.date.today():%Y-%m-%d}"))
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    percents = [float(p) for p in a.percents.split(",") if p]
    jobs = [("dynamorph", p) for p in percents] + ([("node-sdkv3", 100.0)] if a.peer else [])

    os.environ.setdefault("DDB_JAVA_OPTS", "-Xmx6g")
    srv = Server()
    proxy = capacity_proxy.Spawned(srv.endpoint, rcu=a.rcu, wcu=a.wcu)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_REGION="us-east-1")
    recs = []
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        with open(a.out + ".jsonl", "a") as out:
            for rep in range(a.reps):
                for k, (job, percent) in enumerate(jobs):
                    ns = f"r{rep}j{k}-"
                    table = ns + "app"
                    n = math.ceil(a.duration * a.wcu * percent / 100 / PROFILE_SHARE * 1.07)
                    log(f"{job} at {percent:g}%: seeding {n:,} items into {table}")
                    dataset.seed(srv.endpoint, table, n, 42, threads=4, quiet=True)
                    proxy.config(rcu=a.rcu, wcu=a.wcu)  # empty buckets, fresh stats
                    busy0, cpu0, srv0 = machine_busy_s(), children_cpu_s(), srv.cpu_s()
                    log(f"{job} at {percent:g}%: running")
                    if job == "dynamorph":
                        result, wall = dynamorph_job(a, proxy.url, ns, percent, env)
                    else:
                        result, wall = peer_job(a, proxy.url, table, env)
                    client_cpu = children_cpu_s() - cpu0
                    server_cpu = srv.cpu_s() - srv0
                    foreign = machine_busy_s() - busy0 - client_cpu - server_cpu
                    stats = proxy.stats()
                    s = series_summary(stats, table, a.wcu, a.duration)
                    check = dataset.verify(srv.endpoint, table, n, 42, quiet=True)
                    rec = {"job": job, "percent": percent, "rep": rep, "items": n,
                           "rcu": a.rcu, "wcu": a.wcu, "wall_s": round(wall, 1),
                           "client_cpu_s": round(client_cpu, 2),
                           "server_cpu_s": round(server_cpu, 2),
                           "foreign_cpu_s": round(max(0.0, foreign), 1),
                           "load1": os.getloadavg()[0], "verify": check["verify"],
                           "verify_problems": {k2: check[k2] for k2 in
                                               ("missing", "extra", "duplicate", "wrong")},
                           **s, "result": result}
                    log(json.dumps({k2: v for k2, v in rec.items() if k2 not in ("per_30s", "per_second", "result")}))
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    recs.append(rec)
        write_markdown(a, recs, started)
    finally:
        proxy.stop()
        srv.stop()
    bad = [r for r in recs if r["verify"] != "OK" and r["job"] == "dynamorph"]
    if bad:
        raise SystemExit(f"capacity bench: {len(bad)} dynamorph runs left items wrong")


def write_markdown(a, recs, started):
    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    L = [f"# Capacity use through a capacity-enforcing proxy ({started:%Y-%m-%d})", "",
         f"Table \"provisioned\" at {a.wcu:g} WCU and {a.rcu:g} RCU by `bench/capacity_proxy.py` "
         "(token buckets with a 300 s burst allowance, empty when the job starts; "
         "ProvisionedThroughputExceededException, or UnprocessedItems for the part of a batch "
         "that does not fit) in front of one DynamoDB Local. The job: the benchmarks' data set, "
         "80% of the items rewritten (one WCU each), sized to need at least "
         f"{a.duration} s at the allowed rate. Medians of {a.reps} run(s); measured over the "
         f"first {a.duration} s after the first write.", "",
         "| job | target | WCU/s sustained | share of the allowance | throttled requests | "
         "partial batches | items verified | wall s | client CPU s | foreign CPU s | load |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in recs:
        groups.setdefault((r["job"], r["percent"]), []).append(r)
    for (job, percent), rs in groups.items():
        name = f"dynamorph `--capacity-percent {percent:g}`" if job == "dynamorph" else \
            f"{job} (no limiter)"
        target = (">= 95%, < 1% throttled" if percent >= 100 else
                  f">= {percent * 0.96:g}%, no throttles") if job == "dynamorph" else "baseline"
        failed = sum(1 for r in rs if r["result"].get("failed"))
        L.append(f"| {name} | {target} | {med(rs, 'wcu_per_s'):,.1f} | "
                 f"**{med(rs, 'share_of_allowance') * 100:.1f}%** | "
                 f"{med(rs, 'throttled_share') * 100:.2f}% ({int(med(rs, 'throttled_requests'))} "
                 f"of {int(med(rs, 'requests'))}) | "
                 f"{med(rs, 'partial_share') * 100:.2f}% of writes | "
                 f"{', '.join(r['verify'] for r in rs)}{f' ({failed} gave up)' if failed else ''} | "
                 f"{med(rs, 'wall_s'):.0f} | {med(rs, 'client_cpu_s'):.1f} | "
                 f"{med(rs, 'foreign_cpu_s'):.0f} | {med(rs, 'load1'):.1f} |")
    L += ["", "Write units per second, mean of each 30 s (first run of each job):", "",
          "| job | " + " | ".join(f"{30 * i}-{30 * i + 30} s" for i in
                                   range(max(len(r["per_30s"]) for r in recs))) + " |",
          "|---|" + "---|" * max(len(r["per_30s"]) for r in recs)]
    for (job, percent), rs in groups.items():
        L.append(f"| {job} {percent:g}% | " + " | ".join(f"{v:,.0f}" for v in rs[0]["per_30s"])
                 + " |")
    L += ["", "Commands:", "", "```",
          f"/usr/bin/python3 bench/capacity.py --rcu {a.rcu:g} --wcu {a.wcu:g} "
          f"--duration {a.duration} --reps {a.reps}" + (" --peer PEER_SCRIPT" if a.peer else ""),
          "```", ""]
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
