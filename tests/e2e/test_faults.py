#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Faults: vmemd killed at random points of staging and of store writes, a
store that is locked, read-only or on a full filesystem, 50 hook calls at
once, 1,000 idle connections.  After each: the store is consistent, no
domain definition is lost or half rewritten, every write vmemd
acknowledged is there, and starts are answered within the hook timeout.

The kill points come from a seeded generator; the seed is printed, and
VMEM_E2E_SEED=N repeats a run.  (libvirtd killed between a start's
prepare hook and QEMU's start is test_hazards.LibvirtdCrash.)"""

import concurrent.futures
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402

# Chosen once: the module runs again in its namespace with the same
# environment.
SEED = int(os.environ.setdefault("VMEM_E2E_SEED", str(random.SystemRandom().randrange(1 << 32))))
OTHER_METADATA = "<other:note xmlns:other='urn:example:other'>keep</other:note>"


def normal(xml):
    return re.sub(r"\s+", "", xml)


def run_hook(name, op, subop, xml, timeout=30):
    """The hook as libvirt runs it: NAME OP SUBOP -, the XML on standard
    input, an environment cleared but for LC_ALL and PATH."""
    return vmemtest.run(vmemtest.HOOK, name, op, subop, "-", check=False, input=xml,
                        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, timeout=timeout)


def check_store(testcase, path):
    """The SQLite store passes its integrity and foreign key checks."""
    db = sqlite3.connect(path, timeout=30)
    try:
        testcase.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)], path)
        testcase.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [], path)
    finally:
        db.close()


def profiles(h):
    got = h.vmemctl_json("profile", "list")
    return {p["name"]: p for p in (got["profiles"] if isinstance(got, dict) else got)}


class Acked:
    """vmemctl calls run one after another on a thread; which ones vmemd
    acknowledged (exit 0) is remembered."""

    def __init__(self, h, calls):
        self.h = h
        self.calls = list(calls)
        self.done = []      # (args, rc, stderr)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for args in self.calls:
            r = self.h.vmemctl(*args, check=False, timeout=30)
            self.done.append((args, r.rc, r.stderr))
            if r.rc != 0:
                return

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(60)
        assert not self.thread.is_alive(), "a vmemctl call did not end"
        return [args for args, rc, _ in self.done if rc == 0]


