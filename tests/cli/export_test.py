"""`source: { export: … }` through the command line: a DynamoDB export (DYNAMODB_JSON, written here
by an implementation of the format independent of dynamorph's) copied with a reshape into a new
table, from a local folder and from S3 (s3rver on loopback); kill -9 mid-run and resume; a bad
MD5, a truncated gzip and a line that is not DynamoDB JSON each stop the run with exit 1 naming
the file (and line), and once the export is mended the next `up` finishes exactly, from its
checkpoints. Data are checked with boto3."""
import base64
import gzip
import hashlib
import json
import os
import shutil
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
VERSION = 20261201100000
NAMES = ["Alice", "BOB", "carol", "DaVe", "eve", "FrAnK"]


def item(i):
    """~300 bytes of a single-table design, with most attribute types."""
    user = f"USER#{i // 4:06d}"
    sk = "PROFILE" if i % 4 == 0 else f"PHOTO#{i % 4}"
    return {
        "PK": {"S": user}, "SK": {"S": sk}, "name": {"S": f"{NAMES[i % 6]} {i}"},
        "n": {"N": str(i * 7 - 1000)}, "price": {"N": f"{i}.25"}, "flag": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True}, "tags": {"SS": [f"t{i % 5}", f"u{i % 3}"]},
        "blob": {"B": base64.b64encode(bytes([i % 256, 0, 255, 7])).decode()},
        "meta": {"M": {"source": {"S": "export"}, "rank": {"N": str(i % 100)},
                       "list": {"L": [{"N": "1"}, {"S": "two"}, {"BOOL": False}]}}},
        "pad": {"S": "x" * 120},
    }


def reshaped(it):
    """What the migration's transform makes of an item (see MIGRATION)."""
    out = {k: v for k, v in it.items() if k not in ("PK", "SK")}
    out["user_id"] = {"S": it["PK"]["S"][len("USER#"):]}
    out["kind"] = {"S": it["SK"]["S"]}
    out["name"] = {"S": it["name"]["S"].lower()}
    out["_v"] = {"N": str(VERSION)}
    return out


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


def write_export(root, items, files):
    """An export as ExportTableToPointInTime lays it out: AWSDynamoDB/<id>/manifest-summary.json,
    manifest-files.json (one JSON object a line, base64 MD5 of each gzip file) and data/*.json.gz.
    Returns the export folder and its data files' paths."""
    export_id = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}"
    folder = os.path.join(root, "AWSDynamoDB", export_id)
    os.makedirs(os.path.join(folder, "data"))
    prefix = f"exports/app/AWSDynamoDB/{export_id}"
    per = (len(items) + files - 1) // files
    manifest, paths = [], []
    for f in range(files):
        chunk = items[f * per:(f + 1) * per]
        name = f"data/{uuid.uuid4().hex[:26]}.json.gz"
        body = gzip.compress("".join(json.dumps({"Item": i}, separators=(",", ":")) + "\n" for i in chunk).encode())
        path = os.path.join(folder, name)
        with open(path, "wb") as out:
            out.write(body)
        paths.append(path)
        manifest.append({"itemCount": len(chunk), "md5Checksum": base64.b64encode(hashlib.md5(body).digest()).decode(),
                         "etag": hashlib.md5(body).hexdigest(), "dataFileS3Key": f"{prefix}/{name}"})
    with open(os.path.join(folder, "manifest-files.json"), "w") as out:
        out.write("".join(json.dumps(m) + "\n" for m in manifest))
    summary = {"version": "2020-06-30", "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/app/export/{export_id}",
               "startTime": "2026-12-01T10:00:00.000Z", "endTime": "2026-12-01T10:05:00.000Z",
               "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/app", "tableId": str(uuid.uuid4()),
               "exportTime": "2026-12-01T10:00:00.000Z", "s3Bucket": BUCKET, "s3Prefix": "exports/app",
               "s3SseAlgorithm": "AES256", "s3SseKmsKeyId": None, "manifestFilesS3Key": f"{prefix}/manifest-files.json",
               "billedSizeBytes": sum(os.path.getsize(p) for p in paths), "itemCount": len(items),
               "outputFormat": "DYNAMODB_JSON", "exportType": "FULL_EXPORT"}
    with open(os.path.join(folder, "manifest-summary.json"), "w") as out:
        json.dump(summary, out)
    return folder, paths


def upload(folder):
    """Every file of the export under s3://BUCKET/<unique>/AWSDynamoDB/<id>/; returns that URL."""
    prefix = f"t{uuid.uuid4().hex[:8]}/AWSDynamoDB/{os.path.basename(folder)}"
    for dirpath, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(dirpath, n)
            S3.upload_file(path, BUCKET, f"{prefix}/{os.path.relpath(path, folder)}")
    return f"s3://{BUCKET}/{prefix}/"


