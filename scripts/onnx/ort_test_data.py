#!/usr/bin/env python3
"""Write an ONNX model zoo test data set for any ONNX file, its output computed by ONNX
Runtime, so `greenbench verify --models M --test-data DIR` can check greenbench against it:

    python scripts/onnx/ort_test_data.py model.onnx DIR [--batch 3] [--seed 0]

DIR gets input_0.pb (seeded standard-normal floats, or token ids below --vocab for integer
inputs) and output_0.pb. A symbolic leading dimension takes --batch; every other dimension
must be fixed. Needs scripts/onnx/requirements.txt.

--randomize-weights (for the onnx package's "light" test models, whose weights are all one
value made by ConstantOfShape, so every output is the same and a comparison proves little):
every ConstantOfShape is replaced by a seeded random initializer of its shape (He-scaled for
conv/dense weights, positive for batch-norm variances), a final Softmax becomes an Identity
(random logits make it one-hot, which hides every difference), the model is written to
DIR/model.onnx and the test data is made for that file.
"""
import argparse, os, sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def randomize(path, out_path, rng):
    m = onnx.load(path)
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    readers = {}
    for n in g.node:
        for k, i in enumerate(n.input):
            readers.setdefault(i, []).append((n.op_type, k))
    keep = []
    for n in g.node:
        if n.op_type != "ConstantOfShape" or n.input[0] not in consts:
            keep.append(n)
            continue
        shape = [int(d) for d in consts[n.input[0]]]
        use = readers.get(n.output[0], [("", 0)])[0]
        if use == ("BatchNormalization", 4):
            v = rng.uniform(0.5, 1.5, shape)
        elif use == ("BatchNormalization", 1):
            v = rng.uniform(0.8, 1.2, shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if use[0] == "Conv" else shape[0]
            v = rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))
        else:
            v = rng.standard_normal(shape) * 0.1
        g.initializer.append(numpy_helper.from_array(v.astype(np.float32), n.output[0]))
    # A final softmax of random logits is one-hot, and one-hot outputs agree whatever came
    # before: compare the logits instead.
    outs = {o.name for o in g.output}
    for n in keep:
        if n.op_type == "Softmax" and n.output[0] in outs:
            n.op_type = "Identity"
            del n.attribute[:]
    del g.node[:]
    g.node.extend(keep)
    # The shapes ConstantOfShape read are unused now.
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    gone = {t.name for t in g.initializer} - {t.name for t in kept}
    del g.initializer[:]
    g.initializer.extend(kept)
    # IR version 3 lists initializers as graph inputs too: drop the removed ones there.
    inputs = [i for i in g.input if i.name not in gone]
    del g.input[:]
    g.input.extend(inputs)
    onnx.save(m, out_path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=2, help="token ids are drawn below this")
    ap.add_argument("--randomize-weights", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    if a.randomize_weights:
        os.makedirs(a.out, exist_ok=True)
        randomize(a.model, os.path.join(a.out, "model.onnx"), rng)
        a.model = os.path.join(a.out, "model.onnx")
        a.out = os.path.join(a.out, "test_data_set_0")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = []
    for i, d in enumerate(inp.shape):
        if isinstance(d, int):
            shape.append(d)
        elif i == 0:
            shape.append(a.batch)
        else:
            sys.exit(f"{a.model}: input dimension {i} is symbolic ({d}); fix it first")
    if "int" in inp.type:
        x = rng.integers(0, a.vocab, shape).astype(np.int64 if "int64" in inp.type else np.int32)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    y = sess.run(None, {inp.name: x})[0]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, inp.name).SerializeToString())
    with open(os.path.join(a.out, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, sess.get_outputs()[0].name).SerializeToString())
    print(f"{a.model}: input {list(x.shape)} -> output {list(y.shape)} in {a.out}")


if __name__ == "__main__":
    main()
