#!/usr/bin/env python3
"""Tests of ort_files.py's bookkeeping (no ONNX Runtime session is made): `--flagged`, which
cells compare.sh measures again, and the line of each side's machine references under the
table. Run: python scripts/onnx/test_ort_files.py"""
import json, os, subprocess, sys, tempfile, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ort_files  # noqa: E402


def ref(gflops):
    return None if gflops is None else {"n": 256, "gflops": gflops}


def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)


def write_parts(folder, cells, rounds=False):
    """cells: (greenbench reference GFLOP/s, ORT's) per cell, as compare.sh's kept parts; with
    `rounds`, also a per-round file beside each (which --flagged must not read)."""
    for k, (g, o) in enumerate(cells):
        n = f"{k:04d}"
        gc = {"model": f"m{k}", "batch": 1, "backend": "cpu", "status": "ok",
              "time_per_example_s": {"median": 1e-3}}
        oc = {"model": f"m{k}", "batch": 1, "time_per_example_s": {"median": 1e-3}}
        if g is not None:
            gc["machine_reference"] = ref(g)
        if o is not None:
            oc["machine_reference"] = ref(o)
        dump({"cells": [gc]}, os.path.join(folder, f"g-{n}.json"))
        dump({"onnxruntime": "x", "cells": [oc]}, os.path.join(folder, f"o-{n}.json"))
        if rounds:
            # A slow round that was not kept: reading it would flag cell k.
            slow = dict(gc, machine_reference=ref(1.0))
            dump({"cells": [slow]}, os.path.join(folder, f"g-{n}-r1.json"))


class Flagged(unittest.TestCase):
    def flagged(self, cells, rounds=False):
        with tempfile.TemporaryDirectory() as d:
            write_parts(d, cells, rounds)
            return ort_files.flagged_cells(d)

    def test_steady_cells_are_not_flagged(self):
        self.assertEqual(self.flagged([(100, 80), (95, 78), (90, 70)]), [])

    def test_a_slow_side_flags_its_cell_either_side(self):
        # 100 / 80 = 1.25 > 1.2 on greenbench's side (cell 1), 80 / 60 on ORT's (cell 3);
        # 100 / 85 within the 20 % (cell 2).
        got = self.flagged([(100, 80), (80, 80), (85, 80), (100, 60)])
        self.assertEqual(got, ["0001", "0003"])

    def test_a_cell_without_a_reference_is_not_flagged(self):
        self.assertEqual(self.flagged([(100, 80), (None, 40), (100, None)]), [])

    def test_only_the_kept_parts_are_read(self):
        self.assertEqual(self.flagged([(100, 80), (99, 79)], rounds=True), [])

    def test_the_command_line_prints_them(self):
        with tempfile.TemporaryDirectory() as d:
            write_parts(d, [(100, 80), (50, 80), (100, 80), (100, 30)])
            out = subprocess.run([sys.executable, os.path.join(HERE, "ort_files.py"), "--flagged", d],
                                 capture_output=True, text=True, check=True).stdout
            self.assertEqual(out.split(), ["0001", "0003"])

    def test_a_part_with_two_cells_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            write_parts(d, [(100, 80)])
            with open(os.path.join(d, "g-0000.json")) as f:
                g = json.load(f)
            g["cells"].append(g["cells"][0])
            dump(g, os.path.join(d, "g-0000.json"))
            with self.assertRaises(SystemExit) as e:
                ort_files.flagged_cells(d)
            self.assertIn("not one each", str(e.exception))


class ReferenceSpan(unittest.TestCase):
    def test_each_sides_slowest_and_fastest(self):
        pairs = [({"machine_reference": ref(g)} if g else {}, {"machine_reference": ref(o)} if o else {})
                 for g, o in [(100, 80), (60, 90), (None, 30)]]
        line = ort_files.ob.reference_span(pairs)
        self.assertIn("greenbench 60.0-100.0", line)
        self.assertIn("ONNX Runtime 30.0-90.0", line)

    def test_no_reference_no_line(self):
        self.assertIsNone(ort_files.ob.reference_span([({}, {})]))


if __name__ == "__main__":
    unittest.main()
