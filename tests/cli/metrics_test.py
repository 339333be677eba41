"""`--metrics ADDR` against DynamoDB Local: /metrics scraped while a real `up` runs (parsed with
prometheus_client's parser, not a regex), its final counters equal to the run's own summary
(DYNAMORPH_METRICS_LINGER keeps the final values served until one scrape has read them), a
resumed step counting only the resuming process's work, and the address refused (exit 2,
nothing written) when it is taken or malformed."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, DDB, N, S, Project, make_table, put_all, scan, tables_with  # noqa: E402
import stream_test  # noqa: E402  (a module, so that its tests are not run here too)

USERS = 3000

STEP_COUNTERS = {"dynamorph_items_scanned": "scanned", "dynamorph_items_matched": "matched",
                 "dynamorph_items_written": "written", "dynamorph_items_skipped": "skipped",
                 "dynamorph_items_failed": "failed",
                 "dynamorph_items_dead_lettered": "dead_letters", "dynamorph_conflicts": "conflicts",
                 "dynamorph_retries": "retries", "dynamorph_consumed_rcu": "consumed_rcu",
                 "dynamorph_consumed_wcu": "consumed_wcu"}
STEP_GAUGES = ["dynamorph_segments_done", "dynamorph_segments_total", "dynamorph_leases_held"]

MIGRATION = """\
    version: 7
    name: visits
    up:
      - pipeline:
          values: { ":profile": PROFILE, ":one": 1 }
          source: { table: app, segments: 4, page_size: 50 }
          where: "SK = :profile"
          transform:
            - update: "SET visits = visits + :one"
          write: { mode: update, version_attribute: _v }
    """


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port):
    """The families of one scrape by name, or None when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
            text = r.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, sample=None, **labels):
    """The value of the one sample of `name` (a sample name, for counters `_total`) whose labels
    include `labels`."""
    found = [s.value for s in families[name].samples
             if s.name == (sample or name) and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, families[name].samples)
    return found[0]


