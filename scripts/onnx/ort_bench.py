#!/usr/bin/env python3
"""Run `greenbench export` output in ONNX Runtime (CPU): check every model, then time it
with greenbench's measuring protocol and write a result file in greenbench's schema
(backend `onnxruntime-cpu`), so `greenbench report` and `compare` show ONNX Runtime beside
greenbench's own backends.

    greenbench export all --out /tmp/onnx
    python scripts/onnx/ort_bench.py /tmp/onnx --check-only
    python scripts/onnx/ort_bench.py /tmp/onnx --threads 2 --out results/runs/ort.json \
        --greenbench results/runs/<greenbench run>.json     # prints greenbench / ORT per cell
"""
import argparse, json, math, os, platform, socket, statistics, subprocess, sys, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

# The same durations as greenbench's profiles (crates/greenbench-harness/src/protocol.rs).
PROFILES = {
    "quick": dict(name="quick", warmup_s=0.25, windows=5, window_s=0.3, input_sets=4, idle_s=0.0),
    "full": dict(name="full", warmup_s=2.0, windows=10, window_s=2.0, input_sets=8, idle_s=0.0),
}


def summarize(samples):
    """Median, distribution-free interval (order statistics, as greenbench), CV."""
    s = sorted(samples)
    n = len(s)
    def cdf(k):
        return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    j = 1
    while j < n // 2 and cdf(j) <= 0.025:
        j += 1
    mean = sum(s) / n
    sd = statistics.stdev(s) if n > 1 else 0.0
    return dict(median=statistics.median(s), ci95_low=s[j - 1], ci95_high=s[n - j],
                ci_coverage=1 - 2 * cdf(j - 1), cv=sd / mean if mean > 0 else 0.0,
                samples=list(samples))


def session(path, threads, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = level
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def check(d, tolerance):
    """fp32 exports: ONNX Runtime's output within `tolerance` of greenbench's, relative to
    its largest magnitude. int8 (QDQ) exports: within one quantization step of the last
    uint8 value before the output (greenbench.json's output_step), absolute: the two
    runtimes round the same quantized model's values in their own way. The int8 check runs
    the model as ONNX defines QDQ (basic graph optimizations: DequantizeLinear, the float op,
    QuantizeLinear); with all optimizations ONNX Runtime fuses QDQ into its own integer
    kernels, whose results depend on the CPU (on AVX2 without VNNI, MLAS's u8 x s8 products
    saturate in 16 bits: up to 9 output steps off on the dev VM, 2026-12-03), so that
    deviation is reported beside the verdict, not judged."""
    model = onnx.load(os.path.join(d, "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    meta = json.load(open(os.path.join(d, "greenbench.json")))
    x = numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "test_data_set_0", "input_0.pb")))
    y = numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "test_data_set_0", "output_0.pb")))
    got = session(os.path.join(d, "model.onnx"), 1).run(None, {"input": x})[0]
    if got.shape != y.shape:
        return False, f"shape {got.shape} != {y.shape}"
    diff = float(np.abs(got - y).max())
    if meta.get("precision") == "int8":
        step = meta["output_step"]
        qdq = session(os.path.join(d, "model.onnx"), 1,
                      ort.GraphOptimizationLevel.ORT_ENABLE_BASIC).run(None, {"input": x})[0]
        dq = float(np.abs(qdq - y).max())
        return dq <= step * 1.0001 + 1e-6, (
            f"int8 (QDQ): max |ort - greenbench| = {dq:.3e} = {dq / step:.2f} output steps "
            f"({step:.3e}); ONNX Runtime's fused integer kernels on this CPU: {diff / step:.2f} steps")
    scale = max(float(np.abs(y).max()), 1e-30)
    if meta.get("precision") == "bf16":
        # As ONNX defines the Casts (basic optimizations), within one bf16 step (2^-8) of the
        # output's scale: a last-bit difference before a rounding to bf16 can flip it to the
        # neighbouring bf16 (greenbench's `verify --precision bf16` holds its own backends
        # to the same). With all optimizations ONNX Runtime may drop a float->bf16->float
        # Cast pair: that deviation is reported beside the verdict.
        basic = session(os.path.join(d, "model.onnx"), 1,
                        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC).run(None, {"input": x})[0]
        rel = float(np.abs(basic - y).max()) / scale
        tol = max(tolerance, 2.0 ** -8)
        return rel <= tol, (
            f"bf16: max |ort - greenbench| / max |greenbench| = {rel:.2e} (tolerance {tol:.2e}); "
            f"with all of ONNX Runtime's optimizations {diff / scale:.2e}")
    rel = diff / scale
    return rel <= tolerance, f"max |ort - greenbench| / max |greenbench| = {rel:.2e}"


