#!/usr/bin/env python3
"""Build the ONNX import fixtures in tests/fixtures/onnx/ (committed; run once, re-run only
to change them). Each fixture is a small model written the way an exporter writes it
(torch.onnx's NCHW graphs with `x.view(x.size(0), -1)`, tf2onnx's NHWC graphs with Transposes
around convolutions, an IR-version-3 file with initializers listed as inputs, a model whose
weights live in an external data file, a token model), plus a test data set in the ONNX
model zoo's layout whose output ONNX Runtime computed:

    <name>/model.onnx
    <name>/test_data_set_0/input_0.pb, output_0.pb

and <name>/expect.json with the MACs per example counted by hand from the shapes below.

    target/ci-venv/bin/python scripts/onnx/make_fixtures.py tests/fixtures/onnx

Needs scripts/onnx/requirements.txt (numpy, onnx, onnxruntime). Deterministic: every weight
and input comes from numpy's seeded generator.
"""
import json, os, sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(20261129)


def w(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def save(root, name, model, x, macs, note, external=False):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    onnx.checker.check_model(model)
    path = os.path.join(d, "model.onnx")
    if external:
        # onnx appends to an existing data file: start from none.
        if os.path.exists(os.path.join(d, "weights.bin")):
            os.remove(os.path.join(d, "weights.bin"))
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
    else:
        onnx.save_model(model, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, sess.get_inputs()[0].name).SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, sess.get_outputs()[0].name).SerializeToString())
    with open(os.path.join(d, "expect.json"), "w") as f:
        json.dump({"macs_per_example": macs, "note": note,
                   "onnxruntime": ort.__version__, "onnx": onnx.__version__}, f, indent=1)
        f.write("\n")
    print(f"{name}: input {x.shape} -> output {y.shape}, {macs} MACs/example")


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def torch_cnn(root):
    """torch.onnx style, opset 13: NCHW, symbolic batch, conv+BN+ReLU, depthwise conv with
    asymmetric pads, max pool, global average pool, x.view(x.size(0), -1), Dropout, Gemm
    (transB=1, as nn.Linear exports)."""
    n = []
    inits = [
        init("c1.w", w(8, 3, 3, 3)), init("c1.b", w(8)),
        init("bn.s", 1 + w(8, scale=0.1)), init("bn.b", w(8)),
        init("bn.m", w(8, scale=0.1)), init("bn.v", 1 + np.abs(w(8, scale=0.1))),
        init("dw.w", w(8, 1, 3, 3)), init("dw.b", w(8)),
        init("pw.w", w(16, 8, 1, 1)),
        init("fc.w", w(10, 16)), init("fc.b", w(10)),
        init("idx0", np.array(0, dtype=np.int64)),
        init("minus1", np.array([-1], dtype=np.int64)),
        init("ax0", np.array([0], dtype=np.int64)),
    ]
    n.append(helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], name="/conv1/Conv",
                              pads=[1, 1, 1, 1], kernel_shape=[3, 3], strides=[1, 1]))
    n.append(helper.make_node("BatchNormalization", ["c1", "bn.s", "bn.b", "bn.m", "bn.v"],
                              ["bn"], name="/bn1/BatchNormalization", epsilon=1e-5))
    n.append(helper.make_node("Relu", ["bn"], ["r1"], name="/relu1/Relu"))
    n.append(helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool/MaxPool",
                              kernel_shape=[2, 2], strides=[2, 2]))
    n.append(helper.make_node("Conv", ["p1", "dw.w", "dw.b"], ["dw"], name="/dw/Conv",
                              pads=[0, 0, 1, 1], kernel_shape=[3, 3], strides=[2, 2], group=8))
    n.append(helper.make_node("Relu", ["dw"], ["r2"], name="/relu2/Relu"))
    n.append(helper.make_node("Conv", ["r2", "pw.w"], ["pw"], name="/pw/Conv"))
    n.append(helper.make_node("Relu", ["pw"], ["r3"], name="/relu3/Relu"))
    n.append(helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="/avgpool/GlobalAveragePool"))
    n.append(helper.make_node("Shape", ["gap"], ["shp"], name="/Shape"))
    n.append(helper.make_node("Gather", ["shp", "idx0"], ["bsz"], name="/Gather", axis=0))
    n.append(helper.make_node("Unsqueeze", ["bsz", "ax0"], ["bsz1"], name="/Unsqueeze"))
    n.append(helper.make_node("Concat", ["bsz1", "minus1"], ["tgt"], name="/Concat", axis=0))
    n.append(helper.make_node("Reshape", ["gap", "tgt"], ["flat"], name="/Reshape"))
    n.append(helper.make_node("Dropout", ["flat"], ["drop"], name="/dropout/Dropout"))
    n.append(helper.make_node("Gemm", ["drop", "fc.w", "fc.b"], ["y"], name="/fc/Gemm",
                              alpha=1.0, beta=1.0, transB=1))
    g = helper.make_graph(n, "torch_cnn", [vi("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [vi("y", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="pytorch")
    m.ir_version = 7
    # conv1 16x16x8x27, dw 4x4x8x9 (8x8 in, stride 2, pads 0,0,1,1), pw 4x4x16x8, fc 16x10
    macs = 16 * 16 * 8 * 27 + 4 * 4 * 8 * 9 + 4 * 4 * 16 * 8 + 16 * 10
    save(root, "torch_cnn", m, rng.standard_normal((3, 3, 16, 16)).astype(np.float32), macs,
         "torch.onnx style NCHW CNN: BN, depthwise with asymmetric pads, view(size(0), -1), Gemm transB")


def torch_flatten_fixed1(root):
    """opset 11, fixed batch 1 (torch's default export), Flatten of a 4x4 spatial map into a
    Gemm (the importer permutes the weight rows), AveragePool with ceil_mode where it makes no
    difference, Identity, Softmax axis 1."""
    inits = [init("c.w", w(4, 2, 3, 3)), init("c.b", w(4)),
             init("fc.w", w(36, 5)), init("fc.b", w(5))]
    n = [
        helper.make_node("Conv", ["x", "c.w", "c.b"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("AveragePool", ["r"], ["p"], name="avg", kernel_shape=[2, 2],
                         strides=[2, 2], ceil_mode=1),
        helper.make_node("Identity", ["p"], ["pi"], name="ident"),
        helper.make_node("Flatten", ["pi"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["g"], name="fc"),
        helper.make_node("Softmax", ["g"], ["y"], name="softmax", axis=1),
    ]
    g = helper.make_graph(n, "fixed1", [vi("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                          [vi("y", TensorProto.FLOAT, [1, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 6
    # conv 6x6x4x18, avg pool 2x2/2 of 6x6 -> 3x3 (ceil = floor), fc 36x5
    macs = 6 * 6 * 4 * 18 + 36 * 5
    save(root, "torch_flatten_fixed1", m, rng.standard_normal((1, 2, 8, 8)).astype(np.float32),
         macs, "fixed batch 1, Flatten of a spatial map into Gemm, ceil_mode pool, opset 11")


def tf_nhwc(root):
    """tf2onnx style, opset 13: NHWC input, Transpose to NCHW around a Conv with
    auto_pad SAME_UPPER and stride 2, Transpose back, Reshape with a constant target, MatMul +
    Add (a Dense layer), Softmax."""
    inits = [init("k", w(6, 3, 3, 3)), init("kb", w(6)), init("shape", np.array([-1, 5 * 5 * 6], dtype=np.int64)),
             init("dw", w(150, 4)), init("db", w(4))]
    n = [
        helper.make_node("Transpose", ["x"], ["xt"], name="StatefulPartitionedCall/conv2d/Conv2D__6", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "k", "kb"], ["c"], name="StatefulPartitionedCall/conv2d/BiasAdd",
                         auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="StatefulPartitionedCall/conv2d/Relu"),
        helper.make_node("Transpose", ["r"], ["rt"], name="StatefulPartitionedCall/conv2d/Relu__8", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["rt", "shape"], ["f"], name="StatefulPartitionedCall/flatten/Reshape"),
        helper.make_node("MatMul", ["f", "dw"], ["mm"], name="StatefulPartitionedCall/dense/MatMul"),
        helper.make_node("Add", ["mm", "db"], ["a"], name="StatefulPartitionedCall/dense/BiasAdd"),
        helper.make_node("Softmax", ["a"], ["y"], name="StatefulPartitionedCall/dense/Softmax"),
    ]
    g = helper.make_graph(n, "tf_nhwc", [vi("x", TensorProto.FLOAT, ["unk__1", 10, 10, 3])],
                          [vi("y", TensorProto.FLOAT, ["unk__2", 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx")
    m.ir_version = 7
    macs = 5 * 5 * 6 * 27 + 150 * 4
    save(root, "tf_nhwc", m, rng.standard_normal((3, 10, 10, 3)).astype(np.float32), macs,
         "tf2onnx style NHWC: Transposes around a SAME_UPPER stride-2 conv, Reshape, MatMul + Add")


def old_ir3(root):
    """IR version 3, opset 8 (as the ONNX model zoo still serves older files): initializers
    also listed as graph inputs, BatchNormalization with the old `spatial` attribute, a
    variadic Sum of three branches, Reshape with its shape as an input."""
    inits = [init("a.w", w(4, 4, 3, 3)), init("a.b", w(4)),
             init("b.w", w(4, 4, 1, 1)), init("b.b", w(4)),
             init("s", 1 + w(4, scale=0.1)), init("bb", w(4)), init("m", w(4, scale=0.1)),
             init("v", 1 + np.abs(w(4, scale=0.1))),
             init("shape", np.array([0, -1], dtype=np.int64)),
             init("fc.w", w(4 * 6 * 6, 3)), init("fc.b", w(3))]
    n = [
        helper.make_node("Conv", ["x", "a.w", "a.b"], ["ca"], name="conv_a", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Conv", ["x", "b.w", "b.b"], ["cb"], name="conv_b", kernel_shape=[1, 1]),
        helper.make_node("Sum", ["ca", "cb", "x"], ["s3"], name="sum3"),
        helper.make_node("BatchNormalization", ["s3", "s", "bb", "m", "v"], ["bn"], name="bn", spatial=1, epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc"),
    ]
    inputs = [vi("x", TensorProto.FLOAT, ["N", 4, 6, 6])] + [
        vi(t.name, t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(n, "old_ir3", inputs, [vi("y", TensorProto.FLOAT, ["N", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 8)])
    m.ir_version = 3
    macs = 6 * 6 * 4 * 36 + 6 * 6 * 4 * 4 + 144 * 3
    save(root, "old_ir3", m, rng.standard_normal((2, 4, 6, 6)).astype(np.float32), macs,
         "IR 3 / opset 8: initializers listed as inputs, BN spatial attribute, variadic Sum")


def external_mlp(root):
    """opset 17, every initializer in an external data file (weights.bin beside the model)."""
    inits = [init("w1", w(20, 32)), init("b1", w(32)), init("w2", w(32, 7)), init("b2", w(7))]
    n = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1/MatMul"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1/Add"),
        helper.make_node("Relu", ["hb"], ["hr"], name="fc1/Relu"),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"], name="fc2/Gemm"),
    ]
    g = helper.make_graph(n, "external_mlp", [vi("x", TensorProto.FLOAT, ["batch", 20])],
                          [vi("y", TensorProto.FLOAT, ["batch", 7])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    save(root, "external_mlp", m, rng.standard_normal((4, 20)).astype(np.float32), 20 * 32 + 32 * 7,
         "weights in an external data file (data_location EXTERNAL)", external=True)


def nchw_output(root):
    """The model's output is an NCHW feature map: greenbench returns it in NCHW, as declared."""
    inits = [init("c.w", w(5, 3, 3, 3)), init("c.b", w(5))]
    n = [helper.make_node("Conv", ["x", "c.w", "c.b"], ["c"], name="conv", pads=[1, 0, 1, 2], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["y"], name="relu")]
    g = helper.make_graph(n, "nchw_output", [vi("x", TensorProto.FLOAT, ["N", 3, 7, 6])],
                          [vi("y", TensorProto.FLOAT, ["N", 5, 7, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    macs = 7 * 6 * 5 * 27
    save(root, "nchw_output", m, rng.standard_normal((2, 3, 7, 6)).astype(np.float32), macs,
         "NCHW feature map as the output; asymmetric pads")


def embed_ln(root):
    """A token model: int64 ids, Gather from an embedding table plus learned positions,
    LayerNormalization, the mean over the sequence (ReduceMean), Gemm, Softmax."""
    inits = [init("emb", w(50, 12)), init("pos", w(1, 8, 12)),
             init("g", 1 + w(12, scale=0.1)), init("b", w(12)),
             init("fc.w", w(12, 3)), init("fc.b", w(3))]
    n = [
        helper.make_node("Gather", ["emb", "ids"], ["e"], name="embeddings/Gather", axis=0),
        helper.make_node("Add", ["e", "pos"], ["ep"], name="embeddings/Add"),
        helper.make_node("LayerNormalization", ["ep", "g", "b"], ["ln"], name="ln", axis=-1, epsilon=1e-5),
        helper.make_node("ReduceMean", ["ln"], ["mean"], name="pool", axes=[1], keepdims=0),
        helper.make_node("Gemm", ["mean", "fc.w", "fc.b"], ["z"], name="classifier"),
        helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=-1),
    ]
    g = helper.make_graph(n, "embed_ln", [vi("ids", TensorProto.INT64, ["N", 8])],
                          [vi("y", TensorProto.FLOAT, ["N", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    save(root, "embed_ln", m, rng.integers(0, 50, (3, 8)).astype(np.int64), 12 * 3,
         "int64 token ids, embedding + positions, LayerNormalization, ReduceMean over the sequence")


def pools(root):
    """Padded and ceil-mode pooling as real models use it: ResNet's stem max pool (3x3/2,
    pads 1), SqueezeNet's ceil-mode max pool (3x3/2, no pads), an average pool with
    count_include_pad and asymmetric pads, ceil mode, and one without count_include_pad."""
    inits = [init("c.w", w(6, 3, 3, 3)), init("c.b", w(6))]
    n = [
        helper.make_node("Conv", ["x", "c.w", "c.b"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("MaxPool", ["c"], ["p1"], name="stem_pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["p1"], ["p2"], name="ceil_pool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("AveragePool", ["p1"], ["p3"], name="avg_incl", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 0, 2, 1], ceil_mode=1, count_include_pad=1),
        helper.make_node("AveragePool", ["p3"], ["p4"], name="avg_excl", kernel_shape=[2, 2], strides=[1, 1],
                         pads=[1, 1, 0, 0], count_include_pad=0),
        helper.make_node("GlobalAveragePool", ["p2"], ["g2"], name="gap2"),
        helper.make_node("GlobalAveragePool", ["p4"], ["g4"], name="gap4"),
        helper.make_node("Add", ["g2", "g4"], ["y"], name="sum"),
    ]
    g = helper.make_graph(n, "pools", [vi("x", TensorProto.FLOAT, ["N", 3, 15, 13])],
                          [vi("y", TensorProto.FLOAT, ["N", 6, 1, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    save(root, "pools", m, rng.standard_normal((3, 3, 15, 13)).astype(np.float32), 15 * 13 * 6 * 27,
         "padded max pool (ResNet stem), ceil-mode max pool (SqueezeNet), average pools with and without count_include_pad")


def c(name, v):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))


def bn(n, inits, x, y, ch, name):
    for k, v in [("s", 1 + w(ch, scale=0.1)), ("b", w(ch, scale=0.1)), ("m", w(ch, scale=0.1)),
                 ("v", 1 + np.abs(w(ch, scale=0.1)))]:
        inits.append(init(f"{name}.{k}", v))
    n.append(helper.make_node("BatchNormalization", [x] + [f"{name}.{k}" for k in "sbmv"], [y], name=name))


def mobilenetv2_block(root):
    """torchvision's MobileNetV2 inverted residual (expand 6x, stride 1): Conv-BN-ReLU6 (Clip
    with min/max as Constant inputs, opset 11+), depthwise Conv-BN-ReLU6, Conv-BN, residual Add."""
    inits, n = [], []
    inits += [init("e.w", w(96, 16, 1, 1, scale=0.2)), init("d.w", w(96, 1, 3, 3)), init("p.w", w(16, 96, 1, 1, scale=0.1))]
    n += [c("zero", np.float32(0)), c("six", np.float32(6))]
    n.append(helper.make_node("Conv", ["x", "e.w"], ["e"], name="/conv/0/0/Conv", kernel_shape=[1, 1]))
    bn(n, inits, "e", "eb", 96, "/conv/0/1/BatchNormalization")
    n.append(helper.make_node("Clip", ["eb", "zero", "six"], ["er"], name="/conv/0/2/Clip"))
    n.append(helper.make_node("Conv", ["er", "d.w"], ["d"], name="/conv/1/0/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=96))
    bn(n, inits, "d", "db", 96, "/conv/1/1/BatchNormalization")
    n.append(helper.make_node("Clip", ["db", "zero", "six"], ["dr"], name="/conv/1/2/Clip"))
    n.append(helper.make_node("Conv", ["dr", "p.w"], ["p"], name="/conv/2/Conv", kernel_shape=[1, 1]))
    bn(n, inits, "p", "pb", 16, "/conv/3/BatchNormalization")
    n.append(helper.make_node("Add", ["x", "pb"], ["y"], name="/Add"))
    g = helper.make_graph(n, "mobilenetv2_block", [vi("x", TensorProto.FLOAT, ["N", 16, 14, 14])],
                          [vi("y", TensorProto.FLOAT, ["N", 16, 14, 14])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="pytorch")
    m.ir_version = 7
    macs = 14 * 14 * 96 * 16 + 14 * 14 * 96 * 9 + 14 * 14 * 16 * 96
    save(root, "mobilenetv2_block", m, rng.standard_normal((2, 16, 14, 14)).astype(np.float32), macs,
         "MobileNetV2 inverted residual: ReLU6 as Clip(0, 6), depthwise, BN, residual")


def se_hardswish(root):
    """MobileNetV3 style: Conv + HardSwish, a squeeze-excite block (GlobalAveragePool, 1x1
    Conv, Relu, 1x1 Conv, HardSigmoid, Mul), SiLU (x * Sigmoid(x)), LeakyRelu, Tanh."""
    inits = [init("c.w", w(12, 3, 3, 3)), init("c.b", w(12)), init("r.w", w(4, 12, 1, 1)), init("r.b", w(4)),
             init("x.w", w(12, 4, 1, 1)), init("x.b", w(12)), init("o.w", w(8, 12, 1, 1)), init("o.b", w(8))]
    n = [
        helper.make_node("Conv", ["x", "c.w", "c.b"], ["c"], name="stem/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("HardSwish", ["c"], ["h"], name="stem/HardSwish"),
        helper.make_node("GlobalAveragePool", ["h"], ["s"], name="se/avgpool"),
        helper.make_node("Conv", ["s", "r.w", "r.b"], ["sr"], name="se/fc1", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["sr"], ["srr"], name="se/relu"),
        helper.make_node("Conv", ["srr", "x.w", "x.b"], ["sx"], name="se/fc2", kernel_shape=[1, 1]),
        helper.make_node("HardSigmoid", ["sx"], ["sg"], name="se/hardsigmoid", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["h", "sg"], ["hs"], name="se/scale"),
        helper.make_node("Conv", ["hs", "o.w", "o.b"], ["o"], name="project/Conv", kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["o"], ["os"], name="silu/Sigmoid"),
        helper.make_node("Mul", ["o", "os"], ["silu"], name="silu/Mul"),
        helper.make_node("LeakyRelu", ["silu"], ["lr"], name="leaky", alpha=0.1),
        helper.make_node("Tanh", ["lr"], ["y"], name="tanh"),
    ]
    g = helper.make_graph(n, "se_hardswish", [vi("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [vi("y", TensorProto.FLOAT, ["N", 8, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 7
    # stem 8x8x12x27 (16x16 in, stride 2, pads 1), fc1 12x4 and fc2 4x12 on the pooled 1x1, project 8x8x8x12
    macs = 8 * 8 * 12 * 27 + 12 * 4 + 4 * 12 + 8 * 8 * 8 * 12
    save(root, "se_hardswish", m, rng.standard_normal((2, 3, 16, 16)).astype(np.float32), macs,
         "HardSwish, squeeze-excite (HardSigmoid, broadcast Mul), SiLU, LeakyRelu, Tanh")


def fire_module(root):
    """SqueezeNet's fire module: squeeze 1x1, two expand branches (1x1, 3x3 padded) joined by
    Concat on channels, a ceil-mode max pool, global pool, Flatten, Gemm."""
    inits = [init("s.w", w(6, 12, 1, 1)), init("s.b", w(6)), init("e1.w", w(8, 6, 1, 1)), init("e1.b", w(8)),
             init("e3.w", w(8, 6, 3, 3)), init("e3.b", w(8)), init("fc.w", w(5, 16)), init("fc.b", w(5))]
    n = [
        helper.make_node("Conv", ["x", "s.w", "s.b"], ["s"], name="fire/squeeze", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["s"], ["sr"], name="fire/squeeze_relu"),
        helper.make_node("Conv", ["sr", "e1.w", "e1.b"], ["e1"], name="fire/expand1x1", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["e1"], ["e1r"], name="fire/expand1x1_relu"),
        helper.make_node("Conv", ["sr", "e3.w", "e3.b"], ["e3"], name="fire/expand3x3", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["e3"], ["e3r"], name="fire/expand3x3_relu"),
        helper.make_node("Concat", ["e1r", "e3r"], ["cat"], name="fire/concat", axis=1),
        helper.make_node("MaxPool", ["cat"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(n, "fire_module", [vi("x", TensorProto.FLOAT, ["N", 12, 12, 12])],
                          [vi("y", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)])
    m.ir_version = 7
    macs = 12 * 12 * 6 * 12 + 12 * 12 * 8 * 6 + 12 * 12 * 8 * 54 + 16 * 5
    save(root, "fire_module", m, rng.standard_normal((3, 12, 12, 12)).astype(np.float32), macs,
         "SqueezeNet fire module: Concat of expand branches, ceil-mode max pool")


def shufflenet_unit(root):
    """ShuffleNet unit: grouped 1x1 conv, BN, ReLU, the channel shuffle as Reshape ->
    Transpose(0, 2, 1, 3, 4) -> Reshape, depthwise 3x3, BN, grouped 1x1 conv, residual, ReLU."""
    inits, n = [], []
    inits += [init("g1.w", w(12, 6, 1, 1)), init("dw.w", w(12, 1, 3, 3)), init("g2.w", w(12, 6, 1, 1)),
              init("split", np.array([0, 2, 6, 6, 6], dtype=np.int64)), init("merge", np.array([0, 12, 6, 6], dtype=np.int64))]
    n.append(helper.make_node("Conv", ["x", "g1.w"], ["g1"], name="unit/gconv1", kernel_shape=[1, 1], group=2))
    bn(n, inits, "g1", "g1b", 12, "unit/bn1")
    n.append(helper.make_node("Relu", ["g1b"], ["g1r"], name="unit/relu1"))
    n.append(helper.make_node("Reshape", ["g1r", "split"], ["sp"], name="unit/shuffle/Reshape"))
    n.append(helper.make_node("Transpose", ["sp"], ["tp"], name="unit/shuffle/Transpose", perm=[0, 2, 1, 3, 4]))
    n.append(helper.make_node("Reshape", ["tp", "merge"], ["sh"], name="unit/shuffle/Reshape_1"))
    n.append(helper.make_node("Conv", ["sh", "dw.w"], ["dw"], name="unit/dwconv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=12))
    bn(n, inits, "dw", "dwb", 12, "unit/bn2")
    n.append(helper.make_node("Conv", ["dwb", "g2.w"], ["g2"], name="unit/gconv2", kernel_shape=[1, 1], group=2))
    bn(n, inits, "g2", "g2b", 12, "unit/bn3")
    n.append(helper.make_node("Add", ["g2b", "x"], ["s"], name="unit/add"))
    n.append(helper.make_node("Relu", ["s"], ["y"], name="unit/relu2"))
    g = helper.make_graph(n, "shufflenet_unit", [vi("x", TensorProto.FLOAT, ["N", 12, 6, 6])],
                          [vi("y", TensorProto.FLOAT, ["N", 12, 6, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    macs = 36 * 12 * 6 + 36 * 12 * 9 + 36 * 12 * 6
    save(root, "shufflenet_unit", m, rng.standard_normal((2, 12, 6, 6)).astype(np.float32), macs,
         "ShuffleNet unit: grouped 1x1 convs, channel shuffle (Reshape/Transpose/Reshape), depthwise")


def bert_ffn(root):
    """A BERT encoder's feed-forward half as torch.onnx writes it: LayerNormalization, MatMul +
    Add, the exact GELU as Div -> Erf -> Add -> Mul -> Mul, MatMul + Add, residual Add,
    LayerNormalization; then GPT-2's tanh GELU (Pow(x, 3)) on a second projection."""
    d, f = 32, 64
    inits = [init("ln1.g", 1 + w(d, scale=0.1)), init("ln1.b", w(d, scale=0.1)), init("w1", w(d, f, scale=0.2)), init("b1", w(f)),
             init("w2", w(f, d, scale=0.15)), init("b2", w(d)), init("ln2.g", 1 + w(d, scale=0.1)), init("ln2.b", w(d, scale=0.1)),
             init("w3", w(d, 16, scale=0.2)), init("b3", w(16))]
    n = [
        helper.make_node("LayerNormalization", ["x", "ln1.g", "ln1.b"], ["ln1"], name="/attention/output/LayerNorm", axis=-1, epsilon=1e-12),
        helper.make_node("MatMul", ["ln1", "w1"], ["h"], name="/intermediate/dense/MatMul"),
        helper.make_node("Add", ["b1", "h"], ["hb"], name="/intermediate/dense/Add"),
        c("sqrt2", np.float32(1.4142135381698608)), c("one", np.float32(1.0)), c("half", np.float32(0.5)),
        helper.make_node("Div", ["hb", "sqrt2"], ["q"], name="/intermediate/intermediate_act_fn/Div"),
        helper.make_node("Erf", ["q"], ["e"], name="/intermediate/intermediate_act_fn/Erf"),
        helper.make_node("Add", ["e", "one"], ["e1"], name="/intermediate/intermediate_act_fn/Add"),
        helper.make_node("Mul", ["hb", "e1"], ["m"], name="/intermediate/intermediate_act_fn/Mul"),
        helper.make_node("Mul", ["m", "half"], ["gelu"], name="/intermediate/intermediate_act_fn/Mul_1"),
        helper.make_node("MatMul", ["gelu", "w2"], ["o"], name="/output/dense/MatMul"),
        helper.make_node("Add", ["b2", "o"], ["ob"], name="/output/dense/Add"),
        helper.make_node("Add", ["ob", "ln1"], ["res"], name="/output/Add"),
        helper.make_node("LayerNormalization", ["res", "ln2.g", "ln2.b"], ["ln2"], name="/output/LayerNorm", axis=-1, epsilon=1e-12),
        helper.make_node("MatMul", ["ln2", "w3"], ["p"], name="/head/MatMul"),
        helper.make_node("Add", ["p", "b3"], ["pb"], name="/head/Add"),
        c("three", np.float32(3.0)), c("k", np.float32(0.044715)), c("c", np.float32(0.7978845608028654)),
        helper.make_node("Pow", ["pb", "three"], ["p3"], name="/act/Pow"),
        helper.make_node("Mul", ["p3", "k"], ["kp3"], name="/act/Mul"),
        helper.make_node("Add", ["pb", "kp3"], ["inner"], name="/act/Add"),
        helper.make_node("Mul", ["inner", "c"], ["u"], name="/act/Mul_1"),
        helper.make_node("Tanh", ["u"], ["t"], name="/act/Tanh"),
        helper.make_node("Add", ["t", "one"], ["t1"], name="/act/Add_1"),
        helper.make_node("Mul", ["pb", "half"], ["hx"], name="/act/Mul_2"),
        helper.make_node("Mul", ["hx", "t1"], ["y"], name="/act/Mul_3"),
    ]
    g = helper.make_graph(n, "bert_ffn", [vi("x", TensorProto.FLOAT, ["batch", 8, d])],
                          [vi("y", TensorProto.FLOAT, ["batch", 8, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    macs = 8 * (d * f + f * d + d * 16)
    save(root, "bert_ffn", m, rng.standard_normal((2, 8, d)).astype(np.float32), macs,
         "BERT feed-forward: LayerNorm, exact GELU (Div/Erf/Add/Mul/Mul), residual; GPT-2 tanh GELU (Pow)")


def decomposed_layer_norm(x, g, b, y, prefix, eps, square="Pow"):
    """LayerNorm as torch.onnx writes it below opset 17 (ReduceMean, Sub, Pow, ReduceMean, Add,
    Sqrt, Div, Mul, Add); `square="Mul"` writes the square as d * d."""
    p = prefix
    n = [helper.make_node("ReduceMean", [x], [f"{p}/mean"], name=f"{p}/ReduceMean", axes=[-1]),
         helper.make_node("Sub", [x, f"{p}/mean"], [f"{p}/d"], name=f"{p}/Sub")]
    if square == "Pow":
        n += [c(f"{p}/two", np.float32(2.0)),
              helper.make_node("Pow", [f"{p}/d", f"{p}/two"], [f"{p}/sq"], name=f"{p}/Pow")]
    else:
        n += [helper.make_node("Mul", [f"{p}/d", f"{p}/d"], [f"{p}/sq"], name=f"{p}/Mul_sq")]
    n += [helper.make_node("ReduceMean", [f"{p}/sq"], [f"{p}/var"], name=f"{p}/ReduceMean_1", axes=[-1]),
          c(f"{p}/eps", np.float32(eps)),
          helper.make_node("Add", [f"{p}/var", f"{p}/eps"], [f"{p}/vare"], name=f"{p}/Add"),
          helper.make_node("Sqrt", [f"{p}/vare"], [f"{p}/std"], name=f"{p}/Sqrt"),
          helper.make_node("Div", [f"{p}/d", f"{p}/std"], [f"{p}/norm"], name=f"{p}/Div"),
          helper.make_node("Mul", [f"{p}/norm", g], [f"{p}/scaled"], name=f"{p}/Mul"),
          helper.make_node("Add", [f"{p}/scaled", b], [y], name=f"{p}/Add_1")]
    return n


def bert_layer(root, name="bert_layer", seq=None, opset=17, S=8, D=32, H=4, F=64, examples=3):
    """A whole BERT encoder layer as torch.onnx writes HuggingFace's BertLayer: Q, K, V
    projections (MatMul + Add), per-head Reshape (one through Shape/Gather/Unsqueeze/Concat, two
    with a constant [0, 0, h, d]) and Transpose (K to [N, h, d, S]), scores MatMul, Div by
    sqrt(d), Softmax, context MatMul, Transpose back, Reshape to [N, S, D], output projection,
    residual, LayerNorm, the feed-forward block with the exact GELU, residual, LayerNorm."""
    dh = D // H
    inits = []
    for nm in ["q", "k", "v", "o"]:
        inits += [init(f"{nm}.w", w(D, D, scale=0.2)), init(f"{nm}.b", w(D, scale=0.1))]
    inits += [init("f1.w", w(D, F, scale=0.2)), init("f1.b", w(F, scale=0.1)), init("f2.w", w(F, D, scale=0.15)),
              init("f2.b", w(D, scale=0.1)), init("ln1.g", 1 + w(D, scale=0.1)), init("ln1.b", w(D, scale=0.1)),
              init("ln2.g", 1 + w(D, scale=0.1)), init("ln2.b", w(D, scale=0.1)),
              init("heads", np.array([0, 0, H, dh], dtype=np.int64)), init("merge", np.array([0, 0, D], dtype=np.int64)),
              init("i0", np.array(0, dtype=np.int64)), init("i1", np.array(1, dtype=np.int64)),
              init("ax0", np.array([0], dtype=np.int64)), init("hd", np.array([H, dh], dtype=np.int64))]
    n = []
    for nm in ["q", "k", "v"]:
        n.append(helper.make_node("MatMul", ["x", f"{nm}.w"], [f"{nm}m"], name=f"/attention/self/{nm}/MatMul"))
        n.append(helper.make_node("Add", [f"{nm}.b", f"{nm}m"], [f"{nm}a"], name=f"/attention/self/{nm}/Add"))
    # q: view(x.size(0), x.size(1), h, d) through the shape subgraph
    n += [helper.make_node("Shape", ["qa"], ["qs"], name="/attention/self/Shape"),
          helper.make_node("Gather", ["qs", "i0"], ["qs0"], name="/attention/self/Gather", axis=0),
          helper.make_node("Gather", ["qs", "i1"], ["qs1"], name="/attention/self/Gather_1", axis=0),
          helper.make_node("Unsqueeze", ["qs0", "ax0"], ["qs0u"], name="/attention/self/Unsqueeze"),
          helper.make_node("Unsqueeze", ["qs1", "ax0"], ["qs1u"], name="/attention/self/Unsqueeze_1"),
          helper.make_node("Concat", ["qs0u", "qs1u", "hd"], ["qshape"], name="/attention/self/Concat", axis=0),
          helper.make_node("Reshape", ["qa", "qshape"], ["qr"], name="/attention/self/Reshape"),
          helper.make_node("Transpose", ["qr"], ["qt"], name="/attention/self/Transpose", perm=[0, 2, 1, 3]),
          helper.make_node("Reshape", ["ka", "heads"], ["kr"], name="/attention/self/Reshape_1"),
          helper.make_node("Transpose", ["kr"], ["kt0"], name="/attention/self/Transpose_1", perm=[0, 2, 1, 3]),
          helper.make_node("Transpose", ["kt0"], ["kt"], name="/attention/self/Transpose_2", perm=[0, 1, 3, 2]),
          helper.make_node("Reshape", ["va", "heads"], ["vr"], name="/attention/self/Reshape_2"),
          helper.make_node("Transpose", ["vr"], ["vt"], name="/attention/self/Transpose_3", perm=[0, 2, 1, 3]),
          helper.make_node("MatMul", ["qt", "kt"], ["sc"], name="/attention/self/MatMul"),
          c("sqrtd", np.float32(np.sqrt(dh))),
          helper.make_node("Div", ["sc", "sqrtd"], ["scd"], name="/attention/self/Div"),
          helper.make_node("Softmax", ["scd"], ["pr"], name="/attention/self/Softmax", axis=-1),
          helper.make_node("MatMul", ["pr", "vt"], ["cx"], name="/attention/self/MatMul_1"),
          helper.make_node("Transpose", ["cx"], ["cxt"], name="/attention/self/Transpose_4", perm=[0, 2, 1, 3]),
          helper.make_node("Reshape", ["cxt", "merge"], ["ctx"], name="/attention/self/Reshape_3"),
          helper.make_node("MatMul", ["ctx", "o.w"], ["om"], name="/attention/output/dense/MatMul"),
          helper.make_node("Add", ["o.b", "om"], ["oa"], name="/attention/output/dense/Add"),
          helper.make_node("Add", ["oa", "x"], ["r1"], name="/attention/output/Add"),
          helper.make_node("LayerNormalization", ["r1", "ln1.g", "ln1.b"], ["l1"], name="/attention/output/LayerNorm", axis=-1, epsilon=1e-12),
          helper.make_node("MatMul", ["l1", "f1.w"], ["f1m"], name="/intermediate/dense/MatMul"),
          helper.make_node("Add", ["f1.b", "f1m"], ["f1a"], name="/intermediate/dense/Add"),
          c("sqrt2", np.float32(1.4142135381698608)), c("one", np.float32(1.0)), c("half", np.float32(0.5)),
          helper.make_node("Div", ["f1a", "sqrt2"], ["g0"], name="/intermediate/intermediate_act_fn/Div"),
          helper.make_node("Erf", ["g0"], ["g1"], name="/intermediate/intermediate_act_fn/Erf"),
          helper.make_node("Add", ["g1", "one"], ["g2"], name="/intermediate/intermediate_act_fn/Add"),
          helper.make_node("Mul", ["f1a", "g2"], ["g3"], name="/intermediate/intermediate_act_fn/Mul"),
          helper.make_node("Mul", ["g3", "half"], ["g4"], name="/intermediate/intermediate_act_fn/Mul_1"),
          helper.make_node("MatMul", ["g4", "f2.w"], ["f2m"], name="/output/dense/MatMul"),
          helper.make_node("Add", ["f2.b", "f2m"], ["f2a"], name="/output/dense/Add"),
          helper.make_node("Add", ["f2a", "l1"], ["r2"], name="/output/Add"),
          helper.make_node("LayerNormalization", ["r2", "ln2.g", "ln2.b"], ["y"], name="/output/LayerNorm", axis=-1, epsilon=1e-12)]
    if opset < 17:
        # No LayerNormalization before opset 17: torch.onnx decomposes it.
        out = []
        for node in n:
            if node.op_type == "LayerNormalization":
                x, gm, bt = node.input
                out += decomposed_layer_norm(x, gm, bt, node.output[0], node.name, 1e-12,
                                             square="Pow" if node.name.startswith("/attention") else "Mul")
            else:
                out.append(node)
        n = out
    g = helper.make_graph(n, name, [vi("x", TensorProto.FLOAT, ["batch", seq or S, D])],
                          [vi("y", TensorProto.FLOAT, ["batch", seq or S, D])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
    m.ir_version = 8
    # Q, K, V, O projections, scores and context (h * S * S * (d + d)), the two FFN layers
    macs = 4 * S * D * D + H * S * S * 2 * dh + S * D * F * 2
    note = "BERT encoder layer: per-head Reshape/Transpose attention, Erf GELU, LayerNorm, residuals"
    if opset < 17:
        note += f"; opset {opset}: each LayerNorm decomposed (ReduceMean, Sub, Pow or Mul, ReduceMean, Add, Sqrt, Div, Mul, Add)"
    if seq:
        note += f"; the sequence is the symbolic dimension `{seq}` (test data at {S}: --dim {seq}=SIZE binds it)"
    save(root, name, m, rng.standard_normal((examples, S, D)).astype(np.float32), macs, note)


def bert_layer_dynamic(root):
    """bert_layer exported with dynamic axes (`dynamic_axes={'x': {0: 'batch', 1: 'sequence'}}`):
    the sequence is symbolic; its own generator, so making it alone gives the same bytes."""
    global rng
    saved, rng = rng, np.random.default_rng(20261203)
    try:
        bert_layer(root, "bert_layer_dynamic", seq="sequence")
    finally:
        rng = saved


def bert_layer_opset14(root):
    """bert_layer as torch.onnx writes it at opset 14 with dynamic axes: both LayerNorms
    decomposed (one squaring with Pow, one with Mul), a symbolic sequence; its own generator."""
    global rng
    saved, rng = rng, np.random.default_rng(20261204)
    try:
        bert_layer(root, "bert_layer_opset14", seq="sequence", opset=14)
    finally:
        rng = saved


def shufflenetv2_unit(root):
    """torchvision's ShuffleNetV2 basic unit: Split of the channels in two (the split sizes as
    an input, opset 13), one half through 1x1 conv, depthwise 3x3, 1x1 conv, then Concat and the
    channel shuffle; then a Slice of the first 8 channels and of rows 1..5."""
    inits, n = [], []
    inits += [init("a.w", w(8, 8, 1, 1)), init("a.b", w(8)), init("d.w", w(8, 1, 3, 3)), init("d.b", w(8)),
              init("c.w", w(8, 8, 1, 1)), init("c.b", w(8)), init("halves", np.array([8, 8], dtype=np.int64)),
              init("split", np.array([0, 2, 8, 6, 6], dtype=np.int64)), init("merge", np.array([0, 16, 6, 6], dtype=np.int64)),
              init("s0", np.array([0, 1], dtype=np.int64)), init("s1", np.array([8, 5], dtype=np.int64)),
              init("sax", np.array([1, 2], dtype=np.int64))]
    n += [helper.make_node("Split", ["x", "halves"], ["x1", "x2"], name="/Split", axis=1),
          helper.make_node("Conv", ["x2", "a.w", "a.b"], ["a"], name="/branch2/0/Conv", kernel_shape=[1, 1]),
          helper.make_node("Relu", ["a"], ["ar"], name="/branch2/2/Relu"),
          helper.make_node("Conv", ["ar", "d.w", "d.b"], ["d"], name="/branch2/3/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
          helper.make_node("Conv", ["d", "c.w", "c.b"], ["cc"], name="/branch2/5/Conv", kernel_shape=[1, 1]),
          helper.make_node("Relu", ["cc"], ["cr"], name="/branch2/7/Relu"),
          helper.make_node("Concat", ["x1", "cr"], ["cat"], name="/Concat", axis=1),
          helper.make_node("Reshape", ["cat", "split"], ["r"], name="/Reshape"),
          helper.make_node("Transpose", ["r"], ["t"], name="/Transpose", perm=[0, 2, 1, 3, 4]),
          helper.make_node("Reshape", ["t", "merge"], ["sh"], name="/Reshape_1"),
          helper.make_node("Slice", ["sh", "s0", "s1", "sax"], ["y"], name="/Slice")]
    g = helper.make_graph(n, "shufflenetv2_unit", [vi("x", TensorProto.FLOAT, ["N", 16, 6, 6])],
                          [vi("y", TensorProto.FLOAT, ["N", 8, 4, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    macs = 36 * 8 * 8 + 36 * 8 * 9 + 36 * 8 * 8
    save(root, "shufflenetv2_unit", m, rng.standard_normal((2, 16, 6, 6)).astype(np.float32), macs,
         "ShuffleNetV2 unit: channel Split, Concat, shuffle; Slice of channels and rows")


def zero_pad(root):
    """Keras' ZeroPadding2D before valid convolutions, as an explicit Pad node (pads as an
    input, asymmetric, with and without constant_value), which the importer takes into the
    convolution's own padding."""
    inits = [init("p1", np.array([0, 0, 1, 2, 0, 0, 2, 1], dtype=np.int64)), init("zero", np.array(0, dtype=np.float32)),
             init("p2", np.array([0, 0, 0, 1, 0, 0, 1, 0], dtype=np.int64)),
             init("c.w", w(6, 3, 3, 3)), init("c.b", w(6)), init("d.w", w(6, 1, 3, 3)), init("d.b", w(6)),
             init("fc.w", w(6, 4)), init("fc.b", w(4))]
    n = [
        helper.make_node("Pad", ["x", "p1", "zero"], ["xp"], name="zero_padding2d", mode="constant"),
        helper.make_node("Conv", ["xp", "c.w", "c.b"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Pad", ["r", "p2"], ["rp"], name="zero_padding2d_1"),
        helper.make_node("Conv", ["rp", "d.w", "d.b"], ["d"], name="dwconv", kernel_shape=[3, 3], group=6),
        helper.make_node("GlobalAveragePool", ["d"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="dense"),
    ]
    g = helper.make_graph(n, "zero_pad", [vi("x", TensorProto.FLOAT, ["N", 3, 11, 10])],
                          [vi("y", TensorProto.FLOAT, ["N", 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx")
    m.ir_version = 7
    # conv: (11+1+2-3)/2+1 = 6 rows, (10+2+1-3)/2+1 = 6 cols; dw: (6+1-3)+1 = 5, (6+1-3)+1 = 5
    macs = 6 * 6 * 6 * 27 + 5 * 5 * 6 * 9 + 6 * 4
    save(root, "zero_pad", m, rng.standard_normal((2, 3, 11, 10)).astype(np.float32), macs,
         "Pad nodes (Keras ZeroPadding2D) taken into the following convolutions' padding")


def opset7(root):
    """The oldest opset greenbench imports (7), as the ONNX model zoo's older files are written:
    Clip's min/max and Pad's pads as attributes, Unsqueeze's axes as an attribute, Dropout with
    a ratio, Softmax's default axis 1, BatchNormalization with `spatial`."""
    inits = [init("c.w", w(4, 2, 3, 3)), init("c.b", w(4)), init("s", 1 + w(4, scale=0.1)), init("b", w(4)),
             init("m", w(4, scale=0.1)), init("v", 1 + np.abs(w(4, scale=0.1))), init("fc.w", w(4, 3)), init("fc.b", w(3)),
             init("shape", np.array([0, -1], dtype=np.int64))]
    n = [
        helper.make_node("Pad", ["x"], ["xp"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant", value=0.0),
        helper.make_node("Conv", ["xp", "c.w", "c.b"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="bn", spatial=1, epsilon=1e-5),
        helper.make_node("Clip", ["bn"], ["r"], name="relu6", min=0.0, max=6.0),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Reshape", ["g", "shape"], ["f"], name="flat"),
        helper.make_node("Dropout", ["f"], ["fd"], name="dropout", ratio=0.5),
        helper.make_node("Gemm", ["fd", "fc.w", "fc.b"], ["z"], name="fc"),
        helper.make_node("Softmax", ["z"], ["y"], name="softmax"),
    ]
    inputs = [vi("x", TensorProto.FLOAT, ["N", 2, 6, 6])] + [vi(t.name, t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(n, "opset7", inputs, [vi("y", TensorProto.FLOAT, ["N", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 7)])
    m.ir_version = 3
    save(root, "opset7", m, rng.standard_normal((2, 2, 6, 6)).astype(np.float32), 36 * 4 * 18 + 12,
         "opset 7: Clip/Pad attributes, Dropout ratio, Softmax default axis, BN spatial")


def opset21(root):
    """The newest opset greenbench imports (21): the Gelu op (opset 20; exact and tanh),
    ReduceMean's axes as an input (18), Squeeze/Unsqueeze of activations with axes inputs,
    Pad with pads and value inputs, Split with num_outputs (18)."""
    inits = [init("w1", w(16, 24, scale=0.2)), init("b1", w(24)), init("w2", w(12, 4, scale=0.2)), init("b2", w(4)),
             init("ax1", np.array([1], dtype=np.int64)), init("ax2", np.array([2], dtype=np.int64))]
    n = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1/MatMul"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1/Add"),
        helper.make_node("Gelu", ["hb"], ["g"], name="gelu"),
        helper.make_node("Split", ["g"], ["g1", "g2"], name="split", axis=2, num_outputs=2),
        helper.make_node("Gelu", ["g2"], ["g2t"], name="gelu_tanh", approximate="tanh"),
        helper.make_node("Mul", ["g1", "g2t"], ["gm"], name="glu"),
        helper.make_node("ReduceMean", ["gm", "ax1"], ["rm"], name="mean", keepdims=1),
        helper.make_node("Squeeze", ["rm", "ax1"], ["sq"], name="squeeze"),
        helper.make_node("MatMul", ["sq", "w2"], ["o"], name="fc2/MatMul"),
        helper.make_node("Add", ["o", "b2"], ["ob"], name="fc2/Add"),
        helper.make_node("Unsqueeze", ["ob", "ax2"], ["y"], name="unsqueeze"),
    ]
    g = helper.make_graph(n, "opset21", [vi("x", TensorProto.FLOAT, ["N", 5, 16])],
                          [vi("y", TensorProto.FLOAT, ["N", 4, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    save(root, "opset21", m, rng.standard_normal((3, 5, 16)).astype(np.float32), 5 * 16 * 24 + 12 * 4,
         "opset 21: Gelu op (exact, tanh), Split num_outputs, ReduceMean axes input, Squeeze/Unsqueeze")


def generic_ops(root):
    """Tensor ops outside the fused patterns, on a [N, S, D] sequence: a single-head attention
    written with a general Transpose of K and two MatMuls of activations; a SiLU gate (Mul of
    two activations); a mean over the sequence subtracted with broadcasting ([N, S, D] - [N, 1,
    D]); a Div of two activations; a per-head Reshape whose Transpose is not attention's
    (0, 3, 1, 2); a Reshape of that; a MatMul with weights; and an Add whose operands both
    broadcast ([N, 24, 1] + [N, 1, 3]). Its own seeded generator (fixtures made before it keep
    their bytes)."""
    r = np.random.default_rng(2026113001)
    wr = lambda *s, scale=0.3: (r.standard_normal(s) * scale).astype(np.float32)
    S, D = 6, 8
    inits = [init("wq", wr(D, D)), init("wk", wr(D, D)), init("wv", wr(D, D)), init("w2", wr(2, 3)),
             init("heads", np.array([0, S, 2, 4], dtype=np.int64)),
             init("flat", np.array([0, 24, 2], dtype=np.int64)), init("s0", np.array([0], dtype=np.int64)),
             init("s1", np.array([1], dtype=np.int64)), init("ax2", np.array([2], dtype=np.int64))]
    n = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
         helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
         helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
         helper.make_node("Transpose", ["k"], ["kt"], name="k_t", perm=[0, 2, 1]),
         helper.make_node("MatMul", ["q", "kt"], ["sc"], name="scores"),
         c("scale", np.float32(np.sqrt(D))),
         helper.make_node("Div", ["sc", "scale"], ["scd"], name="scaled"),
         helper.make_node("Softmax", ["scd"], ["p"], name="probs", axis=-1),
         helper.make_node("MatMul", ["p", "v"], ["o"], name="context"),
         helper.make_node("Sigmoid", ["o"], ["g"], name="gate"),
         helper.make_node("Mul", ["o", "g"], ["m"], name="silu"),
         helper.make_node("ReduceMean", ["m"], ["mu"], name="mean", axes=[1], keepdims=1),
         helper.make_node("Sub", ["m", "mu"], ["cen"], name="centre"),
         helper.make_node("Div", ["cen", "g"], ["dv"], name="divide"),
         helper.make_node("Reshape", ["dv", "heads"], ["h"], name="split_heads"),
         helper.make_node("Transpose", ["h"], ["ht"], name="heads_last", perm=[0, 3, 1, 2]),
         helper.make_node("Reshape", ["ht", "flat"], ["f"], name="pairs"),
         helper.make_node("MatMul", ["f", "w2"], ["f2"], name="proj"),
         helper.make_node("Slice", ["f2", "s0", "s1", "ax2"], ["col"], name="first_col"),
         helper.make_node("ReduceMean", ["f2"], ["row"], name="row_mean", axes=[1], keepdims=1),
         helper.make_node("Add", ["col", "row"], ["y"], name="outer_sum")]
    g = helper.make_graph(n, "generic_ops", [vi("x", TensorProto.FLOAT, ["N", S, D])],
                          [vi("y", TensorProto.FLOAT, ["N", 24, 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    macs = 3 * S * D * D + S * D * S + S * S * D + 24 * 2 * 3
    save(root, "generic_ops", m, r.standard_normal((3, S, D)).astype(np.float32), macs,
         "general Transpose/Reshape, MatMul of two activations, broadcasting Sub/Div/Add of two activations")


def nonlocal_block(root):
    """A non-local (self-attention) block over an NCHW map, as torch.onnx writes it: 1x1 convs
    theta/phi/g, each Reshaped [N, C', H*W], a Transpose, the affinity MatMul [N, HW, HW],
    Softmax, the MatMul with g, a Transpose and Reshape back to [N, C', H, W], a 1x1 conv and
    the residual; then a spatial gate (sigmoid of a 1-channel conv, Mul broadcasting over the
    channels) and a Sub of two convolutions of the same map. Its own seeded generator."""
    r = np.random.default_rng(2026113002)
    wr = lambda *s, scale=0.3: (r.standard_normal(s) * scale).astype(np.float32)
    C, Ci, H, W = 8, 4, 5, 6
    inits = []
    for nm, co, ci in [("theta", Ci, C), ("phi", Ci, C), ("g", Ci, C), ("out", C, Ci), ("gate", 1, C), ("a", C, C), ("b", C, C)]:
        inits += [init(f"{nm}.w", wr(co, ci, 1, 1)), init(f"{nm}.b", wr(co, scale=0.1))]
    inits += [init("flat", np.array([0, Ci, H * W], dtype=np.int64)), init("back", np.array([0, Ci, H, W], dtype=np.int64))]
    conv = lambda nm, x, y: helper.make_node("Conv", [x, f"{nm}.w", f"{nm}.b"], [y], name=f"/{nm}/Conv", kernel_shape=[1, 1])
    n = [conv("theta", "x", "th"), conv("phi", "x", "ph"), conv("g", "x", "gg"),
         helper.make_node("Reshape", ["th", "flat"], ["thf"], name="/theta/Reshape"),
         helper.make_node("Reshape", ["ph", "flat"], ["phf"], name="/phi/Reshape"),
         helper.make_node("Reshape", ["gg", "flat"], ["gf"], name="/g/Reshape"),
         helper.make_node("Transpose", ["thf"], ["tht"], name="/theta/Transpose", perm=[0, 2, 1]),
         helper.make_node("MatMul", ["tht", "phf"], ["aff"], name="/affinity/MatMul"),
         helper.make_node("Softmax", ["aff"], ["p"], name="/affinity/Softmax", axis=-1),
         helper.make_node("Transpose", ["gf"], ["gt"], name="/g/Transpose", perm=[0, 2, 1]),
         helper.make_node("MatMul", ["p", "gt"], ["yv"], name="/context/MatMul"),
         helper.make_node("Transpose", ["yv"], ["yt"], name="/context/Transpose", perm=[0, 2, 1]),
         helper.make_node("Reshape", ["yt", "back"], ["ym"], name="/context/Reshape"),
         conv("out", "ym", "wy"),
         helper.make_node("Add", ["wy", "x"], ["z"], name="/residual/Add"),
         conv("gate", "z", "gl"),
         helper.make_node("Sigmoid", ["gl"], ["gs"], name="/gate/Sigmoid"),
         helper.make_node("Mul", ["z", "gs"], ["zg"], name="/gate/Mul"),
         conv("a", "zg", "za"), conv("b", "zg", "zb"),
         helper.make_node("Sub", ["za", "zb"], ["y"], name="/diff/Sub")]
    g = helper.make_graph(n, "nonlocal_block", [vi("x", TensorProto.FLOAT, ["N", C, H, W])],
                          [vi("y", TensorProto.FLOAT, ["N", C, H, W])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    hw = H * W
    macs = 3 * hw * Ci * C + hw * Ci * hw + hw * hw * Ci + hw * C * Ci + hw * C + 2 * hw * C * C
    save(root, "nonlocal_block", m, r.standard_normal((2, C, H, W)).astype(np.float32), macs,
         "non-local block: NCHW Reshape/Transpose, affinity MatMul of activations, spatial gate Mul broadcast, Sub")


def vit_embed(root):
    """A ViT-style patch embedding: a 4x4 stride-4 Conv over an NCHW image, Reshape to
    [N, C, HW] and Transpose to tokens [N, HW, C], a learned position embedding added as a
    [1, HW, C] constant, LayerNorm, then constants that are neither scalars nor per channel:
    `1 - x` (the constant first) and a Div by a per-token [HW, 1] constant. Its own seeded
    generator."""
    r = np.random.default_rng(2026113003)
    wr = lambda *s, scale=0.3: (r.standard_normal(s) * scale).astype(np.float32)
    C, P = 16, 4
    inits = [init("patch.w", wr(C, 3, P, P)), init("patch.b", wr(C, scale=0.1)),
             init("pos", wr(1, 4, C, scale=0.5)), init("ln.g", 1 + wr(C, scale=0.1)), init("ln.b", wr(C, scale=0.1)),
             init("flat", np.array([0, C, 4], dtype=np.int64)), init("one", np.array(1.0, dtype=np.float32)),
             init("tok", (np.abs(wr(4, 1)) + 0.5).astype(np.float32))]
    n = [helper.make_node("Conv", ["x", "patch.w", "patch.b"], ["p"], name="/patch_embed/proj/Conv", kernel_shape=[P, P], strides=[P, P]),
         helper.make_node("Reshape", ["p", "flat"], ["pf"], name="/patch_embed/Reshape"),
         helper.make_node("Transpose", ["pf"], ["t"], name="/patch_embed/Transpose", perm=[0, 2, 1]),
         helper.make_node("Add", ["t", "pos"], ["e"], name="/pos_embed/Add"),
         helper.make_node("LayerNormalization", ["e", "ln.g", "ln.b"], ["l"], name="/norm/LayerNorm", axis=-1, epsilon=1e-6),
         helper.make_node("Sub", ["one", "l"], ["inv"], name="/one_minus"),
         helper.make_node("Div", ["inv", "tok"], ["y"], name="/per_token")]
    g = helper.make_graph(n, "vit_embed", [vi("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [vi("y", TensorProto.FLOAT, ["N", 4, C])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    save(root, "vit_embed", m, r.standard_normal((2, 3, 8, 8)).astype(np.float32), 4 * C * 3 * P * P,
         "ViT patch embedding: Conv, Reshape/Transpose to tokens, position-embedding constant, 1 - x, per-token Div")


def reshape_bn(root):
    """A sequence reshaped into an NCHW map by a general Reshape ([N, 6, 8] -> [N, 2, 3, 8]),
    then BatchNormalization, Relu, a 1x1 Conv and a MaxPool: image ops reading a map the
    general ops left in the file's order. Its own seeded generator."""
    r = np.random.default_rng(2026113004)
    wr = lambda *s, scale=0.3: (r.standard_normal(s) * scale).astype(np.float32)
    inits = [init("shape", np.array([0, 2, 3, 8], dtype=np.int64)), init("g", 1 + wr(2, scale=0.1)),
             init("b", wr(2, scale=0.1)), init("m", wr(2, scale=0.1)), init("v", (1 + np.abs(wr(2))).astype(np.float32)),
             init("w", wr(4, 2, 1, 1)), init("wb", wr(4, scale=0.1))]
    n = [helper.make_node("Reshape", ["x", "shape"], ["m4"], name="to_map"),
         helper.make_node("BatchNormalization", ["m4", "g", "b", "m", "v"], ["bn"], name="bn", epsilon=1e-5),
         helper.make_node("Relu", ["bn"], ["r"], name="relu"),
         helper.make_node("Conv", ["r", "w", "wb"], ["c"], name="conv", kernel_shape=[1, 1]),
         helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[1, 2], strides=[1, 2])]
    g = helper.make_graph(n, "reshape_bn", [vi("x", TensorProto.FLOAT, ["N", 6, 8])],
                          [vi("y", TensorProto.FLOAT, ["N", 4, 3, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    save(root, "reshape_bn", m, r.standard_normal((2, 6, 8)).astype(np.float32), 3 * 8 * 2 * 4,
         "general Reshape to an NCHW map, then BatchNormalization, Relu, Conv, MaxPool on it")


def math_ops(root):
    """ONNX's elementwise math operators on an activation, as exporters leave them outside
    the patterns greenbench fuses: Abs, Sqrt, Log, Neg, Exp, Reciprocal, Pow by 1.5, Sign,
    Erf, a product of two of them. Its own generator."""
    r = np.random.default_rng(20261205)
    inits = [init("w", (r.standard_normal((8, 8)) * 0.4).astype(np.float32)),
             init("b", (r.standard_normal(8) * 0.1).astype(np.float32))]
    n = [helper.make_node("Gemm", ["x", "w", "b"], ["a"], name="fc"),
         helper.make_node("Abs", ["a"], ["a_abs"], name="abs"),
         c("half", np.float32(0.5)),
         helper.make_node("Add", ["a_abs", "half"], ["a_pos"], name="add_half"),
         helper.make_node("Sqrt", ["a_pos"], ["s"], name="sqrt"),
         helper.make_node("Log", ["s"], ["l"], name="log"),
         helper.make_node("Neg", ["l"], ["ng"], name="neg"),
         helper.make_node("Exp", ["ng"], ["e"], name="exp"),
         helper.make_node("Reciprocal", ["e"], ["rc"], name="reciprocal"),
         c("p15", np.float32(1.5)),
         helper.make_node("Pow", ["rc", "p15"], ["pw"], name="pow"),
         helper.make_node("Sign", ["a"], ["sg"], name="sign"),
         helper.make_node("Erf", ["a"], ["ef"], name="erf"),
         helper.make_node("Mul", ["sg", "ef"], ["se"], name="sign_erf"),
         helper.make_node("Add", ["pw", "se"], ["y"], name="out")]
    g = helper.make_graph(n, "math_ops", [vi("x", TensorProto.FLOAT, ["N", 8])],
                          [vi("y", TensorProto.FLOAT, ["N", 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    save(root, "math_ops", m, r.standard_normal((4, 8)).astype(np.float32), 64,
         "Abs, Sqrt, Log, Neg, Exp, Reciprocal, Pow 1.5, Sign, Erf of an activation, and a product of two")


def gpt2_block(root, name="gpt2_block", V=50, P=32, D=16, H=2, S=8):
    """A GPT-2 as torch.onnx writes HuggingFace's GPT2LMHeadModel (one block, opset 17, dynamic
    batch and sequence): token embedding Gather, position ids from Range over Shape, learned
    positions, LayerNormalization, the fused c_attn projection Split into Q, K, V, per-head
    Reshape/Transpose, scores divided by a constant sqrt(d), the causal mask sliced from a
    lower-triangular bool buffer by the sequence length and applied with Where(mask, scores,
    finfo.min), Softmax, context, c_proj, residual, the MLP with the tanh GELU written out
    (Pow 3, Tanh), final LayerNorm, and the lm_head tied to the token embedding (MatMul by its
    Transpose). Its own generator."""
    r = np.random.default_rng(20261206)
    dh = D // H
    def rw(*shape, scale=0.3):
        return (r.standard_normal(shape) * scale).astype(np.float32)
    i64 = lambda v: np.array(v, dtype=np.int64)
    inits = [init("wte", rw(V, D)), init("wpe", rw(P, D, scale=0.1)),
             init("ln1.g", 1 + rw(D, scale=0.1)), init("ln1.b", rw(D, scale=0.1)),
             init("attn.w", rw(D, 3 * D, scale=0.25)), init("attn.b", rw(3 * D, scale=0.1)),
             init("proj.w", rw(D, D, scale=0.25)), init("proj.b", rw(D, scale=0.1)),
             init("ln2.g", 1 + rw(D, scale=0.1)), init("ln2.b", rw(D, scale=0.1)),
             init("fc.w", rw(D, 4 * D, scale=0.25)), init("fc.b", rw(4 * D, scale=0.1)),
             init("mproj.w", rw(4 * D, D, scale=0.15)), init("mproj.b", rw(D, scale=0.1)),
             init("lnf.g", 1 + rw(D, scale=0.1)), init("lnf.b", rw(D, scale=0.1)),
             init("bias", np.tril(np.ones((P, P), dtype=bool)).reshape(1, 1, P, P)),
             init("split", i64([D, D, D])), init("i0", i64(0)), init("i1", i64(1)),
             init("ax0", i64([0])), init("ax2", i64([2])), init("ax3", i64([3])),
             init("hd", i64([H, dh])), init("merge", i64([0, 0, D]))]
    n = [helper.make_node("Shape", ["input_ids"], ["ids_shape"], name="/transformer/Shape"),
         helper.make_node("Gather", ["ids_shape", "i1"], ["seq"], name="/transformer/Gather", axis=0),
         c("zero", np.int64(0)), c("one", np.int64(1)),
         helper.make_node("Range", ["zero", "seq", "one"], ["pos"], name="/transformer/Range"),
         helper.make_node("Unsqueeze", ["pos", "ax0"], ["pos_ids"], name="/transformer/Unsqueeze"),
         helper.make_node("Gather", ["wte", "input_ids"], ["tok"], name="/transformer/wte/Gather", axis=0),
         helper.make_node("Gather", ["wpe", "pos_ids"], ["pose"], name="/transformer/wpe/Gather", axis=0),
         helper.make_node("Add", ["tok", "pose"], ["h0"], name="/transformer/Add"),
         helper.make_node("LayerNormalization", ["h0", "ln1.g", "ln1.b"], ["l1"], name="/transformer/h.0/ln_1/LayerNormalization", axis=-1, epsilon=1e-5),
         helper.make_node("MatMul", ["l1", "attn.w"], ["qkv0"], name="/transformer/h.0/attn/c_attn/MatMul"),
         helper.make_node("Add", ["attn.b", "qkv0"], ["qkv"], name="/transformer/h.0/attn/c_attn/Add"),
         helper.make_node("Split", ["qkv", "split"], ["q", "k", "v"], name="/transformer/h.0/attn/Split", axis=2)]
    # per-head view: [N, S, H, dh] through Shape/Gather/Unsqueeze/Concat, then transposes
    for nm, perm in [("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])]:
        p = f"/transformer/h.0/attn/{nm}"
        n += [helper.make_node("Shape", [nm], [f"{nm}_s"], name=f"{p}/Shape"),
              helper.make_node("Gather", [f"{nm}_s", "i0"], [f"{nm}_s0"], name=f"{p}/Gather", axis=0),
              helper.make_node("Gather", [f"{nm}_s", "i1"], [f"{nm}_s1"], name=f"{p}/Gather_1", axis=0),
              helper.make_node("Unsqueeze", [f"{nm}_s0", "ax0"], [f"{nm}_u0"], name=f"{p}/Unsqueeze"),
              helper.make_node("Unsqueeze", [f"{nm}_s1", "ax0"], [f"{nm}_u1"], name=f"{p}/Unsqueeze_1"),
              helper.make_node("Concat", [f"{nm}_u0", f"{nm}_u1", "hd"], [f"{nm}_shape"], name=f"{p}/Concat", axis=0),
              helper.make_node("Reshape", [nm, f"{nm}_shape"], [f"{nm}_r"], name=f"{p}/Reshape"),
              helper.make_node("Transpose", [f"{nm}_r"], [f"{nm}_t"], name=f"{p}/Transpose", perm=perm)]
    a = "/transformer/h.0/attn"
    n += [helper.make_node("MatMul", ["q_t", "k_t"], ["sc"], name=f"{a}/MatMul"),
          c("scale", np.float32(np.sqrt(dh))),
          helper.make_node("Div", ["sc", "scale"], ["scd"], name=f"{a}/Div"),
          # causal_mask = bias[:, :, k_len - q_len : k_len, :k_len]
          helper.make_node("Shape", ["q_t"], ["qs"], name=f"{a}/Shape"),
          helper.make_node("Gather", ["qs", "ax2"], ["qlen"], name=f"{a}/Gather", axis=0),
          helper.make_node("Shape", ["k_t"], ["ks"], name=f"{a}/Shape_1"),
          helper.make_node("Gather", ["ks", "ax3"], ["klen"], name=f"{a}/Gather_1", axis=0),
          helper.make_node("Sub", ["klen", "qlen"], ["start"], name=f"{a}/Sub"),
          helper.make_node("Slice", ["bias", "start", "klen", "ax2"], ["rows"], name=f"{a}/Slice"),
          helper.make_node("Slice", ["rows", "ax0", "klen", "ax3"], ["mask"], name=f"{a}/Slice_1"),
          c("minval", np.float32(np.finfo(np.float32).min)),
          helper.make_node("Where", ["mask", "scd", "minval"], ["masked"], name=f"{a}/Where"),
          helper.make_node("Softmax", ["masked"], ["pr"], name=f"{a}/Softmax", axis=-1),
          helper.make_node("MatMul", ["pr", "v_t"], ["cx"], name=f"{a}/MatMul_1"),
          helper.make_node("Transpose", ["cx"], ["cxt"], name=f"{a}/Transpose_3", perm=[0, 2, 1, 3]),
          helper.make_node("Reshape", ["cxt", "merge"], ["ctx"], name=f"{a}/Reshape_3"),
          helper.make_node("MatMul", ["ctx", "proj.w"], ["pm"], name=f"{a}/c_proj/MatMul"),
          helper.make_node("Add", ["proj.b", "pm"], ["pa"], name=f"{a}/c_proj/Add"),
          helper.make_node("Add", ["pa", "h0"], ["h1"], name="/transformer/h.0/Add"),
          helper.make_node("LayerNormalization", ["h1", "ln2.g", "ln2.b"], ["l2"], name="/transformer/h.0/ln_2/LayerNormalization", axis=-1, epsilon=1e-5),
          helper.make_node("MatMul", ["l2", "fc.w"], ["fm"], name="/transformer/h.0/mlp/c_fc/MatMul"),
          helper.make_node("Add", ["fc.b", "fm"], ["fa"], name="/transformer/h.0/mlp/c_fc/Add")]
    # NewGELUActivation: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
    g = "/transformer/h.0/mlp/act"
    n += [c("half", np.float32(0.5)), c("three", np.float32(3.0)), c("k044", np.float32(0.044715)),
          c("s2pi", np.float32(np.sqrt(2.0 / np.pi))), c("onef", np.float32(1.0)),
          helper.make_node("Mul", ["half", "fa"], ["g0"], name=f"{g}/Mul"),
          helper.make_node("Pow", ["fa", "three"], ["g1"], name=f"{g}/Pow"),
          helper.make_node("Mul", ["k044", "g1"], ["g2"], name=f"{g}/Mul_1"),
          helper.make_node("Add", ["fa", "g2"], ["g3"], name=f"{g}/Add"),
          helper.make_node("Mul", ["s2pi", "g3"], ["g4"], name=f"{g}/Mul_2"),
          helper.make_node("Tanh", ["g4"], ["g5"], name=f"{g}/Tanh"),
          helper.make_node("Add", ["onef", "g5"], ["g6"], name=f"{g}/Add_1"),
          helper.make_node("Mul", ["g0", "g6"], ["g7"], name=f"{g}/Mul_3"),
          helper.make_node("MatMul", ["g7", "mproj.w"], ["mm"], name="/transformer/h.0/mlp/c_proj/MatMul"),
          helper.make_node("Add", ["mproj.b", "mm"], ["ma"], name="/transformer/h.0/mlp/c_proj/Add"),
          helper.make_node("Add", ["h1", "ma"], ["h2"], name="/transformer/h.0/Add_1"),
          helper.make_node("LayerNormalization", ["h2", "lnf.g", "lnf.b"], ["hf"], name="/transformer/ln_f/LayerNormalization", axis=-1, epsilon=1e-5),
          helper.make_node("Transpose", ["wte"], ["wte_t"], name="/lm_head/Transpose", perm=[1, 0]),
          helper.make_node("MatMul", ["hf", "wte_t"], ["logits"], name="/lm_head/MatMul")]
    gr = helper.make_graph(n, name, [vi("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"])],
                           [vi("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", V])], inits)
    m = helper.make_model(gr, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    macs = S * D * 3 * D + 2 * H * S * S * dh + S * D * D + 2 * S * D * 4 * D + S * D * V
    save(root, name, m, r.integers(0, V, (2, S)).astype(np.int64), macs,
         "GPT-2 (one block): Range position ids, Split Q/K/V, causal Where from a sliced tril buffer, tanh GELU written out, tied lm_head; sequence symbolic (test data at 8)")


def whisper_encoder(root):
    """A Whisper-style audio encoder as torch.onnx writes it (opset 17): log-mel features
    [N, 8, 16] through Conv1d 3 (pad 1) and GELU, Conv1d 3 with stride 2 (pad 1) and GELU
    (the exact-erf GELU written out), the permute to [N, L, D], learned positions, one
    pre-norm encoder block (LayerNormalization, Q/K/V projections with per-head
    Reshape/Transpose, scaled scores, Softmax, context, output projection, residual, the
    feed-forward block with GELU, residual) and the final LayerNormalization. Its own
    generator."""
    r = np.random.default_rng(20261207)
    M, L, D, H, F = 8, 16, 16, 2, 32
    dh, L2 = D // H, L // 2
    def rw(*shape, scale=0.3):
        return (r.standard_normal(shape) * scale).astype(np.float32)
    inits = [init("c1.w", rw(D, M, 3)), init("c1.b", rw(D, scale=0.1)),
             init("c2.w", rw(D, D, 3, scale=0.2)), init("c2.b", rw(D, scale=0.1)),
             init("pos", rw(L2, D, scale=0.1)),
             init("ln1.g", 1 + rw(D, scale=0.1)), init("ln1.b", rw(D, scale=0.1)),
             init("ln2.g", 1 + rw(D, scale=0.1)), init("ln2.b", rw(D, scale=0.1)),
             init("lnf.g", 1 + rw(D, scale=0.1)), init("lnf.b", rw(D, scale=0.1)),
             init("f1.w", rw(D, F, scale=0.25)), init("f1.b", rw(F, scale=0.1)),
             init("f2.w", rw(F, D, scale=0.2)), init("f2.b", rw(D, scale=0.1)),
             init("heads", np.array([0, 0, H, dh], dtype=np.int64)),
             init("merge", np.array([0, 0, D], dtype=np.int64))]
    for nm in ["q", "k", "v", "o"]:
        inits += [init(f"{nm}.w", rw(D, D, scale=0.25)), init(f"{nm}.b", rw(D, scale=0.1))]
    def gelu(x, y, p):
        return [helper.make_node("Div", [x, "sqrt2"], [f"{p}/d"], name=f"{p}/Div"),
                helper.make_node("Erf", [f"{p}/d"], [f"{p}/e"], name=f"{p}/Erf"),
                helper.make_node("Add", [f"{p}/e", "onef"], [f"{p}/a"], name=f"{p}/Add"),
                helper.make_node("Mul", [x, f"{p}/a"], [f"{p}/m"], name=f"{p}/Mul"),
                helper.make_node("Mul", [f"{p}/m", "half"], [y], name=f"{p}/Mul_1")]
    n = [c("sqrt2", np.float32(np.sqrt(2.0))), c("onef", np.float32(1.0)), c("half", np.float32(0.5)),
         helper.make_node("Conv", ["features", "c1.w", "c1.b"], ["c1"], name="/conv1/Conv", kernel_shape=[3], pads=[1, 1], strides=[1]),
         *gelu("c1", "g1", "/gelu"),
         helper.make_node("Conv", ["g1", "c2.w", "c2.b"], ["c2"], name="/conv2/Conv", kernel_shape=[3], pads=[1, 1], strides=[2]),
         *gelu("c2", "g2", "/gelu_1"),
         helper.make_node("Transpose", ["g2"], ["t"], name="/Transpose", perm=[0, 2, 1]),
         helper.make_node("Add", ["t", "pos"], ["h0"], name="/Add"),
         helper.make_node("LayerNormalization", ["h0", "ln1.g", "ln1.b"], ["l1"], name="/layers.0/self_attn_layer_norm/LayerNormalization", axis=-1, epsilon=1e-5)]
    a = "/layers.0/self_attn"
    for nm in ["q", "k", "v"]:
        n += [helper.make_node("MatMul", ["l1", f"{nm}.w"], [f"{nm}m"], name=f"{a}/{nm}_proj/MatMul"),
              helper.make_node("Add", [f"{nm}.b", f"{nm}m"], [f"{nm}a"], name=f"{a}/{nm}_proj/Add"),
              helper.make_node("Reshape", [f"{nm}a", "heads"], [f"{nm}r"], name=f"{a}/Reshape_{nm}"),
              helper.make_node("Transpose", [f"{nm}r"], [f"{nm}t"], name=f"{a}/Transpose_{nm}",
                               perm=[0, 2, 3, 1] if nm == "k" else [0, 2, 1, 3])]
    n += [helper.make_node("MatMul", ["qt", "kt"], ["sc"], name=f"{a}/MatMul"),
          c("scale", np.float32(1.0 / np.sqrt(dh))),
          helper.make_node("Mul", ["sc", "scale"], ["scs"], name=f"{a}/Mul"),
          helper.make_node("Softmax", ["scs"], ["pr"], name=f"{a}/Softmax", axis=-1),
          helper.make_node("MatMul", ["pr", "vt"], ["cx"], name=f"{a}/MatMul_1"),
          helper.make_node("Transpose", ["cx"], ["cxt"], name=f"{a}/Transpose", perm=[0, 2, 1, 3]),
          helper.make_node("Reshape", ["cxt", "merge"], ["ctx"], name=f"{a}/Reshape"),
          helper.make_node("MatMul", ["ctx", "o.w"], ["om"], name=f"{a}/out_proj/MatMul"),
          helper.make_node("Add", ["o.b", "om"], ["oa"], name=f"{a}/out_proj/Add"),
          helper.make_node("Add", ["h0", "oa"], ["h1"], name="/layers.0/Add"),
          helper.make_node("LayerNormalization", ["h1", "ln2.g", "ln2.b"], ["l2"], name="/layers.0/final_layer_norm/LayerNormalization", axis=-1, epsilon=1e-5),
          helper.make_node("MatMul", ["l2", "f1.w"], ["f1m"], name="/layers.0/fc1/MatMul"),
          helper.make_node("Add", ["f1.b", "f1m"], ["f1a"], name="/layers.0/fc1/Add"),
          *gelu("f1a", "fg", "/layers.0/activation_fn"),
          helper.make_node("MatMul", ["fg", "f2.w"], ["f2m"], name="/layers.0/fc2/MatMul"),
          helper.make_node("Add", ["f2.b", "f2m"], ["f2a"], name="/layers.0/fc2/Add"),
          helper.make_node("Add", ["h1", "f2a"], ["h2"], name="/layers.0/Add_1"),
          helper.make_node("LayerNormalization", ["h2", "lnf.g", "lnf.b"], ["y"], name="/layer_norm/LayerNormalization", axis=-1, epsilon=1e-5)]
    g = helper.make_graph(n, "whisper_encoder", [vi("features", TensorProto.FLOAT, ["batch_size", M, L])],
                          [vi("y", TensorProto.FLOAT, ["batch_size", L2, D])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    macs = L * D * M * 3 + L2 * D * D * 3 + 4 * L2 * D * D + 2 * H * L2 * L2 * dh + 2 * L2 * D * F
    save(root, "whisper_encoder", m, r.standard_normal((2, M, L)).astype(np.float32), macs,
         "Whisper-style encoder: two 1-D convolutions (the second strided), GELU, permute, positions, one pre-norm block, final LayerNorm")


def wav2vec2_frontend(root):
    """wav2vec2's feature encoder front as torch.onnx writes it: raw audio [N, 32] unsqueezed
    to [N, 1, 32], Conv1d 1->8 (kernel 4, stride 2, no bias), Gelu (opset 20's op), Conv1d 8->8
    (kernel 3, stride 2, SAME_UPPER), Relu, the permute to [N, L, C]. Its own generator."""
    r = np.random.default_rng(20261208)
    inits = [init("c1.w", (r.standard_normal((8, 1, 4)) * 0.5).astype(np.float32)),
             init("c2.w", (r.standard_normal((8, 8, 3)) * 0.3).astype(np.float32)),
             init("c2.b", (r.standard_normal(8) * 0.1).astype(np.float32)),
             init("ax1", np.array([1], dtype=np.int64))]
    n = [helper.make_node("Unsqueeze", ["audio", "ax1"], ["a3"], name="/Unsqueeze"),
         helper.make_node("Conv", ["a3", "c1.w"], ["c1"], name="/conv_layers.0/conv/Conv", kernel_shape=[4], strides=[2]),
         helper.make_node("Gelu", ["c1"], ["g1"], name="/conv_layers.0/activation/Gelu"),
         helper.make_node("Conv", ["g1", "c2.w", "c2.b"], ["c2"], name="/conv_layers.1/conv/Conv", kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER"),
         helper.make_node("Relu", ["c2"], ["r2"], name="/conv_layers.1/activation/Relu"),
         helper.make_node("Transpose", ["r2"], ["y"], name="/Transpose", perm=[0, 2, 1])]
    g = helper.make_graph(n, "wav2vec2_frontend", [vi("audio", TensorProto.FLOAT, ["batch", 32])],
                          [vi("y", TensorProto.FLOAT, ["batch", 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)], producer_name="pytorch")
    m.ir_version = 9
    # conv1: L1 = (32 - 4) / 2 + 1 = 15 outputs x 8 x 4; conv2 SAME: ceil(15 / 2) = 8 x 8 x 8 x 3
    macs = 15 * 8 * 4 + 8 * 8 * 8 * 3
    save(root, "wav2vec2_frontend", m, r.standard_normal((3, 32)).astype(np.float32), macs,
         "raw audio, Unsqueeze, two 1-D convolutions (strided, the second SAME_UPPER), Gelu, Relu, permute")


ALL = [torch_cnn, torch_flatten_fixed1, tf_nhwc, old_ir3, external_mlp, nchw_output, embed_ln, pools,
       mobilenetv2_block, se_hardswish, fire_module, shufflenet_unit, bert_ffn, bert_layer, shufflenetv2_unit, zero_pad, opset7, opset21,
       generic_ops, nonlocal_block, vit_embed, reshape_bn, bert_layer_dynamic,
       bert_layer_opset14, math_ops, gpt2_block, whisper_encoder,
       wav2vec2_frontend]

def bench_models(root):
    """Not fixtures: the transformer shapes the closing benchmarks time (written to ROOT, never
    committed): a BERT-base encoder layer (hidden 768, 12 heads, FFN 3072) and a GPT-2-small
    block with its 50257-token tied lm_head, both with a symbolic sequence (test data at 128)."""
    global rng
    saved, rng = rng, np.random.default_rng(20261209)
    try:
        bert_layer(root, "bert_base_layer", seq="sequence", S=128, D=768, H=12, F=3072, examples=1)
    finally:
        rng = saved
    gpt2_block(root, "gpt2_small_block", V=50257, P=1024, D=768, H=12, S=128)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--bench":
        bench_models(sys.argv[2])
        sys.exit(0)
    # make_fixtures.py [ROOT [NAME ...]]: every fixture, or only the named ones (the fixtures from
    # generic_ops on have their own generators, so making one alone gives the same bytes).
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/onnx"
    only = set(sys.argv[2:])
    for f in ALL:
        if not only or f.__name__ in only:
            f(root)
