"""What a plan says and what commands print. The dry run's write estimate against DynamoDB's
documented metering rules, on a table with
two global secondary indexes (one projecting everything, one keys only): index entries put when
an item enters an index or changes its projected attributes, deleted and put when its index key
changes, nothing when the index does not see the change; transactions double the table's units.
The formula is computed here, independently, from the items; batch-mode estimates are also
compared with what DynamoDB Local meters when the migration really runs. Then the edges a new
user meets: a dry run that foresees a refusal exits with the real run's code, every plan-time
refusal writes nothing (not even the state table or the lock), generate prints nothing before an
error, and -q prints results (not progress)."""
import hashlib
import json
import math
import os
import socket
import time
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import DDB, N, Project, S, make_table as make_app_table, put_all, scan, snapshot  # noqa: E402

from bench_test import item_size  # noqa: E402  (DynamoDB's size rules)

INDEXES = {  # name: (partition key, projection)
    "by_email": ("email", "ALL"),
    "by_status": ("status", "KEYS_ONLY"),
}
TABLE_KEYS = ("PK", "SK")


def units(n_bytes):
    return math.ceil(n_bytes / 1024)


def entry_units(item, index):
    key, projection = INDEXES[index]
    if projection == "ALL":
        return units(item_size(item))
    return units(item_size({k: v for k, v in item.items() if k in TABLE_KEYS or k == key}))


def index_cost(before, after):
    """DynamoDB's rules for one write (before/after: None for an insert/delete)."""
    total = {}
    for index, (key, projection) in INDEXES.items():
        was, now = before is not None and key in before, after is not None and key in after
        cost = 0
        if was and now:
            if before[key] != after[key]:
                cost = entry_units(before, index) + entry_units(after, index)
            else:
                names = set(before) | set(after)
                if projection == "KEYS_ONLY":
                    names = {n for n in names if n in TABLE_KEYS or n == key}
                if any(before.get(n) != after.get(n) for n in names):
                    cost = entry_units(after, index)
        elif now:
            cost = entry_units(after, index)
        elif was:
            cost = entry_units(before, index)
        total[index] = cost
    return total


def make_table(name):
    attrs = [("PK", "S"), ("SK", "S"), ("email", "S"), ("status", "S")]
    DDB.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in attrs],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": index, "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
             "Projection": {"ProjectionType": projection}}
            for index, (key, projection) in INDEXES.items()])
    DDB.get_waiter("table_exists").wait(TableName=name)


def dataset():
    items = []
    for u in range(120):
        item = {"PK": {"S": f"USER#{u:04}"}, "SK": {"S": "PROFILE"},
                "username": {"S": f"User{u}"}, "email": {"S": f"u{u}@example.com"},
                "bio": {"S": "b" * (200 + 9 * u)}}  # 0.3 to 1.3 KB: some index entries take 2 KB
        if u % 3 == 0:
            item["status"] = {"S": "active"}
        if u % 10 == 0:
            del item["email"]
        items.append(item)
    return items


