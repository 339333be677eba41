"""Faults of the network and of the server around a whole `dynamorph up`, with exact data checks:

- the lease's renewal dropped or held by the fault proxy: the run stops before the lease could
  expire, exits 1 with one line, and the proxy's request log shows no write to the data table
  after the lease's safety margin; a later `up` finishes exactly;
- DynamoDB Local killed (by pid) and started again mid-run, on its own port with its tables on
  disk: the run reconnects within reconnect_for and finishes exactly; with an outage longer
  than reconnect_for it exits 1 with its checkpoints, and `up` resumes exactly;
- credentials from a container endpoint (a loopback server here) that last 4 s and take 1 s to
  fetch: renewed ahead of expiry without stalling requests, every key used, none past its
  expiry, the data exact.

Figures are printed (last write before the lease's end, the outage survived, requests during
credential rotation)."""
import datetime
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, ENDPOINT, N, Project, dataset  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "support"))
import fault_proxy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "dynamodb-local.sh")
WRITES = {"BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"}

VISITS = """\
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
    """


def ddb(endpoint):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="dynamorphtest", aws_secret_access_key="dynamorphtest")


def scan(client, table):
    items, kw = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def seed(client, table, users):
    client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                              {"AttributeName": "SK", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                   {"AttributeName": "SK", "KeyType": "RANGE"}])
    client.get_waiter("table_exists").wait(TableName=table)
    items = dataset(users)
    for start in range(0, len(items), 25):
        req = {table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]}
        while req:
            req = client.batch_write_item(RequestItems=req).get("UnprocessedItems")
    return items


def visits(client, table):
    return {i["PK"]["S"]: int(i["visits"]["N"]) for i in scan(client, table)
            if i["SK"]["S"] == "PROFILE"}


def epoch(iso):
    d = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


