"""The deployment files: configs/k8s/ (an Indexed Job of `dynamorph up --worker` pods, its
ConfigMap, ServiceAccount and the Secret alternative) and the Dockerfile with its .dockerignore.

No cluster and no Docker here, so:
- every manifest is parsed with PyYAML and the fields that matter are checked (Indexed Job,
  parallelism = completions, per-index retries, the podFailurePolicy of the exit codes,
  restartPolicy Never, the SIGTERM budget, --metrics against the scrape annotation, the
  ConfigMap mounted where --config and --migrations point, every referenced object defined);
- the ConfigMap's dynamorph.yaml and migration files are written out the way the kubelet mounts
  them (..data symlinks) and the Job's own arguments are run on them with the real binary
  against DynamoDB Local: the files load, every environment resolves, and the migrations apply
  with the data read back;
- the Dockerfile is parsed and validated by dockerfile-utils (the Dockerfile language server's
  validator, scripts/dockerfile-lint.sh), and this file checks what a build would trip over:
  COPY sources missing from the repository or left out by .dockerignore, stages referenced but
  not defined, the runtime stage's packages against the libraries the built binary links.
  Broken copies of the Dockerfile show that each check fails when it should."""
import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest
import uuid

import boto3
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "configs", "k8s")
BIN = os.environ["DYNAMORPH_BIN"]
with open(os.path.join(os.environ["DYNAMORPH_TEST_DDB_DIR"], "port")) as _f:
    PORT = _f.read().strip()
ENDPOINT = f"http://127.0.0.1:{PORT}"
DDB = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name="us-east-1",
                   aws_access_key_id="dynamorphtest", aws_secret_access_key="dynamorphtest")
MIGRATION_NAME = re.compile(r"^\d+_[^/]+\.ya?ml$")


