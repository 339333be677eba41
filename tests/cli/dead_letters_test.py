"""Dead letters (`on_item_error: skip`, `max_item_errors`, `up --retry-dead-letters`), through the
command line against DynamoDB Local:
- 7 poisoned items in 5,000 that the server rejects (a number for a string index key: a
  ValidationException that fails the whole BatchWriteItem), with skip and max_item_errors 10:
  every other item is migrated exactly, the 7 are in .dynamorph/dead-letters/<version>.jsonl
  with their reason and the item as read, `status` counts them; after the data is fixed,
  `up --retry-dead-letters` writes exactly them and empties the file;
- the same in transactions (a copy in transact mode): each refused transaction is written again
  item by item, and only the 7 are skipped;
- the same with max_item_errors 5: exit 1, the version failed;
- Lua errors and items grown past 400 KB by a Lua transform: dead letters with their reasons;
- 7 items a non-idempotent transform rejects, in update mode with version_attribute, the run
  killed with SIGKILL and resumed: every other item changed exactly once, the 7 in the file once
  each; the file fixed (a transform that reads the text numbers), retried: exactly once each;
- the dry run says what would be skipped; bad settings exit 2 with file:line.
Items are read back with boto3 and compared whole."""
import json
import os
import shutil
import signal
import stat
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
VERSION = 20261203090000
ITEMS = 5000
POISONED = [17, 777, 1234, 2500, 3001, 4096, 4999]


def key(i):
    return {"pk": {"S": f"item-{i:05d}"}}


