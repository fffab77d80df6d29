#!/usr/bin/env python3
"""Time ONNX Runtime (CPU) on any ONNX files with greenbench's measuring protocol and divide a
greenbench result file's CPU cells by it, cell by cell (the same file, batch, thread count,
profile): the comparison `scripts/onnx/compare.sh --models a.onnx,b.onnx` prints.

    python scripts/onnx/ort_files.py a.onnx b.onnx --threads 2 --batch 1,32 \
        --profile quick --greenbench run.json [--out ort.json]
    python scripts/onnx/ort_files.py a.onnx --batch 1,32 --runnable-batches   # prints "1" for a file fixing batch 1
    python scripts/onnx/ort_files.py --merge ort-0.json ort-1.json ... --greenbench run.json --out ort.json
    python scripts/onnx/ort_files.py --fastest cell-round1.json cell-round2.json   # prints the faster round's file
    python scripts/onnx/ort_files.py --flagged PARTS_DIR   # prints the kept cells the table would mark `slower`

compare.sh measures one cell at a time, the two sides alternating (which side goes first
alternates too), and joins the parts with `greenbench merge` and `--merge` here.

A model is named as greenbench names it (the file stem, or the folder of a `model.onnx`).
Inputs are seeded uniform [-1, 1) floats; integer inputs by role, as greenbench generates them:
attention masks (a name with `mask`) all ones, type ids (`type`, `segment`) zeros, other ids
below --vocab. Symbolic
dimensions other than the batch take the sizes `--dim NAME=SIZE` gives (as greenbench's
`--dim`, one size per name here), and the model is then named as greenbench names it
(`stem[name=size]`).
"""
import argparse, json, math, os, re, sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_bench as ob  # noqa: E402  (the shared protocol: PROFILES, session, measure, summarize)


