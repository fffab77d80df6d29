//! Export: a greenbench-core model (the folded graph and its exact weights)
//! to ONNX, opset 17, standard ops only, plus a test data set in the ONNX model zoo's layout
//! (`test_data_set_0/input_0.pb`, `output_0.pb`).
//!
//! greenbench's layout is NHWC; ONNX's Conv and pools are NCHW. The exported model keeps
//! greenbench's input and output layouts (so the same bytes go in and come out) and inserts a
//! Transpose wherever an op needs the other layout. The batch dimension is symbolic (`N`), so
//! one file serves every batch size. Token inputs are int64.

mod attention;
mod tensors;

use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    attribute_proto::AttributeType, tensor_proto::DataType,
};
use greenbench_core::graph::{DType, Graph, Op};
use greenbench_core::quant::{QLinear, QModel, QNode, QParams};
use greenbench_core::{Model, weights::Tensor};
use prost::Message;
use std::collections::HashMap;
use tensors::{f32_tensor, graph_inputs, graph_outputs, i64_tensor, tensor};
pub use tensors::{input_tensors, output_tensors, tensor_f32, tensor_i64, unpack};

/// ONNX opset the exports use.
pub const OPSET: i64 = 17;
/// ONNX IR version matching opset 17 (onnx 1.12).
const IR_VERSION: i64 = 8;
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Layout {
    /// Per-example [H, W, C] as greenbench has it (or any non-image shape).
    Native,
    /// [N, C, H, W] for ONNX's Conv and pools.
    Nchw,
}

struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    used: HashMap<String, usize>,
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attr(name, AttributeType::Int)
    }
}

fn attr_ints(name: &str, vs: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: vs.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attr(name, AttributeType::Float)
    }
}

impl Builder {
    fn fresh(&mut self, base: &str) -> String {
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let n = self.used.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}_{}", *n - 1)
        }
    }

    fn node(&mut self, op: &str, base: &str, inputs: &[&str], attrs: &[AttributeProto]) -> String {
        let out = self.fresh(base);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(out.clone()),
            op_type: Some(op.into()),
            attribute: attrs.to_vec(),
            ..Default::default()
        });
        out
    }

    fn init_f32(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(base);
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.inits.push(f32_tensor(&name, &dims, data));
        name
    }

    /// A weight layer's weights: fp32, or (`bf16`) a BFLOAT16 initializer and a `Cast` to
    /// float: half the bytes, the same values (they are bf16 already, `greenbench_core::bf16`).
    fn weight(&mut self, base: &str, dims: &[usize], data: &[f32], bf16: bool) -> String {
        if !bf16 {
            return self.init_f32(base, dims, data);
        }
        let raw: Vec<u8> = (data.iter())
            .flat_map(|&x| greenbench_core::bf16::to_bits(x).to_le_bytes())
            .collect();
        let h = self.init_raw(
            &format!("{base}_bf16"),
            dims,
            DataType::Bfloat16 as i32,
            raw,
        );
        let to = [attr_int("to", DataType::Float as i64)];
        self.node("Cast", base, &[&h], &to)
    }

    fn init_i64(&mut self, base: &str, dims: &[usize], data: &[i64]) -> String {
        let name = self.fresh(base);
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.inits.push(i64_tensor(&name, &dims, data));
        name
    }

    fn scalar(&mut self, base: &str, v: f32) -> String {
        self.init_f32(base, &[], &[v])
    }

    fn init_raw(&mut self, base: &str, dims: &[usize], dtype: i32, raw: Vec<u8>) -> String {
        let name = self.fresh(base);
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.inits.push(tensor(&name, &dims, dtype, raw));
        name
    }

    /// `QuantizeLinear -> DequantizeLinear` of `src` with per-tensor uint8 parameters `p`:
    /// the value as int8 inference holds it.
    fn qdq(&mut self, src: &str, p: QParams) -> String {
        let s = self.scalar(&format!("{src}_scale"), p.scale);
        let z = self.init_raw(&format!("{src}_zero"), &[], UINT8, vec![p.zero as u8]);
        let q = self.node("QuantizeLinear", &format!("{src}_q"), &[src, &s, &z], &[]);
        self.node("DequantizeLinear", &format!("{src}_dq"), &[&q, &s, &z], &[])
    }

    /// Per-axis int8 weights `data` (`dims`, output channels on `axis`) and their
    /// `DequantizeLinear`.
    fn dq_weights(
        &mut self,
        base: &str,
        dims: &[usize],
        data: &[i8],
        scales: &[f32],
        axis: i64,
    ) -> String {
        let w = self.init_raw(base, dims, INT8, data.iter().map(|&v| v as u8).collect());
        let s = self.init_f32(&format!("{base}_scale"), &[scales.len()], scales);
        let z = self.init_raw(
            &format!("{base}_zero"),
            &[scales.len()],
            INT8,
            vec![0; scales.len()],
        );
        self.node(
            "DequantizeLinear",
            &format!("{base}_dq"),
            &[&w, &s, &z],
            &[attr_int("axis", axis)],
        )
    }

    /// The int32 bias at scale `s_x * s_w` per channel and its `DequantizeLinear`.
    fn dq_bias(&mut self, base: &str, l: &QLinear) -> String {
        let raw: Vec<u8> = l.bias.iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = self.init_raw(base, &[l.bias.len()], INT32, raw);
        let scales: Vec<f32> = l.w_scale.iter().map(|&w| w * l.x.scale).collect();
        let s = self.init_f32(&format!("{base}_scale"), &[scales.len()], &scales);
        let z = self.init_raw(
            &format!("{base}_zero"),
            &[scales.len()],
            INT32,
            vec![0; 4 * scales.len()],
        );
        self.node(
            "DequantizeLinear",
            &format!("{base}_dq"),
            &[&b, &s, &z],
            &[attr_int("axis", 0)],
        )
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.iter().copied().collect()
}

