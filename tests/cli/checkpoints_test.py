"""Checkpoints at scale through dynamorph's command line, against DynamoDB Local (which allows
10 actions per transaction): the README's reshape with 10 to 1,024 scan segments, kill -9 at
random moments with 64 segments, a crash between two transactions of the final clearing of
checkpoints, and status and resume with 4,096 segments. Data are checked with boto3."""
import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import (DDB, ENDPOINT, ISO, Project, by_key, dataset, make_table, put_all,  # noqa: E402
                      scan)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "support"))
import fault_proxy  # noqa: E402


def FaultProxy(test):
    """tests/support/fault_proxy.py in front of DynamoDB Local, for one test."""
    proxy = fault_proxy.Spawned(ENDPOINT)
    test.addCleanup(proxy.stop)
    return proxy


def reshape(version, table, segments):
    """The README's demo step, with only `segments` changed."""
    return f"""\
        version: {version}
        name: reshape_{segments}
        up:
          - pipeline:
              values: {{ ":profile": PROFILE }}
              source: {{ table: {table}, segments: {segments}, page_size: 40 }}
              where: "SK = :profile AND username <> lower(username)"
              transform:
                - update: "SET username = lower(username), migratedAt = :now"
              write: {{ mode: batch }}
        """


def reshaped(items, now):
    out = {}
    for i in items:
        i = {k: dict(v) for k, v in i.items()}
        if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower():
            i["username"] = {"S": i["username"]["S"].lower()}
            i["migratedAt"] = {"S": now}
        out[(i["PK"]["S"], i["SK"]["S"])] = i
    return out


def visits_step(segments, extra=""):
    """A non-idempotent transform made exactly-once by version_attribute."""
    return f"""\
        version: 8
        name: visits
        up:
          - pipeline:
              values: {{ ":profile": PROFILE, ":one": 1 }}
              source: {{ table: app, segments: {segments}, page_size: 20 }}
              where: "SK = :profile"
              transform:
                - update: "SET visits = visits + :one"
              write: {{ mode: update, version_attribute: _v }}
        {extra}"""


