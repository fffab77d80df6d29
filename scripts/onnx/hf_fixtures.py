"""Hugging Face encoders as torch.onnx and Optimum write them, with several inputs and outputs
and a padding mask: a BERT (opset 14: every LayerNorm decomposed; inputs input_ids,
attention_mask, token_type_ids; outputs last_hidden_state and pooler_output) and a DistilBERT
(opset 17 LayerNormalization; inputs input_ids and attention_mask; q scaled before the product,
the mask applied by masked_fill). Each has a symbolic `sequence`, and test data of two examples,
the second padded (attention mask 0 on its last three tokens): an import that ignores the mask
cannot match it (save_multi checks that the mask changes ONNX Runtime's outputs). Each has its
own generator, so making one alone gives the same bytes. Made through make_fixtures.py."""
import numpy as np
from onnx import TensorProto, helper

from fixture_kit import c, init, save_multi, vi
from transformer_fixtures import decomposed_layer_norm

MIN = np.float32(np.finfo(np.float32).min)
S, D, H, F, VOCAB, MAXPOS = 8, 32, 4, 64, 60, 16


def layer_norm(n, x, g, b, y, name, opset, eps=1e-12):
    if opset >= 17:
        n.append(helper.make_node("LayerNormalization", [x, g, b], [y], name=name, axis=-1, epsilon=eps))
    else:
        n += decomposed_layer_norm(x, g, b, y, name, eps)


