#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The collector against real guests: samples appear for managed domains
only, from the guest's own statistics, and used memory tracks what the
guest's workload really holds."""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


class Collector(vmemtest.E2ETestCase):
    def setUp(self):
        self.host.cleanup_domains()
        self.host.start_vmemd()
        self.host.vmemctl("profile", "add", "coll", "--demand", "320M", check=False)

    def latest_used(self, name):
        uuid = self.host.virsh("domuuid", name).stdout.strip()
        db = sqlite3.connect(f"file:{self.host.database}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT used_mib, guest FROM samples s JOIN domain_ids d ON d.id = s.domain_id"
                              " WHERE d.uuid = ? ORDER BY t DESC LIMIT 3", (uuid,)).fetchall()
        finally:
            db.close()
        if len(rows) < 3 or any(g != 1 for _, g in rows):
            return None
        used = [u for u, _ in rows]
        # Settled: the last three samples agree within 4 MiB.
        return used[0] if max(used) - min(used) <= 4 else None

    def test_used_memory_tracks_the_workload(self):
        h = self.host
        for name, load in (("small", 32), ("large", 160)):
            h.define_guest(name, memory_mib=384, workload_mib=load)
            h.vmemctl("assign", name, "coll")
        h.define_guest("unmanaged", memory_mib=128)
        wait_for(lambda: "vmemd-plan" in h.dumpxml("large"), timeout=20, what="staging")
        for name in ("small", "large", "unmanaged"):
            h.virsh("start", name)
        small = wait_for(lambda: self.latest_used("small"), timeout=120, interval=2,
                         what="settled guest samples of small")
        large = wait_for(lambda: self.latest_used("large"), timeout=120, interval=2,
                         what="settled guest samples of large")
        # Same kernel and init: the difference is the workload, 128 MiB.
        self.assertAlmostEqual(large - small, 128, delta=12.8,
                               msg=f"used small={small} large={large}")
        uuid = h.virsh("domuuid", "unmanaged").stdout.strip()
        db = sqlite3.connect(f"file:{h.database}?mode=ro", uri=True)
        try:
            n = db.execute("SELECT COUNT(*) FROM samples s JOIN domain_ids d ON d.id = s.domain_id"
                           " WHERE d.uuid = ?", (uuid,)).fetchone()[0]
            peaks = db.execute("SELECT COUNT(*) FROM peaks p JOIN workload_ids w ON w.id = p.workload_id"
                               " WHERE w.name = 'coll' AND p.interval_s = 3600").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(n, 0, "unmanaged domains are not sampled")
        self.assertGreaterEqual(peaks, 2, "hourly peaks for both managed domains")
        for name in ("small", "large", "unmanaged"):
            h.virsh("destroy", name)


if __name__ == "__main__":
    vmemtest.main()
