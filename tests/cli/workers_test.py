"""Many workers, one migration (`up --worker`), against DynamoDB Local: three processes, each in
its own working folder with nothing shared but the endpoint and the credentials, share the
segments through leases in the state table; kill -9 of a worker and of the coordinator, SIGTERM,
and the whole run's rate cap. Data are read back with boto3 and compared exactly."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, DDB, ISO, N, S, Project, make_table, scan  # noqa: E402
from metrics_test import free_port, scrape  # noqa: E402


def seed(table, count, pad=0):
    """`count` profile items (visits = index % 17), written 25 at a time from 8 threads."""
    items = [{"PK": S(f"USER#{i:06}"), "SK": S("PROFILE"), "visits": N(i % 17),
              **({"pad": S("x" * pad)} if pad else {})} for i in range(count)]

    def put(chunk):
        req = {table: [{"PutRequest": {"Item": i}} for i in chunk]}
        while req:
            req = DDB.batch_write_item(RequestItems=req).get("UnprocessedItems")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, [items[k:k + 25] for k in range(0, len(items), 25)]))
    return items


def step(segments, page_size, update, write):
    return f"""\
        version: 5
        name: visits
        up:
          - pipeline:
              values: {{ ":one": 1 }}
              source: {{ table: app, segments: {segments}, page_size: {page_size} }}
              transform:
                - update: "{update}"
              write: {write}
        """


def batch_step(segments, page_size):
    """Idempotent, in batches: the fast shape of a bulk reshape."""
    return step(segments, page_size, "SET visits = visits + :one, migrated = :one, migratedAt = :now",
                "{ mode: batch }")


def visits_step(segments, page_size=100):
    """Non-idempotent (visits + 1), made exactly-once by version_attribute."""
    return step(segments, page_size, "SET visits = visits + :one",
                "{ mode: update, version_attribute: _v }")


class Workers:
    """N worker processes, each started in a copy of the project folder of its own."""

    def __init__(self, test, project, count, *args, first=()):
        self.dirs, self.procs = [], []
        for _ in range(count):
            d = tempfile.mkdtemp(prefix="dynamorph_worker_")
            shutil.copytree(project.dir, d, dirs_exist_ok=True)
            test.addCleanup(shutil.rmtree, d, True)
            self.dirs.append(d)
        for k, d in enumerate(self.dirs):
            self.procs.append(subprocess.Popen([BIN, *(first if k == 0 else ()), "up", "--worker",
                                                *args], cwd=d,
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True))
        test.addCleanup(self.kill_all)
        self.results = [None] * count

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()

    def wait(self, timeout=240):
        for k, p in enumerate(self.procs):
            if self.results[k] is None:
                out, err = p.communicate(timeout=timeout)
                self.results[k] = (p.returncode, out, err)
        return self.results

    def pid_index(self, pid):
        return [p.pid for p in self.procs].index(pid)


class WorkersTest(unittest.TestCase):
    maxDiff = None

    def lock_pid(self, p, timeout=30):
        """The coordinator's pid, from the lock item (owner host:pid:nonce)."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                r = DDB.get_item(TableName=p.state, Key={"pk": S("dynamorph"), "sk": S("lock")},
                                 ConsistentRead=True)
            except DDB.exceptions.ResourceNotFoundException:  # not created yet
                r = {}
            if "Item" in r:
                return int(r["Item"]["pid"]["N"])
            time.sleep(0.05)
        self.fail("no worker took the lock")

    def leases(self, p):
        return [i for i in scan(p.state) if i["sk"]["S"].startswith("checkpoint#")]

    def wait_for_claims(self, p, owners=1, timeout=30):
        """Until at least `owners` distinct workers hold leases."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                leases = self.leases(p)
            except DDB.exceptions.ResourceNotFoundException:  # not created yet
                leases = []
            held = {i["owner"]["S"] for i in leases if i.get("owner", {}).get("S")}
            if len(held) >= owners:
                return held
            time.sleep(0.1)
        self.fail(f"fewer than {owners} workers claimed leases")

    def visits(self, p):
        return {i["PK"]["S"]: (int(i["visits"]["N"]), i.get("_v", {}).get("N"))
                for i in scan(p.table("app"))}

    def expected(self, items):
        return {i["PK"]["S"]: (int(i["visits"]["N"]) + 1, "5") for i in items}

    def record(self, p):
        st, r = p.status()
        self.assertEqual(r.returncode, 0, r.stderr)
        return st[5]

    def assertAllExit(self, results, codes):
        self.assertEqual([r[0] for r in results], codes,
                         "\n".join(f"--- worker {k}: exit {c}\n{o}\n{e}"
                                   for k, (c, o, e) in enumerate(results)))

    def test_three_workers_share_60000_items_exactly_once(self):
        p = Project(self, lock_ttl="10s")
        make_table(p.table("app"))
        items = seed(p.table("app"), 60000)
        p.write("5_visits.yaml", batch_step(24, page_size=500))
        start = time.monotonic()
        port = free_port()
        w = Workers(self, p, 3, first=("--metrics", f"127.0.0.1:{port}"))
        held = []  # worker 0's dynamorph_leases_held while it runs, from its /metrics
        while w.procs[0].poll() is None:
            fams = scrape(port)
            if fams and "dynamorph_leases_held" in fams:
                held += [x.value for x in fams["dynamorph_leases_held"].samples
                         if x.labels.get("version") == "5" and x.labels.get("step") == "1"]
            time.sleep(0.2)
        results = w.wait()
        wall = time.monotonic() - start
        self.assertAllExit(results, [0, 0, 0])
        got = {i["PK"]["S"]: i for i in scan(p.table("app"))}
        # One :now for the whole run (the version's start), whichever worker wrote the item.
        stamps = {i["migratedAt"]["S"] for i in got.values()}
        self.assertEqual(len(stamps), 1, sorted(stamps)[:5])
        self.assertRegex(stamps.pop(), ISO)
        self.assertEqual({k: {a: v for a, v in i.items() if a != "migratedAt"} for k, i in got.items()},
                         {i["PK"]["S"]: {**i, "visits": N(int(i["visits"]["N"]) + 1),
                                         "migrated": N(1)} for i in items})
        rec = self.record(p)
        self.assertEqual(rec["state"], "applied")
        c = rec["counters"]
        self.assertEqual((c["scanned"], c["matched"], c["written"], c["skipped"]),
                         (60000, 60000, 60000, 0))
        # Every segment was done exactly once: one done_by per lease, summed at the barrier.
        shares = rec["workers"]
        self.assertEqual(sum(s["segments"] for s in shares.values()), 24)
        self.assertEqual(sum(s["scanned"] for s in shares.values()), 60000)
        self.assertEqual(sum(s["written"] for s in shares.values()), 60000)
        pids = {int(owner.split(":")[1]) for owner in shares}
        self.assertEqual(pids, {proc.pid for proc in w.procs}, shares)  # each did a share
        for s in shares.values():
            self.assertGreaterEqual(s["segments"], 4, shares)
        coordinators = [k for k, (_, out, _) in enumerate(results) if "applying 5" in out]
        self.assertEqual(len(coordinators), 1, results)
        self.assertGreaterEqual(max(held, default=0), 1, held)  # it held leases, and said so
        self.assertLessEqual(max(held), 24)
        self.assertEqual(self.leases(p), [])  # cleared once applied
        self.assertEqual([i for i in scan(p.state) if i["sk"]["S"].startswith("worker#")], [])
        print(f"[ measure  ] 3 workers, 60,000 items, 24 segments: {wall:.1f} s "
              f"({60000 / wall:,.0f} items/s); segments per worker "
              f"{sorted(s['segments'] for s in shares.values())}", file=sys.stderr)

    def kill9_and_check(self, coordinator):
        p = Project(self, lock_ttl="3s")
        make_table(p.table("app"))
        items = seed(p.table("app"), 6000)
        p.write("5_visits.yaml", visits_step(12, page_size=50))
        w = Workers(self, p, 3, "--max-wcu", "900")
        lock_pid = self.lock_pid(p)
        self.wait_for_claims(p, owners=3)
        time.sleep(1.5)
        victim = lock_pid if coordinator else next(x.pid for x in w.procs if x.pid != lock_pid)
        k = w.pid_index(victim)
        self.assertIsNone(w.procs[k].poll(), "the victim must still be running")
        before = self.visits(p)
        self.assertLess(sum(1 for v in before.values() if v[1] == "5"), len(items))
        os.kill(victim, signal.SIGKILL)
        results = w.wait()
        self.assertEqual(results[k][0], -signal.SIGKILL)
        self.assertAllExit([r for j, r in enumerate(results) if j != k], [0, 0])
        self.assertEqual(self.visits(p), self.expected(items))  # each item rose by exactly one
        rec = self.record(p)
        self.assertEqual(rec["state"], "applied")
        self.assertEqual(sum(s["segments"] for s in rec["workers"].values()), 12)
        self.assertGreaterEqual(rec["counters"]["written"] + rec["counters"]["skipped"], 6000)
        if coordinator:
            took_over = [r for j, r in enumerate(results) if j != k and "applying 5" in r[1]]
            self.assertEqual(len(took_over), 1, results)
        self.assertEqual(self.leases(p), [])
        # The dead worker's registration was pruned by the live ones once it expired.
        self.assertEqual([i for i in scan(p.state) if i["sk"]["S"].startswith("worker#")], [])

    def test_kill9_of_a_worker_its_segments_are_taken_over_exactly_once(self):
        self.kill9_and_check(coordinator=False)

    def test_kill9_of_the_coordinator_another_takes_over_exactly_once(self):
        self.kill9_and_check(coordinator=True)

    def test_sigterm_exits_130_and_releases_its_leases_at_once(self):
        p = Project(self, lock_ttl="120s")  # a takeover by expiry would take minutes
        make_table(p.table("app"))
        items = seed(p.table("app"), 6000)
        p.write("5_visits.yaml", visits_step(12, page_size=50))
        w = Workers(self, p, 3, "--max-wcu", "900")
        lock_pid = self.lock_pid(p)
        self.wait_for_claims(p, owners=3)
        time.sleep(1.0)
        victim = next(x for x in w.procs if x.pid != lock_pid)
        k = w.procs.index(victim)
        sent = time.monotonic()
        victim.send_signal(signal.SIGTERM)
        out, err = victim.communicate(timeout=30)
        stopped_in = time.monotonic() - sent
        w.results[k] = (victim.returncode, out, err)
        self.assertEqual(victim.returncode, 130, err)
        self.assertLess(stopped_in, 5.0, "the SIGTERM budget: 2 s plus a request's latency")
        mine = [i for i in self.leases(p)
                if i.get("owner", {}).get("S", "").split(":")[1:2] == [str(victim.pid)]]
        self.assertEqual(mine, [], "its leases are released at once")
        start = time.monotonic()
        results = w.wait()
        self.assertAllExit([r for j, r in enumerate(results) if j != k], [0, 0])
        self.assertLess(time.monotonic() - start, 100, "no wait for the 120 s lease expiry")
        self.assertEqual(self.visits(p), self.expected(items))

    def test_a_worker_paused_past_its_leases_stops_their_segments_and_writes_nothing_twice(self):
        p = Project(self, lock_ttl="3s")
        make_table(p.table("app"))
        items = seed(p.table("app"), 6000)
        p.write("5_visits.yaml", visits_step(12, page_size=50))
        w = Workers(self, p, 3, "--max-wcu", "900")
        lock_pid = self.lock_pid(p)
        self.wait_for_claims(p, owners=3)
        time.sleep(1.0)
        victim = next(x for x in w.procs if x.pid != lock_pid)
        k = w.procs.index(victim)
        os.kill(victim.pid, signal.SIGSTOP)  # a frozen container: its leases expire meanwhile

        def owned_by_victim():
            return [i["segment"]["N"] for i in self.leases(p) if not i["done"]["BOOL"] and
                    i.get("owner", {}).get("S", "").split(":")[1:2] == [str(victim.pid)]]
        frozen = owned_by_victim()
        self.assertNotEqual(frozen, [], "it held unfinished segments when it froze")
        end = time.time() + 60
        while owned_by_victim() and time.time() < end:  # the others take them over meanwhile
            time.sleep(0.2)
        taken = owned_by_victim()
        os.kill(victim.pid, signal.SIGCONT)
        results = w.wait()
        self.assertAllExit(results, [0, 0, 0])
        self.assertEqual(taken, [], "its segments were taken over while it was frozen")
        self.assertIn("lost the lease of", results[k][2])
        self.assertEqual(self.visits(p), self.expected(items))  # each item rose by exactly one
        self.assertEqual(self.record(p)["state"], "applied")

    def test_the_rate_cap_holds_for_the_whole_run(self):
        p = Project(self, lock_ttl="6s")
        make_table(p.table("app"))
        seed(p.table("app"), 4500)
        p.write("5_visits.yaml", visits_step(12, page_size=25))
        cap = 300
        start = time.monotonic()
        w = Workers(self, p, 3, "--max-wcu", str(cap))
        self.wait_for_claims(p, owners=3)
        results = w.wait()
        wall = time.monotonic() - start
        self.assertAllExit(results, [0, 0, 0])
        rec = self.record(p)
        wcu = rec["counters"]["consumed_wcu"]
        self.assertAlmostEqual(wcu, 4500, delta=1)  # one WCU per update of a small item
        rate = wcu / wall
        print(f"[ measure  ] 3 workers under --max-wcu {cap}: {rate:.0f} WCU/s over {wall:.1f} s "
              f"({rate / cap:.0%} of the cap)", file=sys.stderr)
        self.assertLessEqual(rate, cap * 1.10)
        self.assertEqual(len(rec["workers"]), 3, rec["workers"])


if __name__ == "__main__":
    unittest.main()
