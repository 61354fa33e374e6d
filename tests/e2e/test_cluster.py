#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Several hosts on one PostgreSQL store: two private libvirtds, each in its
own mount namespace with its own host_uuid and loopback address, two vmemds
with their own host names on one PostgreSQL server.  A managed domain
migrated live from host a to host b is admitted by b's hook against b's
capacity (and refused, the domain running on at a, when b is too small),
gets b's plan through the `migrate begin` XML, and both hosts' committed
memory, reservations and runs follow it.  Through the store, a domain on b
is staged from the real usage of its workload's running peer on a, and a
profile changed on a re-stages it; PostgreSQL stopped for 30 s loses no
sample and blocks no start, and a domain defined, staged, started, moved and
stopped while it is away has its plans, its run (opened and closed) and its
moves in the store afterwards, each exactly once."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402

PREALLOC = r'"prealloc":true|prealloc=on'


def actual_kib(host, name):
    return host.dommemstat(name)["actual"]


def domain(status, name):
    return next((d for d in status["domains"] if d["name"] == name), None)


class TwoHosts(vmemtest.ClusterTestCase):
    """The harness itself: two hosts, apart, on one store."""

    def test_two_hosts_apart_on_one_store(self):
        a, b = self.a, self.b
        a.start_vmemd()
        b.start_vmemd()
        # Each libvirtd is its own host, reachable on its own address.
        uuids = {h.name: re.search(r"<uuid>([^<]+)</uuid>",
                                   vmemtest.run("virsh", "-c", h.remote_uri, "capabilities").stdout).group(1)
                 for h in (a, b)}
        self.assertEqual(uuids, {"a": a.host_uuid, "b": b.host_uuid})
        self.assertNotEqual(os.readlink(f"/proc/{a.vmemd.pid}/ns/mnt"),
                            os.readlink(f"/proc/{b.vmemd.pid}/ns/mnt"))
        # A domain defined on one is not seen on the other.
        a.define_guest("only-a", memory_mib=128)
        self.assertIn("only-a", a.domains())
        self.assertNotIn("only-a", b.domains())
        # Both daemons use the one PostgreSQL database, under their own names.
        sa, sb = a.status(), b.status()
        self.assertEqual((sa["store"], sb["store"]), ("postgres", "postgres"))
        self.assertEqual((sa["host"], sb["host"]), ("host-a", "host-b"))
        # A profile written through one host is in the store the other reads.
        a.vmemctl("profile", "add", "shared", "--demand", "160M")
        b.start_vmemd()
        self.assertIn("shared", [p["name"] for p in b.vmemctl_json("profile", "list")])
        a.vmemctl("profile", "remove", "shared", "--force")
        a.virsh("undefine", "only-a")


