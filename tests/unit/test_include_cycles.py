# SPDX-License-Identifier: LGPL-2.1-or-later
"""tools/check-include-cycles on small fake trees: it passes a tree without
a cycle, fails one with a cycle and prints it, and groups files into modules
as its header says."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.environ.get("VMEM_CHECK_INCLUDE_CYCLES",
                      os.path.join(HERE, "..", "..", "tools", "check-include-cycles"))


class Tree:
    """A temporary source root; files are given as {relative path: text}."""

    def __init__(self, files):
        self.tmp = tempfile.TemporaryDirectory(prefix="vmem-include-cycles-")
        self.root = self.tmp.name
        for rel, text in files.items():
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)

    def run(self, *args):
        return subprocess.run([sys.executable, TOOL, *args, self.root],
                              capture_output=True, text=True, timeout=60)

    def close(self):
        self.tmp.cleanup()


def inc(*names):
    return "".join('#include "%s"\n' % n for n in names)


class CheckIncludeCycles(unittest.TestCase):
    def tree(self, files):
        t = Tree(files)
        self.addCleanup(t.close)
        return t

    def assert_exit(self, r, code):
        self.assertEqual(r.returncode, code,
                         "exit %d, wanted %d\nstdout:\n%s\nstderr:\n%s"
                         % (r.returncode, code, r.stdout, r.stderr))

    def test_acyclic_tree_passes_with_a_summary(self):
        t = self.tree({
            "src/common/err.c": inc("err.h"),
            "src/common/err.h": "#include <glib.h>\n",
            "src/core/xml.c": inc("xml.h", "err.h"),
            "src/core/xml.h": inc("err.h"),
            "src/daemon/daemon.c": inc("daemon.h", "daemon-private.h", "xml.h", "config.h"),
            "src/daemon/daemon.h": "",
            "src/daemon/daemon-private.h": inc("daemon.h"),
        })
        r = t.run()
        self.assert_exit(r, 0)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        # xml -> err and daemon -> xml; a module's own headers, config.h
        # (generated, not in the tree) and <glib.h> make no edge.
        self.assertIn("3 modules, 2 edges", lines[0])
        self.assertNotIn("->", r.stdout)

    def test_two_module_cycle_fails_and_is_printed(self):
        t = self.tree({
            "src/daemon/daemon.c": inc("daemon-private.h", "collector.h"),
            "src/daemon/daemon.h": "",
            "src/daemon/daemon-private.h": inc("daemon.h"),
            "src/daemon/host/collector.c": inc("collector.h"),
            "src/daemon/host/collector.h": inc("daemon-private.h"),
        })
        r = t.run()
        self.assert_exit(r, 1)
        self.assertIn("collector -> daemon -> collector", r.stdout.splitlines())
        # The report names the include lines behind each edge.
        self.assertIn('src/daemon/host/collector.h:1 #include "daemon-private.h"', r.stdout)
        self.assertIn('src/daemon/daemon.c:2 #include "collector.h"', r.stdout)

    def test_every_cycle_is_printed_once_from_its_smallest_module(self):
        t = self.tree({
            "src/a.c": inc("a.h", "b.h"),
            "src/a.h": "",
            "src/b.c": inc("b.h", "c.h"),
            "src/b.h": "",
            "src/c.c": inc("c.h", "a.h", "b.h"),
            "src/c.h": "",
        })
        r = t.run()
        self.assert_exit(r, 1)
        cycles = [l for l in r.stdout.splitlines() if not l.startswith(" ") and " -> " in l]
        self.assertEqual(cycles, ["b -> c -> b", "a -> b -> c -> a"])

    def test_max_cycles_limits_what_is_printed(self):
        # Four modules that all include each other: 20 elementary cycles.
        names = ["a", "b", "c", "d"]
        files = {}
        for n in names:
            files["src/%s.c" % n] = inc(*["%s.h" % m for m in names])
            files["src/%s.h" % n] = ""
        t = self.tree(files)
        r = t.run()
        self.assert_exit(r, 1)
        self.assertIn(": 20 include cycles among 4 modules", r.stdout)
        r = t.run("--max-cycles", "3")
        self.assert_exit(r, 1)
        cycles = [l for l in r.stdout.splitlines() if not l.startswith(" ") and " -> " in l]
        self.assertEqual(len(cycles), 3, r.stdout)
        self.assertIn("more than 3 include cycles", r.stdout)

    def test_backend_belongs_to_its_module(self):
        # store-sqlite.c has no header and includes store-private.h: it is
        # part of "store", so store and its backend make no cycle.
        t = self.tree({
            "src/daemon/store/store.c": inc("store-private.h"),
            "src/daemon/store/store.h": "",
            "src/daemon/store/store-private.h": inc("store.h"),
            "src/daemon/store/store-sqlite.c": inc("store-private.h"),
            "src/daemon/demand.c": inc("demand.h"),
            "src/daemon/demand.h": inc("store.h"),
        })
        r = t.run("--verbose")
        self.assert_exit(r, 0)
        self.assertIn("module store: src/daemon/store/store-private.h "
                      "src/daemon/store/store-sqlite.c src/daemon/store/store.c "
                      "src/daemon/store/store.h", r.stdout)
        self.assertIn("2 modules, 1 edge,", r.stdout)

    def test_other_private_header_includer_stays_its_own_module(self):
        # A file with its own header that includes another module's private
        # header is not a backend: that include is an edge.
        t = self.tree({
            "src/daemon.c": inc("daemon-private.h", "stager.h"),
            "src/daemon-private.h": "",
            "src/stager.c": inc("stager.h"),
            "src/stager.h": inc("daemon-private.h"),
        })
        r = t.run()
        self.assert_exit(r, 1)
        self.assertIn("daemon -> stager -> daemon", r.stdout.splitlines())

    def test_hooks_are_read_and_header_only_modules_count(self):
        t = self.tree({
            "src/common/cleanup.h": inc("hook-lib.h"),
            "hooks/hook-lib.c": inc("hook-lib.h"),
            "hooks/hook-lib.h": inc("cleanup.h"),
        })
        r = t.run()
        self.assert_exit(r, 1)
        self.assertIn("cleanup -> hook-lib -> cleanup", r.stdout.splitlines())

    def test_dot_prints_the_graph_and_keeps_the_exit_status(self):
        t = self.tree({
            "src/a.c": inc("a.h", "b.h"),
            "src/a.h": "",
            "src/b.c": inc("b.h", "a.h", "c.h"),
            "src/b.h": "",
            "src/c.c": inc("c.h"),
            "src/c.h": "",
        })
        r = t.run("--dot")
        self.assert_exit(r, 1)
        self.assertTrue(r.stdout.startswith("digraph "), r.stdout)
        self.assertTrue(r.stdout.rstrip().endswith("}"), r.stdout)
        self.assertIn('"a" -> "b" [color=red];', r.stdout)
        self.assertIn('"b" -> "c";', r.stdout)
        self.assertIn("a -> b -> a", r.stderr.splitlines())

    def test_dot_without_a_cycle_exits_0(self):
        t = self.tree({"src/a.c": inc("a.h"), "src/a.h": ""})
        r = t.run("--dot")
        self.assert_exit(r, 0)
        self.assertIn('"a";', r.stdout)

    def test_same_name_twice_is_an_error(self):
        t = self.tree({
            "src/x/util.h": "",
            "src/y/util.h": "",
        })
        r = t.run()
        self.assert_exit(r, 2)
        self.assertIn("two files named util.h", r.stderr)

    def test_no_source_directory_is_an_error(self):
        t = self.tree({"README": ""})
        r = t.run()
        self.assert_exit(r, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
