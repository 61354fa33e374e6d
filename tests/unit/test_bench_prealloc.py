#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The tables of bench/prealloc.py: each cell gives the p50, the range, the
number of runs and the ratio of its p50 to lazy's, from the runs given."""
import importlib.util
import os
import unittest

SRC = os.environ["VMEM_SRCDIR"]
spec = importlib.util.spec_from_file_location("prealloc", os.path.join(SRC, "bench", "prealloc.py"))
prealloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prealloc)

KEYS = [key for key, _, _ in prealloc.FIGURES]


def run(touch_ms, start_s=2.0, mem=100.0):
    fig = {key: mem for key in KEYS}
    fig["touch_ms"] = touch_ms
    fig["start_s"] = start_s
    return fig


class Cell(unittest.TestCase):
    def test_p50_range_n_ratio(self):
        self.assertEqual(prealloc.cell([300, 100, 200], 100, "{:.0f}"), "200 [100-300] (3) 2.00x")

    def test_even_n_takes_the_mean_of_the_middle_two(self):
        self.assertEqual(prealloc.cell([4.0, 1.0, 2.0, 3.0], 5.0, "{:.2f}"),
                         "2.50 [1.00-4.00] (4) 0.50x")

    def test_one_run(self):
        self.assertEqual(prealloc.cell([812.4], 50, "{:.0f}"), "812 [812-812] (1) 16.25x")

    def test_no_runs(self):
        self.assertEqual(prealloc.cell([], 100, "{:.0f}"), "-")

    def test_no_baseline_no_ratio(self):
        self.assertEqual(prealloc.cell([10, 30], 0, "{:.0f}"), "20 [10-30] (2) -")


class Table(unittest.TestCase):
    def results(self):
        return {
            (256, "balloon"): [run(400), run(300, 5.5), run(500)],
            (256, "lazy"): [run(1000), run(600, 2.25)],
            (256, "virtio-mem"): [],
        }

    def test_rows_and_columns(self):
        lines = prealloc.table(self.results(), 256)
        self.assertEqual(len(lines), 2 + len(prealloc.FIGURES))
        self.assertEqual([c.strip() for c in lines[0].strip("|").split("|")],
                         ["figure"] + list(prealloc.MODES))
        # Every line has the same columns, aligned.
        self.assertEqual(len({len(line) for line in lines}), 1, "\n".join(lines))
        self.assertEqual(len({line.count("|") for line in lines}), 1)
        for line, (_, label, _) in zip(lines[2:], prealloc.FIGURES):
            self.assertTrue(line.startswith(f"| {label} "), line)

    def test_cells_from_their_own_runs(self):
        lines = prealloc.table(self.results(), 256)
        touch = [c.strip() for c in lines[2].strip("|").split("|")]
        self.assertEqual(touch, ["touch ms (guest)", "400 [300-500] (3) 0.50x",
                                 "800 [600-1000] (2) 1.00x", "-"])
        start = [c.strip() for c in lines[3].strip("|").split("|")]
        self.assertEqual(start, ["virsh start s", "2.00 [2.00-5.50] (3) 0.94x",
                                 "2.12 [2.00-2.25] (2) 1.00x", "-"])

    def test_no_baseline_runs(self):
        results = self.results()
        results[(256, "lazy")] = []
        touch = [c.strip() for c in prealloc.table(results, 256)[2].strip("|").split("|")]
        self.assertEqual(touch[1:], ["400 [300-500] (3) -", "-", "-"])


if __name__ == "__main__":
    unittest.main()
