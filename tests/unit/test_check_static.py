#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tools/check-static on small trees: it fails on a finding, says where,
and passes a clean tree."""

import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.environ["VMEM_CHECK_STATIC"]


def check(files):
    with tempfile.TemporaryDirectory() as top:
        for path, text in files.items():
            os.makedirs(os.path.join(top, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(top, path), "w") as f:
                f.write(text)
        p = subprocess.run([SCRIPT, top], capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr


class CheckStatic(unittest.TestCase):
    def test_leak_found(self):
        rc, out = check({"src/core/leak.c": "#include <stdlib.h>\n"
                         "int f(int n)\n{\n  char *p = malloc(16);\n  if (n > 0)\n    return n;\n"
                         "  free(p);\n  return 0;\n}\n"})
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"src/core/leak.c:6: error: memleak: ")

    def test_glib_leak_found(self):
        rc, out = check({"hooks/leak.c": "#include <glib.h>\n"
                         "int f(int n)\n{\n  char *p = g_strdup(\"x\");\n  if (n > 0)\n    return n;\n"
                         "  g_free(p);\n  return 0;\n}\n"})
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"hooks/leak.c:6: error: memleak: ")

    def test_thread_unsafe_call_found(self):
        rc, out = check({"src/a.c": "#include <grp.h>\n"
                         "int f(void)\n{\n  struct group *g = getgrnam(\"x\");\n  return g != 0;\n}\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("getgrnamCalled", out)

    def test_clean_tree_passes(self):
        rc, out = check({"src/ok.c": "#include <glib.h>\n"
                         "int f(int n)\n{\n  g_autofree char *p = g_strdup_printf(\"%d\", n);\n"
                         "  return (int) strlen(p);\n}\n"})
        self.assertEqual(rc, 0, out)

    def test_nothing_to_check_fails(self):
        rc, out = check({"README": "x\n"})
        self.assertEqual(rc, 1, out)
        self.assertIn("no src/ or hooks/", out)


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if r.wasSuccessful() else 1)
