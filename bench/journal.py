#!/usr/bin/python3
"""bench/journal.py -- what the before-image journal costs: `dynamorph up` with `journal:` off,
on (a local folder) and, with --s3, on (s3rver on loopback), against one DynamoDB Local.

  /usr/bin/python3 bench/journal.py [--n 30000] [--reps 3] [--s3] [--bin build/cli/dynamorph]

Per rep, the modes in turn, a different one first each rep (so that a change in the machine's
load, or the server's garbage collection after the previous run, hits them alike): seed a
fresh table of N items with bench/dataset.py (the peers' data set: ~300-byte items, 80% profiles),
one unmeasured warm-up scan, `dynamorph --json up` of the job (lowercase `username`, stamp
`migratedAt` on the profiles; batch mode, 8 segments), check every item with dataset.py verify;
with a journal, count its bytes and records, then `dynamorph down` (the journal restored) and
check every item is the original again. One unrecorded warm-up run first (DynamoDB Local's JIT).
The figures: the pipeline's items/s (scanned per second,
its own summary) and the process's wall time, the client's and the server's CPU, the CPU the
rest of the box burnt meanwhile (other engineers share its 2 cores), medians per mode, the
journal's gzip'd bytes per before-image and the restore's items/s. Writes bench/results/journal-<date>.jsonl and .md.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import dataset  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")

MIGRATION = """\
    version: 1
    name: normalize
    up:
      - pipeline:
          values: {{ ":p": "PROFILE", ":u": "USER#", ":at": "{at}" }}
          source: {{ table: {table}, segments: 8 }}
          where: "begins_with(PK, :u) AND SK = :p"
          transform:
            - update: "SET username = lower(username), migratedAt = :at"
          write: {{ mode: batch }}
    """


def log(*a):
    print(f"[{datetime.datetime.now():%H:%M:%S}]", *a, file=sys.stderr, flush=True)


def busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / CLK


def server_cpu_s(state):
    with open(os.path.join(state, "pid")) as f:
        pid = int(f.read().strip())
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def children_cpu_s():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def start(script, state):
    r = subprocess.run([os.path.join(ROOT, "scripts", script), "start", state], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{script} start failed: {r.stderr[-800:]}")
    return r.stdout.strip().splitlines()[-1]


def stop(script, state):
    subprocess.run([os.path.join(ROOT, "scripts", script), "stop", state], capture_output=True, text=True)


def journal_size(where, s3_endpoint):
    """(bytes, records) of every journal file."""
    import gzip
    total, records = 0, 0
    if where.startswith("s3://"):
        import boto3
        s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER")
        bucket, prefix = where[5:].split("/", 1)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                if o["Key"].endswith(".jsonl.gz"):
                    body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                    total += len(body)
                    records += len(gzip.decompress(body).splitlines())
        return total, records
    for dirpath, _, names in os.walk(where):
        for n in names:
            if n.endswith(".jsonl.gz"):
                with open(os.path.join(dirpath, n), "rb") as f:
                    body = f.read()
                total += len(body)
                records += len(gzip.decompress(body).splitlines())
    return total, records


def run_one(a, endpoint, s3_endpoint, mode, rep):
    table = f"jb_{mode}_{rep}_{int(time.time())}"
    work = tempfile.mkdtemp(prefix="dynamorph_journal_bench_")
    try:
        os.makedirs(os.path.join(work, "migrations"))
        journal = {"off": None, "local": os.path.join(work, "journal"),
                   "s3": f"s3://dynamorph-test/bench-{table}"}[mode]
        with open(os.path.join(work, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {endpoint}\nregion: us-east-1\nstate_table: {table}_state\n")
            if journal:
                f.write(f"journal: {journal}\n")
        with open(os.path.join(work, "migrations", "1_normalize.yaml"), "w") as f:
            f.write(textwrap.dedent(MIGRATION.format(table=table, at=dataset.MIGRATED_AT)))
        env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER", AWS_REGION="us-east-1")
        if s3_endpoint:
            env["AWS_ENDPOINT_URL_S3"] = s3_endpoint
        dataset.seed(endpoint, table, a.n, 42, quiet=True)
        dataset.scan_all(endpoint, table, keep=False)  # warm-up, unmeasured
        b0, t0, s0, c0 = busy_s(), time.time(), server_cpu_s(a.ddb_state), children_cpu_s()
        r = subprocess.run([a.bin, "--json", "up"], cwd=work, capture_output=True, text=True, env=env)
        wall = time.time() - t0
        box = busy_s() - b0
        server = server_cpu_s(a.ddb_state) - s0
        client = children_cpu_s() - c0
        if r.returncode != 0:
            raise RuntimeError(f"up ({mode}) failed: {r.stderr[-800:]}")
        summary = [json.loads(l) for l in r.stdout.splitlines() if '"summary"' in l][-1]
        check = dataset.verify(endpoint, table, a.n, 42, state="migrated", quiet=True)
        if check["verify"] != "OK":
            raise RuntimeError(f"{mode}: the table is not migrated right: {check}")
        rec = {"mode": mode, "rep": rep, "n": a.n, "items_per_s": summary["items_per_s"],
               "pipeline_s": summary["elapsed_s"], "wall_s": round(wall, 3), "box_busy_s": round(box, 2),
               "server_cpu_s": round(server, 2), "client_cpu_s": round(client, 2),
               "foreign_cpu_s": round(box - server - client, 2)}
        if journal:
            rec["journal_bytes"], rec["journal_records"] = journal_size(journal, s3_endpoint)
            rec["bytes_per_record"] = round(rec["journal_bytes"] / max(1, rec["journal_records"]), 1)
            t0 = time.time()
            d = subprocess.run([a.bin, "down"], cwd=work, capture_output=True, text=True, env=env)
            rec["down_s"] = round(time.time() - t0, 3)
            if d.returncode != 0:
                raise RuntimeError(f"down ({mode}) failed: {d.stdout[-400:]} {d.stderr[-400:]}")
            check = dataset.verify(endpoint, table, a.n, 42, state="original", quiet=True)
            if check["verify"] != "OK":
                raise RuntimeError(f"{mode}: down did not restore the original: {check}")
            rec["down_items_per_s"] = round(rec["journal_records"] / rec["down_s"])
        return rec
    finally:
        conn = dataset.Conn(endpoint)
        for t in (table, table + "_state"):
            try:
                conn.call("DeleteTable", {"TableName": t})
            except Exception:  # noqa: BLE001 - a table never created
                pass
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="also a journal in s3rver")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cli", "dynamorph"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    state = tempfile.mkdtemp(prefix="dynamorph_journal_bench_state_")
    modes = ["off", "local"] + (["s3"] if a.s3 else [])
    recs = []
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        a.ddb_state = os.path.join(state, "ddb")
        endpoint = start("dynamodb-local.sh", a.ddb_state)
        s3_endpoint = start("s3-server.sh", os.path.join(state, "s3")) if a.s3 else ""
        log("warm-up run (not recorded): the server's JIT")
        run_one(a, endpoint, s3_endpoint, "off", -1)
        for rep in range(a.reps):
            for mode in modes[rep % len(modes):] + modes[:rep % len(modes)]:  # each mode first once
                rec = run_one(a, endpoint, s3_endpoint, mode, rep)
                log(json.dumps(rec))
                recs.append(rec)
    finally:
        stop("dynamodb-local.sh", os.path.join(state, "ddb"))
        if a.s3:
            stop("s3-server.sh", os.path.join(state, "s3"))
        shutil.rmtree(state, ignore_errors=True)
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"journal-{started:%Y-%m-%d}")
    with open(stem + ".jsonl", "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    med = lambda mode, k: statistics.median(r[k] for r in recs if r["mode"] == mode)  # noqa: E731
    off = med("off", "items_per_s")
    lines = [f"# journal cost, {started:%Y-%m-%d %H:%M} UTC", "",
             f"{a.n} items (~300 bytes, {a.n * 4 // 5} profiles rewritten), batch mode, 8 segments, "
             f"one DynamoDB Local (in memory) on this 2-core box; medians of {a.reps}.", "",
             "| journal | items/s | vs off | pipeline s | wall s | client CPU s | server CPU s | others' CPU s | bytes/before-image | down items/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mode in modes:
        ips = med(mode, "items_per_s")
        extra = ("—", "—") if mode == "off" else (f"{med(mode, 'bytes_per_record'):.0f}", f"{med(mode, 'down_items_per_s'):.0f}")
        lines.append(f"| {mode} | {ips:.0f} | {100 * (ips / off - 1):+.1f}% | {med(mode, 'pipeline_s'):.1f} | "
                     f"{med(mode, 'wall_s'):.2f} | {med(mode, 'client_cpu_s'):.2f} | {med(mode, 'server_cpu_s'):.1f} | "
                     f"{med(mode, 'foreign_cpu_s'):.1f} | {extra[0]} | {extra[1]} |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