MIGRATION = """\
    version: {version}
    name: copy_export
    up:
      - create_table: {{ table: users, partition_key: user_id:string, sort_key: kind:string }}
      - pipeline:
          source: {{ export: "{where}", page_size: {page_size} }}
          transform:
            - update: "SET user_id = strip_prefix(PK, 'USER#'), kind = SK, name = lower(name) REMOVE PK, SK"
          write: {{ table: users, mode: batch, version_attribute: _v }}
    """


class Project:
    """dynamorph.yaml and one migration reading `where`, with a namespace of its own."""

    def __init__(self, test, where, page_size=500):
        self.dir = tempfile.mkdtemp(prefix="dynamorph_export_")
        self.ns = f"x{uuid.uuid4().hex[:8]}-"
        os.makedirs(os.path.join(self.dir, "migrations"))
        with open(os.path.join(self.dir, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {ENDPOINT}\nregion: us-east-1\nnamespace: {self.ns}\n")
        with open(os.path.join(self.dir, "migrations", f"{VERSION}_copy_export.yaml"), "w") as f:
            f.write(textwrap.dedent(MIGRATION.format(version=VERSION, where=where, page_size=page_size)))
        test.addCleanup(self.drop)
        # s3rver knows one key; DynamoDB Local takes any.
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                        AWS_ENDPOINT_URL_S3=S3_ENDPOINT)

    def run(self, *args):
        return subprocess.run([BIN, *args], cwd=self.dir, capture_output=True, text=True, timeout=600, env=self.env)

    def start(self, *args):
        return subprocess.Popen([BIN, *args], cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)

    def target(self):
        items, kw = [], {"TableName": self.ns + "users", "ConsistentRead": True}
        while True:
            page = DDB.scan(**kw)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count(self):
        n, kw = 0, {"TableName": self.ns + "users", "Select": "COUNT", "ConsistentRead": True}
        while True:
            page = DDB.scan(**kw)
            n += page["Count"]
            if "LastEvaluatedKey" not in page:
                return n
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def checkpoints(self):
        try:
            r = DDB.scan(TableName=self.ns + "dynamorph_state", ConsistentRead=True)
        except DDB.exceptions.ResourceNotFoundException:
            return []  # not created yet
        return [i for i in r["Items"] if i["sk"]["S"].startswith("checkpoint#")]

    def drop(self):
        for t in ("users", "dynamorph_state"):
            try:
                DDB.delete_table(TableName=self.ns + t)
            except DDB.exceptions.ResourceNotFoundException:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class ExportCopyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="dynamorph_exports_")
        cls.items = [item(i) for i in range(50_000)]
        cls.folder, _ = write_export(cls.root, cls.items, files=10)
        cls.url = upload(cls.folder)
        cls.expected = sorted(canonical(reshaped(i)) for i in cls.items)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def assertExact(self, p, expected=None):
        got = sorted(canonical(i) for i in p.target())
        self.assertEqual(len(got), len(expected or self.expected))
        self.assertEqual(got, expected or self.expected)

    def copy(self, where):
        p = Project(self, where)
        r = p.run("up")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("pipeline export", r.stdout)
        self.assertExact(p)
        st = json.loads(p.run("--json", "status").stdout.splitlines()[0])
        self.assertEqual(st["state"], "applied")
        self.assertEqual(st["counters"]["written"], 50_000)
        self.assertEqual(st["counters"]["consumed_rcu"], 0)  # an export costs the table nothing

    def test_local_export_copied_with_reshape_exactly(self):
        self.copy(self.folder)

    def test_s3_export_copied_with_reshape_exactly(self):
        self.copy(self.url)

    def kill_and_resume(self, where):
        p = Project(self, where, page_size=200)
        proc = p.start("up", "--max-wcu", "4000")
        deadline = time.time() + 120
        while not p.checkpoints() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a few pages past the first checkpoint
        proc.kill()
        proc.communicate()
        self.assertEqual(proc.returncode, -9, "the run ended before it could be killed")
        written = p.count()
        self.assertGreater(written, 0)
        self.assertLess(written, 50_000)
        r = p.run("unlock")  # the dead run's lease: its process is gone
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = p.run("up")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resuming", r.stdout)
        self.assertExact(p)
        self.assertEqual(p.checkpoints(), [])

    def test_kill9_mid_run_then_resume_exact_local(self):
        self.kill_and_resume(self.folder)

    def test_kill9_mid_run_then_resume_exact_s3(self):
        self.kill_and_resume(self.url)