class DryRunEstimateTest(unittest.TestCase):
    def setUp(self):
        self.p = Project(self)
        self.table = self.p.table("users")
        make_table(self.table)
        self.items = dataset()
        put_all(self.table, self.items)

    def plan(self, mode, update):
        self.p.write("1_change.yaml", f"""\
            version: 1
            name: change
            up:
              - pipeline:
                  source: {{ table: users }}
                  transform:
                    - update: "{update}"
                  write: {{ mode: {mode}, guard: none }}
            """)
        r = self.p.run("--json", "up", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines()
                if json.loads(line).get("event") == "dry_run_step"][0]

    def expected(self, change, table_factor):
        table, indexes = 0, {i: 0 for i in INDEXES}
        for before in self.items:
            after = change(dict(before))
            table += table_factor * units(item_size(after))
            for index, cost in index_cost(before, after).items():
                indexes[index] += cost
        return table, indexes

    def check(self, mode, update, change, table_factor, metered):
        step = self.plan(mode, update)
        table, indexes = self.expected(change, table_factor)
        self.assertEqual(step["estimated_index_wcu"], indexes)
        self.assertEqual(step["estimated_wcu"], table + sum(indexes.values()))
        if metered:
            r = self.p.run("--json", "up")
            self.assertEqual(r.returncode, 0, r.stderr)
            done = [json.loads(line) for line in r.stdout.splitlines()
                    if json.loads(line).get("event") == "version_done"][0]
            self.assertEqual(done["counters"]["consumed_wcu"], step["estimated_wcu"])
        return step

    def test_projected_attribute_changes(self):
        # username is in by_email's entries (ALL), not in by_status's (KEYS_ONLY).
        def lower(i):
            i["username"] = {"S": i["username"]["S"].lower()}
            return i
        step = self.check("batch", "SET username = lower(username)", lower, 1, metered=True)
        self.assertEqual(step["estimated_index_wcu"]["by_status"], 0)
        self.assertGreater(step["estimated_index_wcu"]["by_email"], 0)
        self.assertEqual(sorted(i["username"]["S"] for i in scan(self.table)),
                         sorted(i["username"]["S"].lower() for i in self.items))

    def test_index_key_changes_and_entries(self):
        # status set on every item: a key change in by_status for a third of them (delete + put),
        # an entry for the rest, and a projected change in by_email.
        def archive(i):
            i["status"] = {"S": "archived"}
            return i
        self.p.write("1_change.yaml", """\
            version: 1
            name: change
            up:
              - pipeline:
                  names: { "#s": status }
                  values: { ":archived": archived }
                  source: { table: users }
                  transform:
                    - update: "SET #s = :archived"
                  write: { mode: batch, guard: none }
            """)
        r = self.p.run("--json", "up", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        step = [json.loads(line) for line in r.stdout.splitlines()
                if json.loads(line).get("event") == "dry_run_step"][0]
        table, indexes = self.expected(archive, 1)
        self.assertEqual(step["estimated_index_wcu"], indexes)
        self.assertEqual(step["estimated_wcu"], table + sum(indexes.values()))
        self.assertEqual(indexes["by_status"], 40 * 2 + 80 * 1)  # keys-only entries: 1 WCU each
        text = self.p.run("up", "--dry-run")
        line = [ln for ln in text.stdout.splitlines() if "would write:" in ln][0]
        self.assertIn(f"estimated {step['estimated_wcu']} WCU (of which global indexes: ", line)
        self.assertIn(f"by_email {indexes['by_email']}", line)  # in DescribeTable's order
        self.assertIn(f"by_status {indexes['by_status']}", line)
        self.assertTrue(line.endswith(") by DynamoDB's metering rules"), line)
        r = self.p.run("--json", "up")
        self.assertEqual(r.returncode, 0, r.stderr)
        done = [json.loads(line) for line in r.stdout.splitlines()
                if json.loads(line).get("event") == "version_done"][0]
        self.assertEqual(done["counters"]["consumed_wcu"], step["estimated_wcu"])

    def test_transactions_double_the_table_units(self):
        def lower(i):
            i["username"] = {"S": i["username"]["S"].lower()}
            return i
        # DynamoDB Local meters 4 WCU per transaction whatever it holds: compare with the rules.
        self.check("transact", "SET username = lower(username)", lower, 2, metered=False)



def checksum(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read().replace(b"\r\n", b"\n")).hexdigest()


# Version 1 of the hint and down tests: a table, and its down step.
TABLE_VERSION = """\
    version: 1
    name: table
    up:
      - create_table: { table: things, partition_key: id:string }
    down:
      - delete_table: { table: things }
    """

class SafeHintsTest(unittest.TestCase):
    """Every hint that names a command is safe in the state it is printed in: no `unlock
    --force` while the holder may be alive, no `mark V applied` for a version that may not have
    finished, no edit of an applied file."""

    def project(self):
        p = Project(self)
        p.write("1_table.yaml", TABLE_VERSION)
        self.assertEqual(p.run("up").returncode, 0)
        return p

    def put_version(self, p, state, direction):
        path = os.path.join(p.dir, "migrations", "1_table.yaml")
        DDB.put_item(TableName=p.state, Item={
            "pk": S("dynamorph"), "sk": S("version#%020d" % 1), "version": N(1), "name": S("table"),
            "state": S(state), "direction": S(direction), "checksum": S(checksum(path)), "step": N(0),
            "counters": {"M": {}}})

    def test_a_live_lock_is_never_forced(self):
        p = self.project()
        DDB.put_item(TableName=p.state, Item={
            "pk": S("dynamorph"), "sk": S("lock"), "owner": S("me:1:feedbeef"), "host": S(socket.gethostname()),
            "pid": N(os.getpid()), "acquired_at": S("2026-11-22T01:02:03.000Z"),
            "expires_at": N(4102444800000)})  # 2100-01-01
        lock = f"{socket.gethostname()}:{os.getpid()} (owner me:1:feedbeef) since 2026-11-22T01:02:03.000Z, " \
               f"lease until 2100-01-01T00:00:00.000Z"
        r = p.run("unlock")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stderr, f"dynamorph: the lock in {p.state} is held by {lock}, which may still be "
                                   "running; wait for it (a dead run's lease ends at 2100-01-01T00:00:00.000Z, "
                                   "then `dynamorph unlock` frees it), or use `dynamorph unlock --force` only "
                                   f"once you know process {os.getpid()} on {socket.gethostname()} is gone\n")
        r = p.run("down")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stderr, f"dynamorph: the lock in {p.state} is held by {lock}; wait for it, or "
                                   "`dynamorph unlock` if that run is dead\n")
        self.assertIn("lock", {i["sk"]["S"] for i in scan(p.state)})  # still held

    def test_a_version_stopped_going_down_is_finished_by_down(self):
        p = self.project()
        self.put_version(p, "running", "down")
        r = p.run("up")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertEqual(r.stderr, "dynamorph: version 1 (migrations/1_table.yaml) stopped while being rolled "
                                   "back (running); finish it with `dynamorph down`, which resumes where it "
                                   "stopped\n")
        r = p.run("down")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(p.table("things"), DDB.list_tables()["TableNames"])

    def test_an_unknown_state_word_is_repaired_as_pending(self):
        p = self.project()
        self.put_version(p, "paused", "up")
        r = p.run("status")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertEqual(r.stderr, "dynamorph: version 1 has state 'paused', direction 'up' in the state table: "
                                   "not a state dynamorph knows (running, applied, failed; up, down); run the "
                                   "dynamorph that wrote it, or repair it with `dynamorph mark 1 pending` "
                                   "(`mark 1 applied` only if you know it finished)\n")
        self.assertEqual(p.run("mark", "1", "pending").returncode, 0)
        self.assertEqual(p.run("status").returncode, 0)


