#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Memory after the start: the on-demand controller raises a guest's balloon
as its workload grows, before the guest runs out; observe mode decides and
records but moves nothing; a guest without a balloon driver is left alone;
in virtio-mem mode memory is plugged into a growing guest and unplugged
when it shrinks."""

import os
import re
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


if __name__ == "__main__":
    vmemtest.main()
