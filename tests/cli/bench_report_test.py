"""The `--report` page in a real headless Chromium (Debian's `chromium`), offline: every chart's
SVG has rendered paths of non-zero length and size, and the page made no network request but
its own file:// load. Chromium is driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages ended by NUL on fds 3 and 4), so no port is opened and
no extra package is needed. The screenshot is kept as a test artifact:
$DYNAMORPH_TEST_ARTIFACTS/bench_report.png."""
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import Project  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """Chromium with the DevTools protocol on a pipe."""

    def __init__(self, profile_dir):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():  # in the child: the protocol's fds 3 (commands in) and 4 (answers out)
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)  # neither is 3 or 4 any more
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={profile_dir}",
             # Belt and braces: should the page try the network, there is none to reach.
             "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "--no-default-browser-check",
             "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.buffer = b""
        self.events = []

    def _read_message(self, timeout):
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.from_chrome], [], [], timeout)
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read_message(timeout)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_event(self, method, timeout=30):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(max(0.1, deadline - time.time())))

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it may be gone already; the pid is ended below
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_chrome)
        os.close(self.from_chrome)


CHARTS = """(() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const paths = Array.from(svg.querySelectorAll('path'));
  const drawn = paths.filter(p => p.getTotalLength() > 0 && p.getBBox().width > 0).length;
  const box = svg.getBoundingClientRect();
  return {title: svg.querySelector('title').textContent, paths: paths.length, drawn,
          texts: svg.querySelectorAll('text').length, width: box.width, height: box.height};
}))()"""


class ReportInChromiumTest(unittest.TestCase):
    def test_report_renders_offline(self):
        self.assertIsNotNone(CHROMIUM, "chromium is not installed (scripts/setup.sh installs it)")
        p = Project(self)
        report = os.path.join(p.dir, "report.html")
        r = p.run("bench", "write", "--items", "3000", "--in-flight", "1,4,16", "--report", report)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("report: " + report, r.stdout)

        profile = tempfile.mkdtemp(prefix="dynamorph_chromium_")
        self.addCleanup(shutil.rmtree, profile, True)
        chrome = DevTools(profile)
        self.addCleanup(chrome.close)
        target = chrome.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        chrome.call("Network.enable", session=session)
        chrome.call("Page.enable", session=session)
        chrome.call("Emulation.setDeviceMetricsOverride",
                    {"width": 800, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=session)
        url = "file://" + report
        chrome.call("Page.navigate", {"url": url}, session=session)
        chrome.wait_event("Page.loadEventFired")
        requests = [e["params"]["request"]["url"] for e in chrome.events
                    if e.get("method") == "Network.requestWillBeSent"]
        self.assertEqual(requests, [url])  # the page itself, and nothing else

        charts = chrome.call("Runtime.evaluate", {"expression": CHARTS, "returnByValue": True},
                             session=session)["result"]["value"]
        titles = [c["title"] for c in charts]
        self.assertEqual(len(titles), 5, titles)
        self.assertEqual(titles[0], "Items per second over time")
        self.assertEqual(titles[1], "Throughput by in_flight (the best highlighted)")
        self.assertTrue(titles[2].startswith("Consumed capacity over time (in_flight "), titles)
        self.assertTrue(titles[3].startswith("Latency of each request by operation (in_flight "), titles)
        self.assertEqual(titles[4], "Throttled requests per second")
        for c in charts:
            self.assertGreater(c["drawn"], 0, c)
            self.assertEqual(c["drawn"], c["paths"], c)  # every path has length and width
            self.assertGreater(c["texts"], 5, c)  # title, axis labels, ticks
            self.assertEqual((c["width"], c["height"]), (722, 302), c)  # 720 x 300 and a 1px border
        # Three runs: three throughput lines, three sweep bars, five latency bars.
        by_title = {c["title"]: c for c in charts}
        self.assertEqual(by_title[titles[0]]["paths"], 1 + 3)  # the axes, a line per run
        self.assertEqual(by_title[titles[1]]["paths"], 1 + 3)  # the axes, a bar per run
        self.assertEqual(by_title[titles[3]]["paths"], 1 + 5)  # p50 … max of BatchWriteItem

        shot = chrome.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                           session=session)
        png = base64.b64decode(shot["data"])
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        artifacts = os.environ.get("DYNAMORPH_TEST_ARTIFACTS", os.path.join(p.dir, "artifacts"))
        os.makedirs(artifacts, exist_ok=True)
        with open(os.path.join(artifacts, "bench_report.png"), "wb") as f:
            f.write(png)
        shutil.copy(report, os.path.join(artifacts, "bench_report.html"))


if __name__ == "__main__":
    unittest.main()
