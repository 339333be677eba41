"""Every `dynamorph …` command line in the code blocks of docs/guide.md and README.md is known
here, in COMMANDS, and done: run in that file's own project against DynamoDB Local, in the
order the file gives them, with its exit code and a key part of its output checked; or, where
the situation it needs is costly (100 000 items, several workers), parsed by the binary (every
flag and value accepted: only a probe flag added at the end is refused); or, for a synopsis
line (`[--to V]`, `A|B`), every command word and flag of it looked up in the binary's help,
and where one is given, an instance of it run (`up --dry-run --sample 10` plans).

A command line added to a guide that COMMANDS does not know fails this test, naming its
file:line; so does an entry of COMMANDS that no guide has any more. Adding one is one line:
    "dynamorph up --retry-dead-letters": Run(0, "applied"),
Inline `dynamorph …` spans in the prose get the synopsis check (words and flags exist)."""
import os
import re
import shlex
import subprocess
import tempfile
import time
import unittest
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ["DYNAMORPH_BIN"]
PORT = open(os.path.join(os.environ["DYNAMORPH_TEST_DDB_DIR"], "port")).read().strip()
ENDPOINT = f"http://127.0.0.1:{PORT}"
DOCS = ("docs/guide.md", "README.md")
PROBE = "--dynamorph-guide-probe"
with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
    VERSION = re.search(r"project\(dynamorph VERSION (\S+)", f.read()).group(1)


# ---- what the suite does with a command line -------------------------------------------------

class Run:
    """Run as written in the file's project (after the file's earlier Run lines): the exit code,
    and `out` found in stdout+stderr (a regex when it is a re.Pattern)."""

    def __init__(self, exit, out, before=None, after=None):
        self.exit, self.out, self.before, self.after = exit, out, before, after

    def check(self, t, doc, argv, project):
        if self.before:
            self.before(project)
        r = t.dynamorph(argv, project.dir)
        text = r.stdout + r.stderr
        t.assertEqual(r.returncode, self.exit, f"{doc}: exit {r.returncode}\n{text}")
        if isinstance(self.out, re.Pattern):
            t.assertRegex(text, self.out, doc)
        else:
            t.assertIn(self.out, text, doc)
        if self.after:
            self.after(project)


class Parses:
    """Not run: the binary parses and validates the whole line, and refuses only the probe flag
    added after it (exit 2, before any request)."""

    def check(self, t, doc, argv, project):
        scratch = tempfile.mkdtemp(dir=project.tmp)
        r = t.dynamorph(argv + [PROBE], scratch)
        t.assertEqual((r.returncode, r.stdout, r.stderr),
                      (2, "", f"dynamorph: The following argument was not expected: {PROBE} "
                              "(see --help)\n"), doc)
        t.assertEqual(os.listdir(scratch), [], doc)


class Synopsis:
    """A grammar line: every command word and flag exists (see check_words). With `example`, an
    instance of it is also run in the project, like Run(exit, out)."""

    def __init__(self, example=None, exit=0, out=""):
        self.example, self.run = example, Run(exit, out)

    def check(self, t, doc, argv, project):
        t.check_words(doc, argv)
        if self.example:
            example = shlex.split(self.example)
            t.check_words(doc, example)
            self.run.check(t, f"{doc} as `{self.example}`", example, project)


class Help:
    def check(self, t, doc, argv, project):
        r = t.dynamorph(argv, project.dir)
        t.assertEqual(r.returncode, 0, doc)
        t.assertIn("\nSubcommands:\n", r.stdout, doc)


def point_at_local(project):
    """What the guide says to do after `init` (endpoint), plus a namespace of this test's own."""
    path = os.path.join(project.dir, "dynamorph.yaml")
    with open(path) as f:
        text = f.read()
    text = text.replace("# endpoint: http://127.0.0.1:8000", f"endpoint: {ENDPOINT}", 1)
    text = text.replace('namespace: ""', f'namespace: "{project.ns}"', 1)
    with open(path, "w") as f:
        f.write(text)


def next_second(project):
    """generate names a file by the UTC second: two in the same second would share a version."""
    while time.time() < project.last_generate + 1.05:
        time.sleep(0.05)
    project.last_generate = time.time()


WROTE = re.compile(r"^wrote migrations/\d{14}_\w+\.yaml$", re.M)

