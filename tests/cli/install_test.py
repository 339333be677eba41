"""dynamorph installed like a tool, from the build folder the suite built (no second build):
`cmake --install --prefix /usr` with DESTDIR into one scratch root, the .deb CPack makes
(`cpack -G DEB`) unpacked with `dpkg-deb -x` into another. In each root the installed binary
answers --version and --help, the man page renders with `man -l` and holds every subcommand,
and `init`/`generate` point to that root's guide. The package's control fields, its Depends
(against the binary's NEEDED libraries mapped to packages with dpkg -S), its file list, and
`apt-get install -s` (a simulation: the machine is never changed) resolving it on Debian 12."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ["DYNAMORPH_BIN"]
BUILD = os.environ.get("DYNAMORPH_BUILD_DIR") or os.path.dirname(os.path.dirname(BIN))
DOC = "usr/share/doc/dynamorph"
MAN = "usr/share/man/man1/dynamorph.1.gz"


def run(*cmd, cwd=None, env=None, check=True):
    r = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def subcommands(help_text):
    """The names under "Subcommands:" in a CLI11 help text."""
    if "\nSubcommands:\n" not in help_text:
        return []
    return re.findall(r"^  ([a-z][a-z0-9_-]*)\s", help_text.split("\nSubcommands:\n", 1)[1], re.M)


def needed_packages(binary):
    """The Debian package of every shared library the binary links directly (NEEDED)."""
    dyn = run("objdump", "-p", binary).stdout
    needed = re.findall(r"^\s*NEEDED\s+(\S+)", dyn, re.M)
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", run("ldd", binary).stdout, re.M))
    out = {}
    for so in needed:
        real = os.path.realpath(paths[so])
        pkg = None
        for cand in (paths[so], real, real.replace("/usr/lib/", "/lib/", 1),
                     paths[so].replace("/lib/", "/usr/lib/", 1)):
            p = run("dpkg", "-S", cand, check=False)
            if p.returncode == 0:
                pkg = p.stdout.split(":")[0].strip()
                break
        out[so] = pkg
    return out


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


VERSION = re.search(r"project\(dynamorph VERSION (\S+)",
                    read(os.path.join(ROOT, "CMakeLists.txt"))).group(1)


def files_under(root):
    found = set()
    for d, _, names in os.walk(root):
        for n in names:
            found.add(os.path.relpath(os.path.join(d, n), root))
    return found


def repo_docs():
    """What share/doc/dynamorph must hold: README.md, docs/ and configs/, by relative path."""
    want = {"README.md"}
    for src, prefix in ((os.path.join(ROOT, "docs"), ""), (os.path.join(ROOT, "configs"), "configs/")):
        want |= {prefix + f for f in files_under(src)}
    return want


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dynamorph-install-")
        cls.destdir = os.path.join(cls.tmp, "destdir")
        env = dict(os.environ, DESTDIR=cls.destdir)
        run("cmake", "--install", BUILD, "--prefix", "/usr", env=env)
        pkgdir = os.path.join(cls.tmp, "package")
        run("cpack", "-G", "DEB", "-B", pkgdir, "--config", os.path.join(BUILD, "CPackConfig.cmake"),
            cwd=BUILD)
        debs = [f for f in os.listdir(pkgdir) if f.endswith(".deb")]
        arch = run("dpkg", "--print-architecture").stdout.strip()
        assert debs == [f"dynamorph_{VERSION}_{arch}.deb"], debs
        cls.arch = arch
        cls.deb = os.path.join(pkgdir, debs[0])
        cls.unpacked = os.path.join(cls.tmp, "unpacked")
        run("dpkg-deb", "-x", cls.deb, cls.unpacked)
        cls.roots = {"cmake --install": cls.destdir, ".deb": cls.unpacked}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_installed_binary_answers_version_and_help(self):
        built_help = run(BIN, "--help").stdout
        for how, root in self.roots.items():
            with self.subTest(how):
                exe = os.path.join(root, "usr/bin/dynamorph")
                self.assertTrue(os.access(exe, os.X_OK), exe)
                r = run(exe, "--version")
                self.assertEqual(r.stdout, f"dynamorph {VERSION}\n")
                r = run(exe, "--help")
                self.assertIn("versioned migrations and bulk reshapes for Amazon DynamoDB", r.stdout)
                self.assertEqual(subcommands(r.stdout), subcommands(built_help))
                self.assertIn("up", subcommands(r.stdout))

    def test_man_page_renders_with_every_subcommand(self):
        names = subcommands(run(BIN, "--help").stdout)
        bench = subcommands(run(BIN, "bench", "--help").stdout)
        self.assertEqual(bench, ["seed", "scan", "write", "migrate"])
        for how, root in self.roots.items():
            with self.subTest(how):
                page = os.path.join(root, MAN)
                self.assertTrue(os.path.isfile(page),
                                f"{page} missing: is help2man installed (scripts/setup.sh)?")
                r = run("man", "-l", page, env=dict(os.environ, MANWIDTH="120", MANPAGER="cat"))
                text = re.sub(".\b", "", r.stdout)
                self.assertIn("dynamorph - versioned migrations and bulk reshapes for Amazon DynamoDB",
                              text)
                for section in ("SYNOPSIS", "OPTIONS", "COMMANDS", "FILES", "ENVIRONMENT",
                                "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
                    self.assertRegex(text, rf"(?m)^{section}$")
                for c in names:
                    self.assertRegex(text, rf"(?m)^   dynamorph {c}$")
                    self.assertIn(f"Usage: dynamorph {c} [OPTIONS]", text)
                for s in bench:
                    self.assertRegex(text, rf"(?m)^   dynamorph bench {s}$")
                # Flags of the subcommands, not only of the top level.
                for flag in ("--dry-run", "--lock-ttl", "--worker", "--create-table", "--item-bytes"):
                    self.assertIn(flag, text)
                self.assertIn("share/doc/dynamorph/guide.md", text)
                self.assertNotIn(BUILD, text)  # no build path leaks into the page

    def test_docs_and_examples_installed(self):
        for how, root in self.roots.items():
            with self.subTest(how):
                doc = os.path.join(root, DOC)
                self.assertEqual(files_under(doc), repo_docs())
                for rel in ("guide.md", "examples/migrations/20261122101500_normalize_usernames.yaml"):
                    self.assertEqual(read(os.path.join(doc, rel), "rb"),
                                     read(os.path.join(ROOT, "docs", rel), "rb"))
                # Nothing else than the binary, the man page and the docs.
                others = {f for f in files_under(root) if not f.startswith(DOC + "/")}
                self.assertEqual(others, {"usr/bin/dynamorph", MAN})

    def test_init_and_generate_point_to_the_installed_guide(self):
        cache = read(os.path.join(BUILD, "CMakeCache.txt"))
        prefix = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", cache, re.M).group(1)
        cases = dict((how, (os.path.join(root, "usr/bin/dynamorph"), os.path.join(root, DOC, "guide.md")))
                     for how, root in self.roots.items())
        # From the build folder: where the configured prefix installs it.
        cases["build folder"] = (BIN, os.path.join(prefix, "share/doc/dynamorph/guide.md"))
        for how, (exe, guide) in cases.items():
            with self.subTest(how):
                work = tempfile.mkdtemp(dir=self.tmp)
                r = run(exe, "init", cwd=work)
                self.assertEqual(r.stdout, "wrote dynamorph.yaml\nwrote migrations/\n")
                cfg = read(os.path.join(work, "dynamorph.yaml")).splitlines()
                self.assertEqual(cfg[1], f"# Docs: man dynamorph, and the user guide {guide}")
                r = run(exe, "generate", "backfill", cwd=work)
                path = os.path.join(work, r.stdout.split()[1])
                head = read(path).splitlines()[1]
                self.assertEqual(head, f'# Format: man dynamorph, and "Migration files" in {guide}')
                self.assertNotIn("docs/guide.md", read(path))
                if how != "build folder":
                    self.assertTrue(os.path.isfile(guide), guide)

    def test_control_fields(self):
        f = lambda field: run("dpkg-deb", "-f", self.deb, field).stdout.strip()
        self.assertEqual(f("Package"), "dynamorph")
        self.assertEqual(f("Version"), VERSION)
        self.assertEqual(f("Architecture"), self.arch)
        self.assertEqual(f("Section"), "database")
        self.assertEqual(f("Priority"), "optional")
        self.assertRegex(f("Maintainer"), r"^[^<>]+ <[^@\s]+@[^>\s]+>$")
        self.assertEqual(f("Description").splitlines()[0],
                         "versioned migrations and bulk reshapes for Amazon DynamoDB")
        self.assertGreater(len(f("Description").splitlines()), 2)  # an extended description too

    def test_depends_lists_the_packages_of_the_needed_libraries(self):
        depends = run("dpkg-deb", "-f", self.deb, "Depends").stdout.strip()
        listed = {}
        for part in depends.split(","):
            m = re.fullmatch(r"\s*([a-z0-9][a-z0-9.+-]*)(?:\s*\((>=|=) ([^)]+)\))?\s*", part)
            self.assertTrue(m, f"Depends: cannot read '{part}' in '{depends}'")
            listed[m.group(1)] = m.group(3)
        need = needed_packages(os.path.join(self.unpacked, "usr/bin/dynamorph"))
        self.assertIn("libcurl.so.4", need)
        self.assertFalse([so for so, p in need.items() if p is None], need)
        self.assertEqual(set(listed), {p.split(":")[0] for p in need.values()})
        # Each with the minimum version dpkg-shlibdeps derived from the symbols used.
        self.assertFalse([p for p, v in listed.items() if not v], depends)

    def test_file_list(self):
        listing = run("dpkg-deb", "-c", self.deb).stdout
        entries = {}
        for line in listing.splitlines():
            cols = line.split(None, 5)
            entries[cols[5]] = cols[0]
        self.assertEqual(entries.get("./usr/bin/dynamorph"), "-rwxr-xr-x")
        self.assertEqual(entries.get(f"./{MAN}"), "-rw-r--r--")
        self.assertEqual(entries.get(f"./{DOC}/guide.md"), "-rw-r--r--")
        files = {p[2:] for p, mode in entries.items() if not mode.startswith("d")}
        self.assertEqual(files, files_under(self.destdir))  # the same files as cmake --install
        self.assertFalse([p for p in entries if not p.startswith("./usr/")], entries)
        # The binary is stripped in the package.
        self.assertNotIn(".symtab", run("objdump", "-h", os.path.join(self.unpacked, "usr/bin/dynamorph")).stdout)

    def test_apt_resolves_every_dependency(self):
        before = run("dpkg-query", "-W", "-f=${Status}", "dynamorph", check=False)
        r = run("apt-get", "install", "-s", "--no-install-recommends", self.deb, check=False,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"Inst dynamorph ({VERSION} local-deb [{self.arch}])", r.stdout)
        self.assertNotIn("unmet dependencies", r.stdout + r.stderr)
        # Simulation only: the package state of the machine is what it was.
        after = run("dpkg-query", "-W", "-f=${Status}", "dynamorph", check=False)
        self.assertEqual((after.returncode, after.stdout), (before.returncode, before.stdout))


if __name__ == "__main__":
    unittest.main(verbosity=2)
