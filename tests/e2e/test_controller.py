#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Memory after the start: the on-demand controller raises a guest's balloon
as its workload grows, before the guest runs out; observe mode decides and
records but moves nothing; a guest without a balloon driver is left alone;
in virtio-mem mode memory is plugged into a growing guest and unplugged
when it shrinks; two guests on a host too short for both share it by
priority."""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


def domain_status(h, name):
    for d in h.status()["domains"]:
        if d["name"] == name:
            return d
    return None


class Controller(vmemtest.E2ETestCase):
    def setUp(self):
        h = self.host
        h.cleanup_domains()
        h.start_vmemd(controller__surplus_hold="20", controller__shrink_half_life="20",
                      controller__min_buffer="64M")

    def test_balloon_grows_before_the_guest_runs_out(self):
        h = self.host
        h.vmemctl("profile", "add", "grow", "--demand", "200M", "--prealloc", "off", check=False)
        # 100 MiB at boot, then 50 MiB more every 10 s up to 400 MiB: well
        # past the 200 MiB it boots with.
        h.define_guest("grow-1", memory_mib=768, workload_mib=100, stats_period=2,
                       cmdline="vmem_schedule=150@50,200@60,250@70,300@80,350@90,400@100")
        h.vmemctl("assign", "grow-1", "grow")
        wait_for(lambda: "<currentMemory unit='KiB'>204800</currentMemory>" in h.domain_xml("grow-1"),
                 timeout=20, what="grow-1 staged at 200M")
        h.start_guest("grow-1", wait=True, timeout=90)
        wait_for(lambda: re.search(r"workload 400 MiB at", h.console("grow-1")), timeout=150,
                 interval=1, what="the workload to reach 400 MiB")

        def grown():
            d = domain_status(h, "grow-1")
            return d if d and d.get("target_mib", 0) >= 430 and d.get("current_mib", 0) >= 430 else None

        d = wait_for(grown, timeout=60, interval=1, what="the balloon raised above the workload")
        self.assertEqual(d["workload"], "grow")
        self.assertEqual(d["demand_mib"], 200)
        self.assertGreater(d["used_mib"], 380)
        console = h.console("grow-1")
        self.assertNotIn("Out of memory", console)
        self.assertNotIn("oom-kill", console)
        self.assertNotIn("workload failed", console)
        hist = h.vmemctl_json("history", "grow-1", "--since", "10m")
        grows = [m for m in hist["moves"] if m["action"] == "grow" and m["applied"]]
        self.assertTrue(grows, f"no grow recorded: {hist['moves']}")
        self.assertTrue(all(m["mode"] == "balloon" for m in grows))
        self.assertTrue(hist["samples"], "no samples in the history")
        out = h.vmemctl("history", "grow-1", "--since", "10m").stdout
        self.assertIn("u = used by the guest", out)
        self.assertRegex(out, r"\n\S+ \S+ +grow +\S+ +\S+ +yes ")
        status = h.vmemctl("status").stdout
        self.assertRegex(status, r"\nOn demand:\n")
        self.assertRegex(status, r"\ngrow-1 +200M ")
        h.virsh("destroy", "grow-1")

    def test_observe_mode_moves_nothing(self):
        h = self.host
        h.vmemctl("profile", "add", "watch", "--demand", "200M", "--prealloc", "off",
                  "--mode", "observe", check=False)
        # Observe stages nothing: the guest boots with the 400 MiB of its
        # own definition, and its workload then leaves it little to spare.
        h.define_guest("watch-1", memory_mib=768, current_mib=400, workload_mib=100,
                       stats_period=2, cmdline="vmem_schedule=200@40,280@50")
        h.vmemctl("assign", "watch-1", "watch")
        h.start_guest("watch-1", wait=True, timeout=90)
        mark = h.log_mark()
        wait_for(lambda: h.log_lines("would grow watch-1", since=mark), timeout=90, interval=1,
                 what="a grow decided in observe mode")
        hist = h.vmemctl_json("history", "watch-1", "--since", "10m")
        self.assertTrue(hist["moves"])
        self.assertTrue(all(not m["applied"] for m in hist["moves"]), hist["moves"])
        # The balloon stays where the definition put it.
        actual = h.dommemstat("watch-1")["actual"] // 1024
        self.assertLessEqual(actual, 410)
        h.virsh("destroy", "watch-1")

    def test_guest_without_balloon_driver_is_left_alone(self):
        h = self.host
        h.vmemctl("profile", "add", "bare", "--demand", "200M", "--prealloc", "off", check=False)
        h.define_guest("bare-1", memory_mib=512, workload_mib=50, stats_period=2,
                       cmdline="vmem_no_balloon=1")
        h.vmemctl("assign", "bare-1", "bare")
        mark = h.log_mark()
        h.start_guest("bare-1", wait=True, timeout=90)
        wait_for(lambda: (domain_status(h, "bare-1") or {}).get("action") == "no-driver",
                 timeout=60, interval=1, what="bare-1 reported as without a driver")
        # Some cycles later it is still left alone, its balloon untouched.
        time.sleep(20)
        d = domain_status(h, "bare-1")
        self.assertEqual(d["action"], "no-driver")
        self.assertIn("never reported", d["reason"])
        self.assertNotIn("used_mib", d)
        hist = h.vmemctl_json("history", "bare-1", "--since", "10m")
        self.assertEqual(hist["moves"], [])
        self.assertFalse(h.log_lines("grow bare-1", since=mark))
        h.virsh("destroy", "bare-1")

    def test_virtio_mem_plugs_memory_as_the_guest_grows(self):
        h = self.host
        # A plug lands a few seconds after the guest's report: room for a
        # 50 MiB step of the workload meanwhile.
        h.start_vmemd(controller__surplus_hold="20", controller__shrink_half_life="20",
                      controller__min_buffer="128M")
        h.vmemctl("profile", "add", "plug", "--demand", "256M", "--mode", "virtio-mem", check=False)
        h.define_guest("plug-1", memory_mib=1280, workload_mib=100, stats_period=2, vcpus=1,
                       cmdline="memhp_default_state=online_movable "
                               "vmem_schedule=150@60,200@70,250@80,300@90,350@100,120@120")
        h.vmemctl("assign", "plug-1", "plug")
        wait_for(lambda: "model='virtio-mem'" in h.domain_xml("plug-1"), timeout=20,
                 what="plug-1 staged in virtio-mem form")
        h.start_guest("plug-1", wait=True, timeout=120)
        rss_boot = h.qemu_rss_mib("plug-1")
        # Only the base is preallocated: far from the whole <memory>.
        self.assertLess(rss_boot, 900, f"QEMU holds {rss_boot} MiB at boot")

        def plugged():
            live = h.domain_xml("plug-1", inactive=False)
            m = re.search(r"<requested unit='KiB'>(\d+)</requested>", live)
            return int(m.group(1)) // 1024 if m and int(m.group(1)) > 0 else None

        wait_for(lambda: re.search(r"workload 350 MiB at", h.console("plug-1")), timeout=180,
                 interval=1, what="the workload to reach 350 MiB")
        requested = wait_for(plugged, timeout=60, interval=1, what="memory plugged into plug-1")
        self.assertGreater(requested, 0)
        # The workload drops to 120 MiB: once the surplus has lasted, the
        # memory is unplugged again, step by step.
        wait_for(lambda: re.search(r"workload 120 MiB at", h.console("plug-1")), timeout=90,
                 interval=1, what="the workload to drop to 120 MiB")
        top = max(requested, plugged() or 0)
        wait_for(lambda: (plugged() or 0) < top, timeout=120, interval=2,
                 what="memory unplugged from plug-1 after its workload shrank")
        hist = h.vmemctl_json("history", "plug-1", "--since", "10m")
        self.assertTrue([m for m in hist["moves"] if m["action"] == "grow" and m["applied"]
                         and m["mode"] == "virtio-mem"], hist["moves"])
        self.assertNotIn("Out of memory", h.console("plug-1"))
        h.virsh("destroy", "plug-1")


MIB = r"(\d+(?:\.\d+)?)([MG])"


def mib(number, unit):
    return float(number) * (1024 if unit == "G" else 1)


def need_of(move):
    """The need (used + buffer) a move's reason gives: what lies beyond the
    buffer comes off the target in force, or used and buffer are said."""
    f = re.search(MIB + " beyond the buffer", move["reason"])
    if f:
        return move["from_mib"] - mib(*f.groups())
    f = re.search("keeps the buffer " + MIB + r" \(used " + MIB + r"\)", move["reason"])
    return mib(*f.groups()[:2]) + mib(*f.groups()[2:]) if f else None


def granted(move):
    """The fraction of its grow a move was granted: 1 unless arbitration
    cut it ("G of the A asked granted")."""
    f = re.search(MIB + " of the " + MIB + r" asked granted", move["reason"])
    return mib(*f.groups()[:2]) / mib(*f.groups()[2:]) if f else 1.0


class Priority(vmemtest.E2ETestCase):
    """Two guests of the same shape and schedule, priorities 90 and 10, on a
    host whose capacity the operator lowers and raises (SIGHUP) around
    them.  What a guest already holds stays its own; when both ask in the
    same interval and the host is short, the higher priority is granted
    the larger part of its ask; when the host is over capacity, the lower
    priority's surplus goes first; nobody goes below its need."""

    GUESTS = {"gold-1": "gold", "bronze-1": "bronze"}

    def reload(self, capacity_mib):
        """Writes the configuration with a new capacity and reloads it;
        returns (sent, confirmed) in unix seconds."""
        h = self.host
        mark = h.log_mark()
        h.write_config(admission__capacity=f"{capacity_mib}M", **self.settings)
        sent = time.time()
        os.kill(h.vmemd.pid, signal.SIGHUP)
        h.wait_log("configuration reloaded", since=mark)
        wait_for(lambda: h.status()["capacity_mib"] == capacity_mib, timeout=10,
                 what=f"vmemd to count with a capacity of {capacity_mib} MiB")
        self.capacities.append((sent, time.time(), capacity_mib))
        return sent

    def capacity_at(self, t):
        """The capacity in force at t (both, in the window of a reload)."""
        cap = self.capacities[0][2]
        for sent, confirmed, c in self.capacities[1:]:
            if t >= confirmed - 1:
                cap = c
            elif t >= sent - 1:
                cap = max(cap, c)
        return cap

    def statuses(self):
        s = self.host.status()
        doms = {d["name"]: d for d in s["domains"] if d["name"] in self.GUESTS}
        return s, doms

    def moves(self):
        out = {}
        for name in self.GUESTS:
            for m in self.host.vmemctl_json("history", name, "--since", "30m")["moves"]:
                self.assertTrue(m["applied"], m)
                out.setdefault(m["t"], {})[name] = m
        return out

    def test_host_short_shares_by_priority(self):
        h = self.host
        h.cleanup_domains()
        # A buffer large for these guests: a guest short of it still has
        # well over 100 MiB free, so that it can wait for memory without
        # running out.  No shrink of its own during the test: what shrinks
        # is reclaimed by arbitration.
        self.settings = dict(controller__min_buffer="192M", controller__surplus_hold="900",
                             controller__shrink_half_life="60")
        self.capacities = [(0, 0, 4000)]
        h.start_vmemd(admission__capacity="4000M", **self.settings)
        h.vmemctl("profile", "add", "gold", "--demand", "256M", "--prealloc", "off",
                  "--priority", "90", check=False)
        h.vmemctl("profile", "add", "bronze", "--demand", "256M", "--prealloc", "off",
                  "--priority", "10", check=False)
        # The same schedule in both: 64 MiB at boot, 200 MiB once the host
        # has been made short (the go), none 100 s later.
        for name, workload in self.GUESTS.items():
            h.define_guest(name, memory_mib=768, workload_mib=64, stats_period=2,
                           cmdline="vmem_schedule=200@0,0@100", go_port=True)
            h.vmemctl("assign", name, workload)
        for name in self.GUESTS:
            wait_for(lambda: "<currentMemory unit='KiB'>262144</currentMemory>" in h.domain_xml(name),
                     timeout=20, what=f"{name} staged at 256M")
        for name in self.GUESTS:
            h.start_guest(name)
        for name in self.GUESTS:
            h.wait_booted(name, timeout=120)

        # 1. With room for both, each gets its buffer, and is left there.
        def settled():
            s, doms = self.statuses()
            ok = len(doms) == 2 and all(
                d.get("action") == "hold" and "keeps the buffer" in d.get("reason", "")
                and d.get("current_mib") == d.get("target_mib") for d in doms.values())
            return (s, doms) if ok else None

        # A guest's balloon and its reports lag the controller's moves under
        # TCG: give both guests time to come to rest.
        s, doms = wait_for(settled, timeout=180, interval=1, what="both guests settled at boot")
        # 2. The capacity lowered: 32 MiB of room, less than either grow
        # will ask; then both workloads grow.
        self.reload(s["committed_mib"] + 32)
        for name in self.GUESTS:
            self.assertNotRegex(h.console(name), r"workload 200 MiB at",
                                "the guests grew before the host was made short")
            h.go(name)

        # Both short with nothing granted: the 32 MiB of room gone, both
        # balloons at rest and both asking in every interval.
        def both_short():
            s, doms = self.statuses()
            asks = {n: re.search(MIB + " of the " + MIB + r" asked granted", d.get("reason", ""))
                    for n, d in doms.items()}
            return (s, asks) if len(asks) == 2 and all(
                a and mib(*a.groups()[:2]) == 0 for a in asks.values()) else None

        wait_for(lambda: all(re.search(r"workload 200 MiB at", h.console(n)) for n in self.GUESTS),
                 timeout=240, interval=1, what="both workloads at 200 MiB")
        s, asks = wait_for(both_short, timeout=60, interval=1,
                           what="both guests asking more than the host has, nothing granted")
        # 3. The capacity raised by half of what both ask: in the next
        # interval both ask, and the room is shared by priority.
        asked = sum(mib(*a.groups()[2:]) for a in asks.values())
        t_raise = self.reload(s["committed_mib"] + int(asked // 2))

        def shared():
            return [t for t, pair in self.moves().items()
                    if t >= t_raise - 1 and len(pair) == 2
                    and all(m["action"] == "grow" for m in pair.values())]

        wait_for(shared, timeout=30, interval=1, what="both guests granted part of a grow at once")

        # 4. Both workloads gone: each holds a surplus.  The capacity
        # lowered below what they hold: the surplus is reclaimed, the lower
        # priority's first, nobody below its need.
        def surplus():
            s, doms = self.statuses()
            found = {n: re.search(MIB + " beyond the buffer", d.get("reason", ""))
                     for n, d in doms.items()}
            return (s, found) if len(found) == 2 and all(found.values()) else None

        s, found = wait_for(surplus, timeout=180, interval=1, what="both guests holding a surplus")
        total = sum(mib(*f.groups()) for f in found.values())
        t_lower = self.reload(s["committed_mib"] - int(total // 2))

        def reclaimed():
            return [t for t, pair in self.moves().items()
                    if t >= t_lower - 1 and len(pair) == 2
                    and all("of the surplus reclaimed" in m["reason"] for m in pair.values())]

        wait_for(reclaimed, timeout=30, interval=1, what="the surplus of both reclaimed at once")

        # What the moves show, interval by interval.
        moves = self.moves()
        targets = {}
        for t in sorted(moves):
            for name, m in moves[t].items():
                targets.setdefault(name, m["from_mib"])
        for name in self.GUESTS:
            self.assertIn(name, targets, f"no move of {name}: {moves}")
        shared_short = 0
        reclaims = 0
        for t in sorted(moves):
            pair = moves[t]
            for name, m in pair.items():
                self.assertEqual(m["from_mib"], targets[name], (t, m))
                targets[name] = m["to_mib"]
                # Nobody below its need: a shrink stops at what is beyond
                # the buffer.
                if m["action"] == "shrink":
                    need = need_of(m)
                    self.assertIsNotNone(need, m)
                    self.assertGreaterEqual(m["to_mib"], need, m)
            # Together they stay within what the host has for guests.
            self.assertLessEqual(sum(targets.values()), self.capacity_at(t), (t, pair, targets))
            if len(pair) < 2:
                continue
            g, b = pair["gold-1"], pair["bronze-1"]
            if g["action"] == b["action"] == "grow" and any(
                    "asked granted" in m["reason"] for m in pair.values()):
                # Both asked, the host was short: the higher priority got
                # the larger part of its ask.
                shared_short += 1
                print(f"\n  shared at {t}: gold granted {granted(g):.0%} of its ask, "
                      f"bronze {granted(b):.0%}", file=sys.stderr)
                self.assertGreater(granted(g), granted(b), pair)
            if all("of the surplus reclaimed" in m["reason"] for m in pair.values()):
                # The lower priority gave the larger part of its surplus.
                reclaims += 1

                def given(m):
                    return (m["from_mib"] - m["to_mib"]) / (m["from_mib"] - need_of(m))

                print(f"\n  reclaimed at {t}: bronze gave {given(b):.0%} of its surplus, "
                      f"gold {given(g):.0%}", file=sys.stderr)
                self.assertGreater(given(b), given(g), pair)
        self.assertGreaterEqual(shared_short, 1, moves)
        self.assertGreaterEqual(reclaims, 1, moves)
        s, doms = self.statuses()
        self.assertLessEqual(sum(d["target_mib"] for d in doms.values()), s["capacity_mib"], doms)
        for name in self.GUESTS:
            console = h.console(name)
            self.assertNotIn("Out of memory", console)
            self.assertNotIn("oom-kill", console)
            self.assertNotIn("workload failed", console)
            h.virsh("destroy", name)


if __name__ == "__main__":
    vmemtest.main()
