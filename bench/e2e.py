#!/usr/bin/python3
"""bench/e2e.py -- dynamorph's end-to-end migration benchmark against DynamoDB Local.

  /usr/bin/python3 bench/e2e.py [--n 100000] [--reps 3] [--peers DIR] [--rss 20000,160000]
                                [--rss-reps 1] [--bin build-bench/bench/migrate_bench]
                                [--mib-in-flight M]

Per rep and job: fresh DynamoDB Local (-inMemory, scripts/dynamodb-local.sh, DDB_JAVA_OPTS=-Xmx6g),
seed N items with bench/dataset.py (deterministic, seed 42), one unmeasured warm-up scan, run the
job, record the server's CPU (utime+stime from /proc/PID/stat) and peak RSS (VmHWM), the CPU
burnt by everything else on the box (foreign_cpu_s, /proc/stat), verify every attribute of every
item with bench/dataset.py verify, stop the server.
Jobs: dynamorph (bench/migrate_bench) and, with --peers DIR, DIR/peer_node_sdkv3.cjs: the best
of the baseline peer scripts (AWS SDK for JavaScript v3, 8 segments, BatchWriteItem), from a
folder of peer scripts with their npm packages installed under DIR/.cache/npm. The peer is only
run, never imported: nothing here depends on it unless --peers is given.
--rss: extra dynamorph-only runs at those table sizes for the memory-flatness target.
Writes bench/results/e2e-<date>.jsonl (raw) and e2e-<date>.md (medians, ratios).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
CLK = os.sysconf("SC_CLK_TCK")
PEERS_DIR = ""  # --peers DIR
# The peers' own published figures (their REPORT.md), medians of 3, 100k items (client CPU s per 100k items)
BASELINE = {"node-sdkv3": (4934, 10.4), "node-shelf": (4627, 11.0), "boto3-parallel": (3090, 22.7),
            "boto3-naive": (332, 135.3)}


def log(*a):
    print(f"[{datetime.datetime.now():%H:%M:%S}]", *a, file=sys.stderr, flush=True)


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in: {text[-800:]}")


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / CLK  # minus idle, iowait


class Server:
    def __init__(self, state):
        self.state = state

    def __enter__(self):
        env = dict(os.environ, DDB_JAVA_OPTS=os.environ.get("DDB_JAVA_OPTS", "-Xmx6g"))
        r = subprocess.run([os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "start", self.state],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"dynamodb-local start failed: {r.stderr[-1000:]}")
        self.endpoint = r.stdout.strip().splitlines()[-1]
        with open(os.path.join(self.state, "pid")) as f:
            self.pid = int(f.read().strip())
        return self

    def cpu_s(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def hwm_mib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def __exit__(self, *exc):
        subprocess.run([os.path.join(ROOT, "scripts", "dynamodb-local.sh"), "stop", self.state],
                       capture_output=True, text=True)


def wait_quiet(limit_s=15, threshold=0.5):
    t0 = time.time()
    while time.time() - t0 < limit_s:
        b0 = machine_busy_s()
        time.sleep(1.0)
        if machine_busy_s() - b0 < threshold:
            break
    return round(time.time() - t0, 1)


def run_job(job, a, n, rep):
    state = os.path.join(ROOT, ".cache", f"e2e-ddb-{os.getpid()}")
    with Server(state) as srv:
        ds = [PY, os.path.join(HERE, "dataset.py")]
        common = ["--endpoint", srv.endpoint, "--table", "bench"]
        sd = last_json(subprocess.run(ds + ["seed", *common, "--n", str(n), "--seed", "42"],
                                      capture_output=True, text=True, check=True).stdout)
        warm = last_json(subprocess.run(ds + ["scan", *common], capture_output=True, text=True,
                                        check=True).stdout)
        quiet = wait_quiet()
        if job == "dynamorph":
            cmd = ["/usr/bin/time", "-v", a.bin, "--endpoint", srv.endpoint, "--table", "bench", "--segments",
                   str(a.segments), "--max-writes", str(a.max_writes), "--mode", a.mode, "--filter", a.filter,
                   "--json"] + (["--mib-in-flight", str(a.mib_in_flight)] if a.mib_in_flight is not None else [])
            cwd, env = ROOT, None
        else:
            cmd = ["/usr/bin/time", "-v", "node", "--no-warnings", "peer_node_sdkv3.cjs"]
            cwd, env = PEERS_DIR, dict(os.environ, DDB_ENDPOINT=srv.endpoint, DDB_TABLE="bench")
        s0, m0, t0 = srv.cpu_s(), machine_busy_s(), time.time()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
        outer = time.time() - t0
        s1, m1 = srv.cpu_s(), machine_busy_s()
        if r.returncode != 0:
            raise RuntimeError(f"{job} failed rc={r.returncode}: {r.stdout[-1500:]} {r.stderr[-1500:]}")
        rec = last_json(r.stdout)
        for line in r.stderr.splitlines():
            if "Maximum resident set size" in line:
                rec["time_v_maxrss_mib"] = round(int(line.split(":")[1]) / 1024, 1)
        rec.update(job=job, rep=rep, n=n, seed_items_per_s=sd["items_per_s"],
                   warmup_scan_items_per_s=warm["items_per_s"], quiet_wait_s=quiet,
                   server_cpu_s=round(s1 - s0, 2), server_peak_rss_mib=round(srv.hwm_mib() or 0),
                   process_wall_s=round(outer, 2),
                   foreign_cpu_s=round((m1 - m0) - (s1 - s0) - rec["client_cpu_s"], 2))
        v = subprocess.run(ds + ["verify", *common, "--n", str(n), "--seed", "42"], capture_output=True, text=True)
        vr = last_json(v.stdout)
        rec["verify"] = vr["verify"]
        if vr["verify"] != "OK":
            rec["verify_detail"] = vr
        return rec


def med(rs, k):
    xs = [r[k] for r in rs if r.get(k) is not None]
    return statistics.median(xs) if xs else None


def summarize(recs, a, path_md, started):
    L = [f"# dynamorph end-to-end benchmark, {started:%Y-%m-%d %H:%M} UTC", "",
         f"bench/e2e.py: fresh DynamoDB Local (-inMemory, -Xmx6g) per job, {a.n:,} items seeded by bench/dataset.py "
         "(seed 42, ~300 B, 80 % profiles), one warm-up scan, job, full item-by-item verify. "
         f"dynamorph: bench/migrate_bench --segments {a.segments} --max-writes {a.max_writes} --mode {a.mode} "
         f"--filter {a.filter}"
         f"{'' if a.mib_in_flight is None else f' --mib-in-flight {a.mib_in_flight:g}'}. Client CPU = whole process (getrusage, start-up included) per 100k items; "
         "server CPU = DynamoDB Local utime+stime during the job; foreign CPU = everything else on the box "
         "(other workloads share this 2-core machine: large values mean a noisy run).", "",
         "| job | runs | items/s median (min..max) | wall s | client CPU s / 100k | server CPU s / 100k | "
         "client peak RSS MiB | foreign CPU s (median) | verify |",
         "|---|---|---|---|---|---|---|---|---|"]
    main = [r for r in recs if r["n"] == a.n]
    jobs = sorted({r["job"] for r in main}, key=lambda j: j != "dynamorph")
    meds = {}
    for j in jobs:
        rs = [r for r in main if r["job"] == j]
        ips = [r["items_per_s"] for r in rs]
        scale = 100000 / a.n
        meds[j] = (statistics.median(ips), med(rs, "client_cpu_s") * scale)
        rss = med(rs, "peak_rss_mib") or med(rs, "time_v_maxrss_mib")
        L.append(f"| {j} | {len(rs)} | **{statistics.median(ips):,.0f}** ({min(ips):,.0f}..{max(ips):,.0f}) | "
                 f"{med(rs, 'wall_s'):.2f} | {meds[j][1]:.2f} | {med(rs, 'server_cpu_s') * scale:.1f} | "
                 f"{rss:.0f} | {med(rs, 'foreign_cpu_s'):.1f} | "
                 f"{sum(r['verify'] == 'OK' for r in rs)}/{len(rs)} OK |")
    L += ["", "## Ratios", ""]
    if "dynamorph" in meds:
        d_ips, d_cpu = meds["dynamorph"]
        if "node-sdkv3" in meds:
            p_ips, p_cpu = meds["node-sdkv3"]
            L.append(f"* Side by side (same reps, same server build, same data): dynamorph / node-sdkv3 items/s = "
                     f"**{d_ips / p_ips:.2f}x** (target >= 1.1x); client CPU = **1/{p_cpu / d_cpu:.1f}** of the peer's "
                     "(target <= 1/10).")
        b_ips, b_cpu = BASELINE["node-sdkv3"]
        L.append(f"* Against the checked-in baseline (the peers' REPORT.md, node-sdkv3 {b_ips:,} items/s, "
                 f"{b_cpu} client CPU s / 100k): items/s {d_ips / b_ips:.2f}x, client CPU 1/{b_cpu / d_cpu:.1f}.")
        if a.job_ceiling:
            L.append(f"* The server's raw ceiling for this job ({a.job_ceiling:,.0f} items/s, from bench/ceiling.py's raw "
                     f"scan and write rates: N / (N / scan + written / write)): **{d_ips / a.job_ceiling:.0%}** "
                     "(target >= 90%).")
    rss = [r for r in recs if r["job"] == "dynamorph" and r.get("peak_rss_mib")]
    sizes = sorted({r["n"] for r in rss})
    if len(sizes) > 1:
        L += ["", "## Peak memory of migrate_bench by table size (getrusage ru_maxrss)", "",
              "| items | runs | peak RSS MiB median (min..max) | items/s median |", "|---|---|---|---|"]
        for n in sizes:
            rs = [r for r in rss if r["n"] == n]
            xs = [r["peak_rss_mib"] for r in rs]
            L.append(f"| {n:,} | {len(rs)} | {statistics.median(xs):.1f} ({min(xs):.1f}..{max(xs):.1f}) | "
                     f"{med(rs, 'items_per_s'):,.0f} |")
        lo = statistics.median([r["peak_rss_mib"] for r in rss if r["n"] == sizes[0]])
        hi = statistics.median([r["peak_rss_mib"] for r in rss if r["n"] == sizes[-1]])
        L.append(f"\n{sizes[-1]:,} vs {sizes[0]:,} items: {hi / lo - 1:+.1%} (target: within ±10 %, under 256 MiB).")
    bad = [r for r in recs if r["verify"] != "OK"]
    L += ["", f"Verification failures: {len(bad)} of {len(recs)} runs."]
    with open(path_md, "w") as f:
        f.write("\n".join(L) + "\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peers", default="", metavar="DIR", help="folder of the baseline peer scripts")
    ap.add_argument("--rss", default="", help="comma-separated table sizes for dynamorph-only memory runs")
    ap.add_argument("--rss-reps", type=int, default=1)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "bench", "migrate_bench"))
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--max-writes", type=int, default=16)
    ap.add_argument("--mode", default="batch")
    ap.add_argument("--filter", default="server")
    ap.add_argument("--mib-in-flight", type=float, default=None, metavar="M",
                    help="dynamorph's byte budget for responses held (default: the pipeline's)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--summarize", default="", help="only rebuild the .md from this .jsonl")
    ap.add_argument("--job-ceiling", type=float, default=0, metavar="ITEMS_PER_S",
                    help="the job's raw server ceiling measured by bench/ceiling.py (reported as a ratio)")
    a = ap.parse_args()
    started = datetime.datetime.utcnow()
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"e2e-{started:%Y-%m-%d}{a.tag}")
    if a.summarize:
        recs = [json.loads(l) for l in open(a.summarize) if l.strip()]
        print(summarize(recs, a, a.summarize.rsplit(".", 1)[0] + ".md", started))
        return
    global PEERS_DIR
    PEERS_DIR = os.path.abspath(a.peers) if a.peers else ""
    if a.peers and not os.path.isdir(os.path.join(PEERS_DIR, ".cache", "npm", "node_modules", "@aws-sdk")):
        log(f"peers: {PEERS_DIR}/.cache/npm missing (run the peers' setup.sh npm); running without")
        a.peers = False
    recs = []
    jsonl = open(stem + ".jsonl", "a")

    def record(rec):
        recs.append(rec)
        jsonl.write(json.dumps(rec) + "\n")
        jsonl.flush()
        log(f"{rec['job']} n={rec['n']} rep={rec['rep']}: {rec['items_per_s']:,.0f} items/s wall {rec['wall_s']}s "
            f"client CPU {rec['client_cpu_s']}s server CPU {rec['server_cpu_s']}s foreign {rec['foreign_cpu_s']}s "
            f"rss {rec.get('peak_rss_mib') or rec.get('time_v_maxrss_mib')} MiB verify {rec['verify']}")

    jobs = ["dynamorph"] + (["node-sdkv3"] if a.peers else [])
    for rep in range(a.reps):
        order = jobs if rep % 2 == 0 else list(reversed(jobs))  # alternate who goes first
        for job in order:
            record(run_job(job, a, a.n, rep))
    for n in [int(x) for x in a.rss.split(",") if x]:
        for rep in range(a.rss_reps):
            record(run_job("dynamorph", a, n, rep))
    print(summarize(recs, a, stem + ".md", started))


if __name__ == "__main__":
    main()
