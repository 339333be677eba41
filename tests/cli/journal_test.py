"""The before-image journal (`journal:` in dynamorph.yaml) and `dynamorph verify`, through the
command line against DynamoDB Local and s3rver on loopback:
- the five common reshapes (add a field, rewrite values, change the key, copy into a new table,
  delete an entity type), each `up` and then `down` without down steps: the table equals the
  original exactly, with a local journal and with an s3:// one;
- an application's edit to 10 migrated items between `up` and `down`: those 10 are listed and
  keep the application's value, everything else is restored, exit 1; `down --force` restores them;
- kill -9 during `up` five times, `up` to the end, `down`: the original exactly, and the journal
  holds exactly one before-image per changed item; kill -9 during `down`, `down` again: the same;
- `verify`: 0 issues after a clean `up`; exactly the items corrupted behind its back, in place and
  in a copy, exit 1, with --json counts;
- a version with neither down steps nor a journal cannot go down (exit 2, nothing written); a dry
  run reports the journal's size.
Data are read back with boto3 and compared item by item."""
import base64
import gzip
import json
import os
import random
import shutil
import signal
import sys
import subprocess
import tempfile
import textwrap
import time
import unittest
import uuid

import boto3

PORT = open(os.path.join(os.environ["DYNAMORPH_TEST_DDB_DIR"], "port")).read().strip()
ENDPOINT = f"http://127.0.0.1:{PORT}"
S3_ENDPOINT = open(os.path.join(os.environ["DYNAMORPH_TEST_S3_DIR"], "endpoint")).read().strip()
BUCKET = "dynamorph-test"
BIN = os.environ["DYNAMORPH_BIN"]
DDB = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name="us-east-1",
                   aws_access_key_id="dynamorphtest", aws_secret_access_key="dynamorphtest")
S3 = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                  aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER")
VERSION = 20261202100000
NAMES = ["Alice", "BOB", "carol", "DaVe", "eve", "FrAnK"]


def item(i):
    """A single-table design: per user a profile, two photos and a session, with most types."""
    user = f"USER#{i // 5:05d}"
    kind = i % 5
    base = {"PK": {"S": user}, "n": {"N": str(i * 7 - 1000)}, "price": {"N": f"{i}.25"},
            "flag": {"BOOL": i % 2 == 0}, "nothing": {"NULL": True},
            "tags": {"SS": [f"t{i % 5}", f"u{i % 3}"]},
            "blob": {"B": bytes([i % 256, 0, 255, 7])},
            "meta": {"M": {"rank": {"N": str(i % 100)}, "list": {"L": [{"N": "1"}, {"S": "two"}]}}}}
    if kind == 0:
        base.update(SK={"S": "PROFILE"}, username={"S": f"{NAMES[i % 6]}{i}"})
    elif kind in (1, 2):
        base.update(SK={"S": f"PHOTO#{i:06d}"}, photo_id={"S": f"{i:06d}"})
    elif kind == 3:
        base.update(SK={"S": "SETTINGS"}, theme={"S": "dark"})
    else:
        base.update(SK={"S": f"SESSION#{i:06d}"}, token={"S": uuid.uuid4().hex})
    return base


