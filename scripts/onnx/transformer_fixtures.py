"""Transformer fixtures, written the way torch.onnx writes Hugging Face models: BERT layers (opset
17, a symbolic sequence, opset 14's decomposed LayerNorm), a GPT-2 block, a Whisper-style
encoder, wav2vec2's front end, ONNX's math operators; and the larger shapes the closing
benchmarks time (`bench_models`, never committed). Made through make_fixtures.py."""
import numpy as np
from onnx import TensorProto, helper

import fixture_kit as kit
from fixture_kit import c, init, save, vi, w


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
    save(root, name, m, kit.rng.standard_normal((examples, S, D)).astype(np.float32), macs, note)


def bert_layer_dynamic(root):
    """bert_layer exported with dynamic axes (`dynamic_axes={'x': {0: 'batch', 1: 'sequence'}}`):
    the sequence is symbolic; its own generator, so making it alone gives the same bytes."""
    saved, kit.rng = kit.rng, np.random.default_rng(20261203)
    try:
        bert_layer(root, "bert_layer_dynamic", seq="sequence")
    finally:
        kit.rng = saved


def bert_layer_opset14(root):
    """bert_layer as torch.onnx writes it at opset 14 with dynamic axes: both LayerNorms
    decomposed (one squaring with Pow, one with Mul), a symbolic sequence; its own generator."""
    saved, kit.rng = kit.rng, np.random.default_rng(20261204)
    try:
        bert_layer(root, "bert_layer_opset14", seq="sequence", opset=14)
    finally:
        kit.rng = saved


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


def bench_models(root):
    """Not fixtures: the transformer shapes the closing benchmarks time (written to ROOT, never
    committed): a BERT-base encoder layer (hidden 768, 12 heads, FFN 3072) and a GPT-2-small
    block with its 50257-token tied lm_head, both with a symbolic sequence (test data at 128)."""
    saved, kit.rng = kit.rng, np.random.default_rng(20261209)
    try:
        bert_layer(root, "bert_base_layer", seq="sequence", S=128, D=768, H=12, F=3072, examples=1)
    finally:
        kit.rng = saved
    gpt2_block(root, "gpt2_small_block", V=50257, P=1024, D=768, H=12, S=128)