class Run:
    """dynamorph in the background, its stdout read line by line as JSON."""

    def __init__(self, p, args, env=None):
        self.proc = subprocess.Popen([BIN, *args], cwd=p.dir, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.events = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, event, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            found = [e for e in self.events if e.get("event") == event]
            if found:
                return found[-1]
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {event} event; got {self.events}")

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc, err


class MetricsTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.p = Project(self)
        make_table(self.p.table("app"))
        put_all(self.p.table("app"),
                [{"PK": S(f"USER#{u}"), "SK": S("PROFILE"), "visits": N(u % 5)} for u in range(USERS)]
                + [{"PK": S(f"USER#{u}"), "SK": S("PHOTO#1")} for u in range(0, USERS, 3)])
        self.p.write("7_visits.yaml", MIGRATION)

    def assert_visits_once(self):
        got = {i["PK"]["S"]: (int(i["visits"]["N"]), i["_v"]["N"])
               for i in scan(self.p.table("app")) if i["SK"]["S"] == "PROFILE"}
        self.assertEqual(got, {f"USER#{u}": (u % 5 + 1, "7") for u in range(USERS)})

    def assert_families(self, fams, pid):
        for name in STEP_COUNTERS:
            self.assertEqual(fams[name].type, "counter", name)
            self.assertTrue(fams[name].documentation, name)
        self.assertEqual(fams["dynamorph_throttles"].type, "counter")
        for name in STEP_GAUGES + ["dynamorph_requests_in_flight", "dynamorph_stream_lag_seconds"]:
            self.assertEqual(fams[name].type, "gauge", name)
        worker = fams["dynamorph_requests_in_flight"].samples[0].labels["worker"]
        host, wpid, nonce = worker.rsplit(":", 2)
        self.assertEqual((host, int(wpid), len(nonce)), (socket.gethostname(), pid, 8))
        for name in list(STEP_COUNTERS) + ["dynamorph_throttles"] + STEP_GAUGES:
            for s in fams[name].samples:
                self.assertEqual(s.labels, {"version": "7", "step": "1", "worker": worker}, name)
                if fams[name].type == "counter":
                    self.assertEqual(s.name, name + "_total")
        self.assertEqual([s.labels for s in fams["dynamorph_requests_in_flight"].samples],
                         [{"worker": worker}])
        self.assertEqual(fams["dynamorph_stream_lag_seconds"].samples, [])  # no stream here
        return worker

    def assert_equal_to_summary(self, fams, counters, minus=None):
        minus = minus or {}
        for name, field in STEP_COUNTERS.items():
            want = counters[field] - minus.get(field, 0)
            got = value(fams, name, name + "_total", version="7", step="1")
            if field.startswith("consumed_"):
                self.assertAlmostEqual(got, want, delta=0.1, msg=name)  # the summary has 1 decimal
            else:
                self.assertEqual(got, want, name)

    def test_scraped_during_up_parses_and_the_final_scrape_equals_the_run(self):
        port = free_port()
        run = Run(self.p, ["--json", "--metrics", f"127.0.0.1:{port}", "up", "--max-wcu", "600"],
                  env={"DYNAMORPH_METRICS_LINGER": "60s"})
        during, fams = [], None
        while not any(e.get("event") == "summary" for e in run.events):
            fams = scrape(port)
            if fams and "dynamorph_items_written" in fams and fams["dynamorph_items_written"].samples:
                during.append(fams)
            time.sleep(0.3)
        self.assertGreaterEqual(len(during), 3, "the run lasts several seconds at 600 WCU/s")
        worker = self.assert_families(during[0], run.proc.pid)
        mid = during[len(during) // 2]
        written_mid = value(mid, "dynamorph_items_written", "dynamorph_items_written_total")
        self.assertLess(written_mid, USERS)  # scraped while writing
        self.assertEqual(value(mid, "dynamorph_segments_total"), 4)
        self.assertLess(value(mid, "dynamorph_segments_done"), 4)
        self.assertEqual(value(mid, "dynamorph_leases_held"), 0)
        # Counters only go up from scrape to scrape.
        for name in STEP_COUNTERS:
            series = [value(f, name, name + "_total") for f in during]
            self.assertEqual(series, sorted(series), name)

        summary = run.wait_for("summary")
        done = run.wait_for("version_done")
        t0 = time.time()
        final = scrape(port)  # served because the process lingers for it
        self.assertIsNotNone(final, "DYNAMORPH_METRICS_LINGER keeps serving the final values")
        rc, err = run.finish()
        self.assertEqual(rc, 0, err)
        self.assertLess(time.time() - t0, 10, "one scrape after the end is enough to let it exit")
        self.assertEqual(self.assert_families(final, run.proc.pid), worker)
        self.assertEqual(summary["counters"]["written"], USERS)
        self.assertEqual(summary["counters"], done["counters"])
        self.assert_equal_to_summary(final, summary["counters"])
        self.assertEqual(value(final, "dynamorph_segments_done"), 4)
        self.assertEqual(value(final, "dynamorph_requests_in_flight"), 0)
        self.assertIsNone(scrape(port), "gone once the process has exited")
        self.assert_visits_once()

    def test_a_resumed_step_counts_only_this_process_work(self):
        port = free_port()
        first = Run(self.p, ["--json", "up", "--max-wcu", "300"])
        end = time.time() + 60
        while time.time() < end:
            prog = [e for e in first.events if e.get("event") == "progress"]
            if prog and prog[-1]["counters"]["written"] >= 500:
                break
            time.sleep(0.1)
        first.proc.send_signal(signal.SIGTERM)
        rc, err = first.finish()
        self.assertEqual(rc, 130, err)
        before = first.wait_for("summary")["counters"]
        self.assertGreater(before["written"], 0)
        self.assertLess(before["written"], USERS)

        second = Run(self.p, ["--json", "--metrics", f"127.0.0.1:{port}", "up"],
                     env={"DYNAMORPH_METRICS_LINGER": "60s"})
        summary = second.wait_for("summary")
        second.wait_for("version_done")
        final = scrape(port)
        rc, err = second.finish()
        self.assertEqual(rc, 0, err)
        c = summary["counters"]  # the step's, both runs: what the first wrote but did not
        # checkpoint is read again and skipped (version_attribute)
        self.assertEqual((c["matched"], c["written"] + c["skipped"]), (USERS, USERS))
        self.assert_equal_to_summary(final, c, minus=before)
        self.assertEqual(value(final, "dynamorph_items_matched", "dynamorph_items_matched_total"),
                         USERS - before["matched"])
        self.assert_visits_once()

    def refused(self, address, reason):
        before = scan(self.p.table("app"))
        r = self.p.run("--metrics", address, "up")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, f"dynamorph: --metrics ADDR: {address}: {reason}\n")
        self.assertEqual(r.stdout, "")
        self.assertEqual(tables_with(self.p.ns), [self.p.table("app")])  # no state table
        self.assertEqual(scan(self.p.table("app")), before)

    def test_a_port_in_use_is_exit_2_and_nothing_is_written(self):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        self.addCleanup(holder.close)
        self.refused(f"127.0.0.1:{holder.getsockname()[1]}", "Address already in use")

    def test_a_bad_address_is_exit_2_and_nothing_is_written(self):
        self.refused("nonsense", "expected HOST:PORT, e.g. 127.0.0.1:9464 (0.0.0.0:9464 for "
                                 "every interface)")
        self.refused("127.0.0.1:99999", "port 99999 is not from 1 to 65535")

    def test_a_bad_linger_is_exit_2(self):
        r = subprocess.run([BIN, "--metrics", f"127.0.0.1:{free_port()}", "up"], cwd=self.p.dir,
                           capture_output=True, text=True,
                           env={**os.environ, "DYNAMORPH_METRICS_LINGER": "soon"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "dynamorph: DYNAMORPH_METRICS_LINGER: expected a duration like "
                                   "30s or 2m, got 'soon'\n")
        self.assertEqual(tables_with(self.p.ns), [self.p.table("app")])


class StreamLagTest(unittest.TestCase):
    def test_follow_serves_the_stream_lag_and_the_changes_it_replays(self):
        p = Project(self)
        stream_test.make_source(p.table("app"))
        p.write("1_tables.yaml", stream_test.SETUP.format(view="new_and_old_images"))
        p.write("2_copy.yaml", stream_test.PLAIN.format(extra=""))
        r = p.run("up")
        self.assertEqual(r.returncode, 0, r.stderr)
        port = free_port()
        run = Run(p, ["--json", "--metrics", f"127.0.0.1:{port}", "follow"])
        DDB.update_item(TableName=p.table("app"), Key={"PK": S("USER#1"), "SK": S("PROFILE")},
                        UpdateExpression="SET username = :u", ExpressionAttributeValues={":u": S("ReNamed")})
        end, fams, lag, written = time.time() + 60, None, [], 0
        while time.time() < end and (not lag or written < 1):
            fams = scrape(port)
            if fams and fams["dynamorph_stream_lag_seconds"].samples:
                lag.append(value(fams, "dynamorph_stream_lag_seconds", version="2", step="1"))
                written = value(fams, "dynamorph_items_written", "dynamorph_items_written_total",
                                version="2", step="1")
            time.sleep(0.2)
        run.proc.send_signal(signal.SIGTERM)
        rc, err = run.finish()
        self.assertEqual(rc, 130, err)
        self.assertTrue(lag, "a lag gauge while following")
        self.assertTrue(all(0 <= x < 60 for x in lag), lag)
        self.assertEqual(written, 1, "the one change made since `up`, replayed by this process")
        self.assertEqual(value(fams, "dynamorph_segments_total", version="2", step="1"),
                         len(stream_test.follow_items(p)))  # the replay's lanes
        got = DDB.get_item(TableName=p.table("copy"), ConsistentRead=True,
                           Key={"PK": S("USER#1"), "SK": S("PROFILE")})["Item"]["username"]
        self.assertEqual(got, S("renamed"))


class GuideTest(unittest.TestCase):
    def test_the_guides_scrape_config_loads_and_names_a_metrics_address(self):
        guide = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "guide.md")).read()
        blocks = [b.split("\n```\n", 1)[0] for b in guide.split("```yaml prometheus\n")[1:]]
        self.assertEqual(len(blocks), 1)
        config = yaml.safe_load(blocks[0])
        job = config["scrape_configs"][0]
        self.assertEqual(job["job_name"], "dynamorph")
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
        self.assertEqual(job["static_configs"][0]["targets"], ["127.0.0.1:9464"])


if __name__ == "__main__":
    unittest.main()