# Command line (comments and `\` continuations removed, spaces collapsed) → what to do with it.
COMMANDS = {
    # docs/guide.md, Getting started: one project, in this order.
    "dynamorph init": Run(0, "wrote dynamorph.yaml\nwrote migrations/\n", after=point_at_local),
    "dynamorph generate create_users --create-table users --partition-key id:string "
    "--sort-key created_at:number --gsi email:string --gsi author:string,created_at:number": Run(0, WROTE, before=next_second),
    "dynamorph status": Run(0, re.compile(r"(?m)^\d{14} +(create_users|add_status) +(pending|applied) ")),
    "dynamorph up --dry-run": Run(0, re.compile(r"(?s)would apply \d{14} create_users.*nothing was written")),
    "dynamorph up": Run(0, re.compile(r"(?m)^  applied \d{14} create_users$")),
    "dynamorph down": Run(0, re.compile(r"(?m)^  reverted \d{14} create_users$")),
    "dynamorph generate backfill": Run(0, WROTE, before=next_second),
    # docs/guide.md, synopses and the workers' command.
    "dynamorph [--config FILE] [--env NAME] [--endpoint URL] [--region R] [--profile P] "
    "[--migrations DIR] [--namespace PREFIX] [--json] [-v|-q] [--metrics ADDR] COMMAND ...": Synopsis(),
    "dynamorph bench seed --items N [--item-bytes B] [--table T] [--in-flight N]": Synopsis(),
    "dynamorph bench scan --table T [--segments LIST] [--duration S] [--page-size N]": Synopsis(),
    "dynamorph bench write [--items N] [--mode batch|update|transact] [--in-flight LIST] "
    "[--item-bytes B] [--table T]": Synopsis(),
    "dynamorph bench migrate [VERSION] [--segments LIST] [--sample P]": Synopsis(),
    "dynamorph up --worker --lock-ttl 30s": Parses(),
    # Dead letters: the quick start's project has none (tests/cli/dead_letters_test.py retries).
    "dynamorph up --retry-dead-letters": Run(0, "no dead letters to retry"),  # several workers: tests/cli/workers_test.py
    # README.md: build, install, Using it (init, generate add_status and status are run).
    "build/cli/dynamorph --help": Help(),
    "dynamorph --version": Run(0, f"dynamorph {VERSION}\n"),
    "dynamorph generate add_status": Run(0, WROTE, before=next_second),
    # generate's starter reads a table that does not exist: the plan says so, exit 2.
    "dynamorph up --dry-run [--sample 10]": Synopsis("dynamorph up --dry-run --sample 10", 2,
                                                     "warning: source table"),
    "dynamorph up [--to V] [--segments N] [--max-wcu N] [--max-rcu N] [--capacity-percent P]": Synopsis(
        "dynamorph up --dry-run --segments 4 --max-wcu 100 --max-rcu 100", 2, "warning: source table"),
    "dynamorph down [--to V | --steps N] [--force]": Synopsis("dynamorph down --steps 1 --dry-run", 0,
                                                              "dry run: nothing to do"),
    "dynamorph verify [VERSION]": Synopsis("dynamorph verify", 0, "nothing to verify: no version is applied"),
    "dynamorph unlock [--force]": Synopsis("dynamorph unlock", 0, "no lock is held in"),
    "dynamorph mark VERSION applied|pending": Synopsis(),
    "dynamorph bench seed --items 100000": Parses(),  # 100 000 items: bench_test.py seeds fewer
    "dynamorph bench scan --table T --report scan.html": Parses(),
    "dynamorph bench write --mode batch --in-flight 4,16,64": Parses(),
    "dynamorph bench migrate [VERSION] [--sample 10]": Synopsis("dynamorph bench migrate --sample 10", 2,
                                                                "add_status.yaml:7: source table"),
}


# ---- reading the guides ----------------------------------------------------------------------

def is_program(word):
    return word == "dynamorph" or word.endswith("/dynamorph")


