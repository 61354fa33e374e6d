#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Staging and the start path on a real libvirtd: the plan is in the
persistent definition before `virsh start`, QEMU preallocates, the balloon
settles at the demand, admission control refuses what does not fit, a
restore gets the plan, and unassign --restore puts everything back."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


def current_kib(xml):
    m = re.search(r"<currentMemory unit='KiB'>(\d+)</currentMemory>", xml)
    return int(m.group(1)) if m else None


class Staging(vmemtest.E2ETestCase):
    def setUp(self):
        self.host.cleanup_domains()
        self.host.start_vmemd()
        self.host.vmemctl("profile", "remove", "stage", "--force", check=False)
        self.host.vmemctl("profile", "add", "stage", "--demand", "160M")

    def staged(self, name, demand_mib):
        return wait_for(lambda: current_kib(self.host.dumpxml(name)) == demand_mib * 1024
                        and "vmemd-plan" in self.host.dumpxml(name),
                        timeout=20, what=f"{name} staged at {demand_mib} MiB")

    def test_start_preallocates_and_balloon_settles_at_demand(self):
        h = self.host
        h.define_guest("pre1", memory_mib=320, workload_mib=32,
                       extra_devices="<graphics type='vnc' port='-1' passwd='t0ps3crt'/>")
        h.vmemctl("assign", "pre1", "stage")
        self.staged("pre1", 160)
        xml = h.dumpxml("pre1")
        self.assertIn("<allocation mode='immediate'/>", xml)
        self.assertRegex(xml, r"<memballoon model='virtio' autodeflate='on' freePageReporting='on'>")
        self.assertIn("passwd='t0ps3crt'", xml, "the VNC password must survive staging")
        r = h.virsh("start", "pre1")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(h.qemu_cmdline("pre1"), r'"prealloc":true|prealloc=on')
        # The guest's balloon driver inflates to the staged target.
        wait_for(lambda: abs(int(re.search(r"actual (\d+)", h.virsh("dommemstat", "pre1").stdout).group(1))
                             - 160 * 1024) <= 8 * 1024,
                 timeout=90, interval=1, what="the balloon to settle at 160 MiB")
        h.virsh("destroy", "pre1")

    def test_profile_change_restages_inactive_domain(self):
        h = self.host
        h.define_guest("re1", memory_mib=512)
        h.vmemctl("assign", "re1", "stage")
        self.staged("re1", 160)
        h.vmemctl("profile", "set", "stage", "--demand", "224M")
        self.staged("re1", 224)
        x = h.vmemctl_json("explain", "re1")
        self.assertEqual(x["plan"]["demand_mib"], 224)
        self.assertEqual(x["plan"]["source"], "profile")
        self.assertEqual(x["staged"]["demand_mib"], 224)
        # Demand above <memory> is clamped, and explain says so.
        h.vmemctl("profile", "set", "stage", "--demand", "1G")
        self.staged("re1", 512)
        x = h.vmemctl_json("explain", "re1")
        self.assertTrue(any("<memory>" in c for c in x["plan"]["clamps"]), x)

    def test_unassign_restore_puts_back_the_original(self):
        h = self.host
        h.define_guest("undo1", memory_mib=256, current_mib=250)
        before = h.dumpxml("undo1")
        h.vmemctl("assign", "undo1", "stage")
        self.staged("undo1", 160)
        h.vmemctl("unassign", "--restore", "undo1")
        after = h.dumpxml("undo1")
        self.assertEqual(current_kib(after), 250 * 1024)
        self.assertNotIn("allocation", after)
        self.assertNotIn("urn:vmemd", after)
        self.assertEqual(re.sub(r"\s+", "", after), re.sub(r"\s+", "", before))

    def test_admission_enforce_refuses_and_warn_admits(self):
        h = self.host
        h.start_vmemd(admission__capacity="600M", admission__reserve="0")
        h.define_guest("filler", memory_mib=256)
        h.virsh("start", "filler")
        wait_for(lambda: any(d["name"] == "filler" and d["state"] == "running"
                             for d in h.status()["domains"]), timeout=15, what="filler running")
        h.define_guest("big", memory_mib=512)
        h.vmemctl("assign", "big", "stage")
        self.staged("big", 160)
        r = h.virsh("start", "big", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not enough host memory to start big", r.stderr)
        self.assertIn("needs 512M", r.stderr)
        self.assertEqual(h.virsh("domstate", "big").stdout.strip(), "shut off")
        h.start_vmemd(admission__capacity="600M", admission__reserve="0", admission__mode="warn")
        h.virsh("start", "big")
        wait_for(lambda: "admitted anyway (admission=warn)" in h.log(), timeout=10,
                 what="the warning in the log")
        h.virsh("destroy", "big")
        h.virsh("destroy", "filler")

    def test_restore_gets_the_plan(self):
        h = self.host
        h.define_guest("saved1", memory_mib=256, workload_mib=16)
        h.virsh("start", "saved1")
        self.assertNotRegex(h.qemu_cmdline("saved1"), r'"prealloc":true|prealloc=on')
        image = os.path.join(h.tmp, "saved1.img")
        h.virsh("save", "saved1", image)
        h.vmemctl("assign", "saved1", "stage")
        self.staged("saved1", 160)
        h.virsh("restore", image)
        self.assertRegex(h.qemu_cmdline("saved1"), r'"prealloc":true|prealloc=on')
        wait_for(lambda: "balloon target of saved1 set to 160M" in h.log(), timeout=20,
                 what="the live balloon target after restore")
        # The saved image predates staging: the freshness check says so.
        self.assertIn("saved1 starts without a staged plan", h.log())
        h.virsh("destroy", "saved1")


if __name__ == "__main__":
    vmemtest.main()