def encoder_layer(n, inits, r, x, y, p, opset, add_mask=None, fill_mask=None, q_scaled=False,
                  pre_norm=False):
    """One encoder layer: BertLayer (`add_mask`: scores / sqrt(d) + the extended mask),
    DistilBERT's TransformerBlock (`q_scaled`: q / sqrt(d) before the product; `fill_mask`:
    Where(mask == 0, min, scores), masked_fill) or ViTLayer (`pre_norm`: each block reads the
    LayerNorm of its input and adds to the input). Heads split with view(bs, -1, h, d)."""
    dh = D // H
    res = x
    if pre_norm:
        layer_norm(n, x, f"{p}.ln1.g", f"{p}.ln1.b", f"{p}.x1", f"/{p}/ln1", opset)
        x = f"{p}.x1"

    def wt(*shape, scale):
        return (r.standard_normal(shape) * scale).astype(np.float32)

    for nm in ["q", "k", "v", "o"]:
        inits += [init(f"{p}.{nm}.w", wt(D, D, scale=0.2)), init(f"{p}.{nm}.b", wt(D, scale=0.1))]
    inits += [init(f"{p}.f1.w", wt(D, F, scale=0.2)), init(f"{p}.f1.b", wt(F, scale=0.1)),
              init(f"{p}.f2.w", wt(F, D, scale=0.15)), init(f"{p}.f2.b", wt(D, scale=0.1)),
              init(f"{p}.ln1.g", 1 + wt(D, scale=0.1)), init(f"{p}.ln1.b", wt(D, scale=0.1)),
              init(f"{p}.ln2.g", 1 + wt(D, scale=0.1)), init(f"{p}.ln2.b", wt(D, scale=0.1)),
              init(f"{p}.heads", np.array([0, -1, H, dh], dtype=np.int64)),
              init(f"{p}.merge", np.array([0, -1, D], dtype=np.int64))]
    a = f"/{p}/attention"
    for nm in ["q", "k", "v"]:
        n += [helper.make_node("MatMul", [x, f"{p}.{nm}.w"], [f"{p}.{nm}m"], name=f"{a}/{nm}/MatMul"),
              helper.make_node("Add", [f"{p}.{nm}.b", f"{p}.{nm}m"], [f"{p}.{nm}a"], name=f"{a}/{nm}/Add"),
              helper.make_node("Reshape", [f"{p}.{nm}a", f"{p}.heads"], [f"{p}.{nm}r"], name=f"{a}/{nm}/Reshape"),
              helper.make_node("Transpose", [f"{p}.{nm}r"], [f"{p}.{nm}t"], name=f"{a}/{nm}/Transpose", perm=[0, 2, 1, 3])]
    n += [c(f"{p}.sqrtd", np.float32(np.sqrt(dh))),
          helper.make_node("Transpose", [f"{p}.kt"], [f"{p}.ktt"], name=f"{a}/Transpose_k", perm=[0, 1, 3, 2])]
    q = f"{p}.qt"
    if q_scaled:
        n.append(helper.make_node("Div", [q, f"{p}.sqrtd"], [f"{p}.qs"], name=f"{a}/Div"))
        q = f"{p}.qs"
    n.append(helper.make_node("MatMul", [q, f"{p}.ktt"], [f"{p}.sc"], name=f"{a}/MatMul"))
    sc = f"{p}.sc"
    if not q_scaled:
        n.append(helper.make_node("Div", [sc, f"{p}.sqrtd"], [f"{p}.scd"], name=f"{a}/Div"))
        sc = f"{p}.scd"
    if add_mask:
        n.append(helper.make_node("Add", [sc, add_mask], [f"{p}.scm"], name=f"{a}/Add"))
        sc = f"{p}.scm"
    if fill_mask:
        n += [c(f"{p}.min", MIN),
              helper.make_node("Where", [fill_mask, f"{p}.min", sc], [f"{p}.scm"], name=f"{a}/Where")]
        sc = f"{p}.scm"
    n += [helper.make_node("Softmax", [sc], [f"{p}.pr"], name=f"{a}/Softmax", axis=-1),
          helper.make_node("MatMul", [f"{p}.pr", f"{p}.vt"], [f"{p}.cx"], name=f"{a}/MatMul_1"),
          helper.make_node("Transpose", [f"{p}.cx"], [f"{p}.cxt"], name=f"{a}/Transpose", perm=[0, 2, 1, 3]),
          helper.make_node("Reshape", [f"{p}.cxt", f"{p}.merge"], [f"{p}.ctx"], name=f"{a}/Reshape"),
          helper.make_node("MatMul", [f"{p}.ctx", f"{p}.o.w"], [f"{p}.om"], name=f"{a}/output/MatMul"),
          helper.make_node("Add", [f"{p}.o.b", f"{p}.om"], [f"{p}.oa"], name=f"{a}/output/Add"),
          helper.make_node("Add", [f"{p}.oa", res], [f"{p}.r1"], name=f"{a}/output/Add_1")]
    if pre_norm:
        layer_norm(n, f"{p}.r1", f"{p}.ln2.g", f"{p}.ln2.b", f"{p}.l1", f"/{p}/ln2", opset)
        res2, out = f"{p}.r1", y
    else:
        layer_norm(n, f"{p}.r1", f"{p}.ln1.g", f"{p}.ln1.b", f"{p}.l1", f"/{p}/ln1", opset)
        res2, out = f"{p}.l1", f"{p}.r2"
    n += [helper.make_node("MatMul", [f"{p}.l1", f"{p}.f1.w"], [f"{p}.f1m"], name=f"/{p}/ffn/MatMul"),
          helper.make_node("Add", [f"{p}.f1.b", f"{p}.f1m"], [f"{p}.f1a"], name=f"/{p}/ffn/Add"),
          c(f"{p}.sqrt2", np.float32(1.4142135381698608)), c(f"{p}.one", np.float32(1.0)),
          c(f"{p}.half", np.float32(0.5)),
          helper.make_node("Div", [f"{p}.f1a", f"{p}.sqrt2"], [f"{p}.g0"], name=f"/{p}/gelu/Div"),
          helper.make_node("Erf", [f"{p}.g0"], [f"{p}.g1"], name=f"/{p}/gelu/Erf"),
          helper.make_node("Add", [f"{p}.g1", f"{p}.one"], [f"{p}.g2"], name=f"/{p}/gelu/Add"),
          helper.make_node("Mul", [f"{p}.f1a", f"{p}.g2"], [f"{p}.g3"], name=f"/{p}/gelu/Mul"),
          helper.make_node("Mul", [f"{p}.g3", f"{p}.half"], [f"{p}.g4"], name=f"/{p}/gelu/Mul_1"),
          helper.make_node("MatMul", [f"{p}.g4", f"{p}.f2.w"], [f"{p}.f2m"], name=f"/{p}/ffn/MatMul_1"),
          helper.make_node("Add", [f"{p}.f2.b", f"{p}.f2m"], [f"{p}.f2a"], name=f"/{p}/ffn/Add_1"),
          helper.make_node("Add", [f"{p}.f2a", res2], [out], name=f"/{p}/ffn/Add_2")]
    if not pre_norm:
        layer_norm(n, f"{p}.r2", f"{p}.ln2.g", f"{p}.ln2.b", y, f"/{p}/ln2", opset)


