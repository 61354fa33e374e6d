#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bash completion of vmemctl (data/completion/vmemctl): its word lists
are those of vmemctl --help and each command's help, and its function
completes commands, options, values, and workload and domain names asked of
a fake vmemctl, giving nothing when that one says vmemd is down."""
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest

SRC = os.environ["VMEM_SRCDIR"]
VMEMCTL = os.environ["VMEMCTL"]
COMPLETION = os.path.join(SRC, "data", "completion", "vmemctl")
BASH = shutil.which("bash")

loader = importlib.machinery.SourceFileLoader("check_docs", os.path.join(SRC, "tools", "check-docs"))
spec = importlib.util.spec_from_loader("check_docs", loader)
docs = importlib.util.module_from_spec(spec)
loader.exec_module(docs)

FAKE = textwrap.dedent("""\
    #!/bin/sh
    # Records its arguments; answers like vmemctl --json, or like a vmemctl
    # whose daemon is down.
    echo "$*" >> "$FAKE_LOG"
    [ -n "$FAKE_DOWN" ] && { echo "vmemctl: cannot reach vmemd" >&2; exit 4; }
    case "$*" in
      *"profile list"*) cat <<'EOF'
    [
      {
        "name": "erp",
        "demand_mib": 2048,
        "mode": "balloon"
      },
      {
        "name": "web",
        "match": "web-*"
      }
    ]
    EOF
      ;;
      *status*) cat <<'EOF'
    {
      "host": "hostA",
      "reservations": [ { "name": "web-2", "mib": 512 } ],
      "domains": [
        { "name": "erp-db-1", "workload": "erp" },
        { "name": "web-1", "workload": "web" },
        { "name": "web-2", "workload": null }
      ]
    }
    EOF
      ;;
      *) exit 2 ;;
    esac
    """)


def words(text):
    return set(text.split())


class Completion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.bin = os.path.join(cls.tmp.name, "bin")
        os.makedirs(cls.bin)
        fake = os.path.join(cls.bin, "vmemctl")
        with open(fake, "w") as f:
            f.write(FAKE)
        os.chmod(fake, 0o755)
        cls.log = os.path.join(cls.tmp.name, "calls")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def bash(self, script, down=False):
        env = dict(os.environ, PATH=self.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                   FAKE_LOG=self.log, FAKE_DOWN="1" if down else "")
        r = subprocess.run([BASH, "--norc", "--noprofile", "-c",
                            f'source "{COMPLETION}" || exit 9\n{script}'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=self.tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def context_words(self, ctx):
        return words(self.bash(f'_vmemctl_words "{ctx}"'))

    def complete(self, line, down=False):
        """Completes the last word of @line (a trailing space: a new word)."""
        ws = line.split()
        if line.endswith(" "):
            ws.append("")
        arr = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ws)
        out = self.bash(f"COMP_WORDS=({arr}); COMP_CWORD={len(ws) - 1}; _vmemctl\n"
                        'printf "%s\\n" "${COMPREPLY[@]}"', down=down)
        return set(w for w in out.splitlines() if w)

    def help(self, *args):
        r = subprocess.run([VMEMCTL, *args], stdout=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 0)
        return r.stdout

    # --- the word lists are vmemctl's --help ------------------------------

    def test_commands_match_help(self):
        commands = docs.help_commands(self.help("--help"))
        self.assertEqual(self.context_words("commands"),
                         {c.split()[0] for c in commands})
        self.assertEqual(self.context_words("profile"),
                         {c.split()[1] for c in commands if c.startswith("profile ")})

    def test_global_options_match_help(self):
        self.assertEqual(self.context_words("global"),
                         docs.global_help_options(self.help("--help")))

    def test_command_options_match_help(self):
        top = self.help("--help")
        for first in {c.split()[0] for c in docs.help_commands(top)}:
            text = re.sub(r"^Global options.*", "", self.help("help", first), flags=re.M | re.S)
            expected = docs.options_in(text) - {"-h", "--help"}
            ctxs = [first]
            if first == "profile":
                ctxs = ["profile " + w for w in self.context_words("profile")]
            got = set().union(*(self.context_words(c) for c in ctxs))
            if first == "replay":
                expected |= docs.options_in(self.help("replay", "--help"))
            self.assertEqual(got, expected, first)

    def test_profile_subcommand_options_match_synopsis(self):
        text = self.help("help", "profile")
        for sub in self.context_words("profile"):
            m = re.search(rf"vmemctl profile {sub}\b(.*)", text)
            opts = docs.options_in(m.group(1))
            if "[OPTIONS]" in m.group(1):
                m2 = re.search(r"^Profile options.*?(?=^\S|\Z)", text, re.M | re.S)
                opts |= docs.options_in(m2.group(0))
            self.assertEqual(self.context_words("profile " + sub), opts, sub)

    # --- the completion function -------------------------------------------

    def test_commands(self):
        self.assertEqual(self.complete("vmemctl "), self.context_words("commands"))
        self.assertEqual(self.complete("vmemctl un"), {"unassign"})
        self.assertEqual(self.complete("vmemctl --json profile "), self.context_words("profile"))
        self.assertEqual(self.complete("vmemctl help ex"), {"explain"})

    def test_options(self):
        self.assertEqual(self.complete("vmemctl profile add erp --de"), {"--demand"})
        self.assertEqual(self.complete("vmemctl unassign web-1 --re"), {"--restore"})
        self.assertEqual(self.complete("vmemctl --so"), {"--socket"})
        self.assertEqual(self.complete("vmemctl replay --es"), {"--estimator"})
        self.assertEqual(self.complete("vmemctl history web-1 --l"), {"--limit"})

    def test_values(self):
        self.assertEqual(self.complete("vmemctl profile set erp --mode "),
                         {"balloon", "observe", "virtio-mem"})
        self.assertEqual(self.complete("vmemctl profile add x --prealloc o"), {"on", "off"})
        self.assertEqual(self.complete("vmemctl profile add x --scale p"), {"per-vcpu"})
        self.assertEqual(self.complete("vmemctl replay --estimator v"), {"vmemd", "vpa"})
        self.assertEqual(self.complete("vmemctl profile add x --demand "), set())

    def test_workloads_and_domains(self):
        self.assertEqual(self.complete("vmemctl profile show "), {"erp", "web"})
        self.assertEqual(self.complete("vmemctl profile set e"), {"erp"})
        self.assertEqual(self.complete("vmemctl assign "), {"erp-db-1", "web-1", "web-2"})
        self.assertEqual(self.complete("vmemctl assign web-2 "), {"erp", "web"})
        self.assertEqual(self.complete("vmemctl assign web-2 erp "), set())
        self.assertEqual(self.complete("vmemctl explain w"), {"web-1", "web-2"})
        self.assertEqual(self.complete("vmemctl explain --workload "), {"erp", "web"})
        self.assertEqual(self.complete("vmemctl --timeout 5 history erp"), {"erp-db-1"})

    def test_socket_is_passed_on(self):
        open(self.log, "w").close()
        self.complete("vmemctl --socket /tmp/x.sock unassign ")
        with open(self.log) as f:
            calls = f.read()
        self.assertIn("--socket /tmp/x.sock", calls)
        self.assertIn("--json status", calls)

    def test_daemon_down_is_quiet(self):
        env = dict(os.environ, PATH=self.bin + ":" + os.environ.get("PATH", ""),
                   FAKE_LOG=self.log, FAKE_DOWN="1")
        r = subprocess.run([BASH, "--norc", "-c",
                            f'source "{COMPLETION}"; COMP_WORDS=(vmemctl assign ""); '
                            'COMP_CWORD=2; _vmemctl; echo "n=${#COMPREPLY[@]}"'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.strip(), "n=0")
        self.assertEqual(r.stderr, "")

    def test_files(self):
        with open(os.path.join(self.tmp.name, "trace.csv"), "w"):
            pass
        self.assertIn("trace.csv", self.complete("vmemctl replay tr"))
        self.assertIn("trace.csv", self.complete("vmemctl profile import tr"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