class CheckpointsTest(unittest.TestCase):
    maxDiff = None

    def assertExit(self, r, code):
        self.assertEqual(r.returncode, code, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")

    def checkpoints(self, p):
        return [i for i in scan(p.state) if i["sk"]["S"].startswith("checkpoint#")]

    def visits(self, p):
        return {i["PK"]["S"]: (int(i["visits"]["N"]), i.get("_v", {}).get("N"))
                for i in scan(p.table("app")) if i["SK"]["S"] == "PROFILE"}

    def expected_visits(self, users):
        return {f"USER#{1000 + u}": (u % 17 + 1, "8") for u in range(users)}

    def test_reshape_with_10_16_64_and_1024_segments_is_exact_and_applied(self):
        p = Project(self)
        items = dataset(600)  # 1,086 items: 10 segments is one per 100 items, more is too many
        self.assertEqual(len(items), 1086)
        counts = [10, 16, 64, 1024]
        for k, n in enumerate(counts, 1):
            make_table(p.table(f"app{n}"))
            put_all(p.table(f"app{n}"), items)
            p.write(f"{k}_reshape_{n}.yaml", reshape(k, f"app{n}", n))
        r = p.run("up")
        self.assertExit(r, 0)
        for n in counts:
            warned = f"pipeline: segments {n} for about 1086 items in {p.table(f'app{n}')}"
            if n == 10:
                self.assertNotIn(warned, r.stderr)
            else:
                self.assertIn(warned, r.stderr)
                self.assertIn(f"; 10 are enough", r.stderr)
        self.assertEqual(r.stderr.count("warning: "), 3, r.stderr)
        changed = sum(1 for i in items
                      if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower())
        now = None
        for n in counts:
            got = by_key(scan(p.table(f"app{n}")))
            now = now or next(i["migratedAt"]["S"] for i in got.values() if "migratedAt" in i)
            self.assertRegex(now, ISO)
            self.assertEqual(got, reshaped(items, now), f"{n} segments")
        st, r = p.status()
        self.assertExit(r, 0)
        for k, n in enumerate(counts, 1):
            self.assertEqual(st[k]["state"], "applied", n)
            c = st[k]["counters"]
            self.assertEqual((c["scanned"], c["matched"], c["written"]), (len(items), changed, changed), n)
            cp = st[k]["checkpoints"]
            # Each segment's checkpoint is written at least once (done) and deleted once.
            self.assertGreaterEqual(cp["writes"], 2 * n)
            self.assertLessEqual(cp["writes"], 2 * n + len(items) // 40 + n)
            self.assertGreaterEqual(cp["transactions"], (2 * n + 8) // 9)
            self.assertGreaterEqual(cp["wcu"], 2 * cp["writes"] + 2 * cp["transactions"])
            print(f"[ measure  ] {n} segments: {cp['writes']} checkpoint writes in "
                  f"{cp['transactions']} transactions, {cp['wcu']:.0f} WCU", file=sys.stderr)
        self.assertRegex(p.run("status").stdout,
                         r"(?m)^4\s+reshape_1024\s+applied\s+\S+\s+scanned 1086, matched \d+, "
                         r"written \d+; checkpoints \d+ writes, \d+ WCU$")
        self.assertEqual(self.checkpoints(p), [])

    def test_kill9_five_times_with_64_segments_then_resume_changes_each_item_once(self):
        users = 1500
        p = Project(self)
        make_table(p.table("app"))
        items = dataset(users)
        put_all(p.table("app"), items)
        p.write("8_visits.yaml", visits_step(64))
        seed = int(os.environ.get("DYNAMORPH_TEST_SEED") or random.SystemRandom().randrange(2**32))
        print(f"kill times: seed {seed} (DYNAMORPH_TEST_SEED={seed} repeats it)", file=sys.stderr)
        rng = random.Random(seed)
        killed = []
        for _ in range(5):
            proc = p.start("up", "--max-wcu", "150")
            time.sleep(rng.uniform(0.4, 1.8))
            alive = proc.poll() is None
            proc.kill()
            proc.communicate()
            killed.append(alive)
            r = p.run("unlock")  # the dead run's lease: this host, its process is gone
            self.assertExit(r, 0)
        self.assertEqual(killed, [True] * 5, "every kill must land while the run is going")
        now = self.visits(p)
        self.assertLess(sum(1 for v in now.values() if v[1] == "8"), users, "killed before the end")
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "applied")
        c = st[8]["counters"]
        # Pages read again after a kill are counted again; none is ever lost from the count.
        self.assertGreaterEqual(c["scanned"], len(items))
        self.assertGreaterEqual(c["written"] + c["skipped"], users)
        self.assertEqual(self.checkpoints(p), [])

    def test_crash_between_two_transactions_of_the_final_clear_then_up_finishes(self):
        p = Project(self)
        make_table(p.table("app"))
        items = dataset(300)
        put_all(p.table("app"), items)
        p.write("1_reshape.yaml", reshape(1, "app", 32))
        proxy = FaultProxy(self)
        # The second transaction that deletes checkpoints never reaches the server and never gets
        # an answer: the run is killed while it waits, as a crash between two chunks.
        proxy.control("POST", "rules", [{"op": "TransactWriteItems", "body_contains": '{"Delete":{',
                                         "after": 1, "fault": "hang"}])
        proc = p.start("--endpoint", proxy.url, "up")
        deadline = time.time() + 120
        while proxy.control("GET", "stats")["rules"][0]["fired"] == 0:
            self.assertIsNone(proc.poll(), "the run ended before its clearing was held")
            self.assertLess(time.time(), deadline, "the clearing never started")
            time.sleep(0.05)
        proc.kill()
        proc.communicate()
        now = next(i["migratedAt"]["S"] for i in scan(p.table("app")) if "migratedAt" in i)
        self.assertEqual(by_key(scan(p.table("app"))), reshaped(items, now))  # the data are done
        self.assertEqual(len(self.checkpoints(p)), 32 - 9)  # one transaction of 9 deletes went in
        st, _ = p.status()
        self.assertEqual((st[1]["state"], st[1]["step"]), ("running", 1))
        self.assertIn("every step is done, checkpoints are left to clear", st[1]["note"])
        before = st[1]["counters"]
        self.assertEqual(before["scanned"], len(items))
        self.assertExit(p.run("unlock"), 0)

        proxy.control("POST", "reset")
        r = p.run("--endpoint", proxy.url, "up")
        self.assertExit(r, 0)
        self.assertIn("finishing 1 reshape_32 (migrations/1_reshape.yaml): every step is done", r.stdout)
        self.assertNotIn("step 1/1", r.stdout)
        requests = proxy.control("GET", "stats")["requests"]
        self.assertNotIn("Scan", requests)  # no data step ran again
        self.assertNotIn("BatchWriteItem", requests)
        # Records running; a transaction of 24 actions refused by DynamoDB Local (a new process
        # learns its limit again), 3 of 10 for the 23 checkpoints left; records applied.
        self.assertEqual(requests["TransactWriteItems"], 6, requests)
        st, _ = p.status()
        self.assertEqual(st[1]["state"], "applied")
        self.assertEqual(st[1]["counters"], before)
        self.assertEqual(self.checkpoints(p), [])
        self.assertEqual(by_key(scan(p.table("app"))), reshaped(items, now))
        self.assertIn("up to date", p.run("up").stdout)

    def test_status_and_resume_with_4096_segment_checkpoints(self):
        users = 700
        p = Project(self)
        make_table(p.table("app"))
        items = dataset(users)
        put_all(p.table("app"), items)
        p.write("8_visits.yaml", visits_step(4096))
        proc = p.start("up", "--max-wcu", "40")
        deadline = time.time() + 120
        key = {"pk": {"S": "dynamorph"}, "sk": {"S": "version#%020d" % 8}}
        while True:  # until a round of checkpoint writes has put thousands, and the record
            self.assertIsNone(proc.poll(), "the run ended before it was interrupted")
            self.assertLess(time.time(), deadline, "no thousands of checkpoints in time")
            try:
                rec = DDB.get_item(TableName=p.state, Key=key, ConsistentRead=True).get("Item")
                if rec and int(rec["checkpoint_cost"]["M"]["writes"]["N"]) >= 2000:
                    break
            except DDB.exceptions.ResourceNotFoundException:
                pass
            time.sleep(0.2)
        proc.kill()
        _, err = proc.communicate()
        self.assertIn("pipeline: segments 4096 for about", err)
        saved = len(self.checkpoints(p))
        self.assertGreaterEqual(saved, 2000)
        r = p.run("status")
        self.assertExit(r, 0)
        # The run's own rounds kept the record current: counters and checkpoint cost so far.
        self.assertRegex(r.stdout, r"(?m)^8\s+visits\s+running\s+\S+\s+scanned \d+, .*; "
                                   r"checkpoints \d+ writes, \d+ WCU$")
        st, _ = p.status()
        self.assertGreaterEqual(st[8]["checkpoints"]["writes"], 2000)
        self.assertExit(p.run("unlock"), 0)
        t0 = time.time()
        r = p.run("-v", "up")
        wall = time.time() - t0
        self.assertExit(r, 0)
        m = re.search(r"resuming from (\d+) segment checkpoints of 4096 \(read in ([0-9.]+) s\)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertGreaterEqual(int(m.group(1)), saved)
        self.assertEqual(self.visits(p), self.expected_visits(users))
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "applied")
        self.assertEqual(self.checkpoints(p), [])
        cp = st[8]["checkpoints"]
        print(f"[ measure  ] resume read {m.group(1)} of 4096 checkpoints in {m.group(2)} s; "
              f"the resumed run took {wall:.1f} s; the version's checkpoints: {cp['writes']} writes, "
              f"{cp['wcu']:.0f} WCU", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
