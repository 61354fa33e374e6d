#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The metrics of a real daemon with a real guest: `vmemctl metrics` shows
the guest's demand, target, balloon size and used memory and the hook's
calls, real parsers read it, and the textfile for node exporter holds the
same samples, rewritten every stats interval and removed when vmemd stops."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
import check_metrics  # noqa: E402
import vmemtest  # noqa: E402
from vmemtest import wait_for  # noqa: E402

MIB = 1048576


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class Metrics(vmemtest.E2ETestCase):
    def setUp(self):
        h = self.host
        h.cleanup_domains()
        self.textfile = os.path.join(h.tmp, "vmemd.prom")
        h.start_vmemd(daemon__metrics_textfile=self.textfile)

    def metrics(self):
        text = self.host.vmemctl("metrics").stdout
        self.assertEqual(check_metrics.check_openmetrics(text), [])
        return check_metrics.parse_openmetrics(text)[1]

    def test_guest_metrics(self):
        h = self.host
        h.vmemctl("profile", "add", "met", "--demand", "192M", "--prealloc", "off", check=False)
        h.define_guest("met-1", memory_mib=384, workload_mib=64, stats_period=2)
        h.vmemctl("assign", "met-1", "met")
        wait_for(lambda: "<currentMemory unit='KiB'>196608</currentMemory>" in h.domain_xml("met-1"),
                 timeout=20, what="met-1 staged at 192M")
        h.start_guest("met-1", wait=True, timeout=90)

        def reported():
            s = self.metrics()
            return s if value(s, "vmemd_domain_used_bytes", domain="met-1", workload="met") else None

        s = wait_for(reported, timeout=90, interval=2, what="met-1's used memory in the metrics")
        d = {"domain": "met-1", "workload": "met"}
        self.assertEqual(value(s, "vmemd_domain_running", **d), 1)
        self.assertEqual(value(s, "vmemd_domain_memory_bytes", **d), 384 * MIB)
        self.assertEqual(value(s, "vmemd_domain_demand_bytes", **d), 192 * MIB)
        used = value(s, "vmemd_domain_used_bytes", **d)
        # The workload's 64 MiB and the guest's own, well under its balloon.
        self.assertGreater(used, 64 * MIB)
        self.assertLess(used, 192 * MIB)
        self.assertGreater(value(s, "vmemd_domain_actual_bytes", **d), 0)
        self.assertGreater(value(s, "vmemd_domain_available_bytes", **d), 0)
        self.assertEqual(value(s, "vmemd_workload_domains", workload="met"), 1)
        self.assertEqual(value(s, "vmemd_hook_requests_total", op="prepare", result="allowed"), 1)
        self.assertGreaterEqual(value(s, "vmemd_hook_request_duration_seconds_count", op="prepare"), 1)
        self.assertGreaterEqual(value(s, "vmemd_stages_total", outcome="staged"), 1)
        self.assertGreaterEqual(value(s, "vmemd_collector_cycles_total", result="read"), 1)
        self.assertEqual(value(s, "vmemd_ready"), 1)
        self.assertEqual(value(s, "vmemd_libvirt_connected"), 1)
        committed = value(s, "vmemd_host_committed_bytes")
        self.assertGreaterEqual(committed, value(s, "vmemd_domain_actual_bytes", **d))
        # The controller decides once the guest reports: a target follows.
        wait_for(lambda: value(self.metrics(), "vmemd_domain_target_bytes", **d), timeout=30,
                 interval=2, what="met-1's target in the metrics")

        # The textfile: the Prometheus form, rewritten, read by promtool.
        def written():
            try:
                with open(self.textfile) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return text if re.search(r'^vmemd_domain_target_bytes\{domain="met-1"', text, re.M) else None

        text = wait_for(written, timeout=20, what="met-1 in the textfile")
        self.assertEqual(os.stat(self.textfile).st_mode & 0o777, 0o644)
        self.assertEqual(check_metrics.check_prometheus(text), [])

        def same_series():
            with open(self.textfile) as f:
                _, fs = check_metrics.parse_prometheus(f.read())
            return set(fs) == set(self.metrics())

        wait_for(same_series, timeout=20, interval=1,
                 what="the same series in the textfile as in vmemctl metrics")
        h.virsh("destroy", "met-1")

        h.stop_vmemd()
        self.assertFalse(os.path.exists(self.textfile), "the textfile outlived vmemd")


if __name__ == "__main__":
    vmemtest.main()