class Project:
    """dynamorph.yaml, the table `app` (with a string-keyed index `by_label`), one migration."""

    def __init__(self, test, pipeline, poison):
        self.test = test
        self.dir = tempfile.mkdtemp(prefix="dynamorph_dead_letters_")
        self.ns = f"d{uuid.uuid4().hex[:8]}-"
        os.makedirs(os.path.join(self.dir, "migrations"))
        with open(os.path.join(self.dir, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {ENDPOINT}\nregion: us-east-1\nnamespace: {self.ns}\n")
        self.write_migration(pipeline)
        test.addCleanup(self.drop)
        self.create_table("app")
        self.original = {}
        for i in range(ITEMS):
            it = dict(key(i), n={"N": str(i)}, tag={"S": f"t{i % 10}"})
            if i in POISONED:
                it.update(poison(i))
            self.original[f"item-{i:05d}"] = it
        values = list(self.original.values())
        for at in range(0, ITEMS, 25):
            DDB.batch_write_item(RequestItems={self.ns + "app": [
                {"PutRequest": {"Item": it}} for it in values[at:at + 25]]})
        self.dead_letter_file = os.path.join(self.dir, ".dynamorph", "dead-letters", f"{VERSION}.jsonl")

    def create_table(self, name):
        """A table keyed by the string `pk`, with the index `by_label` on the string `label`."""
        DDB.create_table(
            TableName=self.ns + name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "label", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[{"IndexName": "by_label",
                                     "KeySchema": [{"AttributeName": "label", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "ALL"}}])

    def write_migration(self, pipeline):
        text = f"version: {VERSION}\nname: reshape\nup:\n  - pipeline:\n" + \
            textwrap.indent(textwrap.dedent(pipeline), "      ")
        with open(os.path.join(self.dir, "migrations", f"{VERSION}_reshape.yaml"), "w") as f:
            f.write(text)

    def run(self, *args):
        return subprocess.run([BIN, *args], cwd=self.dir, capture_output=True, text=True, timeout=600)

    def ok(self, *args):
        r = self.run(*args)
        self.test.assertEqual(r.returncode, 0, f"{args}: {r.stdout}\n{r.stderr}")
        return r

    def items(self, table="app"):
        out, kw = {}, {"TableName": self.ns + table, "ConsistentRead": True}
        while True:
            page = DDB.scan(**kw)
            for it in page["Items"]:
                out[it["pk"]["S"]] = it
            if "LastEvaluatedKey" not in page:
                return out
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def dead_letters(self):
        with open(self.dead_letter_file) as f:
            lines = f.read().splitlines()
        return [json.loads(line) for line in lines]

    def status_json(self):
        r = self.ok("status", "--json")
        rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        return next(row for row in rows if row.get("version") == VERSION)

    def drop(self):
        for t in ("app", "dynamorph_state"):
            try:
                DDB.delete_table(TableName=self.ns + t)
            except DDB.exceptions.ResourceNotFoundException:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# The server rejects these: `label` is the index's string key, and a poisoned tag is a number.
LABEL_STEP = """\
source: {{ table: app, segments: 4 }}
values: {{ ":yes": "yes" }}
transform:
  - update: "SET label = tag, migrated = :yes"
write: {{ mode: batch }}
on_item_error: skip
max_item_errors: {max}
"""


def labelled(it):
    out = dict(it, label=it["tag"], migrated={"S": "yes"})
    return out


class ServerRejections(unittest.TestCase):
    def test_seven_poisoned_items_skipped_then_retried_after_the_data_is_fixed(self):
        p = Project(self, LABEL_STEP.format(max=10), lambda i: {"tag": {"N": str(i)}})
        dry = p.ok("up", "--dry-run")
        self.assertIn("on_item_error: skip (max_item_errors 10): 0 items the transform rejects "
                      "would go to the dead letters", dry.stdout)
        self.assertFalse(os.path.exists(p.dead_letter_file))

        r = p.ok("up")
        self.assertIn("dead letters 7", r.stdout + r.stderr)
        got = p.items()
        self.assertEqual(len(got), ITEMS)
        for name, it in p.original.items():
            i = int(name[5:])
            self.assertEqual(got[name], it if i in POISONED else labelled(it), name)

        letters = p.dead_letters()
        self.assertEqual(sorted(d["key"]["pk"]["S"] for d in letters),
                         [f"item-{i:05d}" for i in POISONED])
        for d in letters:
            self.assertEqual(d["step"], 1)
            self.assertEqual(d["item"], p.original[d["key"]["pk"]["S"]])
            self.assertIn("ValidationException", d["reason"])
            self.assertIn("Type mismatch for Index Key", d["reason"])
        self.assertEqual(stat.S_IMODE(os.stat(p.dead_letter_file).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(p.dead_letter_file)).st_mode), 0o700)

        row = p.status_json()
        self.assertEqual(row["state"], "applied")
        self.assertEqual(row["counters"]["dead_letters"], 7)
        self.assertEqual(row["counters"]["written"], ITEMS - 7)
        self.assertEqual(row["dead_letters"], {"items": 7, "file": p.dead_letter_file.replace(p.dir + "/", "")})
        self.assertIn("7 dead letters in .dynamorph/dead-letters/", p.ok("status").stdout)

        # The fix: the data. The retry reads each item again as it is now.
        for i in POISONED:
            DDB.update_item(TableName=p.ns + "app", Key=key(i), UpdateExpression="SET tag = :t",
                            ExpressionAttributeValues={":t": {"S": f"fixed{i}"}})
            p.original[f"item-{i:05d}"]["tag"] = {"S": f"fixed{i}"}
        r = p.ok("up", "--retry-dead-letters")
        self.assertIn(f"version {VERSION}: 7 dead letters retried, 7 written, 0 still failing", r.stdout)
        self.assertFalse(os.path.exists(p.dead_letter_file))
        got = p.items()
        for name, it in p.original.items():
            self.assertEqual(got[name], labelled(it), name)
        row = p.status_json()
        self.assertEqual(row["counters"]["dead_letters"], 0)
        self.assertEqual(row["counters"]["written"], ITEMS)
        self.assertNotIn("dead_letters", row)
        self.assertEqual(p.ok("up", "--retry-dead-letters").stdout.strip(), "no dead letters to retry")

    def test_more_poisoned_items_than_max_item_errors_stops_the_run(self):
        p = Project(self, LABEL_STEP.format(max=5), lambda i: {"tag": {"N": str(i)}})
        r = p.run("up")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"pipeline failed: .*: [67] items could not be written, more than "
                                   r"max_item_errors 5; the last: .*ValidationException")
        self.assertEqual(p.status_json()["state"], "failed")
        # Whatever was stored is a poisoned item, once.
        if os.path.exists(p.dead_letter_file):
            keys = [d["key"]["pk"]["S"] for d in p.dead_letters()]
            self.assertEqual(len(keys), len(set(keys)))
            self.assertLessEqual(set(keys), {f"item-{i:05d}" for i in POISONED})


    def test_transactions_refused_for_one_item_are_written_item_by_item(self):
        # A copy, so that the transactions' actions are Puts: DynamoDB Local does not check an
        # index key's type in an Update action (the service does), only in a Put.
        step = LABEL_STEP.format(max=10).replace("mode: batch", "table: copy, mode: transact")
        p = Project(self, step, lambda i: {"tag": {"N": str(i)}})
        p.create_table("copy")
        self.addCleanup(DDB.delete_table, TableName=p.ns + "copy")
        p.ok("up")
        got = p.items("copy")
        self.assertEqual(got, {name: labelled(it) for name, it in p.original.items()
                               if int(name[5:]) not in POISONED})
        letters = p.dead_letters()
        self.assertEqual(sorted(d["key"]["pk"]["S"] for d in letters),
                         [f"item-{i:05d}" for i in POISONED])
        for d in letters:
            self.assertIn("TransactionCanceledException", d["reason"])
        self.assertEqual(p.status_json()["counters"]["dead_letters"], 7)


# Lua: an error for some items, an item grown past DynamoDB's 400 KB for others.
LUA_STEP = """\
source: { table: app, segments: 2 }
transform:
  - lua:
      code: |
        function transform(item, ctx)
          local i = tonumber(item.n)
          if i % 1000 == 7 then error("no rule for item " .. i) end
          if i % 1000 == 8 then item.blob = string.rep("x", 410000) end
          item.seen = "yes"
          return item
        end
write: { mode: batch }
on_item_error: skip
max_item_errors: 10
"""


class LuaRejections(unittest.TestCase):
    def test_lua_errors_and_items_over_400_kb_are_dead_letters(self):
        p = Project(self, LUA_STEP, lambda i: {})
        bad = {i: "no rule for item" for i in range(7, ITEMS, 1000)}
        bad.update({i: "over DynamoDB's item limit of 400 KB" for i in range(8, ITEMS, 1000)})
        dry = p.ok("up", "--dry-run")
        self.assertIn(f"{len(bad)} items the transform rejects would go to the dead letters", dry.stdout)
        p.ok("up")
        got = p.items()
        for name, it in p.original.items():
            i = int(name[5:])
            self.assertEqual(got[name], it if i in bad else dict(it, seen={"S": "yes"}), name)
        letters = {d["key"]["pk"]["S"]: d for d in p.dead_letters()}
        self.assertEqual(sorted(letters), [f"item-{i:05d}" for i in sorted(bad)])
        for i, why in bad.items():
            d = letters[f"item-{i:05d}"]
            self.assertIn(why, d["reason"])
            self.assertEqual(d["item"], p.original[f"item-{i:05d}"])


# A non-idempotent transform the text numbers of the poisoned items make fail.
TOTAL_STEP = """\
source: {{ table: app, segments: 4, page_size: 50 }}
values: {{ ":one": 1 }}
transform:
  - update: "SET total = {expr} + :one"
write: {{ mode: update, version_attribute: _v }}
on_item_error: skip
max_item_errors: 10
"""


def totalled(it, total):
    return dict(it, total={"N": str(total)}, _v={"N": str(VERSION)})


class TransformRejections(unittest.TestCase):
    def test_kill_9_resume_and_retry_after_the_file_is_fixed_apply_each_item_once(self):
        p = Project(self, TOTAL_STEP.format(expr="n"), lambda i: {"n": {"S": str(i)}})
        dry = p.ok("up", "--dry-run")
        self.assertIn("on_item_error: skip (max_item_errors 10): 7 items the transform rejects "
                      "would go to the dead letters (.dynamorph/dead-letters/", dry.stdout)

        # Killed at once, then a few times more while it writes, then to the end.
        kills = 0
        for delay in (1.0, 1.5, 2.0):
            proc = subprocess.Popen([BIN, "up", "--max-wcu", "600"], cwd=p.dir,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            p.run("unlock", "--force")
        self.assertGreater(kills, 0)
        p.ok("up")

        got = p.items()
        for name, it in p.original.items():
            i = int(name[5:])
            self.assertEqual(got[name], it if i in POISONED else totalled(it, i + 1), name)
        letters = p.dead_letters()
        self.assertEqual(sorted(d["key"]["pk"]["S"] for d in letters),
                         [f"item-{i:05d}" for i in POISONED])
        for d in letters:
            self.assertEqual(d["item"], p.original[d["key"]["pk"]["S"]])
            self.assertIn("SET total = n + :one", d["reason"])

        # The fix: the file. A changed applied file is accepted by the retry, and recorded.
        p.write_migration(TOTAL_STEP.format(expr="to_number(n)"))
        self.assertEqual(p.run("up").returncode, 4)
        r = p.ok("up", "--retry-dead-letters")
        self.assertIn("7 dead letters retried, 7 written, 0 still failing", r.stdout)
        got = p.items()
        for name, it in p.original.items():
            i = int(name[5:])
            self.assertEqual(got[name], totalled(it, i + 1), name)
        self.assertEqual(p.ok("up").stdout.strip(), "up to date: nothing to apply")
        self.assertFalse(os.path.exists(p.dead_letter_file))


class Settings(unittest.TestCase):
    def test_bad_settings_exit_2_with_file_and_line(self):
        d = tempfile.mkdtemp(prefix="dynamorph_dead_letters_")
        self.addCleanup(shutil.rmtree, d, True)
        os.makedirs(os.path.join(d, "migrations"))
        with open(os.path.join(d, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {ENDPOINT}\nregion: us-east-1\n")
        path = os.path.join(d, "migrations", f"{VERSION}_x.yaml")
        cases = [
            ("on_item_error: ignore\n", ":6:", "on_item_error: expected stop or skip, got 'ignore'"),
            ("max_item_errors: 3\n", ":6:", "max_item_errors: only with on_item_error: skip"),
            ("on_item_error: skip\n      max_item_errors: -1\n", ":7:",
             "max_item_errors: expected 0 (no limit) or more"),
        ]
        for extra, line, message in cases:
            with open(path, "w") as f:
                f.write(f"version: {VERSION}\nname: x\nup:\n  - pipeline:\n      source: {{ table: app }}\n"
                        f"      {extra}")
            r = subprocess.run([BIN, "up", "--dry-run"], cwd=d, capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"{VERSION}_x.yaml{line}", r.stderr)
            self.assertIn(message, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)


if __name__ == "__main__":
    unittest.main()
