"""No secret leaves dynamorph: every command at -v (init, generate, status, up --dry-run, up,
verify, down through the journal, mark, unlock, every bench with --report, --metrics) runs with a
known secret access key and session token, and no byte of stdout, stderr, the files written in
the project folder (journal, reports), a /metrics scrape or the state table's items holds the
secret, the token (raw or percent-encoded), "Signature=" or "Authorization". Error paths too: an
endpoint where nothing listens, and a server that echoes the signed request back in its error
message (as AWS's InvalidSignatureException does with the canonical request), at -v."""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, DDB, ENDPOINT, put_all, scan, tables_with  # noqa: E402

SECRET = "dynamorphSECRETq7Wz3Xk9Lp2Vb8Nc4"
TOKEN = "dynamorphTOKEN/Hx5+Jm2Qr8Ts6Uv1==Yz"
FORBIDDEN = [SECRET, TOKEN, urllib.parse.quote(TOKEN, safe=""), "Signature=", "Authorization"]
ENV = {**os.environ, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class EchoingServer:
    """Answers every request with HTTP 400 and an InvalidSignatureException whose message holds
    the request's headers, the way AWS's message holds the canonical request."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
                seen.append(headers)
                body = json.dumps({
                    "__type": "com.amazon.coral.service#InvalidSignatureException",
                    "message": "The request signature we calculated does not match the signature "
                               "you provided. The Canonical String for this request should have "
                               f"been\n'POST\n/\n\n{headers}'"}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class SecretsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dynamorph_secrets_")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ns = f"s{uuid.uuid4().hex[:8]}-"
        self.addCleanup(self.drop_tables)
        self.outputs = []  # (what, text) of everything printed

    def drop_tables(self):
        for t in tables_with(self.ns):
            DDB.delete_table(TableName=t)

    def run_cli(self, *args, code=0, env=None, timeout=300):
        r = subprocess.run([BIN, *args], cwd=self.dir, capture_output=True, text=True,
                           timeout=timeout, env=env or ENV)
        self.outputs.append((f"dynamorph {' '.join(args)}: stdout", r.stdout))
        self.outputs.append((f"dynamorph {' '.join(args)}: stderr", r.stderr))
        self.assertEqual(r.returncode, code, f"{args}: {r.stdout}\n{r.stderr}")
        return r

    def assert_clean(self, what, text):
        for bad in FORBIDDEN:
            self.assertNotIn(bad, text, f"{what} holds {bad!r}")

    def project_files(self):
        """Every file under the project folder with its bytes."""
        for dirpath, _, names in os.walk(self.dir):
            for name in names:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    yield os.path.relpath(path, self.dir), f.read().decode("latin-1")

    def write_config(self):
        with open(os.path.join(self.dir, "dynamorph.yaml"), "w") as f:
            f.write(f"endpoint: {ENDPOINT}\nregion: us-east-1\nnamespace: {self.ns}\n"
                    "journal: ./journal\ndefaults: { segments: 2 }\n")

    def scrape_during(self, port, args):
        """Runs dynamorph with --metrics and returns the text of one scrape of its final values."""
        proc = subprocess.Popen([BIN, "-v", "--metrics", f"127.0.0.1:{port}", *args], cwd=self.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**ENV, "DYNAMORPH_METRICS_LINGER": "60s"})
        # It serves the final values until one scrape has read them: scrape until it exits.
        text, deadline = None, time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
        self.outputs += [("--metrics stdout", out), ("--metrics stderr", err)]
        self.assertEqual(proc.returncode, 0, err)
        self.assertIsNotNone(text, "nothing scraped")
        return text

    def test_every_command_at_verbose_keeps_the_secrets(self):
        self.run_cli("-v", "init")
        self.write_config()
        r = self.run_cli("-v", "generate", "create_app", "--create-table", "app",
                         "--partition-key", "PK:string", "--sort-key", "SK:string")
        created = os.path.basename(r.stdout.split()[-1])
        v1 = int(created.split("_")[0])
        self.run_cli("-v", "status")
        self.run_cli("-v", "up", "--dry-run")
        self.run_cli("-v", "up", "--to", str(v1))
        app = self.ns + "app"
        put_all(app, [{"PK": {"S": f"U#{i}"}, "SK": {"S": "PROFILE"}, "n": {"N": str(i)}}
                      for i in range(60)])
        v2 = v1 + 1
        with open(os.path.join(self.dir, "migrations", f"{v2}_mark_active.yaml"), "w") as f:
            f.write(textwrap.dedent(f"""\
                version: {v2}
                name: mark_active
                up:
                  - pipeline:
                      values: {{ ":a": active }}
                      source: {{ table: app }}
                      transform:
                        - update: "SET st = :a"
                      write: {{ mode: update }}
                """))
        self.run_cli("-v", "--json", "up", "--dry-run")
        self.run_cli("-v", "bench", "migrate", "--report", "migrate.html")
        # --table is a logical name: the namespace is added.
        self.run_cli("-v", "bench", "seed", "--items", "300", "--table", "seeded", "--keep",
                     "--report", "seed.html")
        self.run_cli("-v", "--json", "bench", "scan", "--table", "seeded", "--segments", "1,2",
                     "--report", "scan.html")
        self.run_cli("-v", "bench", "write", "--items", "300", "--in-flight", "4", "--report",
                     "write.html")
        self.run_cli("-v", "up")
        self.assertEqual({i["st"]["S"] for i in scan(app)}, {"active"})
        self.run_cli("-v", "--json", "status")
        self.run_cli("-v", "verify")
        metrics = self.scrape_during(free_port(), ["status"])
        self.outputs.append(("/metrics", metrics))
        self.run_cli("-v", "down")  # through the journal: v2 has no down steps
        self.assertEqual({"st" in i for i in scan(app)}, {False})
        self.run_cli("-v", "mark", str(v2), "applied")
        self.run_cli("-v", "mark", str(v2), "pending")
        self.run_cli("-v", "unlock")
        self.run_cli("-v", "--json", "status")
        for name in ["migrate.html", "seed.html", "scan.html", "write.html"]:
            self.assertTrue(os.path.exists(os.path.join(self.dir, name)), name)
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "journal")))

        for what, text in self.outputs:
            self.assert_clean(what, text)
        files = list(self.project_files())
        self.assertGreater(len(files), 6)
        for path, text in files:
            self.assert_clean(path, text)
        state = scan(self.ns + "dynamorph_state")
        self.assertTrue(state)
        self.assert_clean("the state table", repr(state))

    def test_error_paths_at_verbose_keep_the_secrets(self):
        self.write_config()
        os.makedirs(os.path.join(self.dir, "migrations"))
        # Nothing listens there: exit 2 at start, naming the endpoint.
        closed = f"http://127.0.0.1:{free_port()}"
        r = self.run_cli("-v", "--endpoint", closed, "status", code=2)
        self.assertIn(closed, r.stderr)
        # A server that echoes the signed request in its error: the message is printed, redacted.
        echo = EchoingServer()
        self.addCleanup(echo.stop)
        for args in (["-v", "status"], ["-v", "up"], ["-v", "--json", "up", "--dry-run"]):
            r = self.run_cli("--endpoint", echo.url, *args, code=2)
            self.assertIn("InvalidSignatureException: The request signature we calculated", r.stderr)
            self.assertIn("<redacted>", r.stderr)
        # What the server saw, and would have leaked without redaction.
        self.assertTrue(any(TOKEN in h and "Signature=" in h for h in echo.seen), echo.seen)
        for what, text in self.outputs:
            self.assert_clean(what, text)
        for path, text in self.project_files():
            self.assert_clean(path, text)


if __name__ == "__main__":
    unittest.main()