class OwnDynamoDB:
    """A DynamoDB Local of this test alone (scripts/dynamodb-local.sh), on its own port, with
    its tables in a folder so that they survive kill(); start() again brings it back."""

    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="dynamorph_ddb_")
        self.env = dict(os.environ, DDB_DB_PATH=os.path.join(self.dir, "db"),
                        DDB_JAVA_OPTS="-Xmx512m")
        self.url = None
        self.start()
        self.env["DDB_PORT"] = self.url.rsplit(":", 1)[1]  # the same port after a restart
        test.addCleanup(self.stop)

    def start(self):
        r = subprocess.run([SCRIPT, "start", self.dir], env=self.env, capture_output=True,
                           text=True, timeout=180)
        if r.returncode != 0:
            raise RuntimeError("DynamoDB Local did not start: " + r.stderr)
        self.url = r.stdout.strip().splitlines()[-1]

    def kill(self):
        with open(os.path.join(self.dir, "pid")) as f:
            os.kill(int(f.read()), signal.SIGKILL)
        os.remove(os.path.join(self.dir, "pid"))

    def stop(self):
        subprocess.run([SCRIPT, "stop", self.dir], env=self.env, capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class FaultsTest(unittest.TestCase):
    maxDiff = None

    def assertExit(self, r, code):
        self.assertEqual(r.returncode, code, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")

    def wait_for_checkpoints(self, client, p, proc, timeout=120):
        """Until the run has committed a page (so it is mid-way), however slow the machine."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.assertIsNone(proc.poll(), "the run ended before the fault")
            try:
                for i in scan(client, p.state):
                    if i["sk"]["S"].startswith("checkpoint#") and int(i.get("pages", N(0))["N"]):
                        return
            except client.exceptions.ResourceNotFoundException:
                pass
            time.sleep(0.1)
        self.fail("no checkpoint within the time limit")

    # ---- the lease

    def lost_lease(self, fault):
        users = 1500
        p = Project(self)
        before = {i["PK"]["S"]: int(i["visits"]["N"]) for i in seed(ddb(ENDPOINT), p.table("app"), users)
                  if i["SK"]["S"] == "PROFILE"}
        p.write("8_visits.yaml", VISITS)
        proxy = fault_proxy.Spawned(ENDPOINT)
        self.addCleanup(proxy.stop)
        proc = p.start("--endpoint", proxy.url, "up", "--max-wcu", "150", "--lock-ttl", "3s")
        self.wait_for_checkpoints(ddb(ENDPOINT), p, proc)
        # Every renewal of the lock from now on is dropped, or held without an answer.
        proxy.control("POST", "rules", [{"op": "UpdateItem", "fault": fault,
                                         "body_contains": "SET expires_at = :e"}])
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 1, out + err)
        lines = [line for line in err.splitlines() if line.startswith("dynamorph:")]
        self.assertEqual(len(lines), 1, err)  # after the progress lines, one error line
        m = re.search(r"lost the lock in \S+ \(the lease could not be renewed\); stopped during "
                      r"\S+: nothing was written after its safety margin \((\S+), 1 s before the "
                      r"lease could expire\)", lines[0])
        self.assertIsNotNone(m, err)
        fence = epoch(m.group(1))
        lease_end = fence + 1.0
        log = proxy.control("GET", "log")
        renewals = [e for e in log if e["fault"] == fault]
        self.assertGreater(len(renewals), 0, "no renewal was held")
        writes = [e["t"] for e in log if e["op"] in WRITES and p.table("app") in e["tables"]]
        self.assertGreater(len(writes), 0)
        last = max(writes)
        # The client checks the fence right before each attempt; the proxy notes the arrival a
        # loopback hop later (0.2 s is ample even on a loaded machine), long before the lease's
        # end, a third of the TTL later.
        self.assertLess(last, fence + 0.2, f"a write reached the proxy {last - fence:.3f} s past the fence")
        self.assertLess(last, lease_end)
        print(f"{fault}: last write {lease_end - last:.3f} s before the lease could expire "
              f"({fence - last:.3f} s before the fence); {len(renewals)} renewals {fault}", flush=True)
        # The lock expires by itself; a later run finishes the version exactly.
        time.sleep(max(0.0, lease_end - time.time()) + 0.5)
        r = p.run("up")
        self.assertExit(r, 0)
        self.assertEqual(visits(ddb(ENDPOINT), p.table("app")), {k: v + 1 for k, v in before.items()})

    def test_renewal_dropped_stops_before_the_lease_could_expire(self):
        self.lost_lease("drop_before")

    def test_renewal_held_stops_before_the_lease_could_expire(self):
        self.lost_lease("hang")

    # ---- the server restarted

    def restart_project(self, server, users, reconnect_for):
        p = Project(self)
        with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
            f.write(f"reconnect_for: {reconnect_for}\n")
        client = ddb(server.url)
        before = {i["PK"]["S"]: int(i["visits"]["N"]) for i in seed(client, p.table("app"), users)
                  if i["SK"]["S"] == "PROFILE"}
        p.write("8_visits.yaml", VISITS)
        return p, client, before

    def test_server_restarted_mid_run_is_survived_exactly(self):
        server = OwnDynamoDB(self)
        p, client, before = self.restart_project(server, 1200, "60s")
        proc = p.start("--endpoint", server.url, "up", "--max-wcu", "150")
        self.wait_for_checkpoints(client, p, proc)
        killed = time.time()
        server.kill()
        time.sleep(2)
        server.start()
        outage = time.time() - killed
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(visits(client, p.table("app")), {k: v + 1 for k, v in before.items()})
        print(f"DynamoDB Local down {outage:.1f} s (kill -9 to answering again): survived",
              flush=True)

    def test_outage_longer_than_reconnect_for_exits_1_and_resumes_exactly(self):
        server = OwnDynamoDB(self)
        p, client, before = self.restart_project(server, 1200, "2s")
        # The endpoint stops the run after the 2 s budget; the lease (9 s, writes fenced 3 s
        # before its end) may be lost too while the run waits on the dead endpoint to save its
        # checkpoints, and then the line names both, the endpoint as the step's failure.
        proc = p.start("--endpoint", server.url, "up", "--max-wcu", "150", "--lock-ttl", "9s")
        self.wait_for_checkpoints(client, p, proc)
        server.kill()
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 1, out + err)
        self.assertIn("reconnect_for spent", err)
        print("outage past reconnect_for: " + err.strip().splitlines()[-1], flush=True)
        server.start()
        # The lock's release could not be sent: it expires by itself.
        lock = [i for i in scan(client, p.state) if i["sk"]["S"] == "lock"]
        if lock:
            time.sleep(max(0.0, int(lock[0]["expires_at"]["N"]) / 1000 - time.time()) + 0.5)
        r = p.run("--endpoint", server.url, "up")
        self.assertExit(r, 0)
        self.assertEqual(visits(client, p.table("app")), {k: v + 1 for k, v in before.items()})


class RotatingCredentials:
    """A container credentials endpoint on 127.0.0.1: each GET /creds hands out a new key
    (ROT1, ROT2 …) valid for `lifetime` seconds, after `delay` seconds. Notes each issue."""

    def __init__(self, test, lifetime, delay):
        self.issued = []  # (key, fetch started, answered, expires), epoch seconds
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                started = time.time()
                time.sleep(delay)
                with outer.lock:
                    key = f"ROT{len(outer.issued) + 1}"
                    expires = time.time() + lifetime
                    outer.issued.append((key, started, time.time(), expires))
                stamp = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
                body = json.dumps({"AccessKeyId": key, "SecretAccessKey": "secret-" + key,
                                   "Token": "token-" + key,
                                   "Expiration": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/creds"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        test.addCleanup(self.server.shutdown)


class CredentialsTest(unittest.TestCase):
    def test_short_lived_container_credentials_rotate_under_a_run(self):
        users = 1500
        p = Project(self)
        before = {i["PK"]["S"]: int(i["visits"]["N"]) for i in seed(ddb(ENDPOINT), p.table("app"), users)
                  if i["SK"]["S"] == "PROFILE"}
        p.write("8_visits.yaml", VISITS)
        proxy = fault_proxy.Spawned(ENDPOINT)  # to see which key signed each request
        self.addCleanup(proxy.stop)
        creds = RotatingCredentials(self, lifetime=4, delay=1.0)
        env = {k: v for k, v in os.environ.items()
               if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                            "AWS_PROFILE")}
        env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=creds.url, AWS_EC2_METADATA_DISABLED="true",
                   AWS_SHARED_CREDENTIALS_FILE=os.path.join(p.dir, "none"),
                   AWS_CONFIG_FILE=os.path.join(p.dir, "none"))
        r = subprocess.run([BIN, "--endpoint", proxy.url, "up", "--max-wcu", "150"], cwd=p.dir,
                           env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(visits(ddb(ENDPOINT), p.table("app")), {k: v + 1 for k, v in before.items()})

        log = proxy.control("GET", "log")
        issued = {key: (answered, expires) for key, _, answered, expires in creds.issued}
        used = [e["key"] for e in log]
        self.assertGreaterEqual(len(issued), 4, "the run should outlive a few keys")
        for e in log:  # every request signed by a key it had been handed, before its expiry
            self.assertIn(e["key"], issued)
            answered, expires = issued[e["key"]]
            self.assertLess(e["t"], expires, f"{e['key']} used after its expiry")
        # Every key was used, but the newest may have come after the last request.
        unused = set(issued) - set(used)
        self.assertLessEqual(unused, {creds.issued[-1][0]})
        # A renewal takes a second; requests never wait for it: the client never sits that
        # long with nothing at the server. (Idle time, not the gap between arrivals: a slow
        # answer from a DynamoDB Local the other tests share is not the client's stall.)
        times = [e["t"] for e in log]
        gap, answered_by = 0.0, log[0]["done"]
        for e in log[1:]:
            gap = max(gap, e["t"] - answered_by)
            answered_by = max(answered_by, e["done"])
        self.assertLess(gap, 0.9, "requests stalled while credentials were renewed")
        during = sum(1 for e in log for _, started, answered, _ in creds.issued[1:]
                     if started <= e["t"] <= answered)
        print(f"{len(issued)} keys over {times[-1] - times[0]:.1f} s, {len(log)} requests, "
              f"{during} of them while a renewal was in flight; longest idle {gap * 1000:.0f} ms",
              flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