class DamagedExportTest(unittest.TestCase):
    """Each damage stops the run with exit 1 naming the file; mended, the next up finishes."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="dynamorph_exports_")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.items = [item(i) for i in range(3_000)]
        self.folder, self.paths = write_export(self.root, self.items, files=3)
        self.expected = sorted(canonical(reshaped(i)) for i in self.items)

    def damage_then_mend(self, damage, message, s3):
        manifest = os.path.join(self.folder, "manifest-files.json")
        originals = {p: open(p, "rb").read() for p in [manifest, *self.paths]}
        damage()
        where = upload(self.folder) if s3 else self.folder
        p = Project(self, where, page_size=100)
        r = p.run("up")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("dynamorph:")]
        self.assertEqual(len(errors), 1, r.stderr)  # one line (the rest is the progress summary)
        self.assertRegex(errors[0], message)
        st = json.loads(p.run("--json", "status").stdout.splitlines()[0])
        self.assertEqual(st["state"], "failed")
        before = {canonical(i) for i in p.target()}
        self.assertTrue(before <= set(self.expected))  # what was written is right
        for path, data in originals.items():  # mended: the export as it was made
            with open(path, "wb") as out:
                out.write(data)
        if s3:
            prefix = where[len(f"s3://{BUCKET}/"):]
            for path in originals:
                S3.upload_file(path, BUCKET, prefix + os.path.relpath(path, self.folder))
        r = p.run("up")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resuming", r.stdout)
        self.assertEqual(sorted(canonical(i) for i in p.target()), self.expected)

    def bad_md5(self):
        manifest = os.path.join(self.folder, "manifest-files.json")
        lines = [json.loads(line) for line in open(manifest)]
        lines[1]["md5Checksum"] = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        with open(manifest, "w") as out:
            out.write("".join(json.dumps(m) + "\n" for m in lines))

    def truncated(self):
        data = open(self.paths[2], "rb").read()
        with open(self.paths[2], "wb") as out:
            out.write(data[:len(data) // 2])
        manifest = os.path.join(self.folder, "manifest-files.json")
        lines = [json.loads(line) for line in open(manifest)]
        lines[2]["md5Checksum"] = base64.b64encode(hashlib.md5(data[:len(data) // 2]).digest()).decode()
        with open(manifest, "w") as out:
            out.write("".join(json.dumps(m) + "\n" for m in lines))

    def bad_line(self):
        text = gzip.decompress(open(self.paths[0], "rb").read()).decode().split("\n")
        text[499] = '{"Item":{"PK":{"S":"USER#x"},"SK":{"Q":"1"}}}'  # line 500
        body = gzip.compress("\n".join(text).encode())
        with open(self.paths[0], "wb") as out:
            out.write(body)
        manifest = os.path.join(self.folder, "manifest-files.json")
        lines = [json.loads(line) for line in open(manifest)]
        lines[0]["md5Checksum"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        with open(manifest, "w") as out:
            out.write("".join(json.dumps(m) + "\n" for m in lines))

    def name(self, i):
        return os.path.relpath(self.paths[i], self.folder).replace(".", r"\.")

    def test_bad_md5(self):
        self.damage_then_mend(self.bad_md5, rf"{self.name(1)}: MD5 .* does not match manifest-files\.json", False)

    def test_bad_md5_s3(self):
        self.damage_then_mend(self.bad_md5, rf"{self.name(1)}: MD5 .* does not match manifest-files\.json", True)

    def test_truncated_gzip(self):
        self.damage_then_mend(self.truncated, rf"{self.name(2)}:\d+: truncated gzip", False)

    def test_truncated_gzip_s3(self):
        self.damage_then_mend(self.truncated, rf"{self.name(2)}:\d+: truncated gzip", True)

    def test_line_that_is_not_dynamodb_json(self):
        self.damage_then_mend(self.bad_line, rf"{self.name(0)}:500: not a DynamoDB JSON item", False)

    def test_line_that_is_not_dynamodb_json_s3(self):
        self.damage_then_mend(self.bad_line, rf"{self.name(0)}:500: not a DynamoDB JSON item", True)

    def test_missing_export_is_refused_before_anything_is_written(self):
        p = Project(self, os.path.join(self.root, "no-such-export"))
        r = p.run("up")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("dynamorph:")]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertRegex(errors[0], r"_copy_export\.yaml:\d+: pipeline: source\.export: .*no-such-export")
        self.assertEqual(p.target(), [])  # the schema step ran; the copy wrote nothing


if __name__ == "__main__":
    unittest.main(verbosity=2)
