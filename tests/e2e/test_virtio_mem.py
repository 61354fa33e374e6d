#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""virtio-mem mode on a real libvirtd: a domain without a balloon is staged
with a base of its demand and an unplugged virtio-mem device, libvirt
accepts it, QEMU preallocates only the base, the guest plugs memory when
the device's requested size is raised live, and unassign --restore gives
back the definition it had."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


def kib(xml, element):
    m = re.search(rf"<{element} unit='KiB'>(\d+)</{element}>", xml)
    return int(m.group(1)) if m else None


class VirtioMem(vmemtest.E2ETestCase):
    def setUp(self):
        self.host.cleanup_domains()
        self.host.start_vmemd()
        self.host.vmemctl("profile", "remove", "vmem", "--force", check=False)
        self.host.vmemctl("profile", "add", "vmem", "--demand", "256M", "--mode", "virtio-mem")

    def staged(self, name):
        return wait_for(lambda: "ua-vmemd-mem" in self.host.dumpxml(name), timeout=20,
                        what=f"{name} staged in virtio-mem form")

    def test_boots_with_the_demand_and_restores(self):
        h = self.host
        # No balloon at all: unmanageable in balloon mode, fine in this one.
        h.define_guest("vm1", memory_mib=1024, workload_mib=32,
                       extra_devices="<memballoon model='none'/>",
                       cmdline="memhp_default_state=online_movable")
        before = h.dumpxml("vm1")
        h.vmemctl("assign", "vm1", "vmem")
        self.staged("vm1")
        xml = h.dumpxml("vm1")
        # 256 MiB base (the demand, a quarter of <memory>), 768 MiB device.
        self.assertRegex(xml, r"<maxMemory slots='1' unit='KiB'>1048576</maxMemory>")
        self.assertEqual(kib(xml, "memory"), 1048576)
        self.assertEqual(kib(xml, "currentMemory"), 1048576)
        self.assertRegex(xml, r"<cell id='0' cpus='0' memory='262144' unit='KiB'/>")
        self.assertEqual(kib(xml, "size"), 786432)
        self.assertEqual(kib(xml, "requested"), 0)
        self.assertIn("<allocation mode='immediate'/>", xml)
        self.assertIn("<memballoon model='none'/>", xml)

        h.start_guest("vm1", wait=True, timeout=120)
        self.assertRegex(h.log(), r"start of vm1 admitted: needs 256M \(preallocated: <memory> "
                                  r"less unplugged virtio-mem\)")
        cmdline = h.qemu_cmdline("vm1")
        self.assertIn("virtio-mem-pci", cmdline)
        self.assertRegex(cmdline, r'"prealloc":true')
        # Only the base is there: far below the 1 GiB balloon mode would
        # preallocate.
        rss = h.qemu_rss_mib("vm1")
        self.assertGreaterEqual(rss, 256)
        self.assertLess(rss, 256 + 256, "QEMU holds more than the base at boot")

        # Raised live, as vmemd's resize does it: the guest plugs the blocks.
        live = h.domain_xml("vm1", inactive=False)
        device = re.search(r"<memory model='virtio-mem'>.*?</memory>", live, re.S).group(0)
        device = re.sub(r"<requested unit='KiB'>\d+</requested>",
                        "<requested unit='KiB'>262144</requested>", device)
        path = os.path.join(h.tmp, "vm1-device.xml")
        with open(path, "w") as f:
            f.write(device)
        h.virsh("update-device", "vm1", path, "--live")
        wait_for(lambda: kib(h.domain_xml("vm1", inactive=False), "current") == 262144,
                 timeout=60, interval=1, what="the guest to plug 256 MiB")
        self.assertGreaterEqual(h.qemu_rss_mib("vm1"), rss + 200)
        # The definition still boots with the base.
        self.assertEqual(kib(h.dumpxml("vm1"), "requested"), 0)
        h.virsh("destroy", "vm1")

        h.vmemctl("unassign", "--restore", "vm1")
        self.assertEqual(h.dumpxml("vm1"), before)

    def test_back_to_balloon_mode(self):
        h = self.host
        h.define_guest("vm2", memory_mib=768, current_mib=700)
        before = h.dumpxml("vm2")
        h.vmemctl("assign", "vm2", "vmem")
        self.staged("vm2")
        h.vmemctl("profile", "set", "vmem", "--mode", "balloon")
        wait_for(lambda: "ua-vmemd-mem" not in h.dumpxml("vm2")
                 and kib(h.dumpxml("vm2"), "currentMemory") == 256 * 1024,
                 timeout=20, what="vm2 staged in balloon form")
        xml = h.dumpxml("vm2")
        self.assertNotIn("maxMemory", xml)
        self.assertNotIn("<numa>", xml)
        self.assertEqual(kib(xml, "memory"), 768 * 1024)
        h.vmemctl("unassign", "--restore", "vm2")
        self.assertEqual(re.sub(r"\s+", "", h.dumpxml("vm2")), re.sub(r"\s+", "", before))


if __name__ == "__main__":
    vmemtest.main()
