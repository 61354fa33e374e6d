#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tools/check-docs on a copy of the tree: it passes as the tree is, and
fails, naming the gap, when a command, an option, a configuration key or a
catalog entry goes undocumented, or a man page breaks."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

CHECK = os.environ["VMEM_CHECK_DOCS"]
SRC = os.environ["VMEM_SRCDIR"]
FILES = ["man", "data/vmemd.conf", "data/vmemd.catalog", "src/common/vmem-config.c",
         "src/daemon/vmem-log.c"]


class CheckDocs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        for rel in FILES:
            src, dst = os.path.join(SRC, rel), os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)

    def tearDown(self):
        self.tmp.cleanup()

    def edit(self, rel, old, new, count=1):
        path = os.path.join(self.root, rel)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.assertIn(old, text, f"{rel} no longer holds the text this test edits")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new, count))

    def check(self, only):
        r = subprocess.run([sys.executable, CHECK, "--only", only, self.root],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return r.returncode, r.stdout

    def assert_fails(self, only, pattern):
        rc, out = self.check(only)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, pattern)

    def test_tree_passes(self):
        for only in ("vmemctl", "vmemd", "config", "man", "catalog"):
            rc, out = self.check(only)
            self.assertEqual(rc, 0, out)

    def test_command_without_section(self):
        self.edit("man/vmemctl.8", '.SS "history', '.SS "past')
        self.assert_fails("vmemctl", r"command 'history'.*no section")

    def test_option_missing(self):
        self.edit("man/vmemctl.8", ".B \\-\\-no\\-match\n", ".B \\-\\-no\\-pattern\n")
        self.assert_fails("vmemctl", r"option --no-match of 'profile'")

    def test_replay_option_missing(self):
        self.edit("man/vmemctl.8", ".BI \\-\\-estimator", ".BI \\-\\-method")
        self.assert_fails("vmemctl", r"option --estimator of 'replay'")

    def test_global_option_elsewhere(self):
        self.edit("man/vmemctl.8", ".BI \\-\\-timeout \" SEC\"", ".BI \\-\\-wait \" SEC\"")
        self.assert_fails("vmemctl", r"global option --timeout")

    def test_daemon_option_missing(self):
        self.edit("man/vmemd.8", ".BR \\-\\-log\\-level", ".BR \\-\\-verbosity")
        self.assert_fails("vmemd", r"option --log-level \(vmemd --help\)")

    def test_config_key_undocumented(self):
        self.edit("src/common/vmem-config.c",
                  '  { "hook", "fail_closed",',
                  '  { "hook", "retries", KEY_UINT, OFF (fail_closed), 0, 9 },\n'
                  '  { "hook", "fail_closed",')
        rc, out = self.check("config")
        self.assertEqual(rc, 1, out)
        self.assertIn("[hook] retries (accepted by the loader) is not documented", out)
        self.assertIn("[hook] retries (accepted by the loader) is not in data/vmemd.conf", out)

    def test_config_key_in_wrong_section(self):
        self.edit("man/vmemd.conf.5", ".BR fail_closed ", ".BR failclosed ")
        rc, out = self.check("config")
        self.assertEqual(rc, 1, out)
        self.assertIn("[hook] fail_closed (accepted by the loader) is not documented", out)
        self.assertIn("documents [hook] failclosed, which the loader does not accept", out)

    def test_man_lint(self):
        self.edit("man/vmem-hook.8", ".SH DESCRIPTION\n", ".SH DESCRIPTION\n.XY bogus\n")
        self.assert_fails("man", r"vmem-hook\.8")

    def test_catalog_entry_missing(self):
        path = os.path.join(self.root, "data/vmemd.catalog")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"^-- 486280cfa7f34787b856c0627743c36a\n.*?(?=^-- )", "", text,
                      flags=re.M | re.S)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        self.assert_fails("catalog", r"event refused \(486280cfa7f34787b856c0627743c36a\)")

    def test_event_without_id(self):
        os.makedirs(os.path.join(self.root, "src/daemon/host"), exist_ok=True)
        with open(os.path.join(self.root, "src/daemon/host/extra.c"), "w") as f:
            f.write('void f (void) { vmem_log_decision (n, w, "shrunk", "%s shrunk", n); }\n')
        self.assert_fails("catalog", r"event 'shrunk' is logged")


if __name__ == "__main__":
    unittest.main(verbosity=2)