PATTERNS = {
    "add_field": """\
        - pipeline:
            values: {{ ":active": "active" }}
            source: {{ table: app, segments: 4 }}
            where: "SK = 'PROFILE' AND attribute_not_exists(status)"
            transform:
              - update: "SET status = :active"
            write: {{ mode: update, version_attribute: _v }}
        """,
    "rewrite_values": """\
        - pipeline:
            source: {{ table: app, segments: 4 }}
            where: "SK = 'PROFILE' AND username <> lower(username)"
            transform:
              - update: "SET username = lower(username)"
            write: {{ mode: batch }}
        """,
    "change_key": """\
        - pipeline:
            source: {{ table: app, segments: 4 }}
            where: "begins_with(SK, 'PHOTO#')"
            transform:
              - update: "SET SK = concat('IMG#', photo_id)"
            write: {{ mode: batch }}
        """,
    "copy": """\
        - create_table: {{ table: users, partition_key: user_id:string, sort_key: kind:string }}
        - pipeline:
            source: {{ table: app, segments: 4 }}
            where: "begins_with(PK, 'USER#')"
            transform:
              - update: "SET user_id = strip_prefix(PK, 'USER#'), kind = SK REMOVE PK, SK"
            write: {{ table: users, mode: batch, version_attribute: _v }}
        """,
    # In place, a Lua fan-out: a profile keeps its key (the before-image is journaled with it)
    # and gains a name item; a photo moves to a new key, so its original is deleted.
    "fan_out": """\
        - pipeline:
            source: {{ table: app, segments: 4 }}
            where: "SK = 'PROFILE' OR begins_with(SK, 'PHOTO#')"
            transform:
              - lua:
                  code: |
                    function transform(item, ctx)
                      if item.SK == "PROFILE" then
                        return dynamorph.many{{
                          {{ PK = item.PK, SK = "PROFILE", username = ctx.lower(item.username) }},
                          {{ PK = "NAME#" .. ctx.lower(item.username), SK = item.PK }},
                        }}
                      end
                      return dynamorph.many{{ {{ PK = item.PK, SK = "IMG#" .. item.photo_id }} }}
                    end
            write: {{ mode: batch, version_attribute: _v }}
        """,
    "delete_entity": """\
        - pipeline:
            source: {{ table: app, segments: 4 }}
            where: "begins_with(SK, 'SESSION#')"
            write: {{ mode: delete }}
        """,
}


def canonical(it):
    """An item as comparable text: sets sorted, binaries as base64 (boto3 gives bytes)."""
    def value(v):
        (t, x), = v.items()
        if t == "B":
            return {"B": x if isinstance(x, str) else base64.b64encode(x).decode()}
        if t in ("SS", "NS"):
            return {t: sorted(x)}
        if t == "BS":
            return {t: sorted(y if isinstance(y, str) else base64.b64encode(y).decode() for y in x)}
        if t == "M":
            return {"M": {k: value(w) for k, w in x.items()}}
        if t == "L":
            return {"L": [value(w) for w in x]}
        return {t: x}
    return json.dumps({k: value(v) for k, v in it.items()}, sort_keys=True)


