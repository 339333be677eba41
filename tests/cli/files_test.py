"""Files through the command line.

- Paths in migration files (lua.file, a local source.export) cannot leave the project folder
  through `..` or a symbolic link (exit 2, file:line, nothing written); an absolute path is
  taken as written, and a relative one that stays inside (even through `..`) loads.
- Whatever the umask: `init` and `generate` write 0644 files; the journal's files are 0600 and
  the folders it makes 0700."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_test import BIN, ENDPOINT, Project, S, make_table, put_all, scan, tables_with  # noqa: E402

SCRIPT = "function transform(item, ctx)\n  item.seen = 'lua'\n  return item\nend\n"


def lua_migration(path):
    return f"""\
        version: 1
        name: seen
        up:
          - pipeline:
              source: {{ table: app }}
              transform:
                - lua: {{ file: "{path}" }}
              write: {{ mode: batch }}
        """


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def run_with_umask(args, cwd, umask):
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.umask(umask))


class PathRulesTest(unittest.TestCase):
    def setUp(self):
        self.p = Project(self)
        self.app = self.p.table("app")
        make_table(self.app)
        put_all(self.app, [{"PK": S(f"U#{i}"), "SK": S("PROFILE")} for i in range(20)])
        # A folder beside the project, as a checkout's neighbour (or ~/.aws) would be.
        self.outside = tempfile.mkdtemp(prefix="dynamorph_outside_")
        self.addCleanup(shutil.rmtree, self.outside, True)
        with open(os.path.join(self.outside, "x.lua"), "w") as f:
            f.write(SCRIPT)

    def refused(self, written, line, what="lua.file"):
        for args in (["up", "--dry-run"], ["up"], ["status"]):
            r = self.p.run(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stdout, "")
            self.assertRegex(
                r.stderr,
                rf"^dynamorph: migrations/1_seen\.yaml:{line}: {what}: '{written}' leads outside the "
                rf"project folder .* through '\.\.' or a symbolic link\); write an absolute path "
                "to use a file there\n$")
        self.assertEqual([i for i in scan(self.app) if "seen" in i], [])
        self.assertEqual(tables_with(self.p.state), [])

    def applied(self):
        r = self.p.run("up")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(i["seen"]["S"] for i in scan(self.app)), ["lua"] * 20)

    def test_dot_dot_out_of_the_project_is_refused(self):
        rel = os.path.relpath(os.path.join(self.outside, "x.lua"), os.path.join(self.p.dir, "migrations"))
        self.assertTrue(rel.startswith("../../"), rel)
        self.p.write("1_seen.yaml", lua_migration(rel))
        self.refused(rel, 7)

    def test_a_symbolic_link_out_of_the_project_is_refused(self):
        os.symlink(self.outside, os.path.join(self.p.dir, "migrations", "lua"))
        self.p.write("1_seen.yaml", lua_migration("lua/x.lua"))
        self.refused("lua/x.lua", 7)

    def test_an_absolute_path_is_taken_as_written(self):
        self.p.write("1_seen.yaml", lua_migration(os.path.join(self.outside, "x.lua")))
        self.applied()

    def test_dot_dot_that_stays_inside_loads(self):
        os.makedirs(os.path.join(self.p.dir, "lua"))
        with open(os.path.join(self.p.dir, "lua", "x.lua"), "w") as f:
            f.write(SCRIPT)
        self.p.write("1_seen.yaml", lua_migration("../lua/x.lua"))
        self.applied()

    def test_a_local_export_out_of_the_project_is_refused(self):
        rel = os.path.relpath(self.outside, self.p.dir)
        self.p.write("1_seen.yaml", f"""\
            version: 1
            name: seen
            up:
              - pipeline:
                  source: {{ export: "{rel}" }}
                  write: {{ table: app, mode: batch }}
            """)
        self.refused(rel, 5, what="export")
        # Written absolute, the same folder passes the path rule (and is then read as an export).
        self.p.write("1_seen.yaml", f"""\
            version: 1
            name: seen
            up:
              - pipeline:
                  source: {{ export: "{self.outside}" }}
                  write: {{ table: app, mode: batch }}
            """)
        r = self.p.run("up", "--dry-run")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertNotIn("leads outside", r.stderr)
        self.assertIn("manifest-summary.json", r.stderr)


class FileModesTest(unittest.TestCase):
    def test_init_and_generate_write_0644_whatever_the_umask(self):
        for umask in (0o077, 0o000, 0o022):
            with self.subTest(umask=oct(umask)):
                folder = tempfile.mkdtemp(prefix="dynamorph_modes_")
                self.addCleanup(shutil.rmtree, folder, True)
                r = run_with_umask(["init"], folder, umask)
                self.assertEqual(r.returncode, 0, r.stderr)
                r = run_with_umask(["generate", "users", "--create-table", "users",
                                    "--partition-key", "id:string"], folder, umask)
                self.assertEqual(r.returncode, 0, r.stderr)
                generated = os.path.join(folder, r.stdout.split()[-1])
                for path in (os.path.join(folder, "dynamorph.yaml"),
                             os.path.join(folder, "migrations", ".gitkeep"), generated):
                    self.assertEqual(mode(path), 0o644, path)

    def test_journal_files_are_0600_and_its_folders_0700_whatever_the_umask(self):
        for umask in (0o000, 0o022):
            with self.subTest(umask=oct(umask)):
                p = Project(self)
                with open(os.path.join(p.dir, "dynamorph.yaml"), "a") as f:
                    f.write("journal: ./journal\n")
                make_table(p.table("app"))
                put_all(p.table("app"), [{"PK": S(f"U#{i}"), "SK": S("PROFILE")} for i in range(30)])
                p.write("1_seen.yaml", """\
                    version: 1
                    name: seen
                    up:
                      - pipeline:
                          source: { table: app }
                          transform:
                            - update: "SET seen = :now"
                          write: { mode: update }
                    """)
                r = run_with_umask(["up"], p.dir, umask)
                self.assertEqual(r.returncode, 0, r.stderr)
                root = os.path.join(p.dir, "journal")
                files, dirs = [], [root]
                for dirpath, dirnames, names in os.walk(root):
                    dirs += [os.path.join(dirpath, d) for d in dirnames]
                    files += [os.path.join(dirpath, n) for n in names]
                self.assertGreater(len(files), 1)
                self.assertGreater(len(dirs), 1)
                for d in dirs:
                    self.assertEqual(mode(d), 0o700, d)
                for f in files:
                    self.assertEqual(mode(f), 0o600, f)
                r = run_with_umask(["down"], p.dir, umask)  # the journal reads back
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual([i for i in scan(p.table("app")) if "seen" in i], [])


if __name__ == "__main__":
    unittest.main()