def inputs_for(meta, batch, sets, seed):
    rng = np.random.default_rng(seed)
    shape = [batch] + meta["input_shape"]
    if meta.get("token_vocab"):
        return [rng.integers(0, meta["token_vocab"], size=shape, dtype=np.int64) for _ in range(sets)]
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(sets)]


# The machine's reference beside each cell, as greenbench's (crates/greenbench-harness/src/
# reference.rs): a fixed 256^3 fp32 MatMul on one thread, three runs after each window, the
# fastest kept.
REFERENCE_N = 256
REFERENCE_RUNS = 3
# A cell whose reference median is more than this below its side's fastest is flagged.
REFERENCE_TOLERANCE = 0.20


class Reference:
    """The reference MatMul in ONNX Runtime on one thread (as greenbench's: it reads the
    machine, not the state of the cells' thread pool; ONNX Runtime's 2-thread one read about
    160 or 320 GFLOP/s window to window on the dev VM, 2026-12-06), and its times so far (per
    window: the fastest of REFERENCE_RUNS runs)."""

    def __init__(self, seed=0):
        self.sess = matmul_session(REFERENCE_N, 1, seed)
        rng = np.random.default_rng(seed + 1)
        self.x = {"input": rng.uniform(-1, 1, size=(REFERENCE_N, REFERENCE_N)).astype(np.float32)}
        self.sess.run(None, self.x)
        self.times = []

    def sample(self):
        best = math.inf
        for _ in range(REFERENCE_RUNS):
            t = time.perf_counter()
            self.sess.run(None, self.x)
            best = min(best, time.perf_counter() - t)
        self.times.append(best)

    def take(self):
        """The samples since the last take, in greenbench's `MachineReference` schema."""
        times, self.times = self.times, []
        if not times:
            return None
        t = summarize(times)
        fpo = 2 * REFERENCE_N ** 3
        return dict(n=REFERENCE_N, gflops=fpo / t["median"] / 1e9,
                    gflops_ci95_low=fpo / t["ci95_high"] / 1e9,
                    gflops_ci95_high=fpo / t["ci95_low"] / 1e9, time_s=t)


def slowed(cells):
    """Indices of the cells (dicts with an optional `machine_reference`) whose reference median
    is more than REFERENCE_TOLERANCE below the fastest of them, with their slowdown."""
    refs = [c.get("machine_reference") for c in cells]
    best = max((r["gflops"] for r in refs if r), default=None)
    if best is None:
        return {}
    return {i: best / r["gflops"] for i, r in enumerate(refs)
            if r and best > (1 + REFERENCE_TOLERANCE) * r["gflops"]}


MACHINE_NOTE = ("\nmachine: each side's reference 256^3 MatMul on one thread, timed after each window of "
                "the cell (greenbench's CPU matmul on its side, ONNX Runtime's on this one): `slower: SIDE x` "
                "where it ran more than 20 % below that side's fastest cell here (the machine changed "
                "speed: that side's time reads high, so the ratio is suspect); `-` where a side has no "
                "reference (an older result file)")


def reference_span(pairs):
    """One line: each side's reference GFLOP/s across the pairs (slowest to fastest), the
    machine's one-thread speed in absolute terms. The marks compare a cell with the
    invocation's fastest only, so an invocation slow throughout marks nothing; this line shows
    it against another invocation's. A slowdown of parallel work alone does not show in it
    (measured: docs/ONNX.md, "Speed"); compare.sh's peak line does."""
    parts = []
    for side, k in (("greenbench", 0), ("ONNX Runtime", 1)):
        g = [p[k]["machine_reference"]["gflops"] for p in pairs if p[k].get("machine_reference")]
        if g:
            parts.append(f"{side} {min(g):.1f}-{max(g):.1f}")
    if not parts:
        return None
    return ("machine references in this invocation (256^3 MatMul, one thread, GFLOP/s, slowest-fastest): "
            + "; ".join(parts))


def machine_marks(pairs):
    """Per (greenbench cell, ORT cell) pair: `ok`, `-` (a side without a reference), or which
    side's reference ran slow (see `slowed`, each side against its own fastest)."""
    g = slowed([m for m, _ in pairs])
    o = slowed([c for _, c in pairs])
    out = []
    for i, (m, c) in enumerate(pairs):
        if not (m.get("machine_reference") and c.get("machine_reference")):
            out.append("-")
            continue
        slow = [f"{side} {s:.2f}x" for side, s in (("greenbench", g.get(i)), ("ORT", o.get(i))) if s]
        out.append("slower: " + ", ".join(slow) if slow else "ok")
    return out


