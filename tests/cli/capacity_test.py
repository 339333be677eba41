"""`up --capacity-percent` against a table "provisioned" by bench/capacity_proxy.py (token
buckets with DynamoDB's 300 s burst allowance, empty when the first write reaches them;
ProvisionedThroughputExceededException, or UnprocessedItems for the part of a batch that does
not fit) in front of the tests' DynamoDB Local, at 100 WCU and 300 RCU:

- at 100%, the adaptive limiter settles near the capacity: the first writes find the bucket
  empty, so the limiter cuts once and regains the cap; after the first 25 s the write units
  consumed average at least 85% of the allowance, and at most 2% of write requests are
  throttled or partly unprocessed;
- at 50%, it never takes more than its half. The limiter promises (pipeline/rate_limiter.h)
  that any T seconds see at most C * (T + 0.25 s) plus one request. The proxy counts a second
  by when requests reach it, so a stall of the client or of the proxies on a busy machine moves
  a second's requests into the next one (a clean-clone CI run saw both jobs' proxies pause at
  once: 9 units and then 100 at 50%, 0 and then 200 at 100%). So after the first two seconds
  the whole span stays within that bound plus one second moved in at its edge, no second
  exceeds two seconds' worth plus a batch, and none of those requests is throttled; after the
  first 30 s the average is at least 90% of the 50 (the empty bucket's throttles at the start
  may cause one cut: at two batches a second the limiter judges a window every 5 s, so that cut
  and its regain take about 15 s).

Both run at once, each through its own proxy. The items are read back from the server (not
through the proxy) and checked one by one, and the units the proxy charged equal the items
written (each ~100-byte item costs one WCU; an item written twice would cost two). These are
properties of the controller at a rate any machine sustains, not measures of our speed."""
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, DDB, ENDPOINT, Project  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import capacity_proxy  # noqa: E402
from ceiling import create_keyed_table, put_items  # noqa: E402
from faults_test import scan  # noqa: E402

WCU, RCU = 100, 300
MIGRATED_AT = "2025-01-01T00:00:00.000Z"

MIGRATION = f"""\
    version: 1
    name: mark
    up:
      - pipeline:
          values: {{ ":m": "{MIGRATED_AT}" }}
          source: {{ table: app, segments: 4 }}
          transform:
            - update: "SET migratedAt = :m"
          write: {{ mode: batch }}
    """


def seed(table, n):
    create_keyed_table(DDB, table)
    DDB.get_waiter("table_exists").wait(TableName=table)
    put_items(DDB, table, [{"PK": {"S": f"USER#{i:06}"}, "SK": {"S": "PROFILE"},
                            "visits": {"N": str(i % 17)}, "bio": {"S": "b" * 40}}
                           for i in range(n)])


class Job:
    """A project whose endpoint is its own capacity proxy, and one `up` run in a thread."""

    def __init__(self, test, percent, items):
        self.percent, self.items = percent, items
        self.project = Project(test)
        self.proxy = capacity_proxy.Spawned(ENDPOINT, rcu=RCU, wcu=WCU)
        test.addCleanup(self.proxy.stop)
        conf = os.path.join(self.project.dir, "dynamorph.yaml")
        with open(conf) as f:
            text = f.read().replace(f"endpoint: {ENDPOINT}", f"endpoint: {self.proxy.url}")
        with open(conf, "w") as f:
            f.write(text)
        self.project.write("1_mark.yaml", MIGRATION)
        self.table = self.project.table("app")
        seed(self.table, items)
        self.result = None

    def start(self):
        def run():
            t0 = time.monotonic()
            self.result = subprocess.run([BIN, "up", "--capacity-percent", str(self.percent)],
                                         cwd=self.project.dir, capture_output=True, text=True,
                                         timeout=600)
            self.wall = time.monotonic() - t0
        self.thread = threading.Thread(target=run)
        self.thread.start()

    def finish(self):
        self.thread.join()
        return self.proxy.stats()["tables"][self.table]


class CapacityTest(unittest.TestCase):
    def test_the_limiter_uses_the_provisioned_capacity_and_no_more(self):
        # 40 and 50 s at the rate they may use.
        full, half = Job(self, 100, 4000), Job(self, 50, 2500)
        full.start()
        half.start()
        for job in (full, half):
            stats = job.finish()
            r = job.result
            self.assertEqual(r.returncode, 0, f"{job.percent}%: {r.stderr}")
            got = {i["PK"]["S"]: i for i in scan(DDB, job.table)}
            self.assertEqual(len(got), job.items)
            wrong = [k for k, i in got.items()
                     if i.get("migratedAt") != {"S": MIGRATED_AT}
                     or i["visits"]["N"] != str(int(k[5:]) % 17)]
            self.assertEqual(wrong, [], f"{job.percent}%: items not migrated exactly")
            # One WCU per item written once: no item written twice, none left out.
            self.assertEqual(stats["wcu"], job.items)

            per = stats["per_second"]
            first = next(i for i, v in enumerate(per["wcu"]) if v > 0)
            last = len(per["wcu"]) - 1  # the job's last second is a partial one
            wcu, requests = per["wcu"], per["write_requests"]
            bad = [t + p for t, p in zip(per["write_throttled"], per["partial_batches"])]
            print(f"{job.percent}%: {job.wall:.1f} s, WCU per second {wcu}, throttled or partial "
                  f"{bad}", file=sys.stderr)
            if job.percent == 100:
                span = range(first + 25, last)
                self.assertGreaterEqual(len(span), 10, "the run was too short to judge")
                mean = sum(wcu[s] for s in span) / len(span)
                self.assertGreaterEqual(mean, 0.85 * WCU, f"settled at {mean:.1f} WCU/s")
                self.assertLessEqual(sum(bad[s] for s in span),
                                     0.02 * sum(requests[s] for s in span))
            else:
                span = range(first + 2, last)
                allowance = WCU * job.percent / 100
                batch = 25
                self.assertLessEqual(sum(wcu[s] for s in span),
                                     allowance * (len(span) + 0.25 + 1) + batch,
                                     "more than the half over the run")
                self.assertEqual([s for s in span if wcu[s] > 2 * allowance + batch], [],
                                 "a burst above the half it may use")
                self.assertEqual([s for s in span if bad[s]], [],
                                 "throttled at half the capacity")
                settled = range(first + 30, last)
                mean = sum(wcu[s] for s in settled) / len(settled)
                self.assertGreaterEqual(mean, 0.9 * allowance, f"only {mean:.1f} WCU/s")


if __name__ == "__main__":
    unittest.main()