CLEANUP_STEP = """\
    version: 1
    name: visits
    up:
      - pipeline:
          source: { table: app, segments: 4, page_size: 50 }
          transform:
            - update: "SET visits = visits + :one"
          values: { ":one": 1 }
          write: { mode: update, version_attribute: _v, cleanup_version_attribute: true }
    """


class CleanupVersionAttributeTest(unittest.TestCase):
    """`cleanup_version_attribute: true`: a last pass removes `_v` from every item the step
    wrote, with its own checkpoints; the step's change is still applied exactly once."""

    def seeded(self, n):
        p = Project(self)
        make_app_table(p.table("app"))
        items = [{"PK": S(f"USER#{i:05}"), "SK": S("PROFILE"), "visits": N(i)} for i in range(n)]
        put_all(p.table("app"), items)
        p.write("1_visits.yaml", CLEANUP_STEP)
        return p, [dict(i, visits=N(int(i["visits"]["N"]) + 1)) for i in items]

    def read(self, p):
        return sorted(scan(p.table("app")), key=lambda i: i["PK"]["S"])

    def test_up_removes_the_attribute(self):
        p, expected = self.seeded(300)
        r = p.run("up", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"  step 2/2: pipeline cleanup: REMOVE _v from the items of {p.table('app')} at "
                      "this version (migrations/1_visits.yaml:4)\n", r.stdout)
        cleanup = r.stdout.split("step 2/2")[1]  # its writes: one UpdateItem per item the step writes
        self.assertIn("    scanned 300, matched 300\n    would write: 0 puts, 300 updates, 0 deletes, 0 "
                      "transactions; estimated 300 WCU by DynamoDB's metering rules\n", cleanup)
        self.assertIn(", 4 RCU + 328 WCU, ", cleanup)
        r = p.run("up")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read(p), expected)

    def test_kill9_during_the_cleanup_then_resume(self):
        p, expected = self.seeded(600)
        proc = p.start("up", "--max-wcu", "100")
        killed = False
        while proc.poll() is None:
            now = scan(p.table("app"))
            cleaned = sum(1 for i in now if "_v" not in i and i["visits"] != expected[0]["visits"] and
                          int(i["visits"]["N"]) == int(i["PK"]["S"][5:]) + 1)
            left = sum(1 for i in now if "_v" in i)
            if cleaned > 0 and left > 0:
                proc.kill()
                killed = True
                break
            time.sleep(0.2)
        proc.communicate()
        self.assertTrue(killed, "the kill must land during the cleanup pass")
        self.assertEqual(p.run("unlock").returncode, 0)  # this host's dead run
        st, _ = p.status()
        self.assertEqual((st[1]["state"], st[1]["step"]), ("running", 1))  # in the cleanup step
        r = p.run("up")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(self.read(p), expected)
        st, _ = p.status()
        self.assertEqual(st[1]["state"], "applied")


