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

The shared helpers are in fixture_kit.py, the transformer fixtures in transformer_fixtures.py.

Needs scripts/onnx/requirements.txt (numpy, onnx, onnxruntime). Deterministic: every weight
and input comes from numpy's seeded generator.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from fixture_kit import bn, c, init, rng, save, vi, w  # noqa: E402
from hf_fixtures import bench_models as hf_bench_models  # noqa: E402
from hf_fixtures import bert_model, bert_ort_optimized, distilbert_model, vit_model  # noqa: E402
from transformer_fixtures import (  # noqa: E402
    bench_models, bert_layer, bert_layer_dynamic, bert_layer_opset14, gpt2_block, math_ops,
    wav2vec2_frontend, whisper_encoder)


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


ALL = [torch_cnn, torch_flatten_fixed1, tf_nhwc, old_ir3, external_mlp, nchw_output, embed_ln, pools,
       mobilenetv2_block, se_hardswish, fire_module, shufflenet_unit, bert_ffn, bert_layer, shufflenetv2_unit, zero_pad, opset7, opset21,
       generic_ops, nonlocal_block, vit_embed, reshape_bn, bert_layer_dynamic,
       bert_layer_opset14, math_ops, gpt2_block, whisper_encoder,
       wav2vec2_frontend, bert_model, distilbert_model, vit_model, bert_ort_optimized]

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--bench":
        bench_models(sys.argv[2])
        hf_bench_models(sys.argv[2])
        sys.exit(0)
    # make_fixtures.py [ROOT [NAME ...]]: every fixture, or only the named ones (the fixtures from
    # generic_ops on have their own generators, so making one alone gives the same bytes).
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/onnx"
    only = set(sys.argv[2:])
    for f in ALL:
        if not only or f.__name__ in only:
            f(root)