class KillStaging(vmemtest.E2ETestCase):
    """SIGKILL while vmemd stages domains and writes profiles."""

    def setUp(self):
        self.host.cleanup_domains()
        self.host.start_vmemd(fresh_store=True)

    def test_sigkill_at_random_points(self):
        h = self.host
        print(f"e2e: seed {SEED} (VMEM_E2E_SEED={SEED} repeats this run)", file=sys.stderr)
        rng = random.Random(SEED)
        names = [f"k{i}" for i in range(4)]
        original = {}
        for i, n in enumerate(names):
            # Content vmemd does not know must survive every rewrite.
            h.define_guest(n, memory_mib=256 + 64 * i, current_mib=200 + 64 * i, stats_period=5,
                           metadata=OTHER_METADATA, extra_xml=f"<description>{n} kept</description>")
            original[n] = h.dumpxml(n)
        h.vmemctl("profile", "add", "kw", "--demand", "128M")
        acked_profiles = {"kw": "128M"}
        assigned = set()
        rounds = 12
        for rnd in range(rounds):
            # Each round: assignments, profile changes (each re-stages every
            # domain of the workload) and new profiles, killed after a
            # random delay.
            calls = []
            for n in rng.sample(names, 2):
                calls.append(("assign", n, "kw") if n not in assigned or rng.random() < 0.5
                             else ("unassign", n, "--restore"))
            for j in range(rng.randrange(2, 6)):
                calls.append(("profile", "set", "kw", "--demand", f"{rng.randrange(96, 192)}M"))
                calls.append(("profile", "add", f"r{rnd}p{j}", "--demand", f"{64 + j}M"))
            rng.shuffle(calls)
            delay = rng.uniform(0.0, 0.6)
            worker = Acked(h, calls).start()
            time.sleep(delay)
            pid = h.vmemd.pid
            os.kill(pid, signal.SIGKILL)
            h.vmemd.wait(10)
            h.vmemd = None
            acked = worker.join()
            print(f"e2e: round {rnd}: killed after {delay:.3f} s, {len(acked)} of {len(calls)} "
                  "calls acknowledged", file=sys.stderr)
            for args in acked:
                if args[:2] == ("profile", "add"):
                    acked_profiles[args[2]] = args[4]
                elif args[:2] == ("profile", "set"):
                    acked_profiles[args[2]] = args[4]
                elif args[0] == "assign":
                    assigned.add(args[1])
                elif args[0] == "unassign":
                    assigned.discard(args[1])
            # Unacknowledged calls may or may not have happened.
            maybe = {a[1] for a in calls if a[0] in ("assign", "unassign")} - {a[1] for a in acked}
            check_store(self, h.database)
            for n in names:
                xml = h.dumpxml(n)
                root = ET.fromstring(xml)    # whole and well-formed
                self.assertEqual(root.findtext("name"), n)
                self.assertEqual(root.findtext("description"), f"{n} kept")
                self.assertEqual(root.findtext("metadata/{urn:example:other}note"), "keep", n)
                self.assertEqual(root.findtext("uuid"), ET.fromstring(original[n]).findtext("uuid"))
                tagged = "urn:vmemd" in xml
                if n in maybe:
                    continue
                self.assertEqual(tagged, n in assigned, f"round {rnd}: {n} tagged={tagged} (seed {SEED})")
                if not tagged:
                    self.assertEqual(normal(xml), normal(original[n]), f"round {rnd}: {n} (seed {SEED})")
            h.start_vmemd()
            got = profiles(h)
            for name, demand in acked_profiles.items():
                self.assertIn(name, got, f"round {rnd}: acknowledged profile {name} lost (seed {SEED})")
            # The last acknowledged demand of kw, or a later one that was
            # being written when vmemd died.
            sets = [a[4] for a in calls if a[:3] == ("profile", "set", "kw")]
            last = acked_profiles["kw"]
            allowed = {last} | set(sets[len([a for a in acked if a[:3] == ("profile", "set", "kw")]):][:1])
            self.assertIn(f"{got['kw']['demand_mib']}M", allowed, f"round {rnd} (seed {SEED})")
            acked_profiles["kw"] = f"{got['kw']['demand_mib']}M"
            for n in maybe:
                if "urn:vmemd" in h.dumpxml(n):
                    assigned.add(n)
                else:
                    assigned.discard(n)

        # Every domain comes back as it was defined.
        for n in names:
            if "urn:vmemd" in h.dumpxml(n):
                h.vmemctl("unassign", n, "--restore")
            self.assertEqual(normal(h.dumpxml(n)), normal(original[n]), f"{n} (seed {SEED})")
        check_store(self, h.database)


def managed_xml(h, name, memory_mib, uuid):
    """A realistic domain XML of a domain tagged with workload fw: the
    persistent definition of a staged guest, renamed."""
    xml = h.dumpxml("fw-model", secure=False)
    xml = re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", xml, count=1)
    xml = re.sub(r"<uuid>[^<]*</uuid>", f"<uuid>{uuid}</uuid>", xml, count=1)
    xml = re.sub(r"<memory unit='KiB'>\d+</memory>", f"<memory unit='KiB'>{memory_mib * 1024}</memory>",
                 xml, count=1)
    return xml