def load_manifests():
    """{kind: [object, ...]} of every document of every .yaml under configs/k8s."""
    by_kind = {}
    for name in sorted(os.listdir(K8S)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(K8S, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                assert "apiVersion" in doc and "kind" in doc, f"{name}: a document without apiVersion/kind"
                doc["__file__"] = name
                by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def one(by_kind, kind, name=None):
    objs = [o for o in by_kind.get(kind, []) if name is None or o["metadata"]["name"] == name]
    assert len(objs) == 1, f"expected one {kind} {name or ''} in configs/k8s, found {len(objs)}"
    return objs[0]


def container(job):
    cs = job["spec"]["template"]["spec"]["containers"]
    assert len(cs) == 1, "the Job runs one container per pod"
    return cs[0]


def flag_value(args, flag):
    assert args.count(flag) == 1, f"{flag} given {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


def stop_budget_s():
    """2 s plus one request's worst latency: the transport's request timeout."""
    with open(os.path.join(ROOT, "dynamo", "http_transport.h")) as f:
        m = re.search(r"request_timeout\{(\d+)\}", f.read())
    assert m, "dynamo/http_transport.h: request_timeout not found"
    return 2 + int(m.group(1)) / 1000


def mounted_file(job, configmap, path):
    """The ConfigMap key the kubelet puts at `path` in the container, or None."""
    spec = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for m in container(job).get("volumeMounts", []):
        base = m["mountPath"].rstrip("/") + "/"
        if not path.startswith(base):
            continue
        v = volumes[m["name"]]
        if "configMap" not in v or v["configMap"]["name"] != configmap["metadata"]["name"]:
            continue
        rel = path[len(base):]
        items = v["configMap"].get("items")
        if items is None:
            return rel if rel in configmap["data"] else None
        for it in items:
            if it["path"] == rel:
                return it["key"]
    return None


def materialize(job, configmap, root):
    """Writes the ConfigMap volume under `root` as the kubelet does: the files in a timestamped
    folder, ..data pointing at it, and one symlink per top-level entry. Returns {mountPath:
    local folder}."""
    spec = job["spec"]["template"]["spec"]
    out = {}
    for m in container(job).get("volumeMounts", []):
        v = next(v for v in spec["volumes"] if v["name"] == m["name"])
        if "configMap" not in v:
            continue
        local = os.path.join(root, m["mountPath"].strip("/"))
        stamp = os.path.join(local, "..2026_12_01_09_00_00.000000001")
        items = v["configMap"].get("items") or [{"key": k, "path": k} for k in configmap["data"]]
        tops = set()
        for it in items:
            dest = os.path.join(stamp, it["path"])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w") as f:
                f.write(configmap["data"][it["key"]])
            tops.add(it["path"].split("/")[0])
        os.symlink(os.path.basename(stamp), os.path.join(local, "..data"))
        for t in tops:
            os.symlink(os.path.join("..data", t), os.path.join(local, t))
        out[m["mountPath"]] = local
    return out


def run(args, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, text=True, env=e, timeout=timeout)


def help_text(*sub):
    p = run(list(sub) + ["--help"])
    assert p.returncode == 0, p.stderr
    return p.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class JobManifest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.k = load_manifests()
        cls.job = one(cls.k, "Job")
        cls.c = container(cls.job)
        cls.args = cls.c["args"]

    def test_every_manifest_parses_and_names_itself(self):
        self.assertEqual(sorted(self.k), ["ConfigMap", "Job", "Kustomization", "Secret", "ServiceAccount"])
        for kind, objs in self.k.items():
            for o in objs:
                self.assertTrue(o["metadata"]["name"] if kind != "Kustomization" else True, o["__file__"])
        self.assertEqual(self.job["apiVersion"], "batch/v1")
        self.assertEqual(one(self.k, "ConfigMap")["apiVersion"], "v1")
        self.assertEqual(one(self.k, "ServiceAccount")["apiVersion"], "v1")

    def test_indexed_job_with_per_index_retries(self):
        s = self.job["spec"]
        self.assertEqual(s["completionMode"], "Indexed")
        self.assertGreaterEqual(s["parallelism"], 2)
        self.assertEqual(s["parallelism"], s["completions"])
        self.assertIsInstance(s["backoffLimitPerIndex"], int)
        self.assertGreaterEqual(s["backoffLimitPerIndex"], 1)
        self.assertIn("maxFailedIndexes", s)
        self.assertLessEqual(s["maxFailedIndexes"], s["completions"])
        self.assertNotIn("backoffLimit", s)  # with backoffLimitPerIndex it defaults to "no limit"
        # podFailurePolicy allows only Failed (the old pod ends before its replacement starts).
        self.assertEqual(s.get("podReplacementPolicy", "Failed"), "Failed")
        self.assertEqual(s["template"]["spec"]["restartPolicy"], "Never")

    def test_pod_failure_policy_of_the_exit_codes(self):
        rules = self.job["spec"]["podFailurePolicy"]["rules"]
        self.assertLessEqual(len(rules), 20)

        def action_for_exit(code):
            for r in rules:  # the first rule that matches decides
                e = r.get("onExitCodes")
                if not e:
                    continue
                self.assertIn(e["operator"], ("In", "NotIn"))
                self.assertNotIn(0, e["values"])
                self.assertEqual(e.get("containerName", self.c["name"]), self.c["name"])
                if (code in e["values"]) == (e["operator"] == "In"):
                    return r["action"]
            return "Count"

        self.assertTrue(any(r["action"] == "FailJob" and r.get("onExitCodes", {}).get("operator") == "In"
                            and 2 in r["onExitCodes"]["values"] for r in rules))
        self.assertEqual(action_for_exit(2), "FailJob")    # bad usage/config/file: nothing written
        self.assertEqual(action_for_exit(4), "FailJob")    # drift / inconsistent history
        self.assertEqual(action_for_exit(130), "Ignore")   # SIGTERM, checkpoints saved: resumes
        self.assertEqual(action_for_exit(1), "Count")      # failed run: bounded retries
        self.assertEqual(action_for_exit(137), "Count")    # SIGKILL / OOM
        disruption = [r for r in rules if any(c["type"] == "DisruptionTarget"
                                              for c in r.get("onPodConditions", []))]
        self.assertEqual([r["action"] for r in disruption], ["Ignore"])
        for r in rules:
            self.assertIn(r["action"], ("FailJob", "FailIndex", "Ignore", "Count"))
            self.assertTrue(("onExitCodes" in r) != ("onPodConditions" in r), r)

    def test_grace_period_covers_the_sigterm_budget(self):
        grace = self.job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, 10)
        self.assertGreater(grace, stop_budget_s())

    def test_command_is_up_worker_with_metrics_on_the_scraped_port(self):
        self.assertNotIn("command", self.c)  # the image's ENTRYPOINT is dynamorph
        self.assertIn("up", self.args)
        self.assertIn("--worker", self.args)
        self.assertGreater(self.args.index("--worker"), self.args.index("up"))
        host, port = flag_value(self.args, "--metrics").rsplit(":", 1)
        self.assertEqual(host, "0.0.0.0")  # Prometheus scrapes the pod IP
        ann = self.job["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann["prometheus.io/scrape"], "true")
        self.assertEqual(ann["prometheus.io/port"], port)
        self.assertEqual(ann["prometheus.io/path"], "/metrics")
        self.assertIn(int(port), [p["containerPort"] for p in self.c["ports"]])
        for v in ann.values():
            self.assertIsInstance(v, str)  # annotations must be strings

    def test_every_flag_exists_in_the_binary(self):
        up = help_text("up")
        top = help_text()
        pending = []
        for a in self.args:
            if not a.startswith("--"):
                continue
            where = up if self.args.index(a) > self.args.index("up") else top
            if a in ("--worker", "--metrics") and "--worker" not in up:
                pending.append(a)  # the binary predates the workers (issue 13)
                continue
            self.assertRegex(where, re.escape(a) + r"\b", f"{a} is not an option of this dynamorph")
        if pending:
            print(f"note: {BIN} has no {' / '.join(pending)} yet; the other flags are checked")
        self.assertRegex(flag_value(self.args, "--lock-ttl"), r"^\d+(ms|s|m|h)$")

    def test_environment_and_resources(self):
        env = {e["name"]: e for e in self.c["env"]}
        self.assertTrue(env["AWS_REGION"]["value"])
        overlay = env["DYNAMORPH_ENV"]["value"]
        conf = yaml.safe_load(one(self.k, "ConfigMap")["data"]["dynamorph.yaml"])
        self.assertIn(overlay, conf["environments"])
        self.assertNotIn("region", conf)  # AWS_REGION decides
        r = self.c["resources"]
        for side in ("requests", "limits"):
            self.assertIn("cpu", r[side])
            self.assertIn("memory", r[side])
        sc = self.job["spec"]["template"]["spec"]["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        self.assertNotEqual(sc["runAsUser"], 0)

    def test_configmap_is_mounted_where_config_and_migrations_point(self):
        cm = one(self.k, "ConfigMap", "dynamorph-config")
        self.assertEqual(mounted_file(self.job, cm, flag_value(self.args, "--config")), "dynamorph.yaml")
        mdir = flag_value(self.args, "--migrations").rstrip("/")
        migrations = sorted(k for k in cm["data"] if MIGRATION_NAME.match(k))
        self.assertGreaterEqual(len(migrations), 2)
        for key in migrations:
            self.assertEqual(mounted_file(self.job, cm, f"{mdir}/{key}"), key)
        # Every key the volume lists exists (the kubelet refuses the pod otherwise), and every
        # key of the ConfigMap is mounted.
        vol = next(v for v in self.job["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
        self.assertEqual(sorted(i["key"] for i in vol["configMap"]["items"]), sorted(cm["data"]))
        mounts = [m for m in self.c["volumeMounts"] if m["name"] == vol["name"]]
        self.assertTrue(mounts[0]["readOnly"])
        # dynamorph.yaml's own migrations_dir, relative to it, is the same folder.
        conf = yaml.safe_load(cm["data"]["dynamorph.yaml"])
        cfg_dir = os.path.dirname(flag_value(self.args, "--config"))
        self.assertEqual(os.path.normpath(os.path.join(cfg_dir, conf["migrations_dir"])), mdir)

    def test_referenced_objects_exist(self):
        spec = self.job["spec"]["template"]["spec"]
        one(self.k, "ServiceAccount", spec["serviceAccountName"])
        for v in spec["volumes"]:
            if "configMap" in v:
                one(self.k, "ConfigMap", v["configMap"]["name"])
        kust = one(self.k, "Kustomization")
        for res in kust["resources"]:
            self.assertTrue(os.path.isfile(os.path.join(K8S, res)), res)
        self.assertNotIn("secret-credentials.yaml", kust["resources"])  # placeholders, not keys
        self.assertEqual(kust["images"][0]["name"], self.c["image"].split(":")[0])

    def test_secret_alternative_is_valid_yaml_naming_the_secret(self):
        secret = one(self.k, "Secret")
        self.assertEqual(sorted(secret["stringData"]), ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        with open(os.path.join(K8S, self.job["__file__"])) as f:
            text = f.read()
        m = re.search(r"\n(\s*)# BEGIN secret-credentials\n(.*?)\n\s*# END secret-credentials", text, re.S)
        self.assertIsNotNone(m, "job.yaml: the commented secretKeyRef block")
        indent = m.group(1)
        block = "\n".join(line.replace("# ", "", 1) for line in m.group(2).split("\n"))
        env = yaml.safe_load(block)
        self.assertEqual([e["name"] for e in env], ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        for e in env:
            ref = e["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref["name"], secret["metadata"]["name"])
            self.assertIn(ref["key"], secret["stringData"])
        # Uncommented in place, the env list is still one valid list.
        whole = text.replace(m.group(2), "\n".join(
            re.sub(r"^(\s*)# ", r"\1", line) for line in m.group(2).split("\n")))
        names = [e["name"] for e in container(yaml.safe_load(whole))["env"]]
        self.assertEqual(names, ["AWS_REGION", "DYNAMORPH_ENV", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        self.assertTrue(indent)

    def test_scale_out_doc_says_what_the_job_does(self):
        with open(os.path.join(ROOT, "docs", "scale-out.md")) as f:
            doc = f.read()
        self.assertIn("`dynamorph " + " ".join(self.args) + "`", doc)
        spec = self.job["spec"]
        grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertIn(f"`terminationGracePeriodSeconds: {grace}`", doc)
        self.assertIn(f"an Indexed Job of {spec['parallelism']} pods", doc)
        self.assertIn(f"`backoffLimitPerIndex: {spec['backoffLimitPerIndex']}`", doc)
        self.assertIn(f"`maxFailedIndexes: {spec['maxFailedIndexes']}`", doc)
        # The exit-code table: one row per code, its action as the policy decides.
        rows = dict(re.findall(r"^\| (\d+) \| [^|]+ \| \**(\w+)\** \|", doc, re.M))
        rules = spec["podFailurePolicy"]["rules"]
        for code, action in rows.items():
            want = next((r["action"] for r in rules if "onExitCodes" in r
                         and int(code) in r["onExitCodes"]["values"]), "Count")
            self.assertEqual((code, action), (code, want))
        self.assertEqual(sorted(rows, key=int)[:4], ["1", "2", "4", "130"])

    def test_scale_out_worked_example_adds_up(self):
        with open(os.path.join(ROOT, "docs", "scale-out.md")) as f:
            doc = f.read()
        size, item, read_price, write_price = 10**12, 800, 0.125, 0.625  # pricing: defaults
        items = size // item
        rcu = size / 4096 / 2
        wcu = items * 2  # table + one GSI, items under 1 KB
        self.assertIn("**1.25 × 10^9**", doc)
        self.assertEqual(items, 1_250_000_000)
        self.assertIn(f"**{rcu / 1e8:.2f} × 10^8 RCU**", doc)
        self.assertIn(f"**${rcu / 1e6 * read_price:,.2f}**", doc)
        self.assertIn(f"**${wcu / 1e6 * write_price:,.2f}**", doc)
        self.assertIn(f"**about {items / (20000 / 2) / 3600:.1f} hours**", doc)
        self.assertIn(f"{items / 20000 / 3600:.1f} hours", doc)
        with open(os.path.join(ROOT, "migrations", "estimate.h")) as f:
            est = f.read()
        self.assertIn(f"double read_per_million = {read_price};", est)
        self.assertIn(f"double write_per_million = {write_price};", est)

    def test_service_account_irsa_annotation_stays_commented(self):
        # dynamorph's credential chain has no web identity (IRSA) yet: an active annotation
        # would leave the pods without credentials. See serviceaccount.yaml.
        sa = one(self.k, "ServiceAccount")
        self.assertNotIn("eks.amazonaws.com/role-arn", sa["metadata"].get("annotations", {}))
        with open(os.path.join(K8S, sa["__file__"])) as f:
            text = f.read()
        self.assertIn("#   eks.amazonaws.com/role-arn:", text)


class ConfigMapFilesRunWithTheJobsArguments(unittest.TestCase):
    """The ConfigMap's files, mounted as the kubelet does, with the Job's own arguments."""

    def setUp(self):
        self.k = load_manifests()
        self.job = one(self.k, "Job")
        self.cm = one(self.k, "ConfigMap")
        self.dir = tempfile.mkdtemp(prefix="dynamorph_k8s_")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.mounts = materialize(self.job, self.cm, self.dir)
        self.ns = f"k{uuid.uuid4().hex[:8]}-"
        self.addCleanup(self.drop)
        self.env = {e["name"]: e["value"] for e in container(self.job)["env"] if "value" in e}
        self.workdir = os.path.join(self.dir, "work")  # the image's empty WORKDIR
        os.makedirs(self.workdir)

    def drop(self):
        for t in DDB.list_tables()["TableNames"]:
            if t.startswith(self.ns):
                DDB.delete_table(TableName=t)

    def local(self, args):
        out = []
        for a in args:
            for mount, local in self.mounts.items():
                if a.startswith(mount.rstrip("/") + "/"):
                    a = local + a[len(mount.rstrip("/")):]
            out.append(a)
        return out

    def globals(self):
        args = container(self.job)["args"]
        g = args[:args.index("up")]
        i = g.index("--metrics")
        del g[i:i + 2]
        return self.local(g) + ["--endpoint", ENDPOINT, "--namespace", self.ns]

    def dm(self, args, env=None):
        e = dict(self.env)
        e.update(env or {})
        try:
            return subprocess.run([BIN] + args, capture_output=True, text=True, cwd=self.workdir,
                                  env={**os.environ, **e}, timeout=300)
        except subprocess.TimeoutExpired as t:  # say what it was doing
            self.fail(f"{args} did not end in 300 s; stdout:\n{t.stdout}\nstderr:\n{t.stderr}")

    def test_files_load_in_every_environment(self):
        versions = sorted(int(k.split("_")[0]) for k in self.cm["data"] if MIGRATION_NAME.match(k))
        conf = yaml.safe_load(self.cm["data"]["dynamorph.yaml"])
        for overlay in [None] + sorted(conf["environments"]):
            env = {"DYNAMORPH_ENV": overlay} if overlay else {"DYNAMORPH_ENV": ""}
            p = self.dm(self.globals() + ["--json", "status"], env)
            self.assertEqual(p.returncode, 0, f"{overlay}: {p.stderr}")
            rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
            self.assertEqual([r["version"] for r in rows], versions)
            self.assertEqual({r["state"] for r in rows}, {"pending"})
        p = self.dm(self.globals() + ["status"], {"DYNAMORPH_ENV": "nosuch"})
        self.assertEqual(p.returncode, 2)
        self.assertIn("nosuch", p.stderr)

    def test_jobs_arguments_apply_the_migrations(self):
        args = container(self.job)["args"]
        first = sorted(k for k in self.cm["data"] if MIGRATION_NAME.match(k))[0].split("_")[0]
        p = self.dm(self.globals() + ["up", "--to", first])
        self.assertEqual(p.returncode, 0, p.stderr)
        table = self.ns + "orders"
        for start in range(0, 300, 25):
            DDB.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {"PK": {"S": f"ORDER#{i}"}, "SK": {"S": "META"},
                                         **({"currency": {"S": "USD"}} if i % 10 == 0 else {})}}}
                for i in range(start, start + 25)]})
        # The Job's arguments, with the mount paths made local, the endpoint and namespace of
        # the test server, and --metrics on a free loopback port.
        job_args = self.local(args) + ["--endpoint", ENDPOINT, "--namespace", self.ns]
        i = job_args.index("--metrics")
        job_args[i + 1] = f"127.0.0.1:{free_port()}"
        if "--worker" not in help_text("up"):
            print("note: this dynamorph has no --worker / --metrics yet; running `up` without them")
            job_args = [a for j, a in enumerate(job_args)
                        if a not in ("--worker", "--metrics") and not (j and job_args[j - 1] == "--metrics")]
        p = self.dm(job_args)
        self.assertEqual(p.returncode, 0, p.stderr)
        items, kw = [], {"TableName": table, "ConsistentRead": True}
        while True:
            page = DDB.scan(**kw)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        self.assertEqual(len(items), 300)
        for it in items:
            n = int(it["PK"]["S"].split("#")[1])
            if n % 10 == 0:
                self.assertEqual(it["currency"], {"S": "USD"})
                self.assertNotIn("_v", it)
            else:
                self.assertEqual(it["currency"], {"S": "EUR"})
                self.assertEqual(it["_v"], {"N": "20261201091000"})
        p = self.dm(self.globals() + ["--json", "status"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual({json.loads(l)["state"] for l in p.stdout.splitlines() if l.startswith("{")},
                         {"applied"})


# ---- the Dockerfile ----------------------------------------------------------------------

def dockerignore_patterns(root):
    pats = []
    path = os.path.join(root, ".dockerignore")
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            p = os.path.normpath(line[1:] if neg else line).lstrip("/")
            pats.append((neg, p))
    return pats


def go_match(pattern, path):
    """filepath.Match with Docker's ** extension: * and ? do not cross '/'."""
    rx, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            rx += ".*"
            i += 2
            continue
        rx += "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) if c != "[" else "["
        i += 1
    try:
        return re.fullmatch(rx, path) is not None
    except re.error:
        return fnmatch.fnmatchcase(path, pattern)


def ignored(patterns, rel):
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for neg, p in patterns:
        if any(go_match(p, pre) for pre in prefixes):
            out = not neg
    return out


def lint(dockerfile):
    p = subprocess.run([os.path.join(ROOT, "scripts", "dockerfile-lint.sh"), "parse", dockerfile],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def problems(dockerfile, context):
    """Every reason this Dockerfile would not build from `context`, as 'line N: text'."""
    parsed = lint(dockerfile)
    out = [f"line {d['line']}: {d['message']}" for d in parsed["diagnostics"]
           if d["severity"] in ("error", "warning")]
    pats = dockerignore_patterns(context)
    stages = []
    for ins in parsed["instructions"]:
        kw, line = ins["keyword"], ins["line"]
        if kw == "FROM":
            if ins.get("stage"):
                stages.append(ins["stage"])
            continue
        if kw not in ("COPY", "ADD"):
            continue
        flags = {f["name"]: f["value"] for f in ins.get("flags", [])}
        args = list(ins["expanded"])
        if args and args[0].startswith("["):
            args = json.loads(" ".join(ins["arguments"]))
        sources = args[:-1]
        if not sources:
            out.append(f"line {line}: {kw} without a source")
        if "from" in flags:
            ref = flags["from"]
            if not (ref in stages or (ref.isdigit() and int(ref) < len(stages))):
                out.append(f"line {line}: {kw} --from={ref}: no stage of that name before it "
                           f"(stages: {', '.join(stages)})")
            continue
        for src in sources:
            rel = os.path.normpath(src).lstrip("/")
            full = os.path.join(context, rel)
            if not os.path.exists(full):
                out.append(f"line {line}: {kw} {src}: no such file or folder in the build context")
                continue
            files = [rel]
            if os.path.isdir(full):
                files = [os.path.relpath(os.path.join(d, f), context)
                         for d, dirs, fs in os.walk(full) for f in fs if "__pycache__" not in d]
            hidden = [f for f in files if ignored(pats, f)]
            if ignored(pats, rel) or (files and len(hidden) == len(files)):
                out.append(f"line {line}: {kw} {src}: left out of the build context by .dockerignore")
            elif hidden:
                out.append(f"line {line}: {kw} {src}: .dockerignore leaves out {hidden[0]} and "
                           f"{len(hidden) - 1} more")
    return out


def stages_of(parsed):
    """[(stage name, image, [instructions])] in order."""
    out = []
    for ins in parsed["instructions"]:
        if ins["keyword"] == "FROM":
            out.append((ins.get("stage"), ins["expanded"][0], []))
        elif out:
            out[-1][2].append(ins)
    return out


def runtime_packages(instructions):
    pkgs = []
    for ins in instructions:
        if ins["keyword"] != "RUN":
            continue
        text = " ".join(ins["arguments"])
        for m in re.finditer(r"apt-get install ((?:[^&;|])*)", text):
            pkgs += [w for w in m.group(1).replace("\\", " ").split() if not w.startswith("-")]
    return pkgs


def needed_packages(binary):
    """The Debian package of every shared library the binary links directly (NEEDED)."""
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    out = {}
    for so in needed:
        path = os.path.realpath(paths[so])
        pkg = None
        for cand in {path, path.replace("/usr/lib/", "/lib/", 1), paths[so],
                     paths[so].replace("/lib/", "/usr/lib/", 1)}:
            p = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if p.returncode == 0:
                pkg = p.stdout.split(":")[0].strip()
                break
        out[so] = pkg
    return out


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.path = os.path.join(ROOT, "Dockerfile")
        cls.parsed = lint(cls.path)
        cls.stages = stages_of(cls.parsed)

    def broken(self, transform):
        tmp = tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False)
        self.addCleanup(os.unlink, tmp.name)
        with open(self.path) as f:
            tmp.write(transform(f.read()))
        tmp.close()
        return problems(tmp.name, ROOT)

    def test_parses_and_validates_without_a_problem(self):
        self.assertEqual(problems(self.path, ROOT), [])

    def test_two_stages_on_debian_12(self):
        self.assertEqual([(s[0], s[1]) for s in self.stages],
                         [("build", "debian:bookworm"), ("runtime", "debian:bookworm-slim")])
        build = " ".join(" ".join(i["arguments"]) for i in self.stages[0][2] if i["keyword"] == "RUN")
        self.assertIn("scripts/setup.sh --build-only", build)
        self.assertIn("-DDYNAMORPH_BUILD_TESTS=OFF", build)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", build)
        self.assertIn("-G Ninja", build)
        self.assertNotIn("native", build)  # the image must run on other CPUs than the builder's

    def test_runtime_stage_is_slim_non_root_and_runs_dynamorph(self):
        ins = self.stages[-1][2]
        kws = [i["keyword"] for i in ins]
        entry = [i for i in ins if i["keyword"] == "ENTRYPOINT"]
        self.assertEqual(json.loads(" ".join(entry[-1]["arguments"])), ["dynamorph"])
        user = [i for i in ins if i["keyword"] == "USER"][-1]["arguments"][0]
        self.assertNotIn(user.split(":")[0], ("root", "0"))
        self.assertGreater(kws.index("USER"), max(j for j, k in enumerate(kws) if k == "RUN"))
        pkgs = runtime_packages(ins)
        self.assertIn("ca-certificates", pkgs)
        self.assertFalse([p for p in pkgs if p.endswith("-dev")], "no -dev package at run time")
        copies = [i for i in ins if i["keyword"] == "COPY"]
        self.assertEqual({f["value"] for c in copies for f in c["flags"] if f["name"] == "from"}, {"build"})

    def test_runtime_packages_cover_every_library_the_binary_links(self):
        pkgs = set(runtime_packages(self.stages[-1][2]))
        need = needed_packages(BIN)
        self.assertIn("libcurl.so.4", need)
        missing = {so: p for so, p in need.items() if p is None or p.split(":")[0] not in pkgs}
        self.assertEqual(missing, {}, "libraries of the binary whose package the runtime stage lacks")
        # And each listed package exists in Debian 12 (when this machine has apt's lists).
        if subprocess.run(["apt-cache", "show", "libc6"], capture_output=True).returncode == 0:
            for p in sorted(pkgs):
                r = subprocess.run(["apt-cache", "show", "--no-all-versions", p], capture_output=True)
                self.assertEqual(r.returncode, 0, f"{p}: not a Debian package here")
        else:
            print("note: apt-cache has no package lists; the runtime packages' names are not looked up")

    def test_dockerignore_keeps_the_heavy_folders_out(self):
        pats = dockerignore_patterns(ROOT)
        for rel in (".git/HEAD", "build/build.ninja", ".cache/x", "tests/cli/cli_test.py", "bench/README.md"):
            self.assertTrue(ignored(pats, rel), rel)
        for rel in ("cli/main.cpp", "CMakeLists.txt", "scripts/setup.sh", "cmake/empty.cpp"):
            self.assertFalse(ignored(pats, rel), rel)

    def test_a_broken_dockerfile_is_caught(self):
        # An unknown instruction (the validator's own error).
        p = self.broken(lambda s: s.replace("RUN scripts/setup.sh", "RUNN scripts/setup.sh", 1))
        self.assertTrue(any("RUNN" in x or "nknown instruction" in x for x in p), p)
        # A COPY of a path the repository does not have.
        p = self.broken(lambda s: s.replace("COPY expr expr", "COPY exprs expr", 1))
        self.assertTrue(any("COPY exprs: no such file" in x for x in p), p)
        # A COPY of a path .dockerignore leaves out of the context.
        p = self.broken(lambda s: s.replace("COPY cli cli", "COPY cli cli\nCOPY tests tests", 1))
        self.assertTrue(any("COPY tests: left out of the build context" in x for x in p), p)
        # A stage referenced but not defined.
        p = self.broken(lambda s: s.replace("--from=build", "--from=builder", 1))
        self.assertTrue(any("--from=builder: no stage of that name" in x for x in p), p)
        # A stage name defined twice.
        p = self.broken(lambda s: s.replace("-slim AS runtime", "-slim AS build", 1))
        self.assertTrue(any("build" in x and "uplicate" in x for x in p), p)
        # A COPY without a destination.
        p = self.broken(lambda s: s.replace("COPY cmake cmake", "COPY cmake", 1))
        self.assertTrue(p, "a COPY with one argument passed")

    def test_setup_refuses_an_unknown_mode(self):
        p = subprocess.run([os.path.join(ROOT, "scripts", "setup.sh"), "--bogus"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: scripts/setup.sh [--build-only]", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
