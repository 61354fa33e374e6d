#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The harness itself, without vmemd: the private libvirtd is isolated and
has only vmemd's hook, a guest boots to its workload under TCG in seconds
and reports balloon statistics, the balloon moves, and a libvirtd restart
leaves running guests alone."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


class Harness(vmemtest.E2ETestCase):
    def setUp(self):
        self.host.stop_vmemd()
        self.host.cleanup_domains()

    def test_private_libvirt(self):
        h = self.host
        for d in vmemtest.PRIVATE_DIRS:
            self.assertIn(f" {d} ", open("/proc/self/mountinfo").read(), f"{d} is not a mount point")
        private_etc = os.path.join(h.tmp, "etc-libvirt")
        self.assertTrue(os.path.samefile("/etc/libvirt", private_etc))
        self.assertEqual(os.listdir("/etc/libvirt/hooks"), ["qemu.d"])
        self.assertEqual(os.listdir("/etc/libvirt/hooks/qemu.d"), ["50-vmemd"])
        self.assertTrue(os.path.samefile("/etc/libvirt/hooks/qemu.d/50-vmemd", vmemtest.HOOK))
        self.assertEqual([f for f in os.listdir("/etc/libvirt/qemu") if f.endswith(".xml")], [])
        self.assertEqual(h.domains(), [])
        # The libvirtd answering is the one started here, in this namespace.
        pid = vmemtest._pid_from(h.libvirtd_pidfile)
        self.assertEqual(os.readlink(f"/proc/{pid}/ns/mnt"), os.readlink("/proc/self/ns/mnt"))
        self.assertNotEqual(os.readlink("/proc/self/ns/mnt"), os.environ[vmemtest._NS_ENV])
        with open(h.config_path) as f:
            self.assertIn(f"socket={h.socket}", f.read())

    def test_guest_boots_reports_stats_and_balloons(self):
        h = self.host
        h.define_guest("selfcheck", memory_mib=256, workload_mib=64, stats_period=1)
        t0 = time.monotonic()
        start_s = h.start_guest("selfcheck")
        h.wait_booted("selfcheck", timeout=30)
        boot_s = time.monotonic() - t0
        print(f"\n    e2e: virsh start {start_s:.1f}s, boot to a 64 MiB workload {boot_s:.1f}s",
              file=sys.stderr)
        self.assertLess(boot_s, 30)
        self.assertIn("vmem-guest: modules loaded", h.console("selfcheck"))
        stats = wait_for(lambda: (lambda s: s if s.get("last_update", 0) > 0 and "usable" in s else None)
                         (h.dommemstat("selfcheck")), timeout=20, what="guest balloon statistics")
        self.assertIn("available", stats)
        self.assertEqual(stats["actual"], 256 * 1024)
        # MemTotal is a bit under the boot memory; 64 MiB sit in the tmpfs.
        self.assertGreater(stats["available"], 200 * 1024)
        wait_for(lambda: h.dommemstat("selfcheck")["usable"] < stats["available"] - 60 * 1024,
                 timeout=10, what="guest statistics that count the workload")
        h.virsh("setmem", "selfcheck", "192M", "--live")
        wait_for(lambda: h.dommemstat("selfcheck")["actual"] == 192 * 1024, timeout=30,
                 what="the balloon to inflate to 192 MiB")
        self.assertRegex(h.qemu_cmdline("selfcheck"), r"-machine pc")
        self.assertGreater(h.qemu_rss_mib("selfcheck"), 64)

    def test_restart_libvirtd_keeps_guests(self):
        h = self.host
        h.define_guest("survivor", memory_mib=128)
        h.start_guest("survivor")
        pid = h.qemu_pid("survivor")
        t0 = time.monotonic()
        h.restart_libvirtd()
        print(f"\n    e2e: libvirtd restart {time.monotonic() - t0:.1f}s", file=sys.stderr)
        self.assertEqual(h.domstate("survivor"), "running")
        self.assertEqual(h.qemu_pid("survivor"), pid)

    def test_vmemd_helpers(self):
        h = self.host
        mark = h.log_mark()
        t0 = time.monotonic()
        h.start_vmemd()
        print(f"\n    e2e: vmemd up and connected in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        self.assertTrue(h.vmemd_running())
        rc, out, err = h.vmemctl("status", "--json", check=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("libvirt_connected", out)
        self.assertIn("starting vmemd", h.log(mark))
        self.assertEqual(h.stop_vmemd(), 0)
        self.assertFalse(h.vmemd_running())
        self.assertNotEqual(h.vmemctl("status", check=False).rc, 0)
        # A daemon that cannot start is reported at once, with its log.
        t0 = time.monotonic()
        with self.assertRaisesRegex(AssertionError, r"exited with status [1-9]"):
            h.start_vmemd(daemon__stats_interval="often")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(re.search(r"stats_interval", h.log(mark)))


if __name__ == "__main__":
    vmemtest.main()
