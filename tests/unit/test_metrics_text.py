#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmemd's metrics as real parsers read them: the OpenMetrics text of a
realistic snapshot (metrics-sample) through the Prometheus client's strict
OpenMetrics parser, its Prometheus text form through promtool check metrics
(parser and linter) and the client's text parser, the same samples in both
and in the JSON form."""
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_metrics  # noqa: E402

SAMPLE = os.environ["METRICS_SAMPLE"]
SRC = os.environ["VMEM_SRCDIR"]


def sample(form):
    r = subprocess.run([SAMPLE, form], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise AssertionError(f"metrics-sample {form}: {r.stderr}")
    return r.stdout


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.om = sample("openmetrics")
        cls.prom = sample("prometheus")
        cls.json = json.loads(sample("json"))

    def test_openmetrics_parses(self):
        self.assertEqual(check_metrics.check_openmetrics(self.om), [])
        families, samples = check_metrics.parse_openmetrics(self.om)
        self.assertEqual(families["vmemd_build"], ("info", ""))
        self.assertEqual(families["vmemd_hook_requests"], ("counter", ""))
        self.assertEqual(families["vmemd_hook_request_duration_seconds"], ("histogram", "seconds"))
        self.assertEqual(families["vmemd_host_capacity_bytes"], ("gauge", "bytes"))
        self.assertEqual(families["vmemd_workload_confidence_ratio"], ("gauge", "ratio"))
        key = ("vmemd_domain_used_bytes", (("domain", 'web "blue"\\1'), ("workload", "web")))
        self.assertEqual(samples[key], 900 * 1048576)
        key = ("vmemd_hook_requests_total", (("op", "prepare"), ("result", "refused")))
        self.assertEqual(samples[key], 4)

    def test_prometheus_form_passes_promtool(self):
        self.assertEqual(check_metrics.promtool(self.prom), [])
        self.assertEqual(check_metrics.check_prometheus(self.prom), [])

    def test_same_samples_in_every_form(self):
        _, om = check_metrics.parse_openmetrics(self.om)
        _, prom = check_metrics.parse_prometheus(self.prom)
        self.assertEqual(om, prom)
        from_json = {}
        for fam in self.json:
            for s in fam["samples"]:
                from_json[(s["name"], tuple(sorted(s["labels"].items())))] = s["value"]
        self.assertEqual(om, from_json)
        families, _ = check_metrics.parse_openmetrics(self.om)
        self.assertEqual({f["name"]: (f["type"], f.get("unit", "")) for f in self.json},
                         families)

    def test_parsers_are_strict(self):
        # What the checks catch, so that passing them means something.
        self.assertNotEqual(check_metrics.check_openmetrics(self.om.replace("# EOF\n", "")), [])
        broken = self.om.replace("vmemd_ready 1", "vmemd_ready one")
        self.assertNotEqual(check_metrics.check_openmetrics(broken), [])
        lint = "# HELP vmemd_x_mib Size.\n# TYPE vmemd_x_mib counter\nvmemd_x_mib 1\n"
        self.assertNotEqual(check_metrics.promtool(lint), [])
        nohelp = re.sub(r"^# HELP vmemd_ready .*\n", "", self.prom, flags=re.M)
        self.assertNotEqual(check_metrics.promtool(nohelp), [])
        self.assertNotEqual(check_metrics.conventions({"vmemd_used_mib": ("gauge", "")}), [])

    def test_names_follow_conventions(self):
        families, samples = check_metrics.parse_openmetrics(self.om)
        for name, (typ, _) in families.items():
            if typ == "counter":
                self.assertFalse(name.endswith("_total"), name)
        for name, _ in samples:
            self.assertTrue(name.startswith("vmemd_"), name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
