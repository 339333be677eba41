"""dynamorph's command line against DynamoDB Local: migrations folders with the five patterns
and schema steps going up, status, down, up again with exact data checks; the lock; kill -9 and
resume; dry runs; every exit code; init/generate. Data are checked with boto3, independently of
dynamorph's own client."""
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import unittest
import uuid

import boto3

PORT = open(os.path.join(os.environ["DYNAMORPH_TEST_DDB_DIR"], "port")).read().strip()
ENDPOINT = f"http://127.0.0.1:{PORT}"
BIN = os.environ["DYNAMORPH_BIN"]
DDB = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name="us-east-1",
                   aws_access_key_id="dynamorphtest", aws_secret_access_key="dynamorphtest")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def S(v):
    return {"S": v}


def N(v):
    return {"N": str(v)}


def scan(table):
    items, kw = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = DDB.scan(**kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def by_key(items):
    return {(i["PK"]["S"], i["SK"]["S"]): i for i in items}


def tables_with(prefix):
    names, kw = [], {}
    while True:
        page = DDB.list_tables(**kw)
        names += [n for n in page["TableNames"] if n.startswith(prefix)]
        if "LastEvaluatedTableName" not in page:
            return sorted(names)
        kw["ExclusiveStartTableName"] = page["LastEvaluatedTableName"]


def snapshot(prefix):
    """Every table of a namespace with all its items: to prove that nothing was written."""
    return {t: sorted(map(repr, scan(t))) for t in tables_with(prefix)}


def make_table(name, pk="PK", sk="SK"):
    DDB.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": pk, "AttributeType": "S"},
                                           {"AttributeName": sk, "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": pk, "KeyType": "HASH"},
                                {"AttributeName": sk, "KeyType": "RANGE"}])
    DDB.get_waiter("table_exists").wait(TableName=name)


def put_all(table, items):
    for start in range(0, len(items), 25):
        req = {table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]}
        while req:
            req = DDB.batch_write_item(RequestItems=req).get("UnprocessedItems")


NAMES = ["Alice", "BOB", "carol", "DaVe", "eve", "FrAnK"]


def dataset(users):
    items = []
    for u in range(users):
        pk = f"USER#{1000 + u}"
        p = {"PK": S(pk), "SK": S("PROFILE"), "username": S(f"{NAMES[u % 6]}{u}"), "visits": N(u % 17)}
        if u % 5 == 0:
            p["status"] = S("banned")
        if u % 4 != 0:
            p["createdAt"] = S(f"2024-03-0{1 + u % 9}T10:00:00.000Z")
        items.append(p)
        if u % 3 == 0:
            for k in range(2):
                items.append({"PK": S(pk), "SK": S(f"PHOTO#p{u}x{k}"),
                              "createdAt": S(f"2025-0{1 + k}-1{u % 10}T0{u % 10}:30:15.250Z")})
        if u % 7 == 0:
            items.append({"PK": S(pk), "SK": S("TEMP#session")})
    return items


def epoch_ms(iso):
    d = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