class ProgressTest(unittest.TestCase):
    def test_written_moves_within_one_page(self):
        """One 2,000-item page under a WCU cap: the JSON progress events count items as their
        BatchWriteItem requests are acknowledged, long before the page's checkpoint."""
        p = Project(self)
        make_app_table(p.table("app"))
        items = [{"PK": S(f"USER#{i:05}"), "SK": S("PROFILE"), "n": N(i)} for i in range(2000)]
        put_all(p.table("app"), items)
        p.write("1_mark.yaml", """\
            version: 1
            name: mark
            up:
              - pipeline:
                  source: { table: app, segments: 1, page_size: 2000 }
                  transform:
                    - update: "SET seen = :yes"
                  values: { ":yes": true }
                  write: { mode: batch }
            """)
        r = p.run("--json", "up", "--max-wcu", "400")
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        written = [e["counters"]["written"] for e in events if e.get("event") == "progress"]
        within = [w for w in written if 0 < w < 2000]  # the page is not committed yet
        self.assertGreaterEqual(len(set(within)), 3, written)
        self.assertEqual(within, sorted(within), written)
        got = sorted(scan(p.table("app")), key=lambda i: i["PK"]["S"])
        self.assertEqual(got, [dict(i, seen={"BOOL": True}) for i in items])


