"""Online copy into a new table (`follow: stream`) through dynamorph's command line, against
DynamoDB Local and its stream: a live writer (random puts, updates and deletes, ~200 ops/s on
loopback, stopping by itself) during the backfill and the replay, for a plain copy and a copy
into a new key schema; kill -9 during the backfill and during the replay; `follow` with SIGTERM
and a second `follow`; a throttled target and an expired iterator through the fault proxy; and
every refusal with its exit code and message, nothing written. Data are checked with boto3."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import unittest

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import DDB, ENDPOINT, Project, S, N, put_all, scan, snapshot  # noqa: E402
from checkpoints_test import FaultProxy  # noqa: E402

STREAMS = boto3.client("dynamodbstreams", endpoint_url=ENDPOINT, region_name="us-east-1",
                       aws_access_key_id="dynamorphtest", aws_secret_access_key="dynamorphtest")
USERS = 150
CASES = ["Alice", "BOB", "carol", "DaVe", "eve", "FrAnK", "GrEtA"]


def make_source(name, view=None, users=USERS, posts=True):
    kw = {}
    if view:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    DDB.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                           {"AttributeName": "SK", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                {"AttributeName": "SK", "KeyType": "RANGE"}], **kw)
    DDB.get_waiter("table_exists").wait(TableName=name)
    items = []
    for u in range(users):
        items.append({"PK": S(f"USER#{u}"), "SK": S("PROFILE"),
                      "username": S(f"{CASES[u % 7]}{u}"), "visits": N(u)})
        if posts and u % 3 == 0:
            items.append({"PK": S(f"USER#{u}"), "SK": S("POST#1"), "title": S(f"t{u}")})
    put_all(name, items)


class Writer:
    """The application: random puts, updates and deletes on the source, about `rate` per second,
    for at most `limit` seconds (it stops by itself), each op counted with the phase it fell in."""

    def __init__(self, table, rate=200, limit=60, seed=7):
        self.table, self.rate, self.limit = table, rate, limit
        self.rng = random.Random(seed)
        self.client = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name="us-east-1",
                                   aws_access_key_id="dynamorphtest",
                                   aws_secret_access_key="dynamorphtest")
        self.phase = "backfill"
        self.ops = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=30)

    def one(self):
        r = self.rng
        u = r.randrange(USERS + 20)  # some keys that did not exist before
        key = {"PK": S(f"USER#{u}"), "SK": S("PROFILE" if r.random() < 0.85 else "POST#1")}
        x = r.random()
        if x < 0.35:
            item = dict(key, username=S(f"{r.choice(CASES)}{u}x{r.randrange(1000)}"),
                        visits=N(r.randrange(100)))
            if r.random() < 0.2:
                item["banned"] = {"BOOL": True}
            self.client.put_item(TableName=self.table, Item=item)
        elif x < 0.80:
            if r.random() < 0.7:
                self.client.update_item(TableName=self.table, Key=key,
                                        UpdateExpression="SET username = :u, visits = :v",
                                        ExpressionAttributeValues={
                                            ":u": S(f"{r.choice(CASES)}{u}y{r.randrange(1000)}"),
                                            ":v": N(r.randrange(100))})
            elif r.random() < 0.5:
                self.client.update_item(TableName=self.table, Key=key,
                                        UpdateExpression="SET banned = :t",
                                        ExpressionAttributeValues={":t": {"BOOL": True}})
            else:
                self.client.update_item(TableName=self.table, Key=key,
                                        UpdateExpression="REMOVE banned")
        else:
            self.client.delete_item(TableName=self.table, Key=key)
        self.ops[self.phase] = self.ops.get(self.phase, 0) + 1

    def run(self):
        start = time.monotonic()
        n = 0
        while not self.stopped.is_set() and time.monotonic() - start < self.limit:
            self.one()
            n += 1
            pause = start + n / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def plain_expected(source_items):
    out = {}
    for i in source_items:
        if i["SK"]["S"] != "PROFILE" or "banned" in i or "username" not in i:
            continue
        i = dict(i)
        i["username"] = S(i["username"]["S"].lower())
        out[(i["PK"]["S"], i["SK"]["S"])] = i
    return out


def keyed_expected(source_items):
    out = {}
    for i in source_items:
        if i["SK"]["S"] != "PROFILE" or "banned" in i or "username" not in i:
            continue
        i = dict(i)
        i["handle"] = S(i["username"]["S"].lower() + "@" + i["PK"]["S"])
        out[i["handle"]["S"]] = i
    return out


PLAIN = """\
    version: 2
    name: copy_plain
    up:
      - pipeline:
          values: {{ ":profile": PROFILE }}
          source: {{ table: app, follow: stream, page_size: 25{extra} }}
          where: "SK = :profile AND attribute_not_exists(banned) AND attribute_exists(username)"
          transform:
            - update: "SET username = lower(username)"
          write: {{ table: copy }}
    """

KEYED = """\
    version: 2
    name: copy_by_handle
    up:
      - pipeline:
          values: {{ ":profile": PROFILE }}
          source: {{ table: app, follow: stream, page_size: 25{extra} }}
          where: "SK = :profile AND attribute_not_exists(banned) AND attribute_exists(username)"
          transform:
            - update: "SET handle = concat(lower(username), '@', PK)"
          write: {{ table: by_handle }}
    """

SETUP = """\
    version: 1
    name: tables
    up:
      - enable_stream: {{ table: app, view: {view} }}
      - create_table: {{ table: copy, partition_key: PK:string, sort_key: SK:string }}
      - create_table: {{ table: by_handle, partition_key: handle:string }}
    """


def follow_items(p):
    """The replay positions (follow#… items) of the project's state table."""
    r = DDB.query(TableName=p.state, ConsistentRead=True,
                  KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
                  ExpressionAttributeValues={":pk": S("dynamorph"), ":f": S("follow#")})
    return r["Items"]


def follow_counters(p):
    out = {"pages": 0, "scanned": 0, "written": 0}
    for i in follow_items(p):
        out["pages"] += int(i["pages"]["N"])
        c = i["counters"]["M"]
        out["scanned"] += int(c["scanned"]["N"])
        out["written"] += int(c["written"]["N"])
    return out


def start_positions(p):
    """{shard: sequence or None} of the recorded replay start."""
    out = {}
    for i in follow_items(p):
        for line in i["resume_token"]["B"].decode().splitlines()[2:]:
            f = line.split()
            out[f[1]] = f[3] if f[0] == "after" else None
    return out


def stream_records_after(table, start):
    """Every record of `table`'s stream after the recorded start positions."""
    arn = DDB.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    n = 0
    for sh in STREAMS.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = STREAMS.get_shard_iterator(StreamArn=arn, ShardId=sh["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = STREAMS.get_records(ShardIterator=it, Limit=1000)
            for rec in page["Records"]:
                seq = rec["dynamodb"]["SequenceNumber"]
                after = start.get(sh["ShardId"], "")
                if after is None or int(seq) > int(after or 0):
                    n += 1
            it = page.get("NextShardIterator")
            if not page["Records"]:
                break
    return n


class StreamTest(unittest.TestCase):
    def assertExit(self, r, code):
        self.assertEqual(r.returncode, code, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")

    def project(self, view="new_and_old_images", endpoint=None):
        p = Project(self)
        if endpoint:
            path = os.path.join(p.dir, "dynamorph.yaml")
            text = open(path).read().replace(ENDPOINT, endpoint)
            open(path, "w").write(text)
        make_source(p.table("app"))
        p.write("1_tables.yaml", SETUP.format(view=view))
        r = p.run("up")
        self.assertExit(r, 0)
        d = DDB.describe_table(TableName=p.table("app"))["Table"]
        self.assertEqual(d["StreamSpecification"]["StreamViewType"], view.upper())
        return p

    def assertPlainExact(self, p):
        expected = plain_expected(scan(p.table("app")))
        got = {(i["PK"]["S"], i["SK"]["S"]): i for i in scan(p.table("copy"))}
        self.assertEqual(sorted(got), sorted(expected))
        for k, v in expected.items():
            self.assertEqual(got[k], v, k)
        self.assertGreater(len(expected), 50)

    def assertKeyedExact(self, p):
        expected = keyed_expected(scan(p.table("app")))
        got = {i["handle"]["S"]: i for i in scan(p.table("by_handle"))}
        self.assertEqual(sorted(got), sorted(expected))
        for k, v in expected.items():
            self.assertEqual(got[k], v, k)
        self.assertGreater(len(expected), 50)

    def live_up(self, p, proxy, writer, *args):
        """`up` while `writer` writes (straight to DynamoDB Local), dynamorph going through the
        fault proxy: every BatchWriteItem of dynamorph's is delayed 1.2 s while the writer
        writes, so each replay page that writes anything takes longer than catch_up_lag (1 s)
        and `up` cannot call itself caught up before the writer stops. The writer stops after
        40 operations in the replay; then the delay is lifted and `up` must catch up."""
        proxy.control("POST", "rules", [{"op": "BatchWriteItem", "fault": "delay", "ms": 1200}])
        proc = p.start("-v", "up", *args)
        lines = []

        def stop_later():
            end = time.monotonic() + 60
            while writer.ops.get("replay", 0) < 40 and time.monotonic() < end:
                time.sleep(0.05)
            writer.stop()
            proxy.control("POST", "rules", [])

        def read():
            for line in proc.stdout:
                lines.append(line)
                if "backfill done" in line:
                    writer.phase = "replay"
                    threading.Thread(target=stop_later, daemon=True).start()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        err = proc.stderr.read()
        proc.wait(timeout=240)
        t.join(timeout=10)
        writer.stop()
        out = "".join(lines)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertGreater(writer.ops.get("backfill", 0), 20, writer.ops)
        self.assertGreaterEqual(writer.ops.get("replay", 0), 40, writer.ops)
        self.assertIn("caught up with the stream", out + err)
        return out + err

    # ---- exactness under live writes ---------------------------------------------------------

    def test_plain_copy_under_live_writes_is_exact(self):
        proxy = FaultProxy(self)
        p = self.project(endpoint=proxy.url)
        writer = Writer(p.table("app")).start()
        self.addCleanup(writer.stop)
        p.write("2_copy.yaml", PLAIN.format(extra=", catch_up_lag: 1s"))
        self.live_up(p, proxy, writer, "--max-wcu", "20")
        self.assertPlainExact(p)
        st, _ = p.status()
        self.assertEqual(st[2]["state"], "applied")
        self.assertGreater(st[2]["follow"]["applied"], 0)
        self.assertIsNotNone(st[2]["follow"]["lag_s"])

    def test_key_changing_copy_under_live_writes_is_exact(self):
        proxy = FaultProxy(self)
        p = self.project(endpoint=proxy.url)
        writer = Writer(p.table("app"), seed=11).start()
        self.addCleanup(writer.stop)
        p.write("2_copy.yaml", KEYED.format(extra=", catch_up_lag: 1s"))
        self.live_up(p, proxy, writer, "--max-wcu", "20")
        self.assertKeyedExact(p)

    # ---- kill -9 -------------------------------------------------------------------------------

    def wait_for(self, pred, timeout=60, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}")

    def test_kill9_during_backfill_then_during_replay_resumes_from_checkpoints(self):
        p = self.project()
        writer = Writer(p.table("app"), seed=3).start()
        self.addCleanup(writer.stop)
        p.write("2_copy.yaml", PLAIN.format(extra=", catch_up_lag: 1s"))
        proc = p.start("up", "--max-wcu", "40", "--segments", "2")

        def backfill_checkpoints():
            r = DDB.query(TableName=p.state, ConsistentRead=True,
                          KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
                          ExpressionAttributeValues={":pk": S("dynamorph"), ":c": S("checkpoint#")})
            return any(int(i["pages"]["N"]) > 0 for i in r["Items"])

        self.wait_for(backfill_checkpoints, what="a backfill checkpoint")
        start = start_positions(p)
        self.assertTrue(start)
        proc.kill()
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        self.assertEqual(follow_counters(p)["pages"], 0, "killed before the replay")
        self.assertExit(p.run("unlock"), 0)  # its process is gone
        # Second run: the backfill resumes, the replay starts where it was recorded before the
        # first Scan (not re-recorded now), and is killed once it has checkpointed some pages.
        proc = p.start("up", "--max-wcu", "10")
        self.wait_for(lambda: follow_counters(p)["pages"] > 0, timeout=120, what="a replay checkpoint")
        self.assertEqual(start_positions(p).keys(), start.keys())
        time.sleep(0.5)
        proc.kill()
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        writer.stop()
        self.assertExit(p.run("unlock"), 0)
        at_kill = follow_counters(p)
        self.assertGreater(at_kill["scanned"], 0)
        # Third run: the replay goes on from its lane checkpoints.
        r = p.run("-v", "up")
        self.assertExit(r, 0)
        self.assertIn(f"replay resumes from 1 lane position ({at_kill['written']} changes applied "
                      "so far)", r.stdout + r.stderr)
        self.assertPlainExact(p)
        final = follow_counters(p)
        self.assertGreaterEqual(final["pages"], at_kill["pages"])
        # Every stream record since the recorded start was examined exactly once over the three
        # runs: the replay did not start over (that would count the records before the kill twice).
        self.assertEqual(final["scanned"], stream_records_after(p.table("app"), start))

    # ---- follow ----------------------------------------------------------------------------------

    def test_follow_replicates_until_sigterm_and_continues(self):
        p = self.project()
        p.write("2_copy.yaml", PLAIN.format(extra=""))
        self.assertExit(p.run("up"), 0)
        self.assertPlainExact(p)
        app = p.table("app")

        def follow_until(expect_key, expect_name):
            proc = p.start("follow")
            t0 = time.monotonic()
            self.wait_for(lambda: DDB.get_item(TableName=p.table("copy"), ConsistentRead=True,
                                               Key=expect_key).get("Item", {}).get("username")
                          == S(expect_name), timeout=30, what="the change in the target")
            seen = time.monotonic() - t0
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            self.assertEqual(proc.returncode, 130, out + err)
            self.assertIn("positions saved", out + err)
            return seen

        DDB.put_item(TableName=app, Item={"PK": S("USER#900"), "SK": S("PROFILE"),
                                          "username": S("NewUser")})
        DDB.update_item(TableName=app, Key={"PK": S("USER#1"), "SK": S("PROFILE")},
                        UpdateExpression="SET username = :u", ExpressionAttributeValues={":u": S("ReNamed")})
        DDB.delete_item(TableName=app, Key={"PK": S("USER#2"), "SK": S("PROFILE")})
        seen = follow_until({"PK": S("USER#1"), "SK": S("PROFILE")}, "renamed")
        self.assertLess(seen, 20)
        self.assertPlainExact(p)
        first = follow_counters(p)
        # Written while nobody follows; the second follow continues from the saved positions.
        DDB.update_item(TableName=app, Key={"PK": S("USER#3"), "SK": S("PROFILE")},
                        UpdateExpression="SET username = :u", ExpressionAttributeValues={":u": S("Later")})
        follow_until({"PK": S("USER#3"), "SK": S("PROFILE")}, "later")
        self.assertPlainExact(p)
        second = follow_counters(p)
        self.assertEqual(second["scanned"], first["scanned"] + 1, (first, second))
        st, r = p.status()
        self.assertEqual(st[2]["follow"]["applied"], second["written"])
        text = p.run("status").stdout
        self.assertRegex(text, r"follow step 1: lag [0-9.]+ s, \d+ changes applied")

    # ---- faults ----------------------------------------------------------------------------------

    def test_throttled_target_and_expired_iterators_lose_nothing(self):
        proxy = FaultProxy(self)
        p = self.project(endpoint=proxy.url)
        p.write("2_copy.yaml", PLAIN.format(extra=""))
        writer = Writer(p.table("app"), seed=5, rate=150, limit=4)
        # The backfill alone, then changes, then the replay through throttling and expiries.
        proxy.control("POST", "rules", [
            {"op": "BatchWriteItem", "fault": "throttle", "probability": 0.3, "seed": 1},
            {"op": "GetRecords", "fault": "error", "status": 400, "count": 3, "after": 1,
             "type": "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException",
             "message": "Iterator expired"}])
        writer.start()
        r = p.run("up")
        writer.stop()
        self.assertExit(r, 0)
        # What the writer did after `up` caught up is replayed by `follow`.
        proc = p.start("follow")
        time.sleep(4)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, out + err)
        self.assertPlainExact(p)
        stats = proxy.control("GET", "stats")
        self.assertGreater(stats["faults"].get("throttle", 0), 0, stats)
        self.assertEqual(stats["faults"].get("error", 0), 3, stats)

    def test_trimmed_position_fails_with_how_to_start_over(self):
        proxy = FaultProxy(self)
        p = self.project(endpoint=proxy.url)
        p.write("2_copy.yaml", PLAIN.format(extra=""))
        self.assertExit(p.run("up"), 0)
        DDB.update_item(TableName=p.table("app"), Key={"PK": S("USER#1"), "SK": S("PROFILE")},
                        UpdateExpression="SET username = :u", ExpressionAttributeValues={":u": S("Gone")})
        before = snapshot(p.ns)
        proxy.control("POST", "rules", [
            {"op": "GetShardIterator", "fault": "error", "status": 400,
             "type": "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
             "message": "records beyond the trim horizon"}])
        r = p.run("follow")
        self.assertExit(r, 1)
        self.assertIn("is gone (TrimmedDataAccessException)", r.stderr)
        self.assertIn("Start over: empty the target table, `dynamorph mark <version> pending`",
                      r.stderr)
        self.assertLessEqual(len(r.stderr.strip().splitlines()), 2, r.stderr)
        self.assertEqual(snapshot(p.ns), before)

    # ---- refusals ----------------------------------------------------------------------------------

    def refused(self, p, name, text, code, message):
        before = snapshot(p.ns)
        path = p.write(name, text)
        r = p.run("up")
        self.assertExit(r, code)
        self.assertIn(message, r.stderr)
        self.assertLessEqual(len(r.stderr.strip().splitlines()), 2, r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        os.remove(path)

    def test_refusals_exit_2_and_write_nothing(self):
        p = Project(self)
        make_source(p.table("app"), users=20)
        make_source(p.table("keys"), view="KEYS_ONLY", users=5)
        make_source(p.table("newimg"), view="NEW_IMAGE", users=5)
        p.write("1_tables.yaml", """\
            version: 1
            up:
              - create_table: { table: copy, partition_key: PK:string, sort_key: SK:string }
              - create_table: { table: by_handle, partition_key: handle:string }
            """)
        self.assertExit(p.run("up"), 0)
        self.refused(p, "2_x.yaml", PLAIN.format(extra=""), 2,
                     f"follow: stream needs a stream on table '{p.table('app')}' with NEW_IMAGE or "
                     "NEW_AND_OLD_IMAGES, and it has no stream enabled; add a step before it: "
                     "enable_stream:")
        self.refused(p, "2_x.yaml", PLAIN.format(extra="").replace("table: app", "table: keys"), 2,
                     f"table '{p.table('keys')}' with NEW_IMAGE or NEW_AND_OLD_IMAGES, and it has "
                     "a KEYS_ONLY stream")
        self.refused(p, "2_x.yaml", KEYED.format(extra="").replace("table: app", "table: newimg"), 2,
                     f"the target key of table '{p.table('by_handle')}' (handle) is computed by the "
                     "transform, not the source key")
        self.refused(p, "2_x.yaml", PLAIN.format(extra="").replace("table: copy", "table: app"), 2,
                     "migrations/2_x.yaml:6: follow: stream copies into another table (an in-place "
                     "step has nothing to follow)")
        self.refused(p, "2_x.yaml", PLAIN.format(extra="").replace("{ table: copy }",
                                                                  "{ table: copy, mode: update }"),
                     2, "follow: stream replays changes as puts and deletes in mode 'batch'")
        self.refused(p, "2_x.yaml", PLAIN.format(extra=", catch_up_lag: soon"), 2,
                     "migrations/2_x.yaml:6: catch_up_lag: expected a duration like 5s or 1m")
        # `follow` of a version that has no follow step, or of one not applied.
        before = snapshot(p.ns)
        r = p.run("follow", "1")
        self.assertExit(r, 2)
        self.assertIn("version 1 (migrations/1_tables.yaml) has no `follow: stream` step", r.stderr)
        r = p.run("follow")
        self.assertExit(r, 2)
        self.assertIn("no applied version has a `follow: stream` step", r.stderr)
        self.assertEqual(snapshot(p.ns), before)


if __name__ == "__main__":
    unittest.main()