class Project:
    """A temporary folder with dynamorph.yaml, migrations/ and a unique namespace."""

    def __init__(self, test, lock_ttl="5m"):
        self.dir = tempfile.mkdtemp(prefix="dynamorph_cli_")
        self.ns = f"t{uuid.uuid4().hex[:8]}-"
        self.state = self.ns + "dynamorph_state"
        os.makedirs(os.path.join(self.dir, "migrations"))
        with open(os.path.join(self.dir, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {ENDPOINT}\nregion: us-east-1\nnamespace: {self.ns}\nlock_ttl: {lock_ttl}\n"
                    "defaults: {{ segments: 3 }}\n".replace("{{", "{").replace("}}", "}"))
        test.addCleanup(self.drop)

    def table(self, logical):
        return self.ns + logical

    def write(self, file_name, text, newline="\n"):
        path = os.path.join(self.dir, "migrations", file_name)
        with open(path, "w", newline=newline) as f:
            f.write(textwrap.dedent(text))
        return path

    def run(self, *args, timeout=300):
        return subprocess.run([BIN, *args], cwd=self.dir, capture_output=True, text=True, timeout=timeout)

    def start(self, *args):
        return subprocess.Popen([BIN, *args], cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def status(self):
        r = self.run("--json", "status")
        import json
        return {int(o["version"]): o for o in map(json.loads, r.stdout.splitlines())}, r

    def drop(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        for t in tables_with(self.ns):
            try:
                DDB.delete_table(TableName=t)
            except DDB.exceptions.ResourceNotFoundException:
                pass


PATTERNS = {
    "1_normalize_usernames.yaml": """\
        version: 1
        name: normalize_usernames
        up:
          - pipeline:
              values: { ":profile": PROFILE }
              source: { table: app, page_size: 40 }
              where: "SK = :profile AND username <> lower(username)"
              transform:
                - update: "SET username = lower(username), migratedAt = :now"
              write: { mode: batch }
        down:
          - pipeline:
              source: { table: app }
              where: "attribute_exists(migratedAt)"
              transform:
                - update: "REMOVE migratedAt"
              write: { mode: update }
        """,
    "2_add_status.yaml": """\
        version: 2
        name: add_status
        up:
          - pipeline:
              names: { "#st": status }
              values: { ":profile": PROFILE, ":active": active }
              source: { table: app }
              where: "SK = :profile"
              transform:
                - update: "SET #st = if_not_exists(#st, :active)"
              write: { mode: update }
        down: []
        """,
    "3_photo_keys.yaml": """\
        version: 3
        name: photo_keys
        up:
          - pipeline:
              values: { ":photo": "PHOTO#" }
              source: { table: app, page_size: 25 }
              where: "begins_with(SK, :photo)"
              transform:
                - update: "SET SK = concat('PHOTO#', to_string(epoch_ms(createdAt)), '#', strip_prefix(SK, 'PHOTO#'))"
              write: { mode: transact, version_attribute: _v }
        """,
    "4_delete_temp.yaml": """\
        version: 4
        name: delete_temp
        up:
          - pipeline:
              values: { ":temp": "TEMP#" }
              source: { table: app, filter: "begins_with(SK, :temp)" }
              write: { mode: delete }
        """,
    "5_timestamps.yaml": """\
        version: 5
        name: timestamps
        up:
          - pipeline:
              values: { ":profile": PROFILE }
              source: { table: app }
              where: "SK = :profile"
              transform:
                - update: "SET createdAt = if_not_exists(createdAt, :now), updatedAt = :now"
              write: { mode: update }
        """,
    "6_posts.yaml": """\
        version: 6
        name: posts
        up:
          - create_table:
              table: posts
              partition_key: id:string
              sort_key: created_at:number
              billing: on_demand
              gsi:
                - { partition_key: updated_at:string }
              ttl: expires_at
        down:
          - delete_table: { table: posts }
        """,
    "7_posts_by_author.yaml": """\
        version: 7
        name: posts_by_author
        up:
          - add_gsi: { table: posts, name: by_author, partition_key: author:string, projection: keys_only }
        down:
          - delete_gsi: { table: posts, name: by_author }
        """,
}


def expected_after_patterns(items, now):
    exp = {}
    for i in items:
        i = {k: dict(v) for k, v in i.items()}
        sk = i["SK"]["S"]
        if sk == "PROFILE":
            u = i["username"]["S"]
            if u != u.lower():
                i["username"] = S(u.lower())
                i["migratedAt"] = S(now)
            i.setdefault("status", S("active"))
            i.setdefault("createdAt", S(now))
            i["updatedAt"] = S(now)
        elif sk.startswith("PHOTO#"):
            i["SK"] = S(f"PHOTO#{epoch_ms(i['createdAt']['S'])}#{sk[6:]}")
            i["_v"] = N(3)
        elif sk.startswith("TEMP#"):
            continue
        exp[(i["PK"]["S"], i["SK"]["S"])] = i
    return exp


LUA_NORMALIZE = """\
    -- lower-case usernames and stamp them (pattern 1, in Lua)
    function transform(item, ctx)
      if item.SK ~= "PROFILE" or item.username == ctx.lower(item.username) then return nil end
      item.username = ctx.lower(item.username)
      item.migratedAt = ctx.now
      return item
    end
    """

LUA_VISITS = """\
    function transform(item, ctx)
      if item.SK ~= "PROFILE" then return nil end
      if item.PK == "USER#1042" and not ctx.values[":fixed"] then error("no visits for " .. item.PK) end
      item.visits = item.visits + 1
      return item
    end
    """

TIER_BADGES = {"gold": "★★★", "silver": "★★", "bronze": "★", "new": "·", "banned": "✗"}


def tier_of(item):
    """profile_tiers.lua's rule, written again here."""
    visits = int(item.get("visits", {"N": "0"})["N"])
    if item.get("status", {}).get("S") == "banned":
        return "banned"
    return "gold" if visits >= 15 else "silver" if visits >= 10 else "bronze" if visits >= 5 else "new"


class CliTest(unittest.TestCase):
    maxDiff = None

    def assertExit(self, r, code):
        self.assertEqual(r.returncode, code, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")

    def seeded(self, p, users=60):
        make_table(p.table("app"))
        items = dataset(users)
        put_all(p.table("app"), items)
        return items

    def test_patterns_up_status_down_up(self):
        p = Project(self)
        items = self.seeded(p)
        for name, text in PATTERNS.items():
            p.write(name, text)
        r = p.run("up")
        self.assertExit(r, 0)
        got = by_key(scan(p.table("app")))
        now = next(i["updatedAt"]["S"] for i in got.values() if "updatedAt" in i)
        self.assertRegex(now, ISO)
        self.assertEqual(got, expected_after_patterns(items, now))
        posts = DDB.describe_table(TableName=p.table("posts"))["Table"]
        self.assertEqual({g["IndexName"] for g in posts["GlobalSecondaryIndexes"]}, {"updated_at-index", "by_author"})
        ttl = DDB.describe_time_to_live(TableName=p.table("posts"))["TimeToLiveDescription"]
        self.assertEqual(ttl.get("AttributeName"), "expires_at")

        st, r = p.status()
        self.assertExit(r, 0)
        self.assertEqual([st[v]["state"] for v in range(1, 8)], ["applied"] * 7)
        self.assertEqual(st[1]["counters"]["scanned"], len(items))
        self.assertRegex(p.run("status").stdout, r"(?m)^1\s+normalize_usernames\s+applied\s+\d{4}-")

        r = p.run("down", "--steps", "2")
        self.assertExit(r, 0)
        self.assertNotIn(p.table("posts"), tables_with(p.ns))
        st, _ = p.status()
        self.assertEqual([st[v]["state"] for v in range(1, 8)], ["applied"] * 5 + ["pending"] * 2)
        self.assertEqual(by_key(scan(p.table("app"))), expected_after_patterns(items, now))

        r = p.run("up")
        self.assertExit(r, 0)
        st, _ = p.status()
        self.assertEqual([st[v]["state"] for v in range(1, 8)], ["applied"] * 7)
        posts = DDB.describe_table(TableName=p.table("posts"))["Table"]
        self.assertEqual(len(posts["GlobalSecondaryIndexes"]), 2)
        self.assertEqual(by_key(scan(p.table("app"))), expected_after_patterns(items, now))

        # Version 5 has no down: rolling back past it refuses (exit 2) and changes nothing.
        before = snapshot(p.ns)
        r = p.run("down", "--to", "2")
        self.assertExit(r, 2)
        self.assertIn("5_timestamps.yaml: version 5 has no down steps", r.stderr)
        self.assertEqual(snapshot(p.ns), before)

    def test_dry_run_writes_nothing(self):
        p = Project(self)
        items = self.seeded(p, users=30)
        for name in ["1_normalize_usernames.yaml", "6_posts.yaml"]:
            p.write(name, PATTERNS[name])
        before = snapshot(p.ns)
        r = p.run("up", "--dry-run")
        self.assertExit(r, 0)
        self.assertEqual(snapshot(p.ns), before)
        self.assertNotIn(p.state, tables_with(p.ns))  # not even the state table
        out = r.stdout
        self.assertIn("would apply 1 normalize_usernames", out)
        self.assertIn(f"scanned {len(items)}", out)
        changed = sum(1 for i in items if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower())
        self.assertIn(f"matched {changed}", out)
        self.assertIn(f"would write: {changed} puts", out)
        self.assertIn("before:", out)
        self.assertIn("after:", out)
        self.assertIn("create_table " + p.table("posts"), out)
        # down --dry-run after a real up: plans the rollback, writes nothing.
        self.assertExit(p.run("up"), 0)
        before = snapshot(p.ns)
        r = p.run("down", "--dry-run", "--steps", "2")
        self.assertExit(r, 0)
        self.assertIn("would revert 6 posts", r.stdout)
        self.assertIn("would revert 1 normalize_usernames", r.stdout)
        self.assertEqual(snapshot(p.ns), before)

    def test_bad_files_exit_2_and_write_nothing(self):
        p = Project(self)
        self.seeded(p, users=10)
        p.write("1_normalize_usernames.yaml", PATTERNS["1_normalize_usernames.yaml"])
        self.assertExit(p.run("up"), 0)
        cases = [
            ("2_bad.yaml", "version: 2\nup:\n  - delete_table: { table: app }\nbogus: 1\n",
             "migrations/2_bad.yaml:4: unknown key 'bogus'"),
            ("2_bad.yaml", "version: 2\nup:\n  - pipeline:\n      source: { table: app }\n      where: \"a = = b\"\n",
             "migrations/2_bad.yaml:5: where: column "),
            ("2_bad.yaml", "version: 2\nup:\n  - create_table: { table: x, partition_key: id:text }\n",
             "migrations/2_bad.yaml:3: partition_key: key type must be"),
            ("2_bad.yaml", "version: 1\nup:\n  - delete_table: { table: app }\n",
             "migrations/2_bad.yaml:1: version: 1 does not match"),
            ("2_dup.yaml", "version: 1\nup:\n  - delete_table: { table: app }\n".replace("version: 1", "version: 2"),
             None),
        ]
        for name, text, message in cases[:4]:
            before = snapshot(p.ns)
            path = p.write(name, text)
            r = p.run("up")
            self.assertExit(r, 2)
            self.assertIn(message, r.stderr)
            self.assertLessEqual(len(r.stderr.strip().splitlines()), 2, r.stderr)
            self.assertNotIn("terminate", r.stderr)
            self.assertEqual(snapshot(p.ns), before)
            os.remove(path)
        # Refused when the pipeline is planned (a key change in update mode): after the lock is
        # taken, but the record is put back as it was.
        before = snapshot(p.ns)
        path = p.write("2_key.yaml", """\
            version: 2
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - update: "SET SK = concat(SK, '#1')"
                  write: { mode: update }
            """)
        r = p.run("up")
        self.assertExit(r, 2)
        self.assertIn("migrations/2_key.yaml:3", r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        os.remove(path)
        # Duplicate versions.
        p.write("2_a.yaml", "version: 2\nup:\n  - delete_table: { table: nothing }\n")
        p.write("2_b.yaml", "version: 2\nup:\n  - delete_table: { table: nothing }\n")
        before = snapshot(p.ns)
        r = p.run("up")
        self.assertExit(r, 2)
        self.assertIn("version 2 is also used by", r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        # Bad flags and bad dynamorph.yaml.
        self.assertExit(p.run("up", "--segments", "zero"), 2)
        self.assertExit(p.run("--env", "nope", "status"), 2)
        with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
            f.write("lock_ttl_typo: 1\n")
        r = p.run("status")
        self.assertExit(r, 2)
        self.assertIn("dynamorph.yaml:6: unknown key 'lock_ttl_typo'", r.stderr)

    def test_drift_exit_4_and_crlf_is_not_drift(self):
        p = Project(self)
        self.seeded(p, users=10)
        path = p.write("6_posts.yaml", PATTERNS["6_posts.yaml"])
        self.assertExit(p.run("up"), 0)
        p.write("6_posts.yaml", PATTERNS["6_posts.yaml"], newline="\r\n")  # another OS's checkout
        self.assertExit(p.run("up"), 0)
        self.assertExit(p.run("status"), 0)
        with open(path, "a") as f:
            f.write("# edited after it was applied\n")
        p.write("7_posts_by_author.yaml", PATTERNS["7_posts_by_author.yaml"])
        before = snapshot(p.ns)
        r = p.run("up")
        self.assertExit(r, 4)
        self.assertIn("migrations/6_posts.yaml: changed since it was applied", r.stderr)
        self.assertIn("restore the file, or, if the edit changes nothing that ran, record it with "
                      "`dynamorph mark 6 applied`", r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        r = p.run("status")
        self.assertExit(r, 4)
        self.assertRegex(r.stdout, r"(?m)^6\s+posts\s+drift")
        self.assertExit(p.run("mark", "6", "applied"), 0)
        self.assertExit(p.run("up"), 0)
        st, _ = p.status()
        self.assertEqual(st[7]["state"], "applied")

    def test_step_failure_exit_1(self):
        p = Project(self)
        make_table(p.table("posts"), pk="other", sk="key")
        p.write("6_posts.yaml", PATTERNS["6_posts.yaml"])
        r = p.run("up")
        self.assertExit(r, 1)
        self.assertIn("migrations/6_posts.yaml:4: create_table: table " + p.table("posts") + " exists with key", r.stderr)
        st, _ = p.status()
        self.assertEqual(st[6]["state"], "failed")
        # mark pending forgets the attempt; the next run starts afresh (and fails the same way).
        self.assertExit(p.run("mark", "6", "pending"), 0)
        st, _ = p.status()
        self.assertEqual(st[6]["state"], "pending")

    def put_lock(self, p, host, pid, expires_in_s):
        now = int(time.time() * 1000)
        DDB.put_item(TableName=p.state, Item={
            "pk": S("dynamorph"), "sk": S("lock"), "owner": S(f"{host}:{pid}:feedbeef"), "host": S(host),
            "pid": N(pid), "acquired_at": S("2026-11-22T01:02:03.000Z"), "expires_at": N(now + expires_in_s * 1000)})

    def test_lock_held_exit_3_unlock_and_takeover(self):
        p = Project(self)
        self.seeded(p, users=10)
        p.write("1_normalize_usernames.yaml", PATTERNS["1_normalize_usernames.yaml"])
        self.assertExit(p.run("mark", "1", "pending"), 0)  # creates the state table
        self.put_lock(p, "build-host-9", 4242, 600)
        before = snapshot(p.ns)
        r = p.run("up")
        self.assertExit(r, 3)
        self.assertIn("held by build-host-9:4242", r.stderr)
        self.assertIn("since 2026-11-22T01:02:03.000Z", r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        self.assertExit(p.run("unlock"), 3)  # another host, not expired
        self.assertExit(p.run("unlock", "--force"), 0)
        self.assertExit(p.run("up"), 0)
        # An expired lease is taken over by the next run.
        self.put_lock(p, "build-host-9", 4242, -5)
        p.write("6_posts.yaml", PATTERNS["6_posts.yaml"])
        self.assertExit(p.run("up"), 0)
        # A lease of this host's dead process is freed by plain unlock; a live one is not.
        dead = subprocess.Popen(["true"])
        dead.wait()
        self.put_lock(p, socket.gethostname(), dead.pid, 600)
        self.assertExit(p.run("unlock"), 0)
        self.put_lock(p, socket.gethostname(), os.getpid(), 600)
        r = p.run("unlock")
        self.assertExit(r, 3)
        self.assertIn("may still be running", r.stderr)
        self.assertExit(p.run("unlock", "--force"), 0)

    def slow_project(self, users):
        p = Project(self)
        self.seeded(p, users=users)
        p.write("8_visits.yaml", """\
            version: 8
            name: visits
            up:
              - pipeline:
                  values: { ":profile": PROFILE, ":one": 1 }
                  source: { table: app, page_size: 20 }
                  where: "SK = :profile"
                  transform:
                    - update: "SET visits = visits + :one"
                  write: { mode: update, version_attribute: _v }
            """)
        return p

    def wait_for_checkpoints(self, p, proc, timeout=120):
        """Until the run has committed a checkpoint (so it is mid-way), however slow the machine."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.assertIsNone(proc.poll(), "the run ended before it was interrupted")
            try:
                if any(int(c.get("pages", {"N": "0"})["N"]) > 0 for c in self.checkpoints(p)):
                    return
            except DDB.exceptions.ResourceNotFoundException:
                pass
            time.sleep(0.2)
        self.fail("no checkpoint within the time limit")

    def checkpoints(self, p):
        return [i for i in scan(p.state) if i["sk"]["S"].startswith("checkpoint#")]

    def expected_visits(self, users):
        return {f"USER#{1000 + u}": u % 17 + 1 for u in range(users)}

    def visits(self, p):
        return {i["PK"]["S"]: int(i["visits"]["N"]) for i in scan(p.table("app")) if i["SK"]["S"] == "PROFILE"}

    def test_two_ups_together_one_runs(self):
        p = self.slow_project(400)
        a = p.start("up", "--max-wcu", "100")
        b = p.start("up", "--max-wcu", "100")
        outs = [x.communicate(timeout=300) for x in (a, b)]
        codes = sorted([a.returncode, b.returncode])
        self.assertEqual(codes, [0, 3], outs)
        loser = outs[0] if a.returncode == 3 else outs[1]
        self.assertRegex(loser[1], r"held by [^ ]+:\d+ \(owner .*\) since \d{4}-")
        self.assertEqual(self.visits(p), self.expected_visits(400))

    def test_kill9_then_unlock_and_up_completes_exactly_once(self):
        users = 1500
        p = self.slow_project(users)
        proc = p.start("up", "--max-wcu", "150")
        self.wait_for_checkpoints(p, proc)
        proc.kill()
        proc.communicate()
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "running")
        self.assertGreater(len(self.checkpoints(p)), 0)
        expected, now = self.expected_visits(users), self.visits(p)
        applied = sum(1 for k, v in now.items() if v == expected[k])
        self.assertGreater(applied, 0)  # killed in the middle, not before or after
        self.assertLess(applied, users)
        r = p.run("up")
        self.assertExit(r, 3)  # the dead run's lease has not expired yet
        r = p.run("unlock")
        self.assertExit(r, 0)
        self.assertIn("its process is gone", r.stdout)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "applied")
        self.assertEqual(self.checkpoints(p), [])  # cleared once the version is applied

    def test_sigint_saves_checkpoint_exit_130_then_resumes(self):
        users = 1500
        p = self.slow_project(users)
        proc = p.start("up", "--max-wcu", "150")
        self.wait_for_checkpoints(p, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, out + err)
        self.assertRegex(err, r"dynamorph: stopping: waiting for \d+ requests in flight, then saving "
                              r"the checkpoint \(Ctrl-C again to stop at once\)")
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "running")
        self.assertGreater(len(self.checkpoints(p)), 0)
        self.assertNotIn("lock", {i["sk"]["S"] for i in scan(p.state)})  # released
        # An edit of a started version: the hint never says to mark it applied.
        path = os.path.join(p.dir, "migrations", "8_visits.yaml")
        original = open(path).read()
        with open(path, "a") as f:
            f.write("# edited while it was running\n")
        r = p.run("up")
        self.assertExit(r, 4)
        self.assertIn("changed since it was started", r.stderr)
        self.assertIn("restore the file to resume it, or run `dynamorph mark 8 pending`", r.stderr)
        self.assertNotIn("applied", r.stderr)
        with open(path, "w") as f:
            f.write(original)
        r = p.run("up")  # no unlock needed
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))

    def test_a_second_signal_stops_at_once_and_resume_is_exact(self):
        users = 1500
        p = self.slow_project(users)
        proc = p.start("up", "--max-wcu", "150")
        self.wait_for_checkpoints(p, proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertLess(time.time() - sent, 2.0)
        # Ended by the second signal itself; or, when the first stop was already through in those
        # 50 ms (a fast box), by that stop (130). Either way the resume below must be exact.
        self.assertIn(proc.returncode, (-signal.SIGINT, 130), out + err)
        self.assertIn("Ctrl-C again to stop at once", err)
        r = p.run("unlock")  # its lease was not released: like a crash
        self.assertExit(r, 0)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))

    def test_a_crash_reports_its_stack_and_resumes_like_a_kill(self):
        # No input should crash dynamorph; if something does, stderr says so with the stack
        # (resolvable with addr2line), the process dies of that signal, and a resume is exact.
        users = 1500
        p = self.slow_project(users)
        proc = p.start("up", "--max-wcu", "150")
        self.wait_for_checkpoints(p, proc)
        proc.send_signal(signal.SIGSEGV)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, -signal.SIGSEGV, out + err)
        self.assertIn("dynamorph: crashed with signal 11 (SIGSEGV); this is a bug, please report "
                      "it with this stack:", err)
        self.assertRegex(err, r"/dynamorph\(\+0x[0-9a-f]+\)\[0x[0-9a-f]+\]")
        r = p.run("unlock")  # its lease was not released
        self.assertExit(r, 0)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))

    def test_sigterm_under_a_rate_cap_stops_promptly_then_resumes(self):
        # Pages as big as the table (1 MB) at 200 WCU/s: draining what was read would take most
        # of a minute. A stop sends no more writes, waits only for those on the wire, checkpoints
        # what is fully written, and exits 130.
        users = 1500
        p = self.slow_project(users)
        with open(os.path.join(p.dir, "migrations", "8_visits.yaml")) as f:
            p.write("8_visits.yaml", f.read().replace("page_size: 20", "page_size: 5000"))
        proc = p.start("up", "--max-wcu", "200")
        deadline = time.time() + 60
        while time.time() < deadline and not any(
                i["sk"]["S"] == "lock" for i in (scan(p.state) if p.state in tables_with(p.ns) else [])):
            time.sleep(0.05)
        time.sleep(2)  # writing, well before the first page is through
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        took = time.time() - sent
        print(f"SIGTERM at max_wcu 200 with 1 MB pages: exit after {took:.2f} s", flush=True)
        self.assertEqual(proc.returncode, 130, out + err)
        self.assertLess(took, 6.0)  # within 2 s plus a request, with room for a loaded box
        now, expected = self.visits(p), self.expected_visits(users)
        self.assertLess(sum(1 for k, v in now.items() if v == expected[k]), users)  # stopped part-way
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), expected)

    def test_down_interrupted_then_resumed(self):
        users = 1500
        p = self.slow_project(users)
        p.write("8_visits.yaml", """\
            version: 8
            name: visits
            max_wcu: 150
            up:
              - pipeline:
                  values: { ":profile": PROFILE, ":one": 1 }
                  source: { table: app, page_size: 20 }
                  where: "SK = :profile"
                  transform:
                    - update: "SET visits = visits + :one"
                  write: { mode: update, version_attribute: _v }
            down:
              - pipeline:
                  names: { "#v": _v }
                  values: { ":one": 1 }
                  source: { table: app, page_size: 20 }
                  where: "attribute_exists(#v)"
                  transform:
                    - update: "SET visits = visits - :one REMOVE #v"
                  write: { mode: update }
            """)
        self.assertExit(p.run("up", "--max-wcu", "0"), 0)  # the flag lifts the file's cap
        self.assertEqual(self.visits(p), self.expected_visits(users))
        proc = p.start("down")
        self.wait_for_checkpoints(p, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, out + err)
        st, r = p.status()
        self.assertEqual((st[8]["state"], "going down" in st[8]["note"]), ("running", True), r.stdout)
        r = p.run("up")
        self.assertExit(r, 4)
        self.assertIn("finish it with `dynamorph down`", r.stderr)
        r = p.run("down")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), {f"USER#{1000 + u}": u % 17 for u in range(users)})
        self.assertFalse(any("_v" in i for i in scan(p.table("app"))))
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "pending")

    def test_lost_lease_stops_with_exit_1(self):
        p = self.slow_project(1500)
        proc = p.start("up", "--max-wcu", "150", "--lock-ttl", "3s")
        self.wait_for_checkpoints(p, proc)
        # Another owner takes the lock (as `unlock --force` elsewhere plus a new run would).
        self.put_lock(p, "other-host", 1, 600)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 1, out + err)
        self.assertIn("lost the lock", err)

    def test_init_and_generate_load_and_plan(self):
        p = Project(self)
        os.remove(os.path.join(p.dir, "dynamorph.yaml"))
        os.rmdir(os.path.join(p.dir, "migrations"))
        self.assertExit(p.run("init"), 0)
        self.assertTrue(os.path.isfile(os.path.join(p.dir, "dynamorph.yaml")))
        self.assertExit(p.run("init"), 2)  # never overwrites
        r = p.run("generate", "users", "--create-table", "users", "--partition-key", "id:string",
                  "--sort-key", "at:number", "--gsi", "email:string", "--gsi", "author:S,at:number")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"wrote migrations/\d{14}_users\.yaml")
        with open(os.path.join(p.dir, r.stdout.split()[1])) as f:
            self.assertIn("      gsi:\n"
                          "        - { name: by_email, partition_key: email:string, projection: all }\n"
                          "        - { name: by_author_at, partition_key: author:string, sort_key: at:number, "
                          "projection: all }\n", f.read())
        r = p.run("generate", "x", "--create-table", "t", "--partition-key", "id:S", "--gsi", "a:S,b:N,c:S")
        self.assertExit(r, 2)
        self.assertEqual(r.stderr, "dynamorph: --gsi 'a:S,b:N,c:S': expected NAME:TYPE or NAME:TYPE,SORT:TYPE "
                                   "(a partition and a sort key)\n")
        time.sleep(1.1)
        self.assertExit(p.run("generate", "backfill"), 0)
        self.assertExit(p.run("generate", "bad name"), 2)
        self.assertExit(p.run("generate", "x", "--partition-key", "id:string"), 2)
        common = ["--endpoint", ENDPOINT, "--region", "us-east-1", "--namespace", p.ns]
        before = snapshot(p.ns)
        r = p.run(*common, "up", "--dry-run")
        # generate's starter pipeline names a table that does not exist yet: the plan says so,
        # and exits with the code the real run would be refused with.
        self.assertExit(r, 2)
        self.assertIn("would apply", r.stdout)
        backfill = [f for f in os.listdir(os.path.join(p.dir, "migrations")) if f.endswith("_backfill.yaml")]
        self.assertIn(f"warning: source table {p.table('REPLACE_WITH_YOUR_TABLE')} does not exist: `up` would "
                      f"fail here (the placeholder `dynamorph generate` wrote: replace it with your table's "
                      f"name in migrations/{backfill[0]}:7)", r.stdout)
        self.assertEqual(snapshot(p.ns), before)
        versions = sorted(f.split("_")[0] for f in os.listdir(os.path.join(p.dir, "migrations")) if f.endswith(".yaml"))
        self.assertExit(p.run(*common, "up", "--to", versions[0]), 0)
        self.assertIn(p.table("users"), tables_with(p.ns))
        gsis = DDB.describe_table(TableName=p.table("users"))["Table"]["GlobalSecondaryIndexes"]
        self.assertEqual(sorted((g["IndexName"], [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]])
                                for g in gsis),
                         [("by_author_at", [("author", "HASH"), ("at", "RANGE")]), ("by_email", [("email", "HASH")])])
        self.assertExit(p.run(*common, "down"), 0)
        self.assertNotIn(p.table("users"), tables_with(p.ns))

    def test_environment_overlay_and_flags(self):
        p = Project(self)
        other = p.ns + "o-"
        with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
            f.write(f"environments:\n  other: {{ namespace: {other} }}\n")
        p.write("6_posts.yaml", PATTERNS["6_posts.yaml"])
        self.assertExit(p.run("--env", "other", "up"), 0)
        self.assertIn(other + "posts", tables_with(other))
        self.assertIn(other + "dynamorph_state", tables_with(other))
        env = dict(os.environ, DYNAMORPH_ENV="other")
        r = subprocess.run([BIN, "--json", "status"], cwd=p.dir, capture_output=True, text=True, env=env)
        self.assertExit(r, 0)
        self.assertIn('"state":"applied"', r.stdout)
        st, _ = p.status()  # no overlay: the base namespace has nothing applied
        self.assertEqual(st[6]["state"], "pending")
        self.assertNotIn(p.table("posts"), tables_with(p.ns + "posts"))
        r = p.run("--namespace", other, "status")  # the flag beats the file
        self.assertRegex(r.stdout, r"(?m)^6\s+posts\s+applied")

    def test_schema_block_is_recorded_and_shown(self):
        p = Project(self)
        p.write("6_posts.yaml", PATTERNS["6_posts.yaml"])
        p.write("9_orders.yaml", """\
            version: 9
            name: orders
            schema:
              description: Orders become their own entity, under their user
              entities:
                - name: Order
                  table: app
                  keys: { PK: "USER#<user_id>", SK: "ORDER#<order_id>" }
                  attributes: { user_id: string, order_id: string, total: number }
            down: []
            """)
        expected = {"description": "Orders become their own entity, under their user",
                    "entities": [{"name": "Order", "table": "app",
                                  "keys": {"PK": "USER#<user_id>", "SK": "ORDER#<order_id>"},
                                  "attributes": {"user_id": "string", "order_id": "string",
                                                 "total": "number"}}]}
        st, r = p.status()
        self.assertExit(r, 0)
        self.assertEqual(st[9]["schema"], expected)  # pending: what the file says
        self.assertNotIn("schema", st[6])
        r = p.run("up", "--dry-run")
        self.assertExit(r, 0)
        self.assertIn("dry run: would apply 9 orders (migrations/9_orders.yaml)\n"
                      "  schema: Order in app (PK USER#<user_id>, SK ORDER#<order_id>)\n", r.stdout)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("  schema: Order in app (PK USER#<user_id>, SK ORDER#<order_id>)\n  applied 9 orders",
                      r.stdout)
        st, _ = p.status()
        self.assertEqual((st[9]["state"], st[9]["step"], st[9]["schema"]), ("applied", 0, expected))
        rec = DDB.get_item(TableName=p.state, Key={"pk": S("dynamorph"), "sk": S("version#%020d" % 9)})["Item"]
        self.assertEqual(rec["schema"]["M"]["entities"]["L"][0]["M"]["keys"]["L"][1]["M"],
                         {"attribute": S("SK"), "pattern": S("ORDER#<order_id>")})
        self.assertExit(p.run("down"), 0)  # nothing to undo but the record
        st, _ = p.status()
        self.assertEqual(st[9]["state"], "pending")
        p.write("10_bad.yaml", "version: 10\nschema:\n  entities:\n    - { name: A, keys: { PK: \"A#<id>\" } }\n")
        before = snapshot(p.ns)
        r = p.run("up")
        self.assertExit(r, 2)
        self.assertIn("migrations/10_bad.yaml:4: entity A.keys.PK: <id> is not among the entity's attributes",
                      r.stderr)
        self.assertEqual(snapshot(p.ns), before)

    def write_lua(self, p, name, text):
        os.makedirs(os.path.join(p.dir, "migrations", "lua"), exist_ok=True)
        path = os.path.join(p.dir, "migrations", "lua", name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def lua_visits_project(self, users):
        p = Project(self)
        self.seeded(p, users=users)
        self.write_lua(p, "visits.lua", LUA_VISITS)
        p.write("8_visits.yaml", """\
            version: 8
            name: visits
            up:
              - pipeline:
                  values: { ":fixed": true }
                  source: { table: app, page_size: 20 }
                  transform:
                    - lua: { file: lua/visits.lua }
                  write: { mode: update, version_attribute: _v }
            """)
        return p

    def test_lua_transform_up_drift_down(self):
        p = Project(self)
        items = self.seeded(p)
        script = self.write_lua(p, "normalize.lua", LUA_NORMALIZE)
        p.write("1_normalize.yaml", """\
            version: 1
            name: normalize
            up:
              - pipeline:
                  source: { table: app, page_size: 40 }
                  transform:
                    - lua: { file: lua/normalize.lua }
                  write: { mode: batch }
            down:
              - pipeline:
                  source: { table: app }
                  where: "attribute_exists(migratedAt)"
                  transform:
                    - lua:
                        code: |
                          function transform(item, ctx)
                            item.migratedAt = nil
                            return item
                          end
                  write: { mode: update }
            """)
        r = p.run("up")
        self.assertExit(r, 0)
        got = by_key(scan(p.table("app")))
        now = next(i["migratedAt"]["S"] for i in got.values() if "migratedAt" in i)
        expected = by_key(items)
        for i in expected.values():
            u = i.get("username", {}).get("S")
            if i["SK"]["S"] == "PROFILE" and u != u.lower():
                i["username"], i["migratedAt"] = S(u.lower()), S(now)
        self.assertEqual(got, expected)
        # Editing the applied script is drift, like editing the YAML.
        with open(script, "a") as f:
            f.write("-- edited after it was applied\n")
        before = snapshot(p.ns)
        r = p.run("up")
        self.assertExit(r, 4)
        self.assertIn("migrations/1_normalize.yaml: changed since it was applied", r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        self.write_lua(p, "normalize.lua", LUA_NORMALIZE)
        self.assertExit(p.run("status"), 0)
        # down runs a Lua step too.
        self.assertExit(p.run("down"), 0)
        self.assertFalse(any("migratedAt" in i for i in scan(p.table("app"))))

    def test_lua_errors_at_load_exit_2_and_write_nothing(self):
        p = Project(self)
        self.seeded(p, users=10)
        self.write_lua(p, "bad.lua", "function transform(item, ctx)\n  if item.x then\n  return item\nend\n")
        p.write("1_bad.yaml", """\
            version: 1
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - lua: { file: lua/bad.lua }
            """)
        before = snapshot(p.ns)
        for cmd in (["up"], ["up", "--dry-run"], ["status"]):
            r = p.run(*cmd)
            self.assertExit(r, 2)
            self.assertIn("migrations/lua/bad.lua:5: 'end' expected (to close 'function' at line 1) near <eof> (",
                          r.stderr)
            self.assertIn("migrations/1_bad.yaml:6)", r.stderr)
        p.write("1_bad.yaml", """\
            version: 1
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - lua:
                        code: |
                          local x = {
                          function transform(item, ctx) return item end
            """)
        r = p.run("up")
        self.assertExit(r, 2)
        self.assertIn("migrations/1_bad.yaml:9: '(' expected near 'transform' (", r.stderr)  # the file's line
        self.write_lua(p, "bad.lua", "function other(item) return item end\n")
        p.write("1_bad.yaml", "version: 1\nup:\n  - pipeline:\n      source: { table: app }\n"
                "      transform:\n        - lua: { file: lua/bad.lua }\n")
        r = p.run("up")
        self.assertExit(r, 2)
        self.assertIn("migrations/lua/bad.lua: defines no function transform(item, ctx)", r.stderr)
        self.assertEqual(snapshot(p.ns), before)
        self.assertNotIn(p.state, tables_with(p.ns))  # not even the state table

    def test_lua_runtime_error_exit_1_then_the_fixed_script_resumes(self):
        users = 300
        p = self.lua_visits_project(users)
        def edit(old, new):
            path = os.path.join(p.dir, "migrations", "8_visits.yaml")
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace(old, new))
        edit('":fixed": true', '":fixed": false')
        r = p.run("up")
        self.assertExit(r, 1)
        self.assertRegex(r.stderr, r'item \{"PK":\{"S":"USER#1042"\},"SK":\{"S":"PROFILE"\}\}: lua (\S*/)?migrations/lua/'
                         r'visits.lua: (\S*/)?migrations/lua/visits.lua:3: no visits for USER#1042')
        self.assertEqual(len([l for l in r.stderr.splitlines() if l.startswith("dynamorph:")]), 1, r.stderr)
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "failed")
        # Fix the failed version (here its YAML; the script may be fixed the same way): up resumes
        # it from its checkpoint, and every item is changed exactly once.
        edit('":fixed": false', '":fixed": true')
        r = p.run("status")
        self.assertExit(r, 0)
        self.assertIn("changed since it failed", r.stdout)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))
        st, _ = p.status()
        self.assertEqual(st[8]["state"], "applied")
        # A runaway script: the budget stops it, naming the line.
        p.write("9_loop.yaml", """\
            version: 9
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - lua:
                        max_instructions: 100000
                        code: |
                          function transform(item, ctx)
                            while true do end
                          end
            """)
        r = p.run("up")
        self.assertExit(r, 1)
        self.assertIn("migrations/9_loop.yaml:10: instruction budget exceeded (100000 instructions per item; "
                      "raise it with lua.max_instructions)", r.stderr)
        # A memory bomb: the cap stops it, naming the line; what version 8 did stays as it was.
        os.remove(os.path.join(p.dir, "migrations", "9_loop.yaml"))
        self.assertExit(p.run("mark", "9", "pending"), 0)
        p.write("9_bomb.yaml", """\
            version: 9
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - lua:
                        max_memory_mb: 8
                        code: |
                          function transform(item, ctx)
                            local t = {}
                            while true do t[#t + 1] = string.rep("x", 4096) .. #t end
                          end
            """)
        r = p.run("up")
        self.assertExit(r, 1)
        self.assertIn("migrations/9_bomb.yaml:11: memory cap exceeded (8 MiB per worker; raise it with "
                      "lua.max_memory_mb)", r.stderr)
        self.assertEqual(self.visits(p), self.expected_visits(users))

    def test_lua_kill9_then_resume_applies_each_item_once(self):
        users = 1500
        p = self.lua_visits_project(users)
        proc = p.start("up", "--max-wcu", "150")
        self.wait_for_checkpoints(p, proc)
        proc.kill()
        proc.communicate()
        expected, now = self.expected_visits(users), self.visits(p)
        applied = sum(1 for k, v in now.items() if v == expected[k])
        self.assertGreater(applied, 0)
        self.assertLess(applied, users)
        self.assertExit(p.run("unlock"), 0)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.visits(p), self.expected_visits(users))

    def test_docs_lua_example_on_real_data(self):
        """docs/examples' Lua migration (profile_tiers) on seeded data, up and down."""
        p = Project(self)
        items = self.seeded(p)
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        src = os.path.join(repo, "docs", "examples", "migrations")
        shutil.copy(os.path.join(src, "20261122105500_profile_tiers.yaml"), os.path.join(p.dir, "migrations"))
        os.makedirs(os.path.join(p.dir, "migrations", "lua"))
        shutil.copy(os.path.join(src, "lua", "profile_tiers.lua"), os.path.join(p.dir, "migrations", "lua"))
        r = p.run("up")
        self.assertExit(r, 0)
        expected = by_key(items)
        for i in expected.values():
            if i["SK"]["S"] == "PROFILE":
                i["tier"] = S(tier_of(i))
                i["badge"] = S(TIER_BADGES[tier_of(i)])
                i["_v"] = N(20261122105500)
        self.assertEqual(by_key(scan(p.table("app"))), expected)
        self.assertExit(p.run("down"), 0)
        for i in expected.values():
            i.pop("tier", None)
            i.pop("badge", None)
        self.assertEqual(by_key(scan(p.table("app"))), expected)

    def test_docs_examples_apply_and_roll_back(self):
        """The guide's example folder, through configs/local.yaml, against DynamoDB Local."""
        p = Project(self)
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        common = ["--config", os.path.join(repo, "configs", "local.yaml"), "--endpoint", ENDPOINT,
                  "--namespace", p.ns]
        r = p.run(*common, "up", "--dry-run")
        self.assertExit(r, 0)
        self.assertEqual(tables_with(p.ns), [])
        r = p.run(*common, "up")
        self.assertExit(r, 0)
        self.assertEqual(tables_with(p.ns), sorted([p.table("app"), p.table("users"), p.state]))
        users = DDB.describe_table(TableName=p.table("users"))["Table"]
        self.assertEqual([g["IndexName"] for g in users["GlobalSecondaryIndexes"]], ["by_email"])
        app = DDB.describe_table(TableName=p.table("app"))["Table"]
        self.assertNotIn("GlobalSecondaryIndexes", app)
        r = p.run(*common, "down")
        self.assertExit(r, 0)
        self.assertEqual(tables_with(p.ns), sorted([p.table("app"), p.state]))
        app = DDB.describe_table(TableName=p.table("app"))["Table"]
        self.assertEqual([g["IndexName"] for g in app["GlobalSecondaryIndexes"]], ["by_username"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