class Migration(vmemtest.ClusterTestCase):
    """`virsh migrate --live` from a to b."""

    def setUp(self):
        for h in (self.a, self.b):
            h.cleanup_domains()
        self.a.start_vmemd()
        self.a.vmemctl("profile", "remove", "mig", "--force", check=False)
        self.a.vmemctl("profile", "add", "mig", "--demand", "192M")

    def start_unstaged(self, name):
        """A guest on a started before it was assigned (so that it runs
        without preallocation and at its whole <memory>), then assigned:
        the running instance carries the tag."""
        a = self.a
        a.define_guest(name, memory_mib=320, workload_mib=32, stats_period=2)
        a.start_guest(name, wait=True)
        self.assertNotRegex(a.qemu_cmdline(name), PREALLOC)
        a.vmemctl("assign", name, "mig")
        wait_for(lambda: "urn:vmemd" in a.domain_xml(name, inactive=False), timeout=10,
                 what=f"the tag in {name}'s live XML")
        wait_for(lambda: (domain(a.status(), name) or {}).get("managed"), timeout=15,
                 what=f"{name} managed on a")

    def migrate(self, name, check=True):
        return vmemtest.run("virsh", "-c", vmemtest.URI, "migrate", "--live", "--verbose",
                            "--timeout", "60", name, self.b.remote_uri, check=check, timeout=180)

    def test_migrated_domain_gets_b_plan_and_memory_follows(self):
        a, b = self.a, self.b
        b.start_vmemd(admission__capacity="2000M")
        self.start_unstaged("mig1")
        wait_for(lambda: domain(a.status(), "mig1")["current_mib"] == 320, timeout=15,
                 what="mig1 at 320 MiB on a")
        committed_a = a.status()["committed_mib"]
        self.assertGreaterEqual(committed_a, 320)
        self.assertIsNone(domain(b.status(), "mig1"))
        committed_b = b.status()["committed_mib"]
        mark_b = b.log_mark()

        self.migrate("mig1")

        self.assertEqual(b.domstate("mig1"), "running")
        self.assertEqual(a.domstate("mig1"), "shut off")
        # b's hook admitted it against b's capacity and put b's plan into
        # the incoming XML: QEMU on b preallocates.
        b.wait_log("hook prepare begin", "mig1", "workload mig", since=mark_b)
        b.wait_log("mig1", "preallocation staged in the incoming XML", since=mark_b)
        self.assertRegex(b.qemu_cmdline("mig1"), PREALLOC)
        self.assertIn("<allocation mode='immediate'/>", b.domain_xml("mig1", inactive=False))
        # Once it runs on b, b sets its balloon target to the demand.
        b.wait_log("balloon target of mig1 set to 192M", since=mark_b, timeout=30)
        wait_for(lambda: abs(actual_kib(b, "mig1") - 192 * 1024) <= 8 * 1024, timeout=180, interval=1,
                 what="mig1's balloon at 192 MiB on b")
        # (A balloon that moves is a guest that kept running through the move.)

        # Committed memory and reservations follow it: b counts it, a no more.
        wait_for(lambda: (domain(b.status(), "mig1") or {}).get("state") == "running", timeout=15,
                 what="mig1 running in b's status")
        wait_for(lambda: b.status()["reservations"] == [], timeout=30,
                 what="b's boot reservation of mig1 released")
        wait_for(lambda: 190 <= b.status()["committed_mib"] - committed_b <= 330, timeout=30,
                 what="b committing mig1")
        wait_for(lambda: b.status()["committed_mib"] - committed_b <= 200, timeout=180, interval=1,
                 what="b committing mig1 at its balloon of 192 MiB")
        wait_for(lambda: domain(a.status(), "mig1")["state"] == "shut-off", timeout=15,
                 what="mig1 shut off in a's status")
        wait_for(lambda: a.status()["committed_mib"] <= committed_a - 320, timeout=15,
                 what="a no longer committing mig1")
        self.assertEqual(a.status()["reservations"], [])
        # In the store, the run on b is open under b's plan; a's stop of
        # its side of the move leaves it open.
        uuid = b.virsh("domuuid", "mig1").stdout.strip()
        runs = lambda: self.cluster.psql(None, "SELECT host, coalesce(stop_reason, 'open'), demand_mib FROM runs"
                                               f" WHERE uuid = '{uuid}' ORDER BY id").split()
        wait_for(lambda: runs() == ["host-b|open|192"], timeout=20, what="mig1's open run on host-b")
        b.virsh("destroy", "mig1")
        wait_for(lambda: runs() == ["host-b|stopped|192"], timeout=20, what="mig1's run on host-b closed")

    def test_migration_refused_when_b_is_too_small(self):
        a, b = self.a, self.b
        # mig2 preallocates its whole 320 MiB on b: more than b has.
        b.start_vmemd(admission__capacity="256M")
        self.start_unstaged("mig2")
        committed_a = a.status()["committed_mib"]
        mark_b = b.log_mark()

        r = self.migrate("mig2", check=False)

        self.assertNotEqual(r.rc, 0, r.stdout)
        self.assertIn("not enough host memory to start mig2", r.stderr)
        b.wait_log("not enough host memory to start mig2", since=mark_b)
        # Nothing moved: it runs on a as before, b has no trace of it.
        self.assertEqual(a.domstate("mig2"), "running")
        self.assertNotIn("mig2", b.domains())
        self.assertRegex(a.console("mig2"), r"vmem-guest: workload 32 MiB loaded")
        self.assertEqual(domain(a.status(), "mig2")["state"], "running")
        self.assertEqual(a.status()["committed_mib"], committed_a)
        wait_for(lambda: b.status()["reservations"] == [], timeout=30,
                 what="no reservation left on b")
        self.assertIsNone(domain(b.status(), "mig2"))
        a.virsh("destroy", "mig2")


def current_mib(xml):
    m = re.search(r"<currentMemory unit='KiB'>(\d+)</currentMemory>", xml)
    return int(m.group(1)) // 1024 if m else None