def layer_macs(s=None):
    # Q, K, V, O projections; scores and context (h * S * S * (d + d)); the two FFN layers.
    s = S if s is None else s
    return 4 * s * D * D + H * s * s * 2 * (D // H) + 2 * s * D * F


def examples(r, types=False):
    """Two examples: the first full, the second padded (mask 0 and id 0 on its last three)."""
    ids = r.integers(1, VOCAB, size=(2, S)).astype(np.int64)
    mask = np.ones((2, S), dtype=np.int64)
    mask[1, S - 3:] = 0
    ids[1, S - 3:] = 0
    tt = np.zeros((2, S), dtype=np.int64)
    tt[:, S // 2:] = 1
    tt[1, S - 3:] = 0
    return ids, mask, tt


def bert_model(root, name="bert_model"):
    """BertModel (2 layers) as torch.onnx writes it at opset 14 with dynamic axes: word, token
    type and position embeddings (position ids sliced from the registered buffer by the
    sequence length), decomposed LayerNorms, the extended attention mask
    `(1 - mask[:, None, None, :].float()) * finfo.min` added to the scores, the pooler
    (token 0 through Gather, Gemm, Tanh); outputs last_hidden_state and pooler_output."""
    r = np.random.default_rng(20261206)
    opset = 14
    inits = [init("word", (r.standard_normal((VOCAB, D)) * 0.5).astype(np.float32)),
             init("type", (r.standard_normal((2, D)) * 0.5).astype(np.float32)),
             init("pos", (r.standard_normal((MAXPOS, D)) * 0.5).astype(np.float32)),
             init("position_ids", np.arange(MAXPOS, dtype=np.int64)[None, :]),
             init("eln.g", (1 + r.standard_normal(D) * 0.1).astype(np.float32)),
             init("eln.b", (r.standard_normal(D) * 0.1).astype(np.float32)),
             init("pool.w", (r.standard_normal((D, D)) * 0.2).astype(np.float32)),
             init("pool.b", (r.standard_normal(D) * 0.1).astype(np.float32)),
             init("i1", np.array(1, dtype=np.int64)), init("ax0", np.array([0], dtype=np.int64)),
             init("ax1", np.array([1], dtype=np.int64)), init("ax2", np.array([2], dtype=np.int64)),
             init("zero1", np.array([0], dtype=np.int64)), init("cls", np.array(0, dtype=np.int64))]
    n = [helper.make_node("Gather", ["word", "input_ids"], ["we"], name="/embeddings/word_embeddings/Gather"),
         helper.make_node("Gather", ["type", "token_type_ids"], ["te"], name="/embeddings/token_type_embeddings/Gather"),
         helper.make_node("Add", ["we", "te"], ["e1"], name="/embeddings/Add"),
         helper.make_node("Shape", ["input_ids"], ["ish"], name="/embeddings/Shape"),
         helper.make_node("Gather", ["ish", "i1"], ["seq"], name="/embeddings/Gather", axis=0),
         helper.make_node("Unsqueeze", ["seq", "ax0"], ["seq1"], name="/embeddings/Unsqueeze"),
         helper.make_node("Slice", ["position_ids", "zero1", "seq1", "ax1"], ["pids"], name="/embeddings/Slice"),
         helper.make_node("Gather", ["pos", "pids"], ["pe"], name="/embeddings/position_embeddings/Gather"),
         helper.make_node("Add", ["e1", "pe"], ["e2"], name="/embeddings/Add_1")]
    layer_norm(n, "e2", "eln.g", "eln.b", "h0", "/embeddings/LayerNorm", opset)
    n += [helper.make_node("Unsqueeze", ["attention_mask", "ax1"], ["m1"], name="/Unsqueeze"),
          helper.make_node("Unsqueeze", ["m1", "ax2"], ["m2"], name="/Unsqueeze_1"),
          helper.make_node("Cast", ["m2"], ["m3"], name="/Cast", to=TensorProto.FLOAT),
          c("one_f", np.float32(1.0)), c("min_f", MIN),
          helper.make_node("Sub", ["one_f", "m3"], ["m4"], name="/Sub"),
          helper.make_node("Mul", ["m4", "min_f"], ["ext"], name="/Mul")]
    encoder_layer(n, inits, r, "h0", "h1", "layer.0", opset, add_mask="ext")
    encoder_layer(n, inits, r, "h1", "last_hidden_state", "layer.1", opset, add_mask="ext")
    n += [helper.make_node("Gather", ["last_hidden_state", "cls"], ["first"], name="/pooler/Gather", axis=1),
          helper.make_node("Gemm", ["first", "pool.w", "pool.b"], ["pooled"], name="/pooler/dense/Gemm", transB=1),
          helper.make_node("Tanh", ["pooled"], ["pooler_output"], name="/pooler/activation/Tanh")]
    ins = [vi("input_ids", TensorProto.INT64, ["batch", "sequence"]),
           vi("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
           vi("token_type_ids", TensorProto.INT64, ["batch", "sequence"])]
    outs = [vi("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", D]),
            vi("pooler_output", TensorProto.FLOAT, ["batch", D])]
    g = helper.make_graph(n, name, ins, outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
    m.ir_version = 8
    ids, mask, tt = examples(r)
    feeds = [("input_ids", ids), ("attention_mask", mask), ("token_type_ids", tt)]
    unmasked = [("input_ids", ids), ("attention_mask", np.ones_like(mask)), ("token_type_ids", tt)]
    macs = 2 * layer_macs() + D * D
    save_multi(root, name, m, feeds, macs,
               "BertModel, 2 layers, opset 14 (decomposed LayerNorms): input_ids, attention_mask, "
               "token_type_ids; last_hidden_state, pooler_output; the extended mask added to the "
               f"scores; sequence symbolic (test data at {S}, the second example padded)",
               unmasked=unmasked)


def distilbert_model(root):
    """DistilBertModel (2 layers) as torch.onnx writes it at opset 17: word and position
    embeddings (position ids from Range over the sequence length), LayerNormalization, q divided
    by sqrt(d) before the product, the mask applied as masked_fill(mask == 0, finfo.min) (the
    `(bs, 1, 1, S)` view of `mask == 0`; DistilBERT's `expand_as(scores)` left out, masked_fill
    broadcasts); inputs input_ids and attention_mask; output last_hidden_state."""
    r = np.random.default_rng(20261207)
    opset = 17
    inits = [init("word", (r.standard_normal((VOCAB, D)) * 0.5).astype(np.float32)),
             init("pos", (r.standard_normal((MAXPOS, D)) * 0.5).astype(np.float32)),
             init("eln.g", (1 + r.standard_normal(D) * 0.1).astype(np.float32)),
             init("eln.b", (r.standard_normal(D) * 0.1).astype(np.float32)),
             init("i1", np.array(1, dtype=np.int64)), init("i0", np.array(0, dtype=np.int64)),
             init("step", np.array(1, dtype=np.int64)), init("ax0", np.array([0], dtype=np.int64)),
             init("zero", np.array(0, dtype=np.int64)),
             init("mask_view", np.array([0, 1, 1, -1], dtype=np.int64))]
    n = [helper.make_node("Shape", ["input_ids"], ["ish"], name="/embeddings/Shape"),
         helper.make_node("Gather", ["ish", "i1"], ["seq"], name="/embeddings/Gather", axis=0),
         helper.make_node("Range", ["i0", "seq", "step"], ["pids0"], name="/embeddings/Range"),
         helper.make_node("Unsqueeze", ["pids0", "ax0"], ["pids"], name="/embeddings/Unsqueeze"),
         helper.make_node("Gather", ["word", "input_ids"], ["we"], name="/embeddings/word_embeddings/Gather"),
         helper.make_node("Gather", ["pos", "pids"], ["pe"], name="/embeddings/position_embeddings/Gather"),
         helper.make_node("Add", ["we", "pe"], ["e1"], name="/embeddings/Add")]
    layer_norm(n, "e1", "eln.g", "eln.b", "h0", "/embeddings/LayerNorm", opset)
    n += [helper.make_node("Equal", ["attention_mask", "zero"], ["pad"], name="/Equal"),
          helper.make_node("Reshape", ["pad", "mask_view"], ["pad4"], name="/Reshape")]
    encoder_layer(n, inits, r, "h0", "h1", "layer.0", opset, fill_mask="pad4", q_scaled=True)
    encoder_layer(n, inits, r, "h1", "last_hidden_state", "layer.1", opset, fill_mask="pad4", q_scaled=True)
    ins = [vi("input_ids", TensorProto.INT64, ["batch", "sequence"]),
           vi("attention_mask", TensorProto.INT64, ["batch", "sequence"])]
    outs = [vi("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", D])]
    g = helper.make_graph(n, "distilbert_model", ins, outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
    m.ir_version = 8
    ids, mask, _ = examples(r)
    feeds = [("input_ids", ids), ("attention_mask", mask)]
    unmasked = [("input_ids", ids), ("attention_mask", np.ones_like(mask))]
    save_multi(root, "distilbert_model", m, feeds, 2 * layer_macs(),
               "DistilBertModel, 2 layers, opset 17: input_ids, attention_mask; q / sqrt(d) before "
               "the product, masked_fill(mask == 0, min); sequence symbolic (test data at "
               f"{S}, the second example padded)", unmasked=unmasked)


def vit_model(root):
    """ViTForImageClassification (1 layer) as torch.onnx writes it at opset 17: a 4x4 stride-4
    patch Conv over a 16x16 image, flatten(2).transpose(1, 2) to 16 tokens, the class token
    `cls_token.expand(batch, -1, -1)` (Expand to a shape built from Shape, with torch's
    Where(Equal(shape, -1), 1, shape)) concatenated before them, position embeddings, a
    pre-norm layer, the final LayerNorm, token 0 through Gather, the classifier (Gemm)."""
    r = np.random.default_rng(20261208)
    opset, P, classes = 17, 4, 10
    patches = (16 // P) ** 2
    inits = [init("patch.w", (r.standard_normal((D, 3, P, P)) * 0.2).astype(np.float32)),
             init("patch.b", (r.standard_normal(D) * 0.1).astype(np.float32)),
             init("cls_token", (r.standard_normal((1, 1, D)) * 0.5).astype(np.float32)),
             init("pos", (r.standard_normal((1, patches + 1, D)) * 0.5).astype(np.float32)),
             init("ln.g", (1 + r.standard_normal(D) * 0.1).astype(np.float32)),
             init("ln.b", (r.standard_normal(D) * 0.1).astype(np.float32)),
             init("head.w", (r.standard_normal((classes, D)) * 0.2).astype(np.float32)),
             init("head.b", (r.standard_normal(classes) * 0.1).astype(np.float32)),
             init("flat", np.array([0, D, -1], dtype=np.int64)), init("i0", np.array(0, dtype=np.int64)),
             init("ax0", np.array([0], dtype=np.int64)), init("m1", np.array([-1, -1], dtype=np.int64)),
             init("neg1", np.array(-1, dtype=np.int64)), init("ones3", np.ones(3, dtype=np.int64)),
             init("cls", np.array(0, dtype=np.int64))]
    n = [helper.make_node("Conv", ["pixel_values", "patch.w", "patch.b"], ["p"], name="/embeddings/patch_embeddings/projection/Conv",
                          kernel_shape=[P, P], strides=[P, P]),
         helper.make_node("Reshape", ["p", "flat"], ["pf"], name="/embeddings/patch_embeddings/Reshape"),
         helper.make_node("Transpose", ["pf"], ["tok"], name="/embeddings/patch_embeddings/Transpose", perm=[0, 2, 1]),
         helper.make_node("Shape", ["pixel_values"], ["ish"], name="/embeddings/Shape"),
         helper.make_node("Gather", ["ish", "i0"], ["bs"], name="/embeddings/Gather", axis=0),
         helper.make_node("Unsqueeze", ["bs", "ax0"], ["bs1"], name="/embeddings/Unsqueeze"),
         helper.make_node("Concat", ["bs1", "m1"], ["want"], name="/embeddings/Concat", axis=0),
         helper.make_node("Equal", ["want", "neg1"], ["is_neg"], name="/embeddings/Equal"),
         helper.make_node("Where", ["is_neg", "ones3", "want"], ["shape"], name="/embeddings/Where"),
         helper.make_node("Expand", ["cls_token", "shape"], ["cls_e"], name="/embeddings/Expand"),
         helper.make_node("Concat", ["cls_e", "tok"], ["seq"], name="/embeddings/Concat_1", axis=1),
         helper.make_node("Add", ["seq", "pos"], ["h0"], name="/embeddings/Add")]
    encoder_layer(n, inits, r, "h0", "h1", "layer.0", opset, pre_norm=True)
    layer_norm(n, "h1", "ln.g", "ln.b", "last", "/layernorm", opset)
    n += [helper.make_node("Gather", ["last", "cls"], ["first"], name="/Gather", axis=1),
          helper.make_node("Gemm", ["first", "head.w", "head.b"], ["logits"], name="/classifier/Gemm", transB=1)]
    g = helper.make_graph(n, "vit_model", [vi("pixel_values", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                          [vi("logits", TensorProto.FLOAT, ["batch", classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
    m.ir_version = 8
    x = r.standard_normal((2, 3, 16, 16)).astype(np.float32)
    macs = patches * D * 3 * P * P + layer_macs(patches + 1) + classes * D
    save_multi(root, "vit_model", m, [("pixel_values", x)], macs,
               "ViTForImageClassification, 1 layer, opset 17: patch Conv, the class token expanded "
               "to the batch and concatenated, position embeddings, pre-norm layer, Gather of "
               "token 0, classifier")


def bench_models(root):
    """Not fixtures: the BERT-base shape the closing benchmarks time (written to ROOT, never
    committed): bert_model with hidden 768, 12 heads, FFN 3072, BERT's 30522-token vocabulary and
    512 positions, two layers, three inputs and both outputs, test data at sequence 128."""
    global S, D, H, F, VOCAB, MAXPOS
    saved = (S, D, H, F, VOCAB, MAXPOS)
    S, D, H, F, VOCAB, MAXPOS = 128, 768, 12, 3072, 30522, 512
    try:
        bert_model(root, "bert_base_model")
    finally:
        S, D, H, F, VOCAB, MAXPOS = saved


def bert_ort_optimized(root):
    """A 2-layer BERT encoder as onnxruntime's transformer optimiser (and `optimum-cli export
    onnx --optimize`) writes its layers, in the com.microsoft domain: `Attention` (the fused QKV
    weights, the raw int32 [N, S] mask as mask_index), `SkipLayerNormalization` (residual, bias
    and LayerNorm in one; the bias of the output projection and of the second FFN layer taken
    into it), `BiasGelu` in the first layer's FFN and `FastGelu` (the tanh GELU) in the second's.
    The embeddings stay unfused (word + position Gathers, LayerNormalization): the optimiser's
    `EmbedLayerNormalization` is not imported. Inputs input_ids and attention_mask (int32, as
    the contrib Attention takes it)."""
    r = np.random.default_rng(20261209)
    opset = 17

    def wt(*shape, scale):
        return (r.standard_normal(shape) * scale).astype(np.float32)

    inits = [init("word", wt(VOCAB, D, scale=0.5)), init("pos", wt(MAXPOS, D, scale=0.5)),
             init("eln.g", 1 + wt(D, scale=0.1)), init("eln.b", wt(D, scale=0.1)),
             init("i0", np.array(0, dtype=np.int64)), init("i1", np.array(1, dtype=np.int64)),
             init("step", np.array(1, dtype=np.int64)), init("ax0", np.array([0], dtype=np.int64))]
    n = [helper.make_node("Shape", ["input_ids"], ["ish"], name="/embeddings/Shape"),
         helper.make_node("Gather", ["ish", "i1"], ["seq"], name="/embeddings/Gather", axis=0),
         helper.make_node("Range", ["i0", "seq", "step"], ["pids0"], name="/embeddings/Range"),
         helper.make_node("Unsqueeze", ["pids0", "ax0"], ["pids"], name="/embeddings/Unsqueeze"),
         helper.make_node("Gather", ["word", "input_ids"], ["we"], name="/embeddings/word_embeddings/Gather"),
         helper.make_node("Gather", ["pos", "pids"], ["pe"], name="/embeddings/position_embeddings/Gather"),
         helper.make_node("Add", ["we", "pe"], ["e1"], name="/embeddings/Add")]
    layer_norm(n, "e1", "eln.g", "eln.b", "h0", "/embeddings/LayerNorm", opset)
    x = "h0"
    for li, gelu in enumerate(["BiasGelu", "FastGelu"]):
        p = f"layer.{li}"
        inits += [init(f"{p}.qkv.w", wt(D, 3 * D, scale=0.2)), init(f"{p}.qkv.b", wt(3 * D, scale=0.1)),
                  init(f"{p}.o.w", wt(D, D, scale=0.2)), init(f"{p}.o.b", wt(D, scale=0.1)),
                  init(f"{p}.f1.w", wt(D, F, scale=0.2)), init(f"{p}.f1.b", wt(F, scale=0.1)),
                  init(f"{p}.f2.w", wt(F, D, scale=0.15)), init(f"{p}.f2.b", wt(D, scale=0.1)),
                  init(f"{p}.ln1.g", 1 + wt(D, scale=0.1)), init(f"{p}.ln1.b", wt(D, scale=0.1)),
                  init(f"{p}.ln2.g", 1 + wt(D, scale=0.1)), init(f"{p}.ln2.b", wt(D, scale=0.1))]
        y = "last_hidden_state" if li == 1 else f"{p}.out"
        n += [helper.make_node("Attention", [x, f"{p}.qkv.w", f"{p}.qkv.b", "attention_mask"], [f"{p}.att"],
                               name=f"/{p}/attention/Attention", domain="com.microsoft", num_heads=H),
              helper.make_node("MatMul", [f"{p}.att", f"{p}.o.w"], [f"{p}.om"], name=f"/{p}/attention/output/MatMul"),
              helper.make_node("SkipLayerNormalization", [f"{p}.om", x, f"{p}.ln1.g", f"{p}.ln1.b", f"{p}.o.b"],
                               [f"{p}.l1"], name=f"/{p}/attention/output/SkipLayerNorm", domain="com.microsoft",
                               epsilon=1e-12),
              helper.make_node("MatMul", [f"{p}.l1", f"{p}.f1.w"], [f"{p}.f1m"], name=f"/{p}/intermediate/MatMul"),
              helper.make_node(gelu, [f"{p}.f1m", f"{p}.f1.b"], [f"{p}.g"], name=f"/{p}/intermediate/{gelu}",
                               domain="com.microsoft"),
              helper.make_node("MatMul", [f"{p}.g", f"{p}.f2.w"], [f"{p}.f2m"], name=f"/{p}/output/MatMul"),
              helper.make_node("SkipLayerNormalization", [f"{p}.f2m", f"{p}.l1", f"{p}.ln2.g", f"{p}.ln2.b", f"{p}.f2.b"],
                               [y], name=f"/{p}/output/SkipLayerNorm", domain="com.microsoft", epsilon=1e-12)]
        x = y
    ins = [vi("input_ids", TensorProto.INT64, ["batch", "sequence"]),
           vi("attention_mask", TensorProto.INT32, ["batch", "sequence"])]
    outs = [vi("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", D])]
    g = helper.make_graph(n, "bert_ort_optimized", ins, outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)],
                          producer_name="onnxruntime.transformers")
    m.ir_version = 8
    ids, mask, _ = examples(r)
    mask = mask.astype(np.int32)
    feeds = [("input_ids", ids), ("attention_mask", mask)]
    unmasked = [("input_ids", ids), ("attention_mask", np.ones_like(mask))]
    save_multi(root, "bert_ort_optimized", m, feeds, 2 * layer_macs(),
               "BERT, 2 layers, as onnxruntime's optimiser writes them: com.microsoft Attention (raw "
               "int32 mask), SkipLayerNormalization with bias, BiasGelu, FastGelu; embeddings "
               f"unfused; sequence symbolic (test data at {S}, the second example padded)",
               unmasked=unmasked)