/// HWIO [kh, kw, cin_g, cout] -> OIHW [cout, cin_g, kh, kw].
fn hwio_to_oihw(t: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let s = t.shape();
    let (kh, kw, ci, co) = (s[0], s[1], s[2], s[3]);
    let src = flat(t);
    let mut out = vec![0f32; src.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..ci {
                for o in 0..co {
                    out[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
                }
            }
        }
    }
    (vec![co, ci, kh, kw], out)
}

/// Node `i` of `qm` when it is an int8 conv / dense layer.
fn linear(qm: Option<&QModel>, i: usize) -> Option<&QLinear> {
    match qm.map(|q| &q.nodes[i]) {
        Some(QNode::Linear(l)) => Some(l),
        _ => None,
    }
}

/// Name of the graph input and output in exported models.
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "output";

/// Export `model` as an ONNX ModelProto.
pub fn export(model: &Model) -> Vec<u8> {
    export_with(model, None)
}

/// Export the int8 model `qm` (quantized from `model`) in ONNX's QDQ form: a
/// `QuantizeLinear -> DequantizeLinear` pair on every value int8 inference holds as uint8
/// (per-tensor scale and zero point), int8 weights with per-output-channel scales and int32
/// biases behind `DequantizeLinear`, so ONNX Runtime fuses and runs the same quantized model.
pub fn export_qdq(model: &Model, qm: &QModel) -> Vec<u8> {
    export_with(model, Some(qm))
}