class Project:
    """dynamorph.yaml with a journal, the table `app` seeded, one migration with `steps`."""

    def __init__(self, test, steps, journal="local", items=1200, config_journal=True):
        self.test = test
        self.dir = tempfile.mkdtemp(prefix="dynamorph_journal_")
        self.ns = f"j{uuid.uuid4().hex[:8]}-"
        os.makedirs(os.path.join(self.dir, "migrations"))
        self.journal_dir = os.path.join(self.dir, "journal")
        self.s3_prefix = f"j{uuid.uuid4().hex[:8]}/journal"
        where = "./journal" if journal == "local" else f"s3://{BUCKET}/{self.s3_prefix}"
        with open(os.path.join(self.dir, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {ENDPOINT}\nregion: us-east-1\nnamespace: {self.ns}\n")
            if config_journal:
                f.write(f"journal: {where}\n")
        self.journal = journal
        self.write_migration(steps)
        test.addCleanup(self.drop)
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                        AWS_ENDPOINT_URL_S3=S3_ENDPOINT)
        DDB.create_table(TableName=self.ns + "app", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                    {"AttributeName": "SK", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                               {"AttributeName": "SK", "AttributeType": "S"}])
        self.original = [item(i) for i in range(items)]
        for at in range(0, items, 25):
            DDB.batch_write_item(RequestItems={self.ns + "app": [
                {"PutRequest": {"Item": it}} for it in self.original[at:at + 25]]})

    def write_migration(self, steps, name="reshape"):
        text = f"version: {VERSION}\nname: {name}\nup:\n" + textwrap.indent(textwrap.dedent(steps.format()), "  ")
        with open(os.path.join(self.dir, "migrations", f"{VERSION}_{name}.yaml"), "w") as f:
            f.write(text)

    def run(self, *args):
        return subprocess.run([BIN, *args], cwd=self.dir, capture_output=True, text=True, timeout=600, env=self.env)

    def start(self, *args):
        return subprocess.Popen([BIN, *args], cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)

    def ok(self, *args):
        r = self.run(*args)
        self.test.assertEqual(r.returncode, 0, f"{args}: {r.stdout}\n{r.stderr}")
        return r

    def scan(self, table="app"):
        items, kw = [], {"TableName": self.ns + table, "ConsistentRead": True}
        while True:
            page = DDB.scan(**kw)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def table(self, table="app"):
        return sorted(canonical(i) for i in self.scan(table))

    def journal_records(self):
        """Every record of the journal, decoded: (file name, record)."""
        out = []
        if self.journal == "local":
            for dirpath, _, names in os.walk(self.journal_dir):
                for n in names:
                    if n.endswith(".jsonl.gz"):
                        with open(os.path.join(dirpath, n), "rb") as f:
                            out += [(n, json.loads(line)) for line in gzip.decompress(f.read()).splitlines()]
        else:
            kw = {"Bucket": BUCKET, "Prefix": self.s3_prefix + "/"}
            while True:
                page = S3.list_objects_v2(**kw)
                for o in page.get("Contents", []):
                    if o["Key"].endswith(".jsonl.gz"):
                        body = S3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
                        out += [(o["Key"], json.loads(line)) for line in gzip.decompress(body).splitlines()]
                if not page.get("IsTruncated"):
                    return out
                kw["ContinuationToken"] = page["NextContinuationToken"]
        return out

    def drop(self):
        for t in ("app", "users", "dynamorph_state"):
            try:
                DDB.delete_table(TableName=self.ns + t)
            except DDB.exceptions.ResourceNotFoundException:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def key_of(record):
    return json.dumps(record["k"]["M"], sort_keys=True)


class PatternsUpDownTest(unittest.TestCase):
    """Each reshape up, then down from the journal: the table is the original again."""

    def check_pattern(self, name, journal):
        p = Project(self, PATTERNS[name], journal=journal)
        before = p.table()
        p.ok("up")
        after_up = p.table()
        if name == "copy":
            self.assertEqual(after_up, before)  # a copy never changes its source
            self.assertEqual(len(p.scan("users")), len(p.original))
        else:
            self.assertNotEqual(after_up, before, f"{name}: up changed nothing")
        status = json.loads(p.ok("--json", "status").stdout.splitlines()[0])
        self.assertEqual(status["state"], "applied")
        r = p.ok("down")
        self.assertIn("restored", r.stdout)
        self.assertEqual(p.table(), before, f"{name} with a {journal} journal: not the original")
        if name == "copy":
            self.assertEqual(p.scan("users"), [])  # the copied items are gone again
        status = json.loads(p.ok("--json", "status").stdout.splitlines()[0])
        self.assertEqual(status["state"], "pending")
        if name == "change_key":
            # up again after down: a fresh run with a journal of its own, and down once more.
            p.ok("up")
            self.assertEqual(p.table(), after_up)
            p.ok("down")
            self.assertEqual(p.table(), before)

    def test_local_journal(self):
        for name in PATTERNS:
            with self.subTest(pattern=name):
                self.check_pattern(name, "local")

    def test_s3_journal(self):
        for name in PATTERNS:
            with self.subTest(pattern=name):
                self.check_pattern(name, "s3")


class ApplicationEditTest(unittest.TestCase):
    def test_edited_items_are_reported_and_kept_then_forced(self):
        p = Project(self, PATTERNS["rewrite_values"])
        before = p.table()
        p.ok("up")
        migrated = [i for i in p.original if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower()]
        edited = random.Random(7).sample(migrated, 10)
        for it in edited:
            DDB.update_item(TableName=p.ns + "app", Key={"PK": it["PK"], "SK": it["SK"]},
                            UpdateExpression="SET username = :u", ExpressionAttributeValues={":u": {"S": "edited-by-app"}})
        r = p.run("down")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("10 items changed since", r.stdout)
        self.assertIn("`dynamorph down --force` restores them too, overwriting those later changes", r.stderr)
        for it in edited:  # each listed by key
            self.assertIn(it["PK"]["S"], r.stdout)
        now = {(i["PK"]["S"], i["SK"]["S"]): i for i in p.scan()}
        edited_keys = {(i["PK"]["S"], i["SK"]["S"]) for i in edited}
        for it in p.original:
            k = (it["PK"]["S"], it["SK"]["S"])
            if k in edited_keys:
                self.assertEqual(now[k]["username"]["S"], "edited-by-app")
            else:
                self.assertEqual(canonical(now[k]), canonical(it), k)
        self.assertEqual(len(now), len(p.original))
        status = json.loads(p.ok("--json", "status").stdout.splitlines()[0])
        self.assertEqual(status["state"], "failed")
        p.ok("down", "--force")
        self.assertEqual(p.table(), before)
        status = json.loads(p.ok("--json", "status").stdout.splitlines()[0])
        self.assertEqual(status["state"], "pending")


class KillDuringUpTest(unittest.TestCase):
    def test_kill9_five_times_then_down(self):
        # Rewrites in batch mode with no version attribute: a resumed page is read again and
        # its items (not written yet, or written already) must each keep exactly one record.
        p = Project(self, PATTERNS["rewrite_values"].replace("segments: 4", "segments: 4, page_size: 25"),
                    items=4000)
        before = p.table()
        changed = {json.dumps({"PK": i["PK"], "SK": i["SK"]}, sort_keys=True) for i in p.original
                   if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower()}
        rng = random.Random(12)
        kills = 0
        for _ in range(5):
            proc = p.start("up", "--max-wcu", "60")
            time.sleep(rng.uniform(0.4, 1.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate()
            subprocess.run([BIN, "unlock", "--force"], cwd=p.dir, capture_output=True, env=p.env)
        self.assertGreaterEqual(kills, 3, "the run finished before it could be killed")
        r = p.ok("up")
        ups = p.table()
        self.assertEqual(sum(1 for i in p.scan() if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower()), 0)
        self.assertNotEqual(ups, before)
        records = p.journal_records()
        keys = [key_of(rec) for _, rec in records]
        self.assertEqual(len(keys), len(set(keys)), "a before-image was journaled twice")
        self.assertEqual(set(keys), changed, "before-images missing (or extra)")
        self.assertEqual(len(records), len(changed))
        for _, rec in records:
            self.assertIn("M", rec["b"])  # every record of an in-place rewrite has its before-image
        p.ok("down")
        self.assertEqual(p.table(), before)


class KillDuringDownTest(unittest.TestCase):
    def test_kill9_during_down_resumes(self):
        # A copy's down deletes every copied item: 4,000 restores, killed twice on the way.
        p = Project(self, PATTERNS["copy"], items=4000)
        before = p.table()
        p.ok("up")
        self.assertEqual(len(p.scan("users")), 4000)
        rng = random.Random(21)
        for delay in (rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)):
            proc = p.start("down")
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate()
            subprocess.run([BIN, "unlock", "--force"], cwd=p.dir, capture_output=True, env=p.env)
        left = len(p.scan("users"))
        print(f"users left after the kills: {left}", file=sys.stderr)
        r = p.ok("down")
        if 0 < left < 4000:  # it was killed half way: the rest is done by the resumed run
            self.assertIn("restored", r.stdout)
        self.assertEqual(p.scan("users"), [])
        self.assertEqual(p.table(), before)
        status = json.loads(p.ok("--json", "status").stdout.splitlines()[0])
        self.assertEqual(status["state"], "pending")


class VerifyTest(unittest.TestCase):
    def test_in_place(self):
        p = Project(self, PATTERNS["rewrite_values"])
        p.ok("up")
        r = p.run("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 still to change", r.stdout)
        self.assertIn("everything holds", r.stdout)
        profiles = [i for i in p.original if i["SK"]["S"] == "PROFILE"]
        corrupt = random.Random(3).sample(profiles, 7)
        for it in corrupt:
            DDB.update_item(TableName=p.ns + "app", Key={"PK": it["PK"], "SK": it["SK"]},
                            UpdateExpression="SET username = :u", ExpressionAttributeValues={":u": {"S": "UPPER" + it["PK"]["S"]}})
        r = p.run("verify", str(VERSION))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("7 still to change", r.stdout)
        listed = [line for line in r.stdout.splitlines() if line.startswith("  - still to change")]
        self.assertEqual(len(listed), 5)
        corrupt_pks = {i["PK"]["S"] for i in corrupt}
        for line in listed:
            self.assertTrue(any(pk in line for pk in corrupt_pks), line)
            self.assertIn("username", line)
        j = [json.loads(line) for line in p.run("--json", "verify").stdout.splitlines()]
        self.assertEqual(j[0]["event"], "verify_step")
        self.assertEqual((j[0]["kind"], j[0]["pending"], j[0]["checked"]), ("in_place", 7, len(p.original)))
        self.assertEqual(j[-1], {"event": "verify", "issues": 7})

    def test_copy(self):
        p = Project(self, PATTERNS["copy"])
        p.ok("up")
        r = p.run("verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 missing, 0 extra, 0 different", r.stdout)
        users = p.scan("users")
        rng = random.Random(5)
        picked = rng.sample(users, 6)
        different, missing = picked[:3], picked[3:5]
        for it in different:
            DDB.update_item(TableName=p.ns + "users", Key={"user_id": it["user_id"], "kind": it["kind"]},
                            UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "424242"}})
        for it in missing:
            DDB.delete_item(TableName=p.ns + "users", Key={"user_id": it["user_id"], "kind": it["kind"]})
        DDB.put_item(TableName=p.ns + "users", Item={"user_id": {"S": "nobody"}, "kind": {"S": "PROFILE"}})
        r = p.run("verify")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("2 missing, 1 extra, 3 different", r.stdout)
        diffs = [line for line in r.stdout.splitlines() if line.startswith("  - ")]
        self.assertEqual(len(diffs), 5)
        for line in diffs:
            if line.startswith("  - different"):
                self.assertIn("n: {N:424242} → {N:", line.replace('"', ""))  # what is there → what should be
        j = [json.loads(line) for line in p.run("--json", "verify").stdout.splitlines()]
        self.assertEqual((j[0]["kind"], j[0]["missing"], j[0]["extra"], j[0]["different"]), ("copy", 2, 1, 3))
        self.assertEqual(j[-1], {"event": "verify", "issues": 6})
        self.assertEqual(p.run("verify", "123").returncode, 2)  # no such version

    def test_copy_from_an_export(self):
        # The source is a DynamoDB export in a folder (written by export_test's independent
        # writer): verify reads it again and compares with the target.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import export_test
        root = tempfile.mkdtemp(prefix="dynamorph_journal_export_")
        self.addCleanup(shutil.rmtree, root, True)
        items = [export_test.item(i) for i in range(800)]
        folder, _ = export_test.write_export(root, items, files=3)
        steps = f'''\
            - create_table: {{{{ table: users, partition_key: user_id:string, sort_key: kind:string }}}}
            - pipeline:
                source: {{{{ export: "{folder}" }}}}
                transform:
                  - update: "SET user_id = strip_prefix(PK, 'USER#'), kind = SK REMOVE PK, SK"
                write: {{{{ table: users, mode: batch, version_attribute: _v }}}}
            '''
        p = Project(self, steps, items=0)
        p.ok("up")
        self.assertEqual(len(p.scan("users")), 800)
        j = [json.loads(line) for line in p.ok("--json", "verify").stdout.splitlines()]
        self.assertEqual((j[0]["kind"], j[0]["checked"], j[0]["missing"], j[0]["extra"], j[0]["different"]),
                         ("copy", 800, 0, 0, 0))
        self.assertEqual(j[0]["source"], folder)
        it = p.scan("users")[17]
        DDB.update_item(TableName=p.ns + "users", Key={"user_id": it["user_id"], "kind": it["kind"]},
                        UpdateExpression="REMOVE #p", ExpressionAttributeNames={"#p": "pad"})
        r = p.run("--json", "verify")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        j = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual((j[0]["missing"], j[0]["extra"], j[0]["different"]), (0, 0, 1))
        self.assertEqual(len(j[0]["differences"]), 1)
        self.assertIn(it["user_id"]["S"], j[0]["differences"][0])
        self.assertIn("pad: (absent) → ", j[0]["differences"][0])


