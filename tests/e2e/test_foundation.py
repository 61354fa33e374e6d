#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Foundation: profiles through the daemon, assignment, the hook on a real
`virsh start`, fail-open and fail-closed, reconnect after a libvirtd restart."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


class Foundation(vmemtest.E2ETestCase):
    def setUp(self):
        self.host.cleanup_domains()
        self.host.start_vmemd()

    def test_profile_round_trip(self):
        h = self.host
        h.vmemctl("profile", "add", "erp", "--demand", "2G", "--ceiling", "4G", check=False)
        p = h.vmemctl_json("profile", "show", "erp")
        self.assertEqual(p["name"], "erp")
        self.assertEqual(p["demand_mib"], 2048)
        self.assertEqual(p["ceiling_mib"], 4096)
        # Nonsense is refused, names the field, and changes nothing.
        r = h.vmemctl("profile", "set", "erp", "--floor", "8G", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("floor", r.stderr)
        self.assertEqual(h.vmemctl_json("profile", "show", "erp")["floor_mib"], 0)
        # Export and import round-trip, all or nothing.
        exported = h.vmemctl("profile", "export").stdout
        bad = json.loads(exported) + [{"name": "x y", "demand_mib": 1}]
        r = h.vmemctl("profile", "import", "-", check=False, input=json.dumps(bad))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("name", r.stderr)
        r = h.vmemctl("profile", "import", "-", input=exported)
        self.assertIn("updated", r.stdout)

    def test_assign_is_visible_in_dumpxml(self):
        h = self.host
        h.vmemctl("profile", "add", "web", "--demand", "128M", check=False)
        h.define_guest("tagged", memory_mib=256)
        h.vmemctl("assign", "tagged", "web")
        xml = h.dumpxml("tagged")
        self.assertIn('xmlns:vmemd="urn:vmemd:1"', xml)
        self.assertRegex(xml, r'<vmemd:workload [^>]*name="web"')
        # An unknown domain is "not found" (exit 3), an unknown workload too.
        self.assertEqual(h.vmemctl("assign", "nosuch", "web", check=False).returncode, 3)
        self.assertEqual(h.vmemctl("assign", "tagged", "nosuch", check=False).returncode, 3)
        h.vmemctl("unassign", "tagged")
        self.assertNotIn("urn:vmemd:1", h.dumpxml("tagged"))

    def test_hook_reaches_daemon_on_start(self):
        h = self.host
        h.define_guest("hooked", memory_mib=128)
        h.virsh("start", "hooked")
        wait_for(lambda: "hook prepare begin" in h.log() and "for hooked" in h.log(),
                 timeout=10, what="the hook's prepare event in the daemon's log")
        wait_for(lambda: "hook started begin" in h.log(), timeout=10, what="the started event")
        h.virsh("destroy", "hooked")
        wait_for(lambda: "hook release end" in h.log(), timeout=10, what="the release event")

    def test_start_fails_open_when_daemon_is_down_or_silent(self):
        h = self.host
        timeout_s = int(h.config["hook"]["timeout_ms"]) / 1000
        h.define_guest("open1", memory_mib=128)
        h.stop_vmemd()
        t0 = time.monotonic()
        h.virsh("start", "open1")
        self.assertLess(time.monotonic() - t0, timeout_s + 10)
        h.virsh("destroy", "open1")
        # A daemon that accepts but never answers: the start waits at most
        # the hook timeout on each hook call, then goes ahead.
        os.makedirs(os.path.dirname(h.socket), exist_ok=True)
        if os.path.exists(h.socket):
            os.unlink(h.socket)
        silent = socket.socket(socket.AF_UNIX)
        silent.bind(h.socket)
        silent.listen(16)
        try:
            t0 = time.monotonic()
            h.virsh("start", "open1")
            elapsed = time.monotonic() - t0
            # prepare, start and started each wait out the timeout.
            self.assertGreaterEqual(elapsed, timeout_s)
            self.assertLess(elapsed, 3 * timeout_s + 10)
        finally:
            silent.close()
            os.unlink(h.socket)
        h.virsh("destroy", "open1")

    def test_fail_closed_refuses_when_daemon_is_down(self):
        h = self.host
        h.define_guest("closed1", memory_mib=128)
        h.stop_vmemd()
        h.write_config(hook__fail_closed="true")
        try:
            r = h.virsh("start", "closed1", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("fail_closed", r.stderr)
            self.assertEqual(h.virsh("domstate", "closed1").stdout.strip(), "shut off")
        finally:
            h.write_config()

    def test_untagged_domain_is_untouched(self):
        h = self.host
        h.stop_vmemd()
        h.define_guest("bystander", memory_mib=256, current_mib=200,
                       extra_devices="<graphics type='vnc' port='-1' passwd='s3cret'/>")
        h.define_guest("managed1", memory_mib=256)
        before = h.dumpxml("bystander")
        self.assertIn("s3cret", before)
        h.start_vmemd()
        h.vmemctl("profile", "add", "db", "--demand", "192M", check=False)
        h.vmemctl("assign", "managed1", "db")
        wait_for(lambda: "vmemd-plan" in h.dumpxml("managed1"), timeout=15, what="managed1 staged")
        self.assertEqual(h.dumpxml("bystander"), before)

    def test_reconnects_after_libvirtd_restart(self):
        h = self.host
        h.vmemctl("profile", "add", "app", "--demand", "128M", check=False)
        h.define_guest("after-restart", memory_mib=256)
        h.restart_libvirtd()
        wait_for(lambda: h.status()["libvirt_connected"], timeout=60, what="vmemd to reconnect")
        # Assignment works over the new connection, and the domain gets staged.
        wait_for(lambda: h.vmemctl("assign", "after-restart", "app", check=False).returncode == 0,
                 timeout=30, what="assign after reconnect")
        wait_for(lambda: "vmemd-plan" in h.dumpxml("after-restart"), timeout=15,
                 what="staging after reconnect")


if __name__ == "__main__":
    vmemtest.main()