class SharedStore(vmemtest.ClusterTestCase):
    """What the hosts learn from each other through the store, and what
    happens while it is away."""

    def setUp(self):
        a, b = self.a, self.b
        for h in (a, b):
            h.cleanup_domains()
        # No minimum history, so that a few minutes of a peer count.
        a.start_vmemd(estimator__min_history_hours="0")
        for name, demand in (("wpeer", "448M"), ("wprof", "160M"), ("wdown", "160M")):
            a.vmemctl("profile", "remove", name, "--force", check=False)
            a.vmemctl("profile", "add", name, "--demand", demand)
        b.start_vmemd(estimator__min_history_hours="0")

    def staged(self, h, name, mib, timeout=30):
        return wait_for(lambda: current_mib(h.dumpxml(name)) == mib and "vmemd-plan" in h.dumpxml(name),
                        timeout=timeout, what=f"{name} staged at {mib} MiB on {h.name}")

    def test_b_stages_from_the_usage_of_a_running_peer_on_a(self):
        a, b = self.a, self.b
        a.define_guest("wpeer-a", memory_mib=512, workload_mib=128, stats_period=2)
        a.vmemctl("assign", "wpeer-a", "wpeer")
        self.staged(a, "wpeer-a", 448)
        a.start_guest("wpeer-a", wait=True)
        b.define_guest("wpeer-b", memory_mib=512)
        b.vmemctl("assign", "wpeer-b", "wpeer")

        def staged_from_peers():
            x = b.vmemctl_json("explain", "wpeer-b")
            return x if (x["plan"]["source"] == "peers" and x.get("staged", {}).get("source") == "peers"
                         and x["staged"]["demand_mib"] > 128) else None

        x = wait_for(staged_from_peers, timeout=240, interval=2,
                     what="wpeer-b on b staged from wpeer-a's usage on a")
        demand = x["staged"]["demand_mib"]
        self.assertLess(demand, 448, "the demand comes from the peer, not the manual 448M")
        peers = [(p["name"], p["host"]) for p in x["plan"]["estimate"]["peers"]]
        self.assertEqual(peers, [("wpeer-a", a.status()["host"])])
        self.assertEqual(current_mib(b.dumpxml("wpeer-b")), demand)
        out = b.vmemctl("explain", "wpeer-b").stdout
        self.assertIn("wpeer-a", out)
        self.assertIn(a.status()["host"], out)
        a.virsh("destroy", "wpeer-a")

    def test_profile_changed_on_a_restages_on_b(self):
        a, b = self.a, self.b
        b.define_guest("wprof-b", memory_mib=512)
        b.vmemctl("assign", "wprof-b", "wprof")
        self.staged(b, "wprof-b", 160)
        a.vmemctl("profile", "set", "wprof", "--demand", "224M")
        self.staged(b, "wprof-b", 224, timeout=60)
        self.assertEqual(b.vmemctl_json("explain", "wprof-b")["plan"]["demand_mib"], 224)

    def test_database_away_loses_no_write_and_blocks_no_start(self):
        a, b = self.a, self.b
        c = self.cluster
        interval = int(a.config["daemon"]["stats_interval"])
        a.define_guest("wdown-1", memory_mib=256, workload_mib=32, stats_period=2)
        a.vmemctl("assign", "wdown-1", "wdown")
        self.staged(a, "wdown-1", 160)
        a.start_guest("wdown-1", wait=True)
        uuid1 = a.virsh("domuuid", "wdown-1").stdout.strip()

        def samples(uuid, since=0):
            out = c.psql(None, "SELECT t FROM samples s JOIN domain_ids d ON d.id = s.domain_id"
                         f" WHERE d.uuid = '{uuid}' AND t >= {since} ORDER BY t")
            return [int(t) for t in out.split()]

        wait_for(lambda: len(samples(uuid1)) >= 2, timeout=60, what="wdown-1's samples in PostgreSQL")
        a.define_guest("wdown-2", memory_mib=256, workload_mib=16, stats_period=2)
        a.vmemctl("assign", "wdown-2", "wdown")
        # (Staged from wdown-1's usage by now, or from the profile.)
        wait_for(lambda: "vmemd-plan" in a.dumpxml("wdown-2"), timeout=30, what="wdown-2 staged on a")

        mark = a.log_mark()

        def moves_logged():
            """The controller's decisions for wdown-3 in the log: (action,
            from, to), oldest first."""
            return [m.groups() for m in (re.search(r"(?:would )?(grow|shrink|stuck) wdown-3 from (\S+) to (\S+)", ln)
                                          for ln in a.log_lines("wdown-3 from", since=mark)) if m]

        down = time.time()
        c.pg_stop()
        try:
            time.sleep(5)
            # A start while the database is away: vmemd answers the hook
            # from memory, within its budget.
            took = a.start_guest("wdown-2")
            a.wait_log("start of wdown-2 admitted", since=mark)
            self.assertEqual(a.log_lines("gave up waiting", since=mark), [])
            self.assertLess(took, 30)
            self.assertTrue(a.vmemd_running() and b.vmemd_running())
            self.assertTrue(a.status()["libvirt_connected"])
            # A whole life while it is away: defined and assigned (a plan),
            # started (a run opened), moved by the controller (its workload
            # leaves less than its buffer free at the staged size: a grow),
            # stopped (the run closed).  None of it may be lost or written
            # twice.
            a.define_guest("wdown-3", memory_mib=256, workload_mib=40, stats_period=2)
            a.vmemctl("assign", "wdown-3", "wdown")
            wait_for(lambda: "vmemd-plan" in a.dumpxml("wdown-3"), timeout=30, what="wdown-3 staged on a")
            a.start_guest("wdown-3")
            wait_for(lambda: moves_logged(), timeout=240, interval=2, what="a move of wdown-3 decided")
            a.virsh("destroy", "wdown-3")
            wait_for(lambda: (domain(a.status(), "wdown-3") or {}).get("state") == "shut-off", timeout=30,
                     what="wdown-3 seen stopped")
            waiting = a.status()["store_waiting"]
            self.assertGreater(waiting["writes"], 0, f"no write waits for the store: {waiting}")
            self.assertIn("other writes (the store cannot be written", a.vmemctl("status").stdout)
            time.sleep(max(0.0, down + 30 - time.time()))
        finally:
            c.pg_start()
        up = time.time()
        uuid2 = a.virsh("domuuid", "wdown-2").stdout.strip()
        uuid3 = a.virsh("domuuid", "wdown-3").stdout.strip()
        host_a = a.status()["host_id"]

        # Once it is back, wdown-3's writes go in, in order: its run opened
        # then closed (a close before the open would leave it open), once.
        def runs3():
            return c.psql(None, "SELECT host || '|' || coalesce(stop_reason, 'open') FROM runs"
                                f" WHERE uuid = '{uuid3}'").split()
        wait_for(lambda: runs3() and "open" not in runs3()[0], timeout=120, interval=2,
                 what="wdown-3's run written and closed after the outage")
        wait_for(lambda: a.status()["store_waiting"] == {"samples": 0, "writes": 0}, timeout=60,
                 what="no write left waiting")
        runs = runs3()
        self.assertEqual(len(runs), 1, f"wdown-3's runs: {runs}")
        self.assertTrue(runs[0].startswith(host_a + "|") and not runs[0].endswith("|lost"), runs)
        # Each plan staged and each move decided while away, exactly once.
        staged = a.log_lines("staged wdown-3 for its next start", since=mark)
        plans = c.psql(None, "SELECT t || '|' || demand_mib || '|' || source FROM plans"
                             f" WHERE uuid = '{uuid3}' ORDER BY id").split()
        self.assertTrue(staged)
        self.assertEqual(len(plans), len(staged), f"plans {plans} for staged {staged}")
        moves = c.psql(None, "SELECT w.word || '|' || m.from_mib || '|' || m.to_mib || '|' || m.applied"
                             " FROM moves m JOIN domain_ids d ON d.id = m.domain_id"
                             " JOIN move_words w ON w.id = m.action_id"
                             f" WHERE d.uuid = '{uuid3}' ORDER BY m.t, m.seq").split()
        decided = moves_logged()
        self.assertEqual(len(moves), len(decided), f"moves {moves} for decisions {decided}")
        self.assertEqual([m.split("|")[0] for m in moves], [d[0] for d in decided])
        metrics = a.vmemctl("metrics").stdout
        self.assertIn("vmemd_store_writes_dropped_total 0", metrics)
        # Once it is back, what was collected meanwhile is written: no gap
        # in the samples over the outage, and none written twice.
        wait_for(lambda: (samples(uuid1) or [0])[-1] >= up + 2 * interval, timeout=120, interval=2,
                 what="wdown-1's samples written again after the outage")
        ts = samples(uuid1, since=int(down) - 4 * interval)
        self.assertEqual(len(ts), len(set(ts)), f"a sample written twice: {ts}")
        gaps = [t2 - t1 for t1, t2 in zip(ts, ts[1:])]
        self.assertLessEqual(max(gaps), 3 * interval, f"samples lost over the outage: {ts}")
        self.assertLessEqual(ts[0], down)
        # The domain that started while the database was away has its
        # samples from then too.
        ts2 = samples(uuid2)
        self.assertTrue(ts2 and ts2[0] < up, f"wdown-2's samples: {ts2}")
        for d in ("wdown-1", "wdown-2"):
            a.virsh("destroy", d)
        a.virsh("undefine", "wdown-3")


if __name__ == "__main__":
    vmemtest.main()
