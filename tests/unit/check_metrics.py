#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reads vmemd's metrics with real parsers.

  check_metrics.py --openmetrics FILE   the OpenMetrics parser of the Prometheus
                                        Python client (python3-prometheus-client)
  check_metrics.py --prometheus FILE    promtool check metrics (the parser and
                                        linter of Debian's prometheus package),
                                        then the client's text-format parser

FILE "-" is standard input.  Prints one line per problem and exits 1 when
there is any; a parser that is not installed is a problem, never a skip.
Also a module: test_metrics_text.py and test-methods use its functions.
"""
import argparse
import math
import re
import shutil
import subprocess
import sys

NAME = re.compile(r"^vmemd_[a-z][a-z0-9_]*$")
# The Prometheus base units a vmemd family may end with.
UNITS = ("bytes", "seconds", "ratio")


class Missing(Exception):
    """A prerequisite is not installed."""


def _client():
    try:
        from prometheus_client.openmetrics import parser as om
        from prometheus_client import parser as prom
    except ImportError as e:
        raise Missing(f"the Prometheus Python client is missing ({e}): "
                      "apt-get install python3-prometheus-client") from e
    return om, prom


def _samples(families):
    """{(sample name, ((label, value), ...)): value} of parsed families;
    a sample twice is an error."""
    out = {}
    for fam in families:
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in out:
                raise ValueError(f"sample twice: {key}")
            out[key] = s.value
    return out


def parse_openmetrics(text):
    """Families (name -> (type, unit)) and samples of OpenMetrics @text, read
    by the client's strict OpenMetrics parser (it requires # EOF, units that
    match the names, counters' _total, histograms' +Inf bucket...)."""
    om, _ = _client()
    fams = list(om.text_string_to_metric_families(text))
    return {f.name: (f.type, f.unit) for f in fams}, _samples(fams)


def parse_prometheus(text):
    """The same for the Prometheus text format 0.0.4."""
    _, prom = _client()
    fams = list(prom.text_string_to_metric_families(text))
    return {f.name: (f.type, f.unit) for f in fams}, _samples(fams)


def promtool(text):
    """Problems promtool check metrics reports on @text (parse errors and
    lint: HELP, _total, base units, naming); [] when it has none."""
    tool = shutil.which("promtool")
    if tool is None:
        raise Missing("promtool is missing: apt-get install prometheus")
    r = subprocess.run([tool, "check", "metrics"], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    if r.returncode != 0 and not lines:
        lines = [f"promtool check metrics exited {r.returncode}"]
    return lines


def conventions(families):
    """vmemd's own naming rules over parsed OpenMetrics families."""
    problems = []
    for name, (typ, unit) in families.items():
        if not NAME.match(name):
            problems.append(f"{name}: not a vmemd_ name in snake case")
        if typ not in ("gauge", "counter", "histogram", "info"):
            problems.append(f"{name}: type {typ}")
        for u in UNITS:
            if name.endswith("_" + u) and unit != u:
                problems.append(f"{name}: ends in _{u} but its unit is '{unit}'")
        if unit and not name.endswith("_" + unit):
            problems.append(f"{name}: unit {unit} not at the end of the name")
        if typ == "histogram" and not name.endswith("_seconds"):
            problems.append(f"{name}: a histogram of something other than seconds")
        if re.search(r"_(mib|kib|ms|percent|pct)(_|$)", name):
            problems.append(f"{name}: not in base units")
    return problems


def check_openmetrics(text):
    try:
        families, samples = parse_openmetrics(text)
    except Missing:
        raise
    except Exception as e:  # the parser's ValueError, say
        return [f"OpenMetrics parser: {e}"]
    problems = conventions(families)
    for (name, _), value in samples.items():
        if math.isnan(value):
            problems.append(f"{name}: NaN")
    if not samples:
        problems.append("no samples")
    return problems


def check_prometheus(text):
    problems = [f"promtool: {l}" for l in promtool(text)]
    try:
        parse_prometheus(text)
    except Missing:
        raise
    except Exception as e:
        problems.append(f"text format parser: {e}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--openmetrics", metavar="FILE")
    group.add_argument("--prometheus", metavar="FILE")
    args = ap.parse_args()
    path = args.openmetrics or args.prometheus
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        problems = check_openmetrics(text) if args.openmetrics else check_prometheus(text)
    except Missing as e:
        problems = [str(e)]
    for p in problems:
        print(f"{path}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