class CommandEdgesTest(unittest.TestCase):
    def test_a_dry_run_that_foresees_a_refusal_exits_2(self):
        p = Project(self)
        p.write("1_copy.yaml", """\
            version: 1
            name: copy
            up:
              - pipeline:
                  source: { table: missing }
                  write: { table: elsewhere, mode: batch }
            """)
        for args in (["up", "--dry-run"], ["--json", "up", "--dry-run"]):
            r = p.run(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("dynamorph: dry run: the real run would be refused where the warnings "
                          "above say (exit 2)", r.stderr)
        self.assertIn(f"warning: source table {p.table('missing')} does not exist: `up` would fail here",
                      p.run("up", "--dry-run").stdout)
        self.assertEqual(DDB.list_tables()["TableNames"].count(p.state), 0)  # nothing written
        r = p.run("up")  # and the real run is refused, with the same code
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"source table '{p.table('missing')}' does not exist", r.stderr)

    def test_plan_time_refusals_write_nothing_not_even_the_state_table(self):
        p = Project(self)
        make_app_table(p.table("app"))
        put_all(p.table("app"), [{"PK": {"S": f"U#{i}"}, "SK": {"S": "P"}, "n": {"N": str(i)}}
                                 for i in range(30)])
        fine = """\
            version: 1
            name: fine
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - update: "SET seen = n"
                  write: { mode: update, guard: none }
            """
        refusals = [  # (a later version's file, what the refusal names)
            ("""\
            version: 2
            up:
              - pipeline:
                  source: { table: app }
                  transform:
                    - update: "SET SK = concat(SK, '#1')"
                  write: { mode: update }
            """, "migrations/2_refused.yaml:3"),
            ("""\
            version: 2
            up:
              - pipeline:
                  source: { table: nowhere }
                  write: { table: app, mode: batch }
            """, f"source table '{p.table('nowhere')}' does not exist"),
            ("""\
            version: 2
            up:
              - pipeline:
                  source: { table: app }
                  write: { table: nowhere, mode: batch }
            """, f"target table '{p.table('nowhere')}' does not exist"),
        ]
        p.write("1_fine.yaml", fine)
        before = snapshot(p.ns)
        for text, message in refusals:
            # The first version would run, the second is refused at plan time: neither runs,
            # and the endpoint keeps no trace (no state table, no lock, no item changed).
            path = p.write("2_refused.yaml", text)
            r = p.run("up")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(message, r.stderr)
            self.assertNotIn(p.state, DDB.list_tables()["TableNames"])
            self.assertEqual(snapshot(p.ns), before)
            os.remove(path)
        # With the state table there: the refusal leaves its items (no lock taken) as they were.
        self.assertEqual(p.run("up").returncode, 0)
        before = snapshot(p.ns)
        for text, message in refusals:
            path = p.write("2_refused.yaml", text)
            r = p.run("up")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(message, r.stderr)
            self.assertEqual(snapshot(p.ns), before)
            os.remove(path)
        # A version without down steps and without a journal: `down` is refused before the lock.
        r = p.run("down")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("version 1 has no down steps", r.stderr)
        self.assertEqual(snapshot(p.ns), before)

    def test_generate_prints_nothing_before_an_error(self):
        p = Project(self)
        r = p.run("generate", "add status")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_unknown_command_suggests_the_nearest(self):
        p = Project(self)
        r = p.run("statu")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("dynamorph: unknown command 'statu' (did you mean 'status'? commands: init, "
                      "generate, status, up, down,", r.stderr)
        r = p.run("frobnicate")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("dynamorph: unknown command 'frobnicate' (commands: init,", r.stderr)

    def test_down_names_every_one_way_version(self):
        p = Project(self)
        p.write("1_table.yaml", TABLE_VERSION)
        for v, name in ((2, "ttl"), (3, "more_ttl")):
            p.write(f"{v}_{name}.yaml", f"""\
                version: {v}
                name: {name}
                up:
                  - create_table: {{ table: {name}, partition_key: id:string }}
                """)
        p.write("4_declared.yaml", """\
            version: 4
            name: declared
            up:
              - create_table: { table: others, partition_key: id:string }
            down: irreversible
            """)
        r = p.run("up", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("dry run: would apply 4 declared (migrations/4_declared.yaml)\n"
                      "    declared irreversible (`down: irreversible`): `down` will refuse to roll "
                      "it back\n", r.stdout)
        self.assertEqual(p.run("up").returncode, 0)
        before = snapshot(p.ns)
        hint = ("undo what a version did with a new version whose up steps reverse it; give "
                "versions to come `down:` steps, or set `journal:` in dynamorph.yaml before "
                "running them\n")
        for args in (["down", "--to", "0"], ["down", "--to", "0", "--dry-run"]):
            r = p.run(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stderr,
                             "dynamorph: down: 3 versions in the plan cannot be rolled back "
                             "(nothing was changed):\n"
                             "  migrations/4_declared.yaml: version 4 is declared irreversible "
                             "(`down: irreversible`)\n"
                             "  migrations/3_more_ttl.yaml: version 3 has no down steps and no "
                             "journal (dynamorph.yaml sets no `journal:`)\n"
                             "  migrations/2_ttl.yaml: version 2 has no down steps and no journal "
                             "(dynamorph.yaml sets no `journal:`)\n" + hint, args)
            self.assertEqual(snapshot(p.ns), before)  # nothing written, not even the state table
        # A journal does not make a declared irreversible version reversible.
        with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
            f.write("journal: ./journal\n")
        r = p.run("down")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "dynamorph: migrations/4_declared.yaml: version 4 is declared "
                         "irreversible (`down: irreversible`), so it cannot be rolled back "
                         "(nothing was changed); " + hint)
        self.assertEqual(snapshot(p.ns), before)

    def test_quiet_prints_results_not_progress(self):
        p = Project(self)
        p.write("1_table.yaml", TABLE_VERSION)
        for args, expected in ((["-q", "up"], "  applied 1 table\n"),
                               (["-q", "up"], "up to date: nothing to apply\n"),
                               (["-q", "down"], "  reverted 1 table\n"),
                               (["-q", "down"], "nothing to roll back\n"),
                               (["-q", "mark", "1", "applied"], "marked 1 applied\n")):
            r = p.run(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual((r.stdout, r.stderr), (expected, ""), args)


if __name__ == "__main__":
    unittest.main()