class RefusalsTest(unittest.TestCase):
    def test_no_down_steps_and_no_journal(self):
        p = Project(self, PATTERNS["rewrite_values"], config_journal=False, items=100)
        p.ok("up")
        state_before = sorted(canonical(i) for i in DDB.scan(TableName=p.ns + "dynamorph_state")["Items"])
        r = p.run("down")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("has no down steps and no journal", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        self.assertEqual(sorted(canonical(i) for i in DDB.scan(TableName=p.ns + "dynamorph_state")["Items"]), state_before)
        # The journal set afterwards: the version ran without one, still exit 2, nothing written.
        with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
            f.write("journal: ./journal\n")
        r = p.run("down")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no down steps and no journal in", r.stderr)
        self.assertEqual(sorted(canonical(i) for i in DDB.scan(TableName=p.ns + "dynamorph_state")["Items"]), state_before)

    def test_bad_journal_setting(self):
        p = Project(self, PATTERNS["rewrite_values"], items=10)
        with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
            f.write("environments:\n  prod: { journal: 's3://' }\n")
        r = p.run("--env", "prod", "up")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("dynamorph.yaml:6", r.stderr)
        self.assertIn("journal", r.stderr)
        self.assertNotIn(p.ns + "dynamorph_state", DDB.list_tables()["TableNames"])

    def test_dry_run_reports_journal_size(self):
        p = Project(self, PATTERNS["rewrite_values"], items=500)
        r = p.ok("up", "--dry-run")
        changed = sum(1 for i in p.original if i["SK"]["S"] == "PROFILE" and i["username"]["S"] != i["username"]["S"].lower())
        self.assertIn(f"before-images, gzip", r.stdout)
        line = [l for l in r.stdout.splitlines() if "journal: about" in l][0]
        self.assertIn(f"({changed} before-images", line)
        self.assertFalse(os.path.exists(p.journal_dir))  # a dry run writes no journal
        j = [json.loads(l) for l in p.ok("--json", "up", "--dry-run").stdout.splitlines()]
        step = [e for e in j if e.get("event") == "dry_run_step"][0]
        self.assertEqual(step["journal"]["records"], changed)
        self.assertGreater(step["journal"]["bytes"], 0)
        # down --dry-run of a version without down steps says it would restore the journal.
        p.ok("up")
        migrated = p.table()
        r = p.ok("down", "--dry-run")
        self.assertIn("no down steps: `down` restores the journal in", r.stdout)
        self.assertEqual(p.table(), migrated)


if __name__ == "__main__":
    unittest.main(verbosity=2)
