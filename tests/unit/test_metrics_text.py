#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmemd's metrics as real parsers read them: the OpenMetrics text of a
realistic snapshot (metrics-sample) through the Prometheus client's strict
OpenMetrics parser, its Prometheus text form through promtool check metrics
(parser and linter) and the client's text parser, the same samples in both
and in the JSON form; the Grafana dashboard data/vmemd-grafana.json
queries only metrics that vmemd writes; vmemd(8) lists them all."""
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
DASHBOARD = os.path.join(SRC, "data", "vmemd-grafana.json")


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
        self.assertEqual(families["vmemd_workload_observed_risk_ratio"], ("gauge", "ratio"))
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


class ManPage(unittest.TestCase):
    def test_vmemd_8_lists_every_metric(self):
        # The METRICS section of vmemd(8) names each metric as it is
        # queried: a counter with its _total, an info with its _info.
        with open(os.path.join(SRC, "man", "vmemd.8"), encoding="utf-8") as f:
            man = f.read()
        section = re.search(r"^\.SH METRICS\n(.*?)^\.SH ", man, re.M | re.S).group(1)
        listed = set(re.findall(r"^\.BR? (vmemd_[a-z0-9_]+)", section, re.M))
        families, _ = check_metrics.parse_openmetrics(sample("openmetrics"))
        suffix = {"counter": "_total", "info": "_info"}
        written = {name + suffix.get(typ, "") for name, (typ, _) in families.items()}
        self.assertEqual(listed, written)


def dashboard_exprs(node, out):
    """Every PromQL text of the dashboard: targets' expr, variables' query."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append(v)
            elif k == "definition" and isinstance(v, str):
                out.append(v)
            else:
                dashboard_exprs(v, out)
    elif isinstance(node, list):
        for v in node:
            dashboard_exprs(v, out)
    return out


def datasources(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                out.append(v)
            else:
                datasources(v, out)
    elif isinstance(node, list):
        for v in node:
            datasources(v, out)
    return out


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD, encoding="utf-8") as f:
            cls.dash = json.load(f)
        _, samples = check_metrics.parse_openmetrics(sample("openmetrics"))
        cls.names = {name for name, _ in samples}

    def test_datasource_variable(self):
        variables = self.dash["templating"]["list"]
        ds = [v for v in variables if v["type"] == "datasource"]
        self.assertEqual(len(ds), 1)
        self.assertEqual(ds[0]["query"], "prometheus")
        name = ds[0]["name"]
        # Every panel, query and variable reads through it.
        for d in datasources(self.dash["panels"], []) + datasources(variables, []):
            self.assertEqual(d, {"type": "prometheus", "uid": "${%s}" % name})

    def test_every_metric_queried_exists(self):
        exprs = dashboard_exprs(self.dash, [])
        self.assertGreater(len(exprs), 10)
        queried = set()
        for e in exprs:
            queried |= set(re.findall(r"\bvmemd_[a-z0-9_]+\b", e))
        missing = queried - self.names
        self.assertEqual(missing, set(), f"queried but not written: {sorted(missing)}")

    def test_what_it_shows(self):
        text = "\n".join(dashboard_exprs(self.dash, []))
        for name in ("vmemd_host_capacity_bytes", "vmemd_host_committed_bytes",
                     "vmemd_domain_target_bytes", "vmemd_domain_actual_bytes",
                     "vmemd_domain_used_bytes", "vmemd_controller_moves_total",
                     "vmemd_hook_request_duration_seconds_bucket",
                     "vmemd_store_write_errors_total"):
            self.assertIn(name, text)
        self.assertRegex(text, r"histogram_quantile\(0\.99, [^\n]*vmemd_hook_request_duration")

    def test_panels(self):
        ids = [p["id"] for p in self.dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        for p in self.dash["panels"]:
            self.assertTrue(p.get("title"), p)
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"])
                refs = [t["refId"] for t in p["targets"]]
                self.assertEqual(len(refs), len(set(refs)), p["title"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
