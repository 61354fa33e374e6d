#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Peer-based demand on a real host: a second VM of a workload is staged
from what the first one really used, not from the profile's manual value,
and explain says so."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402


def current_mib(xml):
    m = re.search(r"<currentMemory unit='KiB'>(\d+)</currentMemory>", xml)
    return int(m.group(1)) // 1024 if m else None


class Estimate(vmemtest.E2ETestCase):
    def test_second_vm_is_staged_from_the_first_vms_usage(self):
        h = self.host
        h.cleanup_domains()
        # No minimum history, so that a few minutes of a peer count.
        h.start_vmemd(estimator__min_history_hours="0")
        h.vmemctl("profile", "add", "peer", "--demand", "900M", check=False)
        h.define_guest("peer-a", memory_mib=1024, workload_mib=300)
        h.vmemctl("assign", "peer-a", "peer")
        wait_for(lambda: current_mib(h.dumpxml("peer-a")) == 900, timeout=20, what="peer-a staged")
        self.assertEqual(h.vmemctl_json("explain", "peer-a")["plan"]["source"], "profile")
        h.virsh("start", "peer-a")
        # The guest loads its ~300 MiB; its samples become peer history.
        h.define_guest("peer-b", memory_mib=1024)
        h.vmemctl("assign", "peer-b", "peer")

        def staged_from_peers():
            x = h.vmemctl_json("explain", "peer-b")
            # The guest loads its workload after booting: wait until the
            # estimate has seen it (staging follows beyond the hysteresis).
            return x if (x["plan"]["source"] == "peers" and x.get("staged", {}).get("source") == "peers"
                         and x["staged"]["demand_mib"] > 300) else None

        x = wait_for(staged_from_peers, timeout=180, interval=2, what="peer-b staged from peer-a's usage")
        demand = x["staged"]["demand_mib"]
        # ~300 MiB of workload plus the guest's own use, plus the margin.
        self.assertGreater(demand, 300)
        self.assertLess(demand, 900, "the demand comes from the peer, not the manual 900M")
        est = x["plan"]["estimate"]
        self.assertEqual([p["name"] for p in est["peers"]], ["peer-a"])
        self.assertEqual(current_mib(h.dumpxml("peer-b")), x["staged"]["demand_mib"])
        out = h.vmemctl("explain", "peer-b").stdout
        self.assertIn("from peers", out)
        # The working, readable: the quantile of the peer levels, then the peer itself.
        self.assertRegex(out, r"Estimate:  p95 of 1 peer level = \d+(\.\d+)?[KMGT]; margin 15 %")
        self.assertRegex(out, r"\n +peer-a +\S+ +\d+ +1 +\d+(\.\d+)?[KMGT] +\d+\.\d\d\n")
        # peer-a's own explanation counts its own history among the peers, and says so.
        own = h.vmemctl("explain", "peer-a").stdout
        self.assertIn("(this domain's own history)", own)
        h.virsh("destroy", "peer-a")


if __name__ == "__main__":
    vmemtest.main()