def name_of(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == "model":
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    return stem


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--profile", default="quick", choices=sorted(ob.PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=2)
    ap.add_argument("--greenbench", default=None, help="greenbench result file of the same files (without it: no table)")
    ap.add_argument("--runnable-batches", action="store_true",
                    help="print the batches of --batch the one file given accepts (a file may fix its batch), and exit")
    ap.add_argument("--merge", action="store_true",
                    help="the positional arguments are result files of this script: join their cells (no measuring)")
    ap.add_argument("--fastest", action="store_true",
                    help="the positional arguments are one-cell result files (greenbench's or this script's) of one "
                         "cell's rounds: print the one whose median is lowest, and exit")
    ap.add_argument("--flagged", action="store_true",
                    help="the one positional argument is compare.sh's folder of kept cell parts (g-NNNN.json, "
                         "o-NNNN.json): print the NNNN of the cells the joined table would mark `slower` (either "
                         "side's machine reference more than 20 %% below that side's fastest there), and exit")
    ap.add_argument("--out", default=None, help="write ONNX Runtime's medians here (JSON)")
    ap.add_argument("--dim", action="append", default=[], help="NAME=SIZE for a symbolic dimension (repeatable)")
    a = ap.parse_args()
    p = ob.PROFILES[a.profile]
    batches = [int(x) for x in a.batch.split(",")]
    if a.runnable_batches:
        if len(a.files) != 1:
            ap.error("--runnable-batches takes one file")
        inps = ob.session(a.files[0], 1).get_inputs()
        print(" ".join(str(b) for b in batches if fixed_batch_ok(inps, b)))
        return
    if a.flagged:
        if len(a.files) != 1:
            ap.error("--flagged takes one folder")
        print(" ".join(flagged_cells(a.files[0])))
        return
    if a.fastest:
        med = lambda f: json.load(open(f))["cells"][0]["time_per_example_s"]["median"]
        print(min(a.files, key=med))
        return
    if a.merge:
        parts = [json.load(open(f)) for f in a.files]
        versions = {q["onnxruntime"] for q in parts}
        if len(versions) > 1:
            sys.exit(f"--merge: parts from different ONNX Runtime versions {sorted(versions)}")
        out = [c for q in parts for c in q["cells"]]
        finish(a, out)
        return
    out = []
    dims = {}
    reference = ob.Reference(a.seed)
    for d in a.dim:
        for part in d.split(","):
            k, v = part.split("=")
            dims[k.strip()] = int(v)
    for f in a.files:
        sess = ob.session(f, a.threads)
        inps = sess.get_inputs()
        used = {d: dims[d] for inp in inps for d in inp.shape[1:] if isinstance(d, str) and d in dims}
        for b in batches:
            if not fixed_batch_ok(inps, b):
                print(f"{f}: fixed batch, skipping batch {b}", file=sys.stderr)
                continue
            rng = np.random.default_rng(a.seed)

            def value(inp):
                shape = [b if i == 0 and not isinstance(d, int) else d if isinstance(d, int) else dims[d]
                         for i, d in enumerate(inp.shape)]
                name = inp.name.lower()
                if "int" not in inp.type and "bool" not in inp.type:
                    return rng.uniform(-1, 1, size=shape).astype(np.float32)
                dt = np.int32 if "int32" in inp.type else np.bool_ if "bool" in inp.type else np.int64
                if "mask" in name:
                    return np.ones(shape, dtype=dt)
                if "type" in name or "segment" in name:
                    return np.zeros(shape, dtype=dt)
                return rng.integers(0, a.vocab, size=shape).astype(dt)
            xs = [{inp.name: value(inp) for inp in inps} for _ in range(p["input_sets"])]

            class S:  # ort_bench.measure feeds {"input": x}: here x is the whole feed
                def run(self, o, feed):
                    return sess.run(o, feed["input"])
            per_ex, _, _ = ob.measure(S(), xs, b, p, reference)
            t = ob.summarize(per_ex)
            name = name_of(f)
            if used:
                name += "[" + ",".join(f"{k}={v}" for k, v in sorted(used.items())) + "]"
            out.append(dict(model=name, file=f, batch=b, threads=a.threads, time_per_example_s=t,
                            machine_reference=reference.take()))
    finish(a, out)


def flagged_cells(folder):
    """The NNNN of compare.sh's kept parts (`g-NNNN.json` greenbench's, `o-NNNN.json` ONNX
    Runtime's, one cell each) that the joined table marks `slower` (`ob.machine_marks`, over
    all the kept cells as the table takes them), in order."""
    names = sorted(n[2:6] for n in os.listdir(folder) if re.fullmatch(r"g-\d{4}\.json", n))
    pairs = []
    for n in names:
        with open(os.path.join(folder, f"g-{n}.json")) as f:
            g = json.load(f)["cells"]
        with open(os.path.join(folder, f"o-{n}.json")) as f:
            o = json.load(f)["cells"]
        if len(g) != 1 or len(o) != 1:
            sys.exit(f"--flagged: part {n} holds {len(g)} greenbench and {len(o)} ONNX Runtime cells, not one each")
        pairs.append((g[0], o[0]))
    return [n for n, m in zip(names, ob.machine_marks(pairs)) if m.startswith("slower")]


def fixed_batch_ok(inps, b):
    """Whether every input accepts batch `b` (a symbolic leading dimension, or exactly b)."""
    return not any(isinstance(inp.shape[0], int) and inp.shape[0] != b for inp in inps)


def finish(a, out):
    """Write ONNX Runtime's cells to --out and, given --greenbench, print greenbench / ORT per cell."""
    if a.out:
        json.dump(dict(onnxruntime=ort.__version__, profile=a.profile, cells=out), open(a.out, "w"), indent=1)
    if not a.greenbench:
        return
    g = json.load(open(a.greenbench))
    mine = {(c["model"], c["batch"]): c for c in g["cells"] if c["backend"] == "cpu" and c["status"] == "ok"}
    ratios = []
    print(f"| model | batch | greenbench cpu (us/ex) | onnxruntime {ort.__version__} (us/ex) | greenbench / ORT | machine |")
    print("|---|---:|---:|---:|---:|---|")
    pairs = [(mine[k], c) for c in out if (k := (c["model"], c["batch"])) in mine]
    marks = dict(zip((id(c) for _, c in pairs), ob.machine_marks(pairs)))
    for c in out:
        m = mine.get((c["model"], c["batch"]))
        gt = m["time_per_example_s"]["median"] if m else None
        ot = c["time_per_example_s"]["median"]
        ratio = f"{gt / ot:.2f}" if gt else "-"
        gs = f"{gt * 1e6:.2f}" if gt else "-"
        mark = marks.get(id(c), "-")
        print(f"| {c['model']} | {c['batch']} | {gs} | {ot * 1e6:.2f} | {ratio} | {mark} |")
        if gt:
            ratios.append((c["model"], c["batch"], gt / ot, mark.startswith("slower")))
    print(ob.MACHINE_NOTE)
    span = ob.reference_span(pairs)
    if span:
        print(span)
    if ratios:
        gm = math.exp(sum(math.log(r) for _, _, r, _ in ratios) / len(ratios))
        over = ", ".join(f"{m} b{b} {r:.2f}" for m, b, r, _ in ratios if r > 0.9) or "none"
        print(f"\ngeometric mean of the {len(ratios)} ratios: {gm:.2f}; cells above 0.9: {over}")
        suspect = [f"{m} b{b}" for m, b, _, s in ratios if s]
        if suspect:
            print(f"cells measured while a side's machine ran slower (re-measure them): {', '.join(suspect)}")


if __name__ == "__main__":
    main()