def measure(sess, xs, batch, p, reference=None):
    """Warm up, then `p["windows"]` windows; with a `Reference`, it is sampled after each
    window (outside the window's time)."""
    i = 0
    t0 = time.perf_counter()
    warm = 0
    while warm == 0 or time.perf_counter() - t0 < p["warmup_s"]:
        sess.run(None, {"input": xs[i % len(xs)]}); i += 1; warm += 1
    per_example, batches = [], []
    for _ in range(p["windows"]):
        n = 0
        t = time.perf_counter()
        while True:
            sess.run(None, {"input": xs[i % len(xs)]}); i += 1; n += 1
            if time.perf_counter() - t >= p["window_s"]:
                break
        per_example.append((time.perf_counter() - t) / (n * batch))
        batches.append(n)
        if reference is not None:
            reference.sample()
    return per_example, batches, warm


def matmul_session(n, threads, seed):
    """An n x n x n fp32 MatMul session whose right-hand side is an initializer."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(seed)
    b = rng.uniform(-1, 1, size=(n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "b"], ["output"])], "sgemm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])


def matmul_peak(n, threads, p, seed):
    """sgemm n x n x n in ONNX Runtime: a MatMul whose right-hand side is an initializer (as
    greenbench's peak, whose right-hand side is prepared once), timed with the same
    protocol; returned in greenbench's `Peak` schema."""
    sess = matmul_session(n, threads, seed)
    rng = np.random.default_rng(seed + 1)
    xs = [rng.uniform(-1, 1, size=(n, n)).astype(np.float32) for _ in range(2)]
    per_call, _, _ = measure(sess, xs, 1, p)
    t = summarize(per_call)
    fpo = 2 * n ** 3
    return dict(backend="onnxruntime-cpu",
                device=dict(name=cpu_model(), kind="cpu", threads=threads,
                            driver=f"onnxruntime {ort.__version__} (MLAS)"),
                m=n, k=n, n=n, gflops=fpo / t["median"] / 1e9,
                gflops_ci95_low=fpo / t["ci95_high"] / 1e9, gflops_ci95_high=fpo / t["ci95_low"] / 1e9,
                time_s=t, time_basis="end_to_end")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_caches(root="/sys/devices/system/cpu"):
    """cpu0's data caches in bytes as greenbench records them (machine.cpu_caches), or None."""
    c = dict(l1d=None, l2=None, l3=None)
    try:
        entries = os.listdir(os.path.join(root, "cpu0", "cache"))
    except OSError:
        return None
    for e in entries:
        d = os.path.join(root, "cpu0", "cache", e)
        try:
            level, kind, size = (open(os.path.join(d, f)).read().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        mult = {"K": 1024, "M": 1 << 20}.get(size[-1:], 1)
        try:
            n = int(size.rstrip("KM")) * mult
        except ValueError:
            continue
        key = {("1", "Data"): "l1d", ("2", "Unified"): "l2", ("2", "Data"): "l2",
               ("3", "Unified"): "l3", ("3", "Data"): "l3"}.get((level, kind))
        if key:
            c[key] = n
    return c if any(v is not None for v in c.values()) else None


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--profile", default="quick", choices=PROFILES)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--greenbench", default=None, help="a greenbench result file to divide by ORT, cell by cell")
    ap.add_argument("--matmul", type=int, default=1024,
                    help="also time an N^3 fp32 MatMul (greenbench's peak GEMM); 0 to skip")
    a = ap.parse_args()
    dirs = sorted(d for d in (os.path.join(a.export_dir, n) for n in os.listdir(a.export_dir))
                  if os.path.isfile(os.path.join(d, "model.onnx")))
    if not dirs:
        sys.exit(f"no exported models (*/model.onnx) in {a.export_dir}; run `greenbench export all --out {a.export_dir}`")
    bad = 0
    for d in dirs:
        ok, msg = check(d, a.tolerance)
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(d)}: onnx checker passed; {msg}")
    if bad:
        sys.exit(f"{bad} model(s) do not reproduce greenbench's output within {a.tolerance}")
    if a.check_only:
        return
    p = PROFILES[a.profile]
    batches = [int(b) for b in a.batch.split(",")]
    started = now()
    cells = []
    reference = Reference(a.seed)
    for d in dirs:
        meta = json.load(open(os.path.join(d, "greenbench.json")))
        sess = session(os.path.join(d, "model.onnx"), a.threads)
        for b in batches:
            xs = inputs_for(meta, b, p["input_sets"], a.seed)
            per_ex, nb, warm = measure(sess, xs, b, p, reference)
            t = summarize(per_ex)
            print(f"  {meta['name']} onnxruntime-cpu b{b} {meta.get('precision', 'fp32')}: {t['median'] * 1e6:.2f} us/example", file=sys.stderr)
            precision = meta.get("precision", "fp32")
            cells.append(dict(
                host=socket.gethostname(), model=meta["name"], backend="onnxruntime-cpu",
                device=cpu_model(), device_kind="cpu", threads=a.threads, batch=b,
                precision=precision, status="ok",
                error=None, params=meta["params"], macs_per_example=meta["macs"],
                fpo_per_example=meta["int8_fpo"] if precision == "int8" else meta["fpo"],
                transcendentals_per_example=meta["transcendentals"],
                int_ops_per_example=meta.get("int_ops") or 0,
                time_per_example_s=t, device_time_per_example_s=None,
                device_time_note="onnxruntime CPU: end-to-end time only",
                examples_per_s=1 / t["median"], gflops=meta["fpo"] / t["median"] / 1e9,
                pct_of_peak=None, energy_per_example_j=None,
                energy_source="none: scripts/onnx/ort_bench.py measures time only",
                energy_kind=None, energy_gross_per_example_j=None, energy_net_per_example_j=None,
                energy_samples_j=[], avg_power_w=None, fpo_per_joule=None, co2e_g_per_million=None,
                cost_usd_per_million=None, other_cpu_cores=None, warnings=[], peak_rss_bytes=None,
                weights_seed=meta["weights_seed"], weights_fingerprint=meta["weights_fingerprint"],
                warmup_batches=warm, window_batches=nb, machine_reference=reference.take()))
    peaks = []
    if a.matmul > 0:
        peak = matmul_peak(a.matmul, a.threads, p, a.seed)
        print(f"  sgemm {a.matmul}^3 onnxruntime-cpu: {peak['gflops']:.1f} GFLOP/s", file=sys.stderr)
        peaks.append(peak)
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    mem = None
    try:
        mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]) * 1024
    except (OSError, StopIteration):
        pass
    result = dict(schema_version=2, status="complete", environment=dict(
        machine=dict(hostname=socket.gethostname(), os=platform.platform(), kernel=platform.release(),
                     arch=platform.machine(), cpu_model=cpu_model(), cpu_logical_cores=os.cpu_count() or 1,
                     cpu_features=[], cpu_caches=cpu_caches(), memory_bytes=mem,
                     greenbench_version=f"onnxruntime {ort.__version__} (scripts/onnx/ort_bench.py)",
                     git_commit=git.stdout.strip() or None if git.returncode == 0 else None, git_dirty=None),
        started_utc=started, finished_utc=now(), profile=p, seed=a.seed, command=sys.argv,
        peaks=peaks, energy=None), cells=cells)
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        os.replace(tmp, a.out)
        print(f"results: {a.out}")
    if a.greenbench:
        g = json.load(open(a.greenbench))
        mine = {(c["model"], c["batch"], c.get("precision", "fp32")): c
                for c in g["cells"] if c["backend"] == "cpu" and c["status"] == "ok"}
        print("| model | batch | precision | greenbench cpu (us/ex) | onnxruntime (us/ex) | greenbench / ORT | machine |")
        print("|---|---|---|---|---|---|---|")
        pairs = [(mine[k], c) for c in cells
                 if (k := (c["model"], c["batch"], c["precision"])) in mine]
        marks = machine_marks(pairs)
        for (m, c), mark in zip(pairs, marks):
            gt, ot = m["time_per_example_s"]["median"], c["time_per_example_s"]["median"]
            print(f"| {c['model']} | {c['batch']} | {c['precision']} | {gt * 1e6:.2f} | {ot * 1e6:.2f} | {gt / ot:.2f} | {mark} |")
        print(MACHINE_NOTE)
        gp = [q for q in g["environment"].get("peaks", []) if q["backend"] == "cpu"]
        if gp and peaks:
            gg, og = gp[0]["gflops"], peaks[0]["gflops"]
            print(f"\n| sgemm {a.matmul}^3 | greenbench cpu (GFLOP/s) | onnxruntime (GFLOP/s) | greenbench / ORT |")
            print("|---|---|---|---|")
            print(f"| {a.threads} threads | {gg:.1f} | {og:.1f} | {gg / og:.2f} |")


if __name__ == "__main__":
    main()