def code_block_commands(rel):
    """(line, command) for every dynamorph command line in the file's ``` blocks (not yaml)."""
    with open(os.path.join(ROOT, rel)) as f:
        lines = f.read().split("\n")
    out, in_block, skip, i = [], False, False, 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*```(\S*)", line)
        if fence:
            in_block, skip = (not in_block), fence.group(1).startswith("yaml")
            i += 1
            continue
        start = i + 1
        text = line
        # A `\` continuation, or a synopsis going on with an indented `[`.
        while i + 1 < len(lines) and (text.endswith("\\") or re.match(r"^\s+\[", lines[i + 1])):
            i += 1
            text = text.rstrip("\\") + " " + lines[i].strip()
        i += 1
        if not in_block or skip:
            continue
        text = re.sub(r"^\s*\$\s+", "", text)
        words = text.split()
        if not words or not is_program(words[0]):
            continue
        text = re.sub(r"\s+#.*$", "", text)  # a comment after the command
        out.append((start, " ".join(text.split())))
    return out


def inline_commands(rel):
    with open(os.path.join(ROOT, rel)) as f:
        lines = f.read().split("\n")
    out = []
    for n, line in enumerate(lines, 1):
        for m in re.finditer(r"`(dynamorph [^`]+)`", line):
            if not m.group(1).startswith("dynamorph:"):
                out.append((n, " ".join(m.group(1).split())))
    return out


class GuideCommands(unittest.TestCase):
    helps = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dynamorph-guide-")

    def dynamorph(self, argv, cwd):
        return subprocess.run([BIN] + argv[1:], cwd=cwd, capture_output=True, text=True, timeout=300)

    def help_of(self, path):
        key = tuple(path)
        if key not in self.helps:
            r = subprocess.run([BIN, *path, "--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"dynamorph {' '.join(path)} --help")
            self.helps[key] = r.stdout
        return self.helps[key]

    def subcommands(self, path):
        text = self.help_of(path)
        if "\nSubcommands:\n" not in text:
            return []
        return re.findall(r"^  ([a-z][a-z0-9_-]*)\s", text.split("\nSubcommands:\n", 1)[1], re.M)

    def check_words(self, doc, argv):
        """The command words name subcommands; every flag is in that command's help or the
        top level's (global flags go anywhere)."""
        tokens = [t for w in argv[1:] for t in re.split(r"[\[\]]", w) if t]
        path = []
        for tok in tokens:
            if tok.startswith("-") or tok in ("|", "...", "…"):
                continue
            alts = tok.split("|")
            subs = self.subcommands(path)
            if alts[0] in subs:
                self.assertEqual([a for a in alts if a not in subs], [], f"{doc}: {tok}")
                path.append(alts[0])
        helps = self.help_of(path) + self.help_of([])
        flags = {f for tok in tokens if tok.startswith("-") for f in tok.split("|") if f.startswith("-")}
        for flag in sorted(flags):
            flag = flag.split("=")[0].rstrip(",.;:")
            self.assertRegex(helps, rf"(?m)^\s+(-\w,)?{re.escape(flag)}\b",
                             f"{doc}: {flag} is not a flag of dynamorph {' '.join(path)}")
        return path

    def test_every_code_block_command_is_known_and_done(self):
        seen = set()
        for rel in DOCS:
            project = type("Project", (), {})()
            project.tmp = self.tmp
            project.dir = tempfile.mkdtemp(dir=self.tmp)
            project.ns = f"guide-{uuid.uuid4().hex[:8]}-"
            project.last_generate = 0.0
            commands = code_block_commands(rel)
            self.assertTrue(commands, rel)
            for line, text in commands:
                doc = f"{rel}:{line}: `{text}`"
                with self.subTest(doc):
                    seen.add(text)
                    if text not in COMMANDS:
                        self.fail(f"{doc} is not known to tests/cli/guide_commands_test.py: add it "
                                  "to COMMANDS with what the suite does with it (Run, Parses, Synopsis)")
                    argv = shlex.split(text)
                    self.assertTrue(is_program(argv[0]))
                    if not isinstance(COMMANDS[text], Synopsis):
                        self.check_words(doc, argv)
                    COMMANDS[text].check(self, doc, argv, project)
        stale = sorted(set(COMMANDS) - seen)
        self.assertEqual(stale, [], "in COMMANDS but in no guide's code block any more: remove them")

    def test_inline_commands_name_real_commands_and_flags(self):
        count = 0
        for rel in DOCS:
            for line, text in inline_commands(rel):
                with self.subTest(f"{rel}:{line}"):
                    self.check_words(f"{rel}:{line}: `{text}`", text.split())
                    count += 1
        self.assertGreater(count, 10)

    def test_an_unknown_flag_or_command_is_caught(self):
        """The checks fail when they should: a flag the binary lacks, a misspelt command."""
        with self.assertRaises(AssertionError):
            self.check_words("x", ["dynamorph", "up", "--no-such-flag"])
        with self.assertRaises(AssertionError):
            self.check_words("x", ["dynamorph", "bench", "seed|scna"])
        project = type("Project", (), {"tmp": self.tmp})()
        with self.assertRaises(AssertionError):
            Parses().check(self, "x", ["dynamorph", "up", "--dry-run", "--worker"], project)
        with self.assertRaises(AssertionError):
            Parses().check(self, "x", ["dynamorph", "bench", "seed"], project)  # --items missing
        self.assertNotIn("dynamorph up --no-such-flag", COMMANDS)
        self.assertEqual(self.check_words("x", ["dynamorph", "--json", "bench", "scan", "--table", "T"]),
                         ["bench", "scan"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
