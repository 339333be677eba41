"""TLS and plain http through the command line.

- A loopback TLS-terminating proxy (Python's ssl module) in front of DynamoDB Local, with a
  self-signed certificate for 127.0.0.1 made by openssl at test time: without its CA every
  command fails at once (exit 2, one line naming the endpoint and TLS verification); with
  AWS_CA_BUNDLE or `ca_bundle` in the profile of ~/.aws/config a migration applies exactly; the
  same certificate reached as `localhost` fails the host name check; a CA bundle that cannot be
  read is exit 2 naming where it came from.
- Plain http to a host that is not loopback is refused before any request (exit 2, one line
  naming the endpoint and the fix) unless `allow_insecure_http: true` in dynamorph.yaml;
  loopback (127.0.0.0/8, localhost) stays allowed.
Data are checked with boto3 against DynamoDB Local directly."""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, PORT, Project, S, make_table, put_all, scan, tables_with  # noqa: E402

# The environment's own trust settings must not decide the outcome.
BASE_ENV = {k: v for k, v in os.environ.items()
            if k not in ("AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
                         "AWS_CONFIG_FILE", "AWS_PROFILE")}


def make_certificate(folder):
    """A self-signed certificate for 127.0.0.1 (and no other name) and its key."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=dynamorph test",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True)
    return cert, key


class TlsProxy:
    """Accepts TLS on 127.0.0.1 and relays the plain bytes to DynamoDB Local."""

    def __init__(self, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0  # completed TLS handshakes
        self.stopping = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopping:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(raw,), daemon=True).start()

    def serve(self, raw):
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client refused our certificate
            return
        self.handshakes += 1
        upstream = socket.create_connection(("127.0.0.1", int(PORT)))

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join(timeout=30)
        client.close()
        upstream.close()

    def stop(self):
        self.stopping = True
        self.listener.close()


MIGRATION = """\
    version: 1
    name: mark
    up:
      - pipeline:
          values: {{ ":m": "{mark}" }}
          source: {{ table: app }}
          transform:
            - update: "SET marked = :m"
          write: {{ mode: batch }}
    """


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="dynamorph_tls_")
        cls.cert, cls.key = make_certificate(cls.folder)
        cls.proxy = TlsProxy(cls.cert, cls.key)
        cls.endpoint = f"https://127.0.0.1:{cls.proxy.port}"

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        shutil.rmtree(cls.folder, ignore_errors=True)

    def setUp(self):
        self.p = Project(self)
        self.app = self.p.table("app")
        make_table(self.app)
        self.items = [{"PK": S(f"U#{i}"), "SK": S("PROFILE")} for i in range(40)]
        put_all(self.app, self.items)
        self.p.write("1_mark.yaml", MIGRATION.format(mark="tls"))

    def run_cli(self, *args, env=None, endpoint=None):
        return subprocess.run([BIN, "--endpoint", endpoint or self.endpoint, *args], cwd=self.p.dir,
                              capture_output=True, text=True, timeout=120,
                              env={**BASE_ENV, **(env or {})})

    def assert_applied(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("applied 1 mark", r.stdout)
        got = sorted((i["PK"]["S"], i.get("marked", {}).get("S")) for i in scan(self.app))
        self.assertEqual(got, sorted((i["PK"]["S"], "tls") for i in self.items))

    def assert_untouched(self):
        self.assertEqual([i for i in scan(self.app) if "marked" in i], [])
        self.assertEqual(tables_with(self.p.state), [], "not even the state table was made")

    def test_without_the_ca_every_command_fails_at_once_naming_tls(self):
        for args in (["status"], ["up"], ["up", "--dry-run"]):
            with self.subTest(args=args):
                before = self.proxy.handshakes
                t0 = time.time()
                r = self.run_cli(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, "")
                lines = r.stderr.splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(f"at {self.endpoint}:", lines[0])
                self.assertIn("TLS verification of the server's certificate failed", lines[0])
                self.assertIn("trust its CA with AWS_CA_BUNDLE or ca_bundle in the AWS profile", lines[0])
                self.assertLess(time.time() - t0, 10, "a certificate that fails is not retried")
                self.assertEqual(self.proxy.handshakes, before, "no request got through")
        self.assert_untouched()

    def test_aws_ca_bundle_trusts_the_certificate(self):
        r = self.run_cli("up", env={"AWS_CA_BUNDLE": self.cert})
        self.assert_applied(r)
        self.assertGreater(self.proxy.handshakes, 0)
        r = self.run_cli("status", env={"AWS_CA_BUNDLE": self.cert})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\n1\s+mark\s+applied")

    def test_profile_ca_bundle_trusts_the_certificate(self):
        config = os.path.join(self.p.dir, "aws_config")
        with open(config, "w") as f:
            f.write(textwrap.dedent(f"""\
                [default]
                region = us-east-1

                [profile tls]
                ca_bundle = {self.cert}
                """))
        env = {"AWS_CONFIG_FILE": config}
        r = self.run_cli("status", env=env)  # the default profile has no ca_bundle
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("TLS verification", r.stderr)
        r = self.run_cli("--profile", "tls", "up", env=env)
        self.assert_applied(r)
        r = self.run_cli("up", env={**env, "AWS_PROFILE": "tls"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing to apply", r.stdout)

    def test_the_host_name_is_checked_too(self):
        # The certificate names 127.0.0.1 only: trusted, but not for "localhost".
        r = self.run_cli("status", env={"AWS_CA_BUNDLE": self.cert},
                         endpoint=f"https://localhost:{self.proxy.port}")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"at https://localhost:{self.proxy.port}:", r.stderr)
        self.assertIn("TLS verification of the server's certificate failed", r.stderr)
        self.assert_untouched()

    def test_a_ca_bundle_that_cannot_be_read_is_named(self):
        missing = os.path.join(self.folder, "no-such.pem")
        r = self.run_cli("status", env={"AWS_CA_BUNDLE": missing})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, f"dynamorph: ca_bundle '{missing}' from AWS_CA_BUNDLE: cannot read "
                                   "it (No such file or directory)\n")
        config = os.path.join(self.p.dir, "aws_config")
        with open(config, "w") as f:
            f.write(f"[default]\nca_bundle = {missing}\n")
        r = self.run_cli("status", env={"AWS_CONFIG_FILE": config})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, f"dynamorph: ca_bundle '{missing}' from {config}:2: cannot read "
                                   "it (No such file or directory)\n")


class PlainHttpTest(unittest.TestCase):
    def setUp(self):
        self.p = Project(self)
        self.app = self.p.table("app")
        make_table(self.app)
        put_all(self.app, [{"PK": S(f"U#{i}"), "SK": S("PROFILE")} for i in range(10)])
        self.p.write("1_mark.yaml", MIGRATION.format(mark="http"))

    def run_cli(self, *args):
        return subprocess.run([BIN, *args], cwd=self.p.dir, capture_output=True, text=True,
                              timeout=120, env=BASE_ENV)

    def test_plain_http_to_a_host_that_is_not_loopback_is_refused(self):
        for endpoint in ("http://192.0.2.1:9", "http://dynamodb.internal.example:8000",
                         "http://[2001:db8::1]:8000", "http://0.0.0.0:" + PORT):
            for args in (["status"], ["up"], ["up", "--dry-run"], ["bench", "write", "--yes"]):
                with self.subTest(endpoint=endpoint, args=args):
                    t0 = time.time()
                    r = self.run_cli("--endpoint", endpoint, *args)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertEqual(r.stdout, "")
                    self.assertEqual(
                        r.stderr,
                        f"dynamorph: the DynamoDB endpoint {endpoint} is plain http to a host that "
                        "is not loopback: signed requests and session tokens would cross the "
                        "network unencrypted; use https://, or set allow_insecure_http: true in "
                        "dynamorph.yaml\n")
                    self.assertLess(time.time() - t0, 5, "refused before any request")
        self.assertEqual([i for i in scan(self.app) if "marked" in i], [])

    def test_allow_insecure_http_lets_it_through(self):
        # 0.0.0.0 is not a loopback address, yet Linux delivers a connection to it to the local
        # host, where DynamoDB Local listens on 127.0.0.1: a real run over non-loopback http.
        with open(os.path.join(self.p.dir, "dynamorph.yaml"), "a") as f:
            f.write("allow_insecure_http: true\n")
        r = self.run_cli("--endpoint", f"http://0.0.0.0:{PORT}", "up")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(i["marked"]["S"] for i in scan(self.app)), ["http"] * 10)

    def test_loopback_stays_allowed(self):
        for host in ("127.0.0.1", "localhost"):
            with self.subTest(host=host):
                r = self.run_cli("--endpoint", f"http://{host}:{PORT}", "status")
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_wrong_type_is_refused_with_its_line(self):
        with open(os.path.join(self.p.dir, "dynamorph.yaml"), "a") as f:
            f.write("allow_insecure_http: sometimes\n")
        r = self.run_cli("status")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "dynamorph: dynamorph.yaml:6: allow_insecure_http: expected true or false\n")


if __name__ == "__main__":
    unittest.main()
