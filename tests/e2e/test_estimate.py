#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Demand on a real host: a second VM of a workload is staged from what the
first one really used (a first start, peers only), a VM that has run
before is staged from its own history rather than its peers', and explain
says which."""

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
        self.assertEqual(est["kind"], "first-start")
        self.assertEqual([p["name"] for p in est["peers"]], ["peer-a"])
        self.assertEqual(current_mib(h.dumpxml("peer-b")), x["staged"]["demand_mib"])
        out = h.vmemctl("explain", "peer-b").stdout
        self.assertIn("from peers", out)
        # The working, readable: the quantile of the peer levels, the margin,
        # then the peer itself (level, and level scaled to peer-b's size).
        self.assertRegex(out, r"Estimate:  first start: p90 of 1 peer level relative to <memory>")
        self.assertRegex(out, r"Margin:    15 %, as configured: \d+ outcomes, too few to calibrate")
        self.assertRegex(out, r"\n +peer-a +\S+ +\d+ +1 +\d+(\.\d+)?[KMGT] +\d+(\.\d+)?[KMGT] +\d+\.\d\d\n")
        # peer-a, running, is sized from its own history: it is not its own peer.
        own = h.vmemctl_json("explain", "peer-a")["plan"]["estimate"]
        self.assertEqual(own["source"], "own")
        self.assertEqual(own["peers"], [])
        h.virsh("destroy", "peer-a")

    def test_restart_is_staged_from_own_history_not_peers(self):
        h = self.host
        h.cleanup_domains()
        # No minimum history, and the peers' history weighs at most 3.6 s
        # against the domain's own minute or more: its own leads.
        h.start_vmemd(estimator__min_history_hours="0", estimator__prior_hours="0.001")
        h.vmemctl("profile", "add", "own", "--demand", "900M", check=False)
        h.define_guest("own-big", memory_mib=1024, workload_mib=300)
        h.define_guest("own-small", memory_mib=1024, workload_mib=150)
        for name in ("own-big", "own-small"):
            h.vmemctl("assign", name, "own")
        for name in ("own-big", "own-small"):
            h.virsh("start", name)

        def level(name, above):
            # The domain's own level, as its running explanation shows it,
            # once the guest has loaded its workload.
            est = h.vmemctl_json("explain", name)["plan"]["estimate"]
            return est if est["source"] == "own" and est["own_level_mib"] > above else None

        big = wait_for(lambda: level("own-big", 300), timeout=240, interval=2,
                       what="own-big's ~300 MiB seen")
        small = wait_for(lambda: level("own-small", 150), timeout=120, interval=2,
                         what="own-small's ~150 MiB seen")
        self.assertLess(small["own_level_mib"], big["own_level_mib"] - 100)
        # Let its own history grow to 18 s or more (five times the peers'
        # 3.6 s), then stop the big one: it is restaged for its next start.
        wait_for(lambda: h.vmemctl_json("explain", "own-big")["plan"]["estimate"].get("own_hours", 0) >= 0.005,
                 timeout=60, interval=2, what="own-big's own history of 18 s")
        h.virsh("destroy", "own-big")

        def restaged():
            x = h.vmemctl_json("explain", "own-big")
            st = x.get("staged", {})
            return x if st.get("source") == "own" and x["plan"]["source"] == "own" else None

        x = wait_for(restaged, timeout=60, interval=2, what="own-big restaged from its own history")
        est = x["plan"]["estimate"]
        self.assertEqual(est["kind"], "own")
        # Shrinkage by hours of history: own / (own + min(peers', prior_hours)).
        prior = min(est["history_hours"], 0.001)
        self.assertAlmostEqual(est["own_weight"], est["own_hours"] / (est["own_hours"] + prior), places=4)
        self.assertGreater(est["own_weight"], 0.8)
        self.assertEqual([p["name"] for p in est["peers"]], ["own-small"])
        peer_level = est["peers"][0]["scaled_mib"]
        demand = x["staged"]["demand_mib"]
        self.assertEqual(current_mib(h.dumpxml("own-big")), demand)
        # Its own ~300 MiB, not its peer's ~150 MiB (a first start's base).
        self.assertGreater(demand, 300)
        self.assertGreater(est["base_mib"], peer_level + 100)
        out = h.vmemctl("explain", "own-big").stdout
        self.assertIn("from own", out)
        self.assertRegex(out, r"Estimate:  own history: level \d+(\.\d+)?[KMGT] over \d+\.\d h, weight 0\.\d\d")
        # Sized as a first start it would have come from the peer alone.
        self.assertEqual(h.vmemctl_json("explain", "own-small")["plan"]["estimate"]["peers"][0]["name"],
                         "own-big")
        h.virsh("destroy", "own-small")


if __name__ == "__main__":
    vmemtest.main()