class StoreFaults(vmemtest.E2ETestCase):
    """The store locked by another process, read-only, and full."""

    def setUp(self):
        h = self.host
        h.cleanup_domains()
        self.mounts = []
        self.dir = os.path.join(h.tmp, f"store-{self._testMethodName}")
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "vmemd.db")

    def tearDown(self):
        self.host.stop_vmemd()
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)

    def start(self, **overrides):
        h = self.host
        h.start_vmemd(store__database=self.db, admission__capacity="1000M", **overrides)

    def staged_model(self):
        h = self.host
        h.define_guest("fw-model", memory_mib=256)
        h.vmemctl("profile", "add", "fw", "--demand", "128M", check=False)
        h.vmemctl("assign", "fw-model", "fw")
        wait_for(lambda: "vmemd-plan" in h.dumpxml("fw-model"), timeout=20, what="fw-model staged")

    def hook_answers(self, name="fw-start", memory_mib=256, expect_allow=True):
        """A prepare of a managed domain is answered, and judged, within
        the hook timeout."""
        h = self.host
        xml = managed_xml(h, name, memory_mib, "6b1f6f2e-0000-4000-8000-00000000fa01")
        t0 = time.monotonic()
        r = run_hook(name, "prepare", "begin", xml)
        took = time.monotonic() - t0
        self.assertLess(took, h.hook_timeout + 1.0, f"the hook took {took:.2f} s")
        self.assertNotIn("not checked", r.stderr)
        self.assertEqual(r.rc == 0, expect_allow, r.stderr)
        run_hook(name, "release", "end", xml)
        return took

    def quick_status(self):
        t0 = time.monotonic()
        self.host.status()
        took = time.monotonic() - t0
        self.assertLess(took, 1.5, f"status took {took:.2f} s")

    def test_locked(self):
        h = self.host
        self.start()
        self.staged_model()
        check_store(self, self.db)
        holder = sqlite3.connect(self.db, timeout=0, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        acked, refused = [], []
        try:
            self.quick_status()
            self.hook_answers()
            # A 1 GiB domain does not fit in 1000M: refused, from memory.
            self.hook_answers("fw-big", 1024, expect_allow=False)
            for i in range(3):
                r = h.vmemctl("profile", "add", f"locked{i}", "--demand", "64M", check=False, timeout=60)
                (acked if r.rc == 0 else refused).append(f"locked{i}")
                if r.rc != 0:
                    print(f"e2e: locked store: {r.stderr.strip()}", file=sys.stderr)
                    self.assertRegex(r.stderr, r"(?i)store|database|locked|busy", r.stderr)
            self.quick_status()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        print(f"e2e: locked store: {len(acked)} writes acknowledged, {len(refused)} refused",
              file=sys.stderr)
        h.vmemctl("profile", "add", "after-lock", "--demand", "64M")
        h.start_vmemd(store__database=self.db, admission__capacity="1000M")
        got = profiles(h)
        for name in acked + ["after-lock", "fw"]:
            self.assertIn(name, got)
        for name in refused:
            self.assertNotIn(name, got, f"{name} was refused, yet stored")
        check_store(self, self.db)

    def test_read_only(self):
        h = self.host
        run = vmemtest.run
        run("mount", "--bind", self.dir, self.dir)
        self.mounts.append(self.dir)
        self.start()
        self.staged_model()
        h.vmemctl("profile", "add", "before-ro", "--demand", "64M")
        h.stop_vmemd()
        run("mount", "-o", "remount,ro,bind", self.dir)
        with open(self.db, "rb") as f:
            before = f.read()
        mark = h.log_mark()
        # vmemd on a read-only store: it may refuse to run, saying why, or
        # run without storing; either way starts go on and nothing changes.
        try:
            self.start()
            running = True
        except AssertionError as e:
            running = False
            self.assertIn(f"cannot use the store {self.db}: {self.dir} is on a read-only filesystem",
                          str(e) + h.log(mark))
        if running:
            self.quick_status()
            self.hook_answers()
            r = h.vmemctl("profile", "add", "during-ro", "--demand", "64M", check=False)
            self.assertNotEqual(r.rc, 0, "a write to a read-only store was acknowledged")
            self.assertRegex(r.stderr, r"(?i)read-only|readonly|store|database")
            h.stop_vmemd()
        else:
            # Down, vmemd lets starts go on (fail open) within the timeout.
            r = run_hook("fw-start", "prepare", "begin", managed_xml(h, "fw-start", 256, "6b1f6f2e-0000-4000-8000-00000000fa02"))
            self.assertEqual(r.rc, 0, r.stderr)
        with open(self.db, "rb") as f:
            self.assertEqual(f.read(), before, "the read-only store changed")
        run("mount", "-o", "remount,rw,bind", self.dir)
        self.start()
        got = profiles(h)
        self.assertIn("before-ro", got)
        self.assertNotIn("during-ro", got)
        h.vmemctl("profile", "add", "after-ro", "--demand", "64M")
        check_store(self, self.db)

    def test_full(self):
        h = self.host
        vmemtest.run("mount", "-t", "tmpfs", "-o", "size=3m", "vmem-full", self.dir)
        self.mounts.append(self.dir)
        self.start()
        self.staged_model()
        check_store(self, self.db)
        filler = os.path.join(self.dir, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        acked, refused = [], []
        # Large profiles (a long match pattern) fill what space is left.
        for i in range(40):
            r = h.vmemctl("profile", "add", f"full{i:02d}", "--demand", "64M",
                          "--match", f"full{i:02d}-" + "x" * 200 + "*", check=False, timeout=60)
            if r.rc == 0:
                acked.append(f"full{i:02d}")
            else:
                if not refused:
                    print(f"e2e: full store: {r.stderr.strip()}", file=sys.stderr)
                refused.append(f"full{i:02d}")
                self.assertRegex(r.stderr, r"(?i)full|space|store|database", r.stderr)
        print(f"e2e: full store: {len(acked)} writes acknowledged, {len(refused)} refused",
              file=sys.stderr)
        self.assertTrue(refused, "no write failed on a full filesystem")
        self.assertTrue(h.vmemd_running(), "vmemd died on a full filesystem")
        self.quick_status()
        self.hook_answers()
        os.remove(filler)
        wait_for(lambda: h.vmemctl("profile", "add", "after-full", "--demand", "64M", check=False).rc == 0,
                 timeout=20, what="a write once there is space again")
        h.start_vmemd(store__database=self.db, admission__capacity="1000M")
        got = profiles(h)
        for name in acked + ["after-full", "fw"]:
            self.assertIn(name, got, f"acknowledged profile {name} lost")
        for name in refused:
            self.assertNotIn(name, got, f"{name} was refused, yet stored")
        check_store(self, self.db)


class Concurrent(vmemtest.E2ETestCase):
    """50 hook calls at once, through the real hook binary."""

    def setUp(self):
        h = self.host
        h.cleanup_domains()
        # 1000 MiB for 50 starts of 96 MiB each (preallocated: the whole
        # <memory> counts): 10 fit.
        h.start_vmemd(fresh_store=True, admission__capacity="1000M", admission__reserve="0",
                      admission__reservation_timeout="300", hook__timeout_ms="5000")

    def test_fifty_prepares_at_once(self):
        h = self.host
        h.define_guest("fw-model", memory_mib=256)
        h.vmemctl("profile", "add", "fw", "--demand", "64M")
        h.vmemctl("assign", "fw-model", "fw")
        wait_for(lambda: "vmemd-plan" in h.dumpxml("fw-model"), timeout=20, what="fw-model staged")
        self.assertEqual(h.status()["reservations"], [])
        n, mib = 50, 96
        calls = [(f"fw{i:02d}", managed_xml(h, f"fw{i:02d}", mib, f"6b1f6f2e-0000-4000-8000-0000000001{i:02d}"))
                 for i in range(n)]
        start = threading.Barrier(n)

        def one(call):
            name, xml = call
            start.wait()
            t0 = time.monotonic()
            r = run_hook(name, "prepare", "begin", xml, timeout=60)
            return name, r, time.monotonic() - t0

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            results = list(pool.map(one, calls))
        took = sorted(t for _, _, t in results)
        print(f"e2e: 50 concurrent prepares: median {took[n // 2]:.2f} s, max {took[-1]:.2f} s",
              file=sys.stderr)
        admitted = sorted(name for name, r, _ in results if r.rc == 0)
        for name, r, t in results:
            self.assertNotIn("not checked", r.stderr, name)
            self.assertLess(t, h.hook_timeout + 2.0, f"{name}: {t:.2f} s")
            if r.rc != 0:
                self.assertIn(f"not enough host memory to start {name}", r.stderr)
        self.assertEqual(len(admitted), 1000 // mib, admitted)
        reservations = h.status()["reservations"]
        self.assertEqual(sorted(r["name"] for r in reservations), admitted)
        self.assertLessEqual(sum(r["mib"] for r in reservations), 1000)
        # Each release gives its place back.
        for name, xml in calls:
            run_hook(name, "release", "end", xml)
        wait_for(lambda: h.status()["reservations"] == [], timeout=10, what="the reservations to go")


class Crowd(vmemtest.E2ETestCase):
    """1,000 idle connections."""

    def setUp(self):
        self.host.cleanup_domains()

    def hold_connections(self, count, uid, gid):
        """A child process that connects count times as uid:gid, prints
        how many connections it holds and how many vmemd refused, and
        holds them until its standard input closes."""
        code = f"""
import os, socket, sys, time
os.setgroups([])
os.setgid({gid})
os.setuid({uid})
held = []
end = time.monotonic() + 60
for _ in range({count}):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            s.connect({self.host.socket!r})
            break
        except BlockingIOError:
            # The listen backlog is full: vmemd has not accepted yet.
            if time.monotonic() > end:
                raise
            time.sleep(0.01)
    held.append(s)
print(len(held), flush=True)
sys.stdin.read()
"""
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if line.strip() != str(count):
            p.kill()
            self.fail(f"the connecting process failed: {p.stderr.read()}")
        return p

    def served(self):
        h = self.host
        t0 = time.monotonic()
        h.status()
        r = run_hook("crowded", "prepare", "begin", h.dumpxml("crowded", secure=False))
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertNotIn("not checked", r.stderr)
        run_hook("crowded", "release", "end", h.dumpxml("crowded", secure=False))
        return time.monotonic() - t0

    def setup_domain(self, **overrides):
        h = self.host
        h.start_vmemd(hook__fail_closed="true", daemon__silent_timeout="600", **overrides)
        os.chmod(os.path.dirname(h.socket), 0o755)
        h.vmemctl("profile", "remove", "crowd", "--force", check=False)
        h.vmemctl("profile", "add", "crowd", "--demand", "96M")
        h.define_guest("crowded", memory_mib=128)
        h.vmemctl("assign", "crowded", "crowd")

    def test_thousand_idle_unprivileged(self):
        # Others fill their places; root and the hook keep theirs.
        h = self.host
        self.setup_domain()
        gid = os.stat(h.socket).st_gid
        holder = self.hold_connections(1000, 65534, gid)
        try:
            took = self.served()
            self.assertLess(took, 5, f"served in {took:.2f} s")
            self.assertTrue(h.vmemd_running())
            r = h.virsh("start", "crowded", check=False)
            self.assertEqual(r.rc, 0, r.stderr)
            h.virsh("destroy", "crowded")
        finally:
            holder.stdin.close()
            holder.wait(30)
        self.assertEqual(h.log_lines("cannot accept a client"), [])

    def test_thousand_idle_held(self):
        # Places for 1,000 and more: vmemd raises its descriptor limit to
        # the hard limit rather than fail at the soft one (256 here).
        h = self.host
        self.setup_domain(nofile=256, daemon__max_clients="1100")
        mark = h.log_mark()
        gid = os.stat(h.socket).st_gid
        holder = self.hold_connections(1000, 65534, gid)
        try:
            took = self.served()
            self.assertLess(took, 5, f"served in {took:.2f} s")
            with open(f"/proc/{h.vmemd.pid}/limits") as f:
                limits = f.read()
            self.assertNotRegex(limits, r"Max open files\s+256\s")
            fds = len(os.listdir(f"/proc/{h.vmemd.pid}/fd"))
            self.assertGreater(fds, 1000, "vmemd does not hold the 1,000 connections")
        finally:
            holder.stdin.close()
            holder.wait(30)
        self.assertEqual(h.log_lines("cannot accept a client", since=mark), [])


if __name__ == "__main__":
    vmemtest.main()