fn export_with(model: &Model, qm: Option<&QModel>) -> Vec<u8> {
    let g: &Graph = &model.graph;
    let w = &model.weights;
    // A bf16 model's weight layers store their (bf16) weights as BFLOAT16.
    let bf16 = qm.is_none() && greenbench_core::bf16::is_converted(g);
    let mut b = Builder {
        nodes: vec![],
        inits: vec![],
        used: HashMap::new(),
    };
    b.used.insert(INPUT.into(), 1);
    for p in &g.input.parts {
        b.used.insert(p.name.clone(), 1);
    }
    for (name, _) in g.output_parts() {
        b.used.insert(name, 1);
    }
    // value id -> (name, layout); conversions cached per (value, layout).
    let held = |v: usize| qm.and_then(|q| q.values[v]);
    // Several named inputs have no packed value in the file: `Input` nodes name them.
    let first = match held(0) {
        Some(p) if g.input.parts.is_empty() => b.qdq(INPUT, p),
        _ => INPUT.to_string(),
    };
    let mut vals: Vec<(String, Layout)> = vec![(first, Layout::Native)];
    let mut converted: HashMap<(usize, Layout), String> = HashMap::new();
    let is_image = |v: usize| g.value_shape(v).len() == 3;
    let mut get = |b: &mut Builder, vals: &[(String, Layout)], v: usize, want: Layout| -> String {
        let (name, have) = &vals[v];
        if *have == want || !is_image(v) {
            return name.clone();
        }
        if let Some(n) = converted.get(&(v, want)) {
            return n.clone();
        }
        let perm: &[i64] = match want {
            Layout::Nchw => &[0, 3, 1, 2],
            Layout::Native => &[0, 2, 3, 1],
        };
        let n = b.node(
            "Transpose",
            &format!("{name}_t"),
            &[name],
            &[attr_ints("perm", perm)],
        );
        converted.insert((v, want), n.clone());
        n
    };
    for (i, node) in g.nodes.iter().enumerate() {
        let ins = g.node_inputs(i);
        let x = ins[0];
        let t = w.node(i);
        let in_shape = g.value_shape(x);
        let last = *in_shape.last().expect("non-empty");
        let nm = node.name.as_str();
        let (out, layout) = match &node.op {
            Op::Conv2d { bias, .. } => {
                let c = g.conv_geom(i);
                let src = get(&mut b, &vals, x, Layout::Nchw);
                let inputs = match linear(qm, i) {
                    Some(l) => {
                        let wq = ndarray::ArrayD::from_shape_vec(
                            t[0].shape(),
                            l.w.iter().map(|&v| v as f32).collect(),
                        )
                        .expect("the weights' shape");
                        let (dims, data) = hwio_to_oihw(&wq);
                        let data: Vec<i8> = data.iter().map(|&v| v as i8).collect();
                        let wn = b.dq_weights(&format!("{nm}_w"), &dims, &data, &l.w_scale, 0);
                        // Always a bias: the int32 one carries ONNX Runtime's fusion.
                        vec![src, wn, b.dq_bias(&format!("{nm}_b"), l)]
                    }
                    None => {
                        let (dims, data) = hwio_to_oihw(&t[0]);
                        let half = bf16 && greenbench_core::bf16::is_weight_layer(&node.op);
                        let wn = b.weight(&format!("{nm}_w"), &dims, &data, half);
                        let mut inputs = vec![src, wn];
                        if *bias {
                            inputs.push(b.init_f32(&format!("{nm}_b"), &[c.cout], &flat(&t[1])));
                        }
                        inputs
                    }
                };
                let refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
                let attrs = [
                    attr_ints("kernel_shape", &[c.kh as i64, c.kw as i64]),
                    attr_ints("strides", &[c.sh as i64, c.sw as i64]),
                    attr_ints(
                        "pads",
                        &[
                            c.pad_top as i64,
                            c.pad_left as i64,
                            c.pad_bottom as i64,
                            c.pad_right as i64,
                        ],
                    ),
                    attr_int("group", c.groups as i64),
                ];
                (b.node("Conv", nm, &refs, &attrs), Layout::Nchw)
            }
            Op::Dense { units, bias } => {
                let src = get(&mut b, &vals, x, Layout::Native);
                if let Some(l) = linear(qm, i) {
                    let wn = b.dq_weights(&format!("{nm}_w"), &[last, *units], &l.w, &l.w_scale, 1);
                    let mm = b.node("MatMul", &format!("{nm}_mm"), &[&src, &wn], &[]);
                    let bn = b.dq_bias(&format!("{nm}_b"), l);
                    (b.node("Add", nm, &[&mm, &bn], &[]), Layout::Native)
                } else {
                    let wn = b.weight(&format!("{nm}_w"), &[last, *units], &flat(&t[0]), bf16);
                    let mm = b.node("MatMul", &format!("{nm}_mm"), &[&src, &wn], &[]);
                    let out = if *bias {
                        let bn = b.init_f32(&format!("{nm}_b"), &[*units], &flat(&t[1]));
                        b.node("Add", nm, &[&mm, &bn], &[])
                    } else {
                        mm
                    };
                    (out, Layout::Native)
                }
            }
            Op::BatchNorm { eps } => {
                let src = get(&mut b, &vals, x, Layout::Native);
                let (scale, shift) = greenbench_core::fold::bn_scale_shift(t, *eps);
                let s = b.init_f32(&format!("{nm}_scale"), &[last], &scale);
                let h = b.init_f32(&format!("{nm}_shift"), &[last], &shift);
                let m = b.node("Mul", &format!("{nm}_mul"), &[&src, &s], &[]);
                (b.node("Add", nm, &[&m, &h], &[]), Layout::Native)
            }
            Op::Relu => {
                let (src, l) = vals[x].clone();
                (b.node("Relu", nm, &[&src], &[]), l)
            }
            Op::Gelu => {
                // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as greenbench computes it.
                let (src, l) = vals[x].clone();
                let x2 = b.node("Mul", &format!("{nm}_x2"), &[&src, &src], &[]);
                let x3 = b.node("Mul", &format!("{nm}_x3"), &[&x2, &src], &[]);
                let k = b.scalar(&format!("{nm}_k"), 0.044_715);
                let kx3 = b.node("Mul", &format!("{nm}_kx3"), &[&x3, &k], &[]);
                let inner = b.node("Add", &format!("{nm}_inner"), &[&src, &kx3], &[]);
                let c = b.scalar(&format!("{nm}_c"), 0.797_884_6);
                let u = b.node("Mul", &format!("{nm}_u"), &[&inner, &c], &[]);
                let th = b.node("Tanh", &format!("{nm}_tanh"), &[&u], &[]);
                let one = b.scalar(&format!("{nm}_one"), 1.0);
                let p = b.node("Add", &format!("{nm}_1p"), &[&th, &one], &[]);
                let half = b.scalar(&format!("{nm}_half"), 0.5);
                let hx = b.node("Mul", &format!("{nm}_hx"), &[&src, &half], &[]);
                (b.node("Mul", nm, &[&hx, &p], &[]), l)
            }
            Op::Sigmoid | Op::HardSwish | Op::Tanh => {
                let (src, l) = vals[x].clone();
                let name = match node.op {
                    Op::Sigmoid => "Sigmoid",
                    Op::HardSwish => "HardSwish",
                    _ => "Tanh",
                };
                (b.node(name, nm, &[&src], &[]), l)
            }
            Op::HardSigmoid { alpha, beta } => {
                let (src, l) = vals[x].clone();
                let attrs = [attr_float("alpha", *alpha), attr_float("beta", *beta)];
                (b.node("HardSigmoid", nm, &[&src], &attrs), l)
            }
            Op::LeakyRelu { alpha } => {
                let (src, l) = vals[x].clone();
                let attrs = [attr_float("alpha", *alpha)];
                (b.node("LeakyRelu", nm, &[&src], &attrs), l)
            }
            Op::Math { f } => {
                use greenbench_core::graph::MathFn;
                let (src, l) = vals[x].clone();
                let out = match f {
                    MathFn::Pow { exponent } => {
                        let e = b.scalar(&format!("{nm}_exponent"), *exponent);
                        b.node("Pow", nm, &[&src, &e], &[])
                    }
                    // To bfloat16 (round to nearest even) and back to float.
                    MathFn::RoundBf16 => {
                        let to = [attr_int("to", DataType::Bfloat16 as i64)];
                        let h = b.node("Cast", &format!("{nm}_bf16"), &[&src], &to);
                        let back = [attr_int("to", DataType::Float as i64)];
                        b.node("Cast", nm, &[&h], &back)
                    }
                    _ => {
                        let name = match f {
                            MathFn::Sqrt => "Sqrt",
                            MathFn::Reciprocal => "Reciprocal",
                            MathFn::Neg => "Neg",
                            MathFn::Exp => "Exp",
                            MathFn::Log => "Log",
                            MathFn::Abs => "Abs",
                            MathFn::Sign => "Sign",
                            _ => "Erf",
                        };
                        b.node(name, nm, &[&src], &[])
                    }
                };
                (out, l)
            }
            Op::Clip { min, max } => {
                let (src, l) = vals[x].clone();
                let lo = b.scalar(&format!("{nm}_min"), *min);
                let hi = b.scalar(&format!("{nm}_max"), *max);
                (b.node("Clip", nm, &[&src, &lo, &hi], &[]), l)
            }
            Op::GeluErf => {
                // 0.5 x (1 + erf(x / sqrt 2)): the subgraph torch.onnx writes for nn.GELU().
                let (src, l) = vals[x].clone();
                let r2 = b.scalar(&format!("{nm}_sqrt2"), std::f32::consts::SQRT_2);
                let d = b.node("Div", &format!("{nm}_div"), &[&src, &r2], &[]);
                let e = b.node("Erf", &format!("{nm}_erf"), &[&d], &[]);
                let one = b.scalar(&format!("{nm}_one"), 1.0);
                let p = b.node("Add", &format!("{nm}_1p"), &[&e, &one], &[]);
                let m = b.node("Mul", &format!("{nm}_xm"), &[&src, &p], &[]);
                let half = b.scalar(&format!("{nm}_half"), 0.5);
                (b.node("Mul", nm, &[&m, &half], &[]), l)
            }
            Op::Mul => {
                let a = get(&mut b, &vals, x, Layout::Native);
                let mut s = get(&mut b, &vals, ins[1], Layout::Native);
                let extra = in_shape.len() - g.value_shape(ins[1]).len();
                if extra > 0 {
                    // [N, suffix] -> [N, 1, .., 1, suffix] so ONNX broadcasts as greenbench does.
                    let axes: Vec<i64> = (1..=extra as i64).collect();
                    let ax = b.init_i64(&format!("{nm}_axes"), &[axes.len()], &axes);
                    s = b.node("Unsqueeze", &format!("{nm}_bcast"), &[&s, &ax], &[]);
                }
                (b.node("Mul", nm, &[&a, &s], &[]), Layout::Native)
            }
            Op::Concat { axis } => {
                let parts: Vec<String> = ins
                    .iter()
                    .map(|&v| get(&mut b, &vals, v, Layout::Native))
                    .collect();
                let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
                let attrs = [attr_int("axis", *axis as i64 + 1)];
                (b.node("Concat", nm, &refs, &attrs), Layout::Native)
            }
            Op::Slice { axis, start, len } => {
                // In greenbench's layout (an image's channels are its last axis).
                let src = get(&mut b, &vals, x, Layout::Native);
                let st = b.init_i64(&format!("{nm}_starts"), &[1], &[*start as i64]);
                let en = b.init_i64(&format!("{nm}_ends"), &[1], &[(start + len) as i64]);
                let ax = b.init_i64(&format!("{nm}_axes"), &[1], &[*axis as i64 + 1]);
                (
                    b.node("Slice", nm, &[&src, &st, &en, &ax], &[]),
                    Layout::Native,
                )
            }
            Op::ChannelShuffle { groups } => {
                // As torch writes ShuffleNet's: [N, C, H, W] -> [N, g, C/g, H, W] ->
                // transpose(1, 2) -> [N, C, H, W] (a vector: [N, C] -> [N, g, C/g] -> ..).
                let (g, k) = (*groups as i64, (last / groups) as i64);
                let (src, split, perm, merged, layout) = if is_image(x) {
                    let (h, w) = (in_shape[0] as i64, in_shape[1] as i64);
                    (
                        get(&mut b, &vals, x, Layout::Nchw),
                        vec![0, g, k, h, w],
                        vec![0, 2, 1, 3, 4],
                        vec![0, last as i64, h, w],
                        Layout::Nchw,
                    )
                } else {
                    (
                        get(&mut b, &vals, x, Layout::Native),
                        vec![0, g, k],
                        vec![0, 2, 1],
                        vec![0, last as i64],
                        Layout::Native,
                    )
                };
                let s1 = b.init_i64(&format!("{nm}_split"), &[split.len()], &split);
                let rs = b.node("Reshape", &format!("{nm}_groups"), &[&src, &s1], &[]);
                let tr = b.node(
                    "Transpose",
                    &format!("{nm}_swap"),
                    &[&rs],
                    &[attr_ints("perm", &perm)],
                );
                let s2 = b.init_i64(&format!("{nm}_merge"), &[merged.len()], &merged);
                (b.node("Reshape", nm, &[&tr, &s2], &[]), layout)
            }
            Op::Softmax => {
                let src = get(&mut b, &vals, x, Layout::Native);
                (
                    b.node("Softmax", nm, &[&src], &[attr_int("axis", -1)]),
                    Layout::Native,
                )
            }
            Op::LayerNorm { eps } => {
                let src = get(&mut b, &vals, x, Layout::Native);
                let gm = b.init_f32(&format!("{nm}_gamma"), &[last], &flat(&t[0]));
                let bt = b.init_f32(&format!("{nm}_beta"), &[last], &flat(&t[1]));
                let attrs = [attr_int("axis", -1), attr_float("epsilon", *eps)];
                (
                    b.node("LayerNormalization", nm, &[&src, &gm, &bt], &attrs),
                    Layout::Native,
                )
            }
            Op::MaxPool { .. } | Op::AvgPool { .. } => {
                let q = g.pool_geom(i);
                let src = get(&mut b, &vals, x, Layout::Nchw);
                let (op, ceil, cip) = match &node.op {
                    Op::MaxPool { ceil_mode, .. } => ("MaxPool", *ceil_mode, false),
                    Op::AvgPool {
                        ceil_mode,
                        count_include_pad,
                        ..
                    } => ("AveragePool", *ceil_mode, *count_include_pad),
                    _ => unreachable!("matched above"),
                };
                let mut attrs = vec![
                    attr_ints("kernel_shape", &[q.kh as i64, q.kw as i64]),
                    attr_ints("strides", &[q.sh as i64, q.sw as i64]),
                ];
                let pads = [q.pad_top, q.pad_left, q.pad_bottom, q.pad_right];
                if pads != [0; 4] {
                    let pads: Vec<i64> = pads.iter().map(|&p| p as i64).collect();
                    attrs.push(attr_ints("pads", &pads));
                }
                if ceil {
                    attrs.push(attr_int("ceil_mode", 1));
                }
                if cip {
                    attrs.push(attr_int("count_include_pad", 1));
                }
                (b.node(op, nm, &[&src], &attrs), Layout::Nchw)
            }
            Op::GlobalAvgPool => {
                if is_image(x) {
                    let src = get(&mut b, &vals, x, Layout::Nchw);
                    let p = b.node("GlobalAveragePool", &format!("{nm}_gap"), &[&src], &[]);
                    (
                        b.node("Flatten", nm, &[&p], &[attr_int("axis", 1)]),
                        Layout::Native,
                    )
                } else {
                    let src = get(&mut b, &vals, x, Layout::Native);
                    let axes: Vec<i64> = (1..in_shape.len() as i64).collect();
                    let attrs = [attr_ints("axes", &axes), attr_int("keepdims", 0)];
                    (b.node("ReduceMean", nm, &[&src], &attrs), Layout::Native)
                }
            }
            Op::Flatten => {
                let src = get(&mut b, &vals, x, Layout::Native);
                (
                    b.node("Flatten", nm, &[&src], &[attr_int("axis", 1)]),
                    Layout::Native,
                )
            }
            Op::Add => {
                let (a, l) = vals[x].clone();
                let c = get(&mut b, &vals, ins[1], l);
                (b.node("Add", nm, &[&a, &c], &[]), l)
            }
            Op::Embedding { vocab, dim, .. } => {
                let table = b.init_f32(&format!("{nm}_table"), &[*vocab, *dim], &flat(&t[0]));
                let src = vals[x].0.clone();
                let e = b.node(
                    "Gather",
                    &format!("{nm}_lookup"),
                    &[&table, &src],
                    &[attr_int("axis", 0)],
                );
                let out = match t.get(1) {
                    Some(p) => {
                        let pos = b.init_f32(&format!("{nm}_pos"), &[in_shape[0], *dim], &flat(p));
                        b.node("Add", nm, &[&e, &pos], &[])
                    }
                    None => e,
                };
                (out, Layout::Native)
            }
            Op::Binary { .. } | Op::MatMul => {
                // Per-example shapes align at the right in greenbench; ONNX aligns whole
                // tensors, batch included: the shorter operand gets unit axes after the batch.
                let rank = |v: usize| g.value_shape(v).len();
                let r = rank(ins[0]).max(rank(ins[1]));
                let mut ops = Vec::new();
                for (k, &v) in ins.iter().enumerate() {
                    let mut s = get(&mut b, &vals, v, Layout::Native);
                    let extra = r - rank(v);
                    if extra > 0 {
                        let axes: Vec<i64> = (1..=extra as i64).collect();
                        let ax = b.init_i64(&format!("{nm}_axes{k}"), &[axes.len()], &axes);
                        s = b.node("Unsqueeze", &format!("{nm}_bcast{k}"), &[&s, &ax], &[]);
                    }
                    ops.push(s);
                }
                let ty = match &node.op {
                    Op::Binary { op } => op.onnx(),
                    _ => "MatMul",
                };
                (b.node(ty, nm, &[&ops[0], &ops[1]], &[]), Layout::Native)
            }
            Op::BinaryConst { op, shape, left } => {
                // The constant with a leading 1 (the batch) and unit axes up to the larger
                // rank; the activation gets unit axes after its batch if it is the shorter.
                let r = in_shape.len().max(shape.len());
                let mut cdims = vec![1; r + 1 - shape.len()];
                cdims.extend_from_slice(shape);
                let c = b.init_f32(&format!("{nm}_c"), &cdims, &flat(&t[0]));
                let mut s = get(&mut b, &vals, x, Layout::Native);
                let extra = r - in_shape.len();
                if extra > 0 {
                    let axes: Vec<i64> = (1..=extra as i64).collect();
                    let ax = b.init_i64(&format!("{nm}_axes"), &[axes.len()], &axes);
                    s = b.node("Unsqueeze", &format!("{nm}_bcast"), &[&s, &ax], &[]);
                }
                let ins: [&str; 2] = if *left { [&c, &s] } else { [&s, &c] };
                (b.node(op.onnx(), nm, &ins, &[]), Layout::Native)
            }
            Op::Transpose { perm } => {
                let src = get(&mut b, &vals, x, Layout::Native);
                let p: Vec<i64> = std::iter::once(0)
                    .chain(perm.iter().map(|&a| a as i64 + 1))
                    .collect();
                (
                    b.node("Transpose", nm, &[&src], &[attr_ints("perm", &p)]),
                    Layout::Native,
                )
            }
            Op::Reshape { shape } => {
                let src = get(&mut b, &vals, x, Layout::Native);
                let dims: Vec<i64> = std::iter::once(0)
                    .chain(shape.iter().map(|&d| d as i64))
                    .collect();
                let sh = b.init_i64(&format!("{nm}_shape"), &[dims.len()], &dims);
                (b.node("Reshape", nm, &[&src, &sh], &[]), Layout::Native)
            }
            // A named input: ids as they are (Gather reads them), anything else as floats.
            Op::Input { index } => {
                let p = &g.input.parts[*index];
                let out = if p.vocab.is_some() || p.dtype == DType::F32 {
                    p.name.clone()
                } else {
                    let to = attr_int("to", i64::from(FLOAT));
                    b.node("Cast", &format!("{}_f32", p.name), &[&p.name], &[to])
                };
                (out, Layout::Native)
            }
            // A constant for every example: [1, ...] expanded to the batch of the first input.
            Op::Constant { shape } => {
                let mut dims = vec![1];
                dims.extend(shape);
                let c = b.init_f32(&format!("{nm}_value"), &dims, &flat(&t[0]));
                let first = g.input.parts.first().map_or(INPUT, |p| p.name.as_str());
                let sh = b.node("Shape", &format!("{nm}_batch_shape"), &[first], &[]);
                let (s0, s1) = (
                    b.init_i64(&format!("{nm}_b0"), &[1], &[0]),
                    b.init_i64(&format!("{nm}_b1"), &[1], &[1]),
                );
                let n = b.node("Slice", &format!("{nm}_batch"), &[&sh, &s0, &s1], &[]);
                let rest: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let rest = b.init_i64(&format!("{nm}_shape"), &[rest.len()], &rest);
                let full = b.node(
                    "Concat",
                    &format!("{nm}_full"),
                    &[&n, &rest],
                    &[attr_int("axis", 0)],
                );
                (b.node("Expand", nm, &[&c, &full], &[]), Layout::Native)
            }
            // Each output under its name (the last node: nothing reads it).
            Op::Pack { names } => {
                for (name, &v) in names.iter().zip(ins) {
                    let src = get(&mut b, &vals, v, Layout::Native);
                    b.nodes.push(NodeProto {
                        input: vec![src],
                        output: vec![name.clone()],
                        name: Some(name.clone()),
                        op_type: Some("Identity".into()),
                        ..Default::default()
                    });
                }
                (names[0].clone(), Layout::Native)
            }
            Op::Attention {
                heads,
                head_dim,
                causal,
                key_bias,
            } => {
                let src = get(&mut b, &vals, x, Layout::Native);
                let bias = key_bias.then(|| vals[ins[1]].0.clone());
                let s = in_shape[0];
                let out = b.attention(nm, &src, (s, *heads, *head_dim), *causal, bias.as_deref());
                (out, Layout::Native)
            }
        };
        let out = match held(i + 1) {
            Some(p) => b.qdq(&out, p),
            None => out,
        };
        vals.push((out, layout));
    }
    // The output in greenbench's layout, named `output` (a Pack has named its own).
    let packed = matches!(g.nodes.last().map(|n| &n.op), Some(Op::Pack { .. }));
    if !packed {
        let last_v = vals.len() - 1;
        let fin = get(&mut b, &vals, last_v, Layout::Native);
        let name = graph_outputs(g)[0].name.clone().unwrap_or_default();
        b.nodes.push(NodeProto {
            input: vec![fin],
            output: vec![name.clone()],
            name: Some(name),
            op_type: Some("Identity".into()),
            ..Default::default()
        });
    }
    let graph = GraphProto {
        node: b.nodes,
        name: Some(g.name.clone()),
        initializer: b.inits,
        input: graph_inputs(g),
        output: graph_outputs(g),
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("greenbench".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{} (weights seed {}, fingerprint {:016x})",
            g.name,
            model.seed,
            model.weights.fingerprint()
        )),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        ..Default::default()
    }
    .encode_to_vec()
}
