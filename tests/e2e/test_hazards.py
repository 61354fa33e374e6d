#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What goes wrong around a start, on a real libvirtd: admin calls racing
on three connections leave an unassigned domain as it was."""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


def staged(h, name):
    return wait_for(lambda: "vmemd-plan" in h.dumpxml(name), timeout=20, what=f"{name} staged")


class Varlink:
    """A raw varlink connection to vmemd, for calls sent without waiting."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)

    def send(self, method, **params):
        msg = json.dumps({"method": method, "parameters": params}).encode() + b"\0"
        self.sock.sendall(msg)

    def reply(self):
        buf = b""
        while not buf.endswith(b"\0"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"vmemd closed the connection after {buf!r}")
            buf += chunk
        return json.loads(buf[:-1])

    def close(self):
        self.sock.close()


class Races(vmemtest.E2ETestCase):
    def setUp(self):
        self.host.cleanup_domains()
        self.host.start_vmemd()
        self.host.vmemctl("profile", "remove", "race", "--force", check=False)
        self.host.vmemctl("profile", "add", "race", "--demand", "160M")

    def test_unassign_restore_between_profile_changes(self):
        # ProfileSet, Unassign(restore) and ProfileSet 20 ms apart on three
        # connections: a stage job that a profile change queued while the
        # unassign was under way must not write the plan back into the
        # domain the unassign restored.  The window is narrow: the three
        # calls go out at several spacings.
        h = self.host
        h.define_guest("racer", memory_mib=512, current_mib=500)
        before = h.dumpxml("racer")
        demand = 160
        for gap_ms in (20, 10, 5, 15, 0, 20):
            h.vmemctl("assign", "racer", "race")
            staged(h, "racer")
            mark = h.log_mark()
            conns = [Varlink(h.socket) for _ in range(3)]
            try:
                demand += 32
                conns[0].send("io.vmemd.ProfileSet", profile={"name": "race", "demand_mib": demand})
                time.sleep(gap_ms / 1000)
                conns[1].send("io.vmemd.Unassign", domain="racer", restore=True)
                time.sleep(gap_ms / 1000)
                demand += 32
                conns[2].send("io.vmemd.ProfileSet", profile={"name": "race", "demand_mib": demand})
                replies = [c.reply() for c in conns]
            finally:
                for c in conns:
                    c.close()
            for r in replies:
                self.assertNotIn("error", r, r)
            self.assertTrue(replies[1]["parameters"]["restored"])
            # Every stage job the changes queued has run once the libvirt
            # worker has answered a call queued behind them.
            h.wait_log("profile race changed", f"{demand}M", since=mark)
            time.sleep(0.5)
            self.assertEqual(h.vmemctl("assign", "nosuch-domain", "race", check=False).rc, 3)
            after = h.dumpxml("racer")
            self.assertNotIn("urn:vmemd", after, f"gap {gap_ms} ms")
            self.assertEqual(re.sub(r"\s+", "", after), re.sub(r"\s+", "", before), f"gap {gap_ms} ms")


if __name__ == "__main__":
    vmemtest.main()
