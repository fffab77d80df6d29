//! The graph IR: typed ops, named nodes, shape inference.
//!
//! Shapes are **per example** (the batch dimension is added by executors) and NHWC: an image
//! is `[H, W, C]`, a feature vector `[K]`, a token sequence `[S]`, a sequence of embeddings
//! `[S, D]`. A graph is validated when it is built ([`Graph::new`] or deserialisation), so every
//! `Graph` value has consistent shapes.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// A per-example shape (no batch dimension).
pub type Shape = Vec<usize>;

/// Format a shape as `[a, b, c]`.
pub fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Spatial padding of a convolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// TensorFlow "same": out = ceil(in / s), total pad = max((out-1)*s + k - in, 0), the odd
    /// pixel at the bottom / right.
    Same,
    /// No padding.
    #[default]
    Valid,
    /// Explicit, possibly asymmetric, padding.
    Explicit {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
}

impl Padding {
    /// Explicit padding: rows above and below, columns left and right.
    pub const fn explicit(top: usize, bottom: usize, left: usize, right: usize) -> Self {
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        }
    }
}

fn is_valid(p: &Padding) -> bool {
    *p == Padding::Valid
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn one2() -> [usize; 2] {
    [1, 1]
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn eps_default() -> f32 {
    1e-3
}
fn ln_eps_default() -> f32 {
    1e-5
}
fn hs_alpha() -> f32 {
    0.2
}
fn hs_beta() -> f32 {
    0.5
}
fn lrelu_alpha() -> f32 {
    0.01
}

/// The ops of the [`Unary`] family as one pattern, for the backends' matches:
/// `op @ unary_ops!() => op.unary().expect("unary op")`.
#[macro_export]
macro_rules! unary_ops {
    () => {
        $crate::graph::Op::Sigmoid
            | $crate::graph::Op::HardSigmoid { .. }
            | $crate::graph::Op::HardSwish
            | $crate::graph::Op::Clip { .. }
            | $crate::graph::Op::Tanh
            | $crate::graph::Op::LeakyRelu { .. }
            | $crate::graph::Op::GeluErf
    };
}

/// An elementwise activation: one definition the reference, the CPU and the GPU share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    HardSwish,
    Clip { min: f32, max: f32 },
    Tanh,
    LeakyRelu { alpha: f32 },
    GeluErf,
}

impl Unary {
    /// The function in f64 (the reference interpreter's precision).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
            Unary::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Unary::Clip { min, max } => x.max(min as f64).min(max as f64),
            Unary::Tanh => x.tanh(),
            Unary::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            Unary::GeluErf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        }
    }
    /// The GPU kernel's function code and its two parameters.
    pub fn code(self) -> (u32, [f32; 2]) {
        match self {
            Unary::Sigmoid => (0, [0.0; 2]),
            Unary::HardSigmoid { alpha, beta } => (1, [alpha, beta]),
            Unary::HardSwish => (2, [0.0; 2]),
            Unary::Clip { min, max } => (3, [min, max]),
            Unary::Tanh => (4, [0.0; 2]),
            Unary::LeakyRelu { alpha } => (5, [alpha, 0.0]),
            Unary::GeluErf => (6, [0.0; 2]),
        }
    }
    /// (other FPO, transcendentals) per element (shared/FPO.md's rule: count the elementwise
    /// arithmetic, comparisons included; each exp/tanh/erf is one transcendental).
    pub fn cost(self) -> (u64, u64) {
        match self {
            // negate, add, divide + exp
            Unary::Sigmoid => (3, 1),
            // multiply, add, min, max
            Unary::HardSigmoid { .. } => (4, 0),
            // the hard sigmoid's four, then a multiply
            Unary::HardSwish => (5, 0),
            // min, max
            Unary::Clip { .. } => (2, 0),
            Unary::Tanh => (0, 1),
            // compare, multiply
            Unary::LeakyRelu { .. } => (2, 0),
            // x / sqrt 2, + 1, * x, * 0.5 + erf
            Unary::GeluErf => (4, 1),
        }
    }
}

/// The arithmetic of [`Op::Binary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    /// Every binary op, in code order.
    pub const ALL: [BinOp; 4] = [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div];
    /// `a op b` in f32 (the CPU's arithmetic).
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
    /// `a op b` in f64 (the reference interpreter's precision).
    pub fn apply64(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
    /// The GPU kernel's op code (its index in [`BinOp::ALL`]).
    pub fn code(self) -> u32 {
        self as u32
    }
    /// The op of an ONNX operator name (`Add`, `Sub`, `Mul`, `Div`).
    pub fn from_onnx(name: &str) -> Option<BinOp> {
        BinOp::ALL.into_iter().find(|o| o.onnx() == name)
    }
    /// The ONNX operator of the same name.
    pub fn onnx(self) -> &'static str {
        match self {
            BinOp::Add => "Add",
            BinOp::Sub => "Sub",
            BinOp::Mul => "Mul",
            BinOp::Div => "Div",
        }
    }
}

/// numpy's broadcast of two per-example shapes (aligned at the right; an axis of 1 stretches),
/// or `None` when an axis differs and neither is 1.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Shape> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        let pad = r - s.len();
        if i < pad { 1 } else { s[i - pad] }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// For each axis of `out`, the row-major stride of `x` along it when `x` broadcasts to `out`
/// (aligned at the right): 0 where `x` has no such axis or has 1 there.
pub fn broadcast_strides(out: &[usize], x: &[usize]) -> Vec<usize> {
    let pad = out.len() - x.len();
    let mut st = vec![0; out.len()];
    let mut s = 1;
    for i in (0..x.len()).rev() {
        if x[i] != 1 {
            st[pad + i] = s;
        }
        s *= x[i];
    }
    st
}

/// The geometry of a batched matrix product `[.., m, k] x [.., k, n]` per example: `mats`
/// products, the left operand's matrices `a_step` elements apart and the right's `b_step` (0:
/// one matrix shared by all, broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulGeom {
    pub mats: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_step: usize,
    pub b_step: usize,
}

impl MatMulGeom {
    /// The geometry of `a x b`, or why it has none: both at least 2-D, inner lengths equal,
    /// leading axes equal or those of one side all 1 (broadcast).
    pub fn of(a: &[usize], b: &[usize]) -> Result<(MatMulGeom, Shape), String> {
        if a.len() < 2 || b.len() < 2 {
            return Err(format!(
                "both operands must be at least 2-D per example, got {} and {}",
                fmt_shape(a),
                fmt_shape(b)
            ));
        }
        let (la, lb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let (m, k, k2, n) = (
            a[a.len() - 2],
            a[a.len() - 1],
            b[b.len() - 2],
            b[b.len() - 1],
        );
        if k != k2 {
            return Err(format!(
                "inner lengths differ: {} x {}",
                fmt_shape(a),
                fmt_shape(b)
            ));
        }
        let (pa, pb) = (la.iter().product::<usize>(), lb.iter().product::<usize>());
        let strip = |l: &[usize]| {
            l.iter()
                .copied()
                .skip_while(|&d| d == 1)
                .collect::<Vec<_>>()
        };
        let lead: Vec<usize> = if strip(la) == strip(lb) {
            if la.len() >= lb.len() {
                la.to_vec()
            } else {
                lb.to_vec()
            }
        } else if pb == 1 {
            let mut l = la.to_vec();
            l.splice(
                0..0,
                std::iter::repeat_n(1, lb.len().saturating_sub(la.len())),
            );
            l
        } else if pa == 1 {
            let mut l = lb.to_vec();
            l.splice(
                0..0,
                std::iter::repeat_n(1, la.len().saturating_sub(lb.len())),
            );
            l
        } else {
            return Err(format!(
                "leading axes {} and {} must be equal, or one side's all 1 (greenbench broadcasts a whole side, not single axes)",
                fmt_shape(la),
                fmt_shape(lb)
            ));
        };
        let mats = lead.iter().product::<usize>();
        let mut out = lead;
        out.extend([m, n]);
        let geom = MatMulGeom {
            mats,
            m,
            k,
            n,
            a_step: if pa == 1 { 0 } else { m * k },
            b_step: if pb == 1 { 0 } else { k * n },
        };
        Ok((geom, out))
    }
}

/// An operation. Weights are not part of the op; they come from [`crate::Weights`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// 2-D convolution over `[H, W, Cin]`, weights HWIO `[kh, kw, Cin/groups, filters]`.
    /// `groups == Cin == filters` is a depthwise convolution.
    Conv2d {
        filters: usize,
        kernel: [usize; 2],
        #[serde(default = "one2")]
        stride: [usize; 2],
        #[serde(default)]
        padding: Padding,
        #[serde(default = "one")]
        groups: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Dense (fully connected) layer over the last axis, weights `[K, units]`.
    Dense {
        units: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Batch norm in inference mode over the last axis (gamma, beta, mean, var).
    BatchNorm {
        #[serde(default = "eps_default")]
        eps: f32,
    },
    /// max(x, 0).
    Relu,
    /// GELU, tanh approximation.
    Gelu,
    /// Softmax over the last axis.
    Softmax,
    /// Layer norm over the last axis with affine gamma, beta.
    LayerNorm {
        #[serde(default = "ln_eps_default")]
        eps: f32,
    },
    /// Max pooling over `[H, W, C]`. Padded positions never win (they are not values);
    /// `ceil_mode` keeps a last, partial window (PyTorch/ONNX rule: it must start inside the
    /// image or its leading padding).
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        #[serde(default, skip_serializing_if = "is_valid")]
        padding: Padding,
        #[serde(default, skip_serializing_if = "is_false")]
        ceil_mode: bool,
    },
    /// Average pooling over `[H, W, C]`: the mean of the window's image pixels, or with
    /// `count_include_pad` the sum over the window clipped to the padded image divided by that
    /// clipped window's size (ONNX's and PyTorch's rule).
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        #[serde(default, skip_serializing_if = "is_valid")]
        padding: Padding,
        #[serde(default, skip_serializing_if = "is_false")]
        ceil_mode: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        count_include_pad: bool,
    },
    /// Mean over every axis but the last: `[H, W, C] -> [C]`, `[S, D] -> [D]`.
    GlobalAvgPool,
    /// Flatten to one axis.
    Flatten,
    /// Elementwise sum of two inputs of the same shape (residual connection).
    Add,
    /// Token embedding `[vocab, dim]` of a `[S]` token sequence, plus (if `positions`) a
    /// learned position embedding `[S, dim]`.
    Embedding {
        vocab: usize,
        dim: usize,
        #[serde(default = "yes")]
        positions: bool,
    },
    /// Logistic sigmoid 1 / (1 + e^-x).
    Sigmoid,
    /// max(0, min(1, alpha x + beta)) (ONNX HardSigmoid; defaults 0.2, 0.5).
    HardSigmoid {
        #[serde(default = "hs_alpha")]
        alpha: f32,
        #[serde(default = "hs_beta")]
        beta: f32,
    },
    /// x * max(0, min(1, x / 6 + 1 / 2)) (MobileNetV3's h-swish).
    HardSwish,
    /// min(max(x, min), max): ReLU6 is `{min: 0, max: 6}`.
    Clip { min: f32, max: f32 },
    /// Hyperbolic tangent.
    Tanh,
    /// x for x >= 0, alpha x below.
    LeakyRelu {
        #[serde(default = "lrelu_alpha")]
        alpha: f32,
    },
    /// GELU with the exact erf: 0.5 x (1 + erf(x / sqrt 2)) (BERT's, torch's default).
    GeluErf,
    /// Elementwise product of two inputs; the second's shape equals the first's or is a
    /// trailing part of it (`[C]` over `[H, W, C]`: a squeeze-excite scale), broadcast.
    Mul,
    /// Concatenation of every input along `axis` (per-example axes, so on an image `2` is the
    /// channels); the other axes must agree.
    Concat { axis: usize },
    /// `len` entries of axis `axis` (a per-example axis) from `start`: a channel split
    /// (ShuffleNetV2's `Split`, `Slice`).
    Slice {
        axis: usize,
        start: usize,
        len: usize,
    },
    /// ShuffleNet's channel shuffle over the last axis: `C = groups x k` viewed as
    /// `[groups, k]` and transposed to `[k, groups]`.
    ChannelShuffle { groups: usize },
    /// Scaled dot-product multi-head self-attention core over a fused QKV input
    /// `[S, 3*heads*head_dim]` laid out as `[Q | K | V]`, each head-major; output
    /// `[S, heads*head_dim]`. Projections are separate dense nodes.
    Attention { heads: usize, head_dim: usize },
    /// Elementwise `a op b` of two inputs with numpy broadcasting of their per-example shapes
    /// (aligned at the right; an axis of 1 stretches).
    Binary { op: BinOp },
    /// Elementwise `x op c` (`c op x` when `left`) with a constant `c` of per-example shape
    /// `shape` (the node's one weight, the same for every example), numpy broadcasting:
    /// a position embedding added to a sequence, a mask, a constant that is neither a scalar
    /// nor per channel.
    BinaryConst {
        op: BinOp,
        shape: Vec<usize>,
        #[serde(default, skip_serializing_if = "is_false")]
        left: bool,
    },
    /// Matrix product of two inputs `[.., m, k] x [.., k, n] -> [.., m, n]`, per example; the
    /// leading axes are equal, or one side's are all 1 (that side's one matrix is shared).
    MatMul,
    /// A permutation of the per-example axes: output axis `i` is input axis `perm[i]`.
    Transpose { perm: Vec<usize> },
    /// The same elements, in the same row-major order, under a new per-example shape.
    Reshape { shape: Vec<usize> },
}

impl Op {
    /// Unpadded max pooling.
    pub const fn max_pool(kernel: [usize; 2], stride: [usize; 2]) -> Op {
        Op::MaxPool {
            kernel,
            stride,
            padding: Padding::Valid,
            ceil_mode: false,
        }
    }
    /// Unpadded average pooling.
    pub const fn avg_pool(kernel: [usize; 2], stride: [usize; 2]) -> Op {
        Op::AvgPool {
            kernel,
            stride,
            padding: Padding::Valid,
            ceil_mode: false,
            count_include_pad: false,
        }
    }

    /// The common convolution: ungrouped, with bias.
    pub const fn conv(
        filters: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    ) -> Op {
        Op::Conv2d {
            filters,
            kernel,
            stride,
            padding,
            groups: 1,
            bias: true,
        }
    }

    /// The elementwise activation this op is, if it is one of the [`Unary`] family.
    pub fn unary(&self) -> Option<Unary> {
        Some(match *self {
            Op::Sigmoid => Unary::Sigmoid,
            Op::HardSigmoid { alpha, beta } => Unary::HardSigmoid { alpha, beta },
            Op::HardSwish => Unary::HardSwish,
            Op::Clip { min, max } => Unary::Clip { min, max },
            Op::Tanh => Unary::Tanh,
            Op::LeakyRelu { alpha } => Unary::LeakyRelu { alpha },
            Op::GeluErf => Unary::GeluErf,
            _ => return None,
        })
    }

    /// Short human name used in tables.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::Dense { .. } => "dense",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Gelu => "gelu",
            Op::Softmax => "softmax",
            Op::LayerNorm { .. } => "layer_norm",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Add => "add",
            Op::Sigmoid => "sigmoid",
            Op::HardSigmoid { .. } => "hard_sigmoid",
            Op::HardSwish => "hard_swish",
            Op::Clip { .. } => "clip",
            Op::Tanh => "tanh",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::GeluErf => "gelu_erf",
            Op::Mul => "mul",
            Op::Concat { .. } => "concat",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::Slice { .. } => "slice",
            Op::Embedding { .. } => "embedding",
            Op::Attention { .. } => "attention",
            Op::Binary { op } => match op {
                BinOp::Add => "add_bcast",
                BinOp::Sub => "sub",
                BinOp::Mul => "mul_bcast",
                BinOp::Div => "div",
            },
            Op::BinaryConst { op, .. } => match op {
                BinOp::Add => "add_const",
                BinOp::Sub => "sub_const",
                BinOp::Mul => "mul_const",
                BinOp::Div => "div_const",
            },
            Op::MatMul => "matmul",
            Op::Transpose { .. } => "transpose",
            Op::Reshape { .. } => "reshape",
        }
    }

    /// Number of inputs the op takes (`usize::MAX`: one or more, as concat).
    pub fn arity(&self) -> usize {
        match self {
            Op::Add | Op::Mul | Op::Binary { .. } | Op::MatMul => 2,
            Op::Concat { .. } => usize::MAX,
            _ => 1,
        }
    }
}

/// What the graph's input holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Per-example shape.
    pub shape: Shape,
    /// If set, the input holds token ids in `0..token_vocab` (stored as f32, exact below 2^24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_vocab: Option<usize>,
}

/// A named node. `inputs` name earlier nodes or `"input"`; empty means "the previous node".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Ops folded into this node by a graph pass (e.g. `["batch_norm"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<String>,
}

impl Node {
    /// A node fed by the previous node.
    pub fn new(name: impl Into<String>, op: Op) -> Self {
        Node {
            name: name.into(),
            op,
            inputs: vec![],
            folded: vec![],
        }
    }
    /// A node with named inputs.
    pub fn with_inputs(name: impl Into<String>, op: Op, inputs: &[&str]) -> Self {
        Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            folded: vec![],
        }
    }
}

/// An inconsistent graph. Every variant names the node.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("node `{node}` ({op}): {what}: got shape {got}, expected {expected}")]
    Shape {
        node: String,
        op: &'static str,
        what: String,
        got: String,
        expected: String,
    },
    #[error("node `{node}`: input `{input}` is not an earlier node (or `input`)")]
    UnknownInput { node: String, input: String },
    #[error("node `{node}`: {op} takes {expected} input(s), got {got}")]
    Arity {
        node: String,
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("node name `{0}` is used twice (or is the reserved name `input`)")]
    DuplicateName(String),
    #[error("node `{node}` ({op}): {message}")]
    Invalid {
        node: String,
        op: &'static str,
        message: String,
    },
    #[error("graph `{0}` has no nodes")]
    Empty(String),
}

/// Resolved geometry of a convolution node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub ho: usize,
    pub wo: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_bottom: usize,
    pub pad_left: usize,
    pub pad_right: usize,
    pub groups: usize,
}

impl ConvGeom {
    /// True for a depthwise convolution (groups == Cin == Cout).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.cin && self.cout == self.cin && self.groups > 1
    }
    /// True for a 1x1, stride 1, unpadded, ungrouped convolution (a plain GEMM).
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.groups == 1
            && self.pad_top + self.pad_bottom + self.pad_left + self.pad_right == 0
    }
    /// True for a grouped (not depthwise) convolution whose groups are each pointwise: one
    /// plain GEMM per group.
    pub fn is_grouped_pointwise(&self) -> bool {
        self.groups > 1 && !self.is_depthwise() && ConvGeom { groups: 1, ..*self }.is_pointwise()
    }
}

/// Resolved geometry of a pooling node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad_bottom: usize,
    pub pad_right: usize,
    /// Average pooling divides by the window clipped to the padded image (not to the image).
    pub count_include_pad: bool,
}

/// The part of a window `[start, start + k)` (in unpadded coordinates, start may be negative)
/// inside `[lo, hi)`.
fn clip(start: isize, k: usize, lo: isize, hi: isize) -> std::ops::Range<usize> {
    let a = start.max(lo);
    let b = (start + k as isize).min(hi);
    if b <= a {
        return 0..0;
    }
    (a.max(0) as usize)..(b.max(0) as usize)
}

impl PoolGeom {
    /// True when every window lies inside the image (no padding, no partial window).
    pub fn is_unpadded(&self) -> bool {
        self.pad_top + self.pad_left == 0
            && (self.ho - 1) * self.sh + self.kh <= self.h
            && (self.wo - 1) * self.sw + self.kw <= self.w
    }
    /// The input rows under output row `oy`'s window, clipped to the image.
    pub fn rows(&self, oy: usize) -> std::ops::Range<usize> {
        let s = (oy * self.sh) as isize - self.pad_top as isize;
        clip(s, self.kh, 0, self.h as isize)
    }
    /// The input columns under output column `ox`'s window, clipped to the image.
    pub fn cols(&self, ox: usize) -> std::ops::Range<usize> {
        let s = (ox * self.sw) as isize - self.pad_left as isize;
        clip(s, self.kw, 0, self.w as isize)
    }
    /// What average pooling divides the window's sum by at `(oy, ox)`.
    pub fn divisor(&self, oy: usize, ox: usize) -> usize {
        if self.count_include_pad {
            let sy = (oy * self.sh) as isize - self.pad_top as isize;
            let sx = (ox * self.sw) as isize - self.pad_left as isize;
            let ny = ((sy + self.kh as isize).min((self.h + self.pad_bottom) as isize)
                - sy.max(-(self.pad_top as isize)))
            .max(0) as usize;
            let nx = ((sx + self.kw as isize).min((self.w + self.pad_right) as isize)
                - sx.max(-(self.pad_left as isize)))
            .max(0) as usize;
            ny * nx
        } else {
            self.rows(oy).len() * self.cols(ox).len()
        }
    }
}

/// The serialised form of a graph.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphDesc {
    pub name: String,
    pub input: InputSpec,
    pub nodes: Vec<Node>,
}

/// A validated model graph: nodes in topological order with inferred shapes.
///
/// Values are numbered: 0 is the graph input, `i + 1` the output of node `i`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GraphDesc", into = "GraphDesc")]
pub struct Graph {
    pub name: String,
    pub input: InputSpec,
    pub nodes: Vec<Node>,
    srcs: Vec<Vec<usize>>,
    shapes: Vec<Shape>,
}

impl TryFrom<GraphDesc> for Graph {
    type Error = GraphError;
    fn try_from(d: GraphDesc) -> Result<Self, GraphError> {
        Graph::new(d.name, d.input, d.nodes)
    }
}

impl From<Graph> for GraphDesc {
    fn from(g: Graph) -> Self {
        GraphDesc {
            name: g.name,
            input: g.input,
            nodes: g.nodes,
        }
    }
}

/// TensorFlow "same" padding along one axis: (out, before, after).
pub fn same_padding(input: usize, k: usize, s: usize) -> (usize, usize, usize) {
    let out = input.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(input);
    (out, total / 2, total - total / 2)
}

impl Graph {
    /// Build and validate a graph.
    pub fn new(
        name: impl Into<String>,
        input: InputSpec,
        nodes: Vec<Node>,
    ) -> Result<Graph, GraphError> {
        let name = name.into();
        if nodes.is_empty() {
            return Err(GraphError::Empty(name));
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        ids.insert("input", 0);
        let mut srcs = Vec::with_capacity(nodes.len());
        let mut shapes = vec![input.shape.clone()];
        if input.shape.is_empty() || input.shape.contains(&0) {
            return Err(GraphError::Invalid {
                node: "input".into(),
                op: "input",
                message: format!("input shape {} must be non-empty", fmt_shape(&input.shape)),
            });
        }
        for (i, node) in nodes.iter().enumerate() {
            let src: Vec<usize> = if node.inputs.is_empty() {
                vec![i]
            } else {
                node.inputs
                    .iter()
                    .map(|n| {
                        ids.get(n.as_str())
                            .copied()
                            .ok_or_else(|| GraphError::UnknownInput {
                                node: node.name.clone(),
                                input: n.clone(),
                            })
                    })
                    .collect::<Result<_, _>>()?
            };
            let arity = node.op.arity();
            // A two-input op fed implicitly has only one input: report that.
            let variadic_ok = arity == usize::MAX && !src.is_empty();
            if src.len() != arity && !variadic_ok {
                return Err(GraphError::Arity {
                    node: node.name.clone(),
                    op: node.op.kind(),
                    expected: arity,
                    got: src.len(),
                });
            }
            let in_shapes: Vec<&Shape> = src.iter().map(|&s| &shapes[s]).collect();
            let out = infer(node, &in_shapes, &input)?;
            if ids.insert(node.name.as_str(), i + 1).is_some() {
                return Err(GraphError::DuplicateName(node.name.clone()));
            }
            srcs.push(src);
            shapes.push(out);
        }
        Ok(Graph {
            name,
            input,
            nodes,
            srcs,
            shapes,
        })
    }

    /// Per-example shape of value `v` (0 = graph input, i + 1 = node i).
    pub fn value_shape(&self, v: usize) -> &Shape {
        &self.shapes[v]
    }
    /// Per-example output shape of node `i`.
    pub fn out_shape(&self, i: usize) -> &Shape {
        &self.shapes[i + 1]
    }
    /// Per-example shape of the graph output (the last node).
    pub fn output_shape(&self) -> &Shape {
        self.shapes.last().expect("graph has nodes")
    }
    /// Value ids feeding node `i`.
    pub fn node_inputs(&self, i: usize) -> &[usize] {
        &self.srcs[i]
    }
    /// What a backend's planner reads of node `i` at `batch`: `(its input values, the first
    /// input's per-example shape, that shape's last dimension (a dense layer's reduction
    /// length), the whole batch's output length)`.
    pub fn node_io(&self, i: usize, batch: usize) -> (&[usize], &[usize], usize, usize) {
        let inputs = self.node_inputs(i);
        let in_shape = self.value_shape(inputs[0]);
        let last = *in_shape.last().expect("shapes are non-empty");
        let out_len = batch * self.out_shape(i).iter().product::<usize>();
        (inputs, in_shape, last, out_len)
    }
    /// Per-example input element count.
    pub fn input_len(&self) -> usize {
        self.input.shape.iter().product()
    }
    /// Per-example output element count.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
    /// Number of nodes that consume value `v`.
    pub fn consumers(&self, v: usize) -> usize {
        self.srcs.iter().flatten().filter(|&&s| s == v).count()
    }

    /// Whether node `i` (a conv2d or dense) is followed by a ReLU that is its output's only
    /// consumer, so a backend may apply the ReLU in node `i`'s epilogue and skip node `i + 1`.
    pub fn relu_fusable(&self, i: usize) -> bool {
        let v = i + 1;
        matches!(self.nodes[i].op, Op::Conv2d { .. } | Op::Dense { .. })
            && self
                .nodes
                .get(i + 1)
                .is_some_and(|n| matches!(n.op, Op::Relu))
            && self.node_inputs(i + 1) == [v]
            && self.consumers(v) == 1
    }

    /// Geometry of conv node `i`. Panics if node `i` is not a conv2d.
    pub fn conv_geom(&self, i: usize) -> ConvGeom {
        conv_geom(&self.nodes[i].op, &self.shapes[self.srcs[i][0]]).expect("validated conv")
    }
    /// Geometry of pooling node `i`. Panics if node `i` is not a max/avg pool.
    pub fn pool_geom(&self, i: usize) -> PoolGeom {
        pool_geom(&self.nodes[i].op, &self.shapes[self.srcs[i][0]]).expect("validated pool")
    }

    /// Check a flattened batch-major input for `batch` examples: its length, and for token
    /// inputs that every id is an integer inside the vocabulary (an out-of-range id would
    /// index outside the embedding table).
    pub fn check_input(&self, input: &[f32], batch: usize) -> Result<(), String> {
        let want = batch * self.input_len();
        if input.len() != want {
            return Err(format!(
                "input has {} values, the prepared model takes {want} ({batch} x {})",
                input.len(),
                fmt_shape(&self.input.shape)
            ));
        }
        if let Some(v) = self.input.token_vocab
            && let Some(bad) = input
                .iter()
                .find(|&&t| !(t >= 0.0 && (t as usize) < v && t.fract() == 0.0))
        {
            return Err(format!("token id {bad} is outside the vocabulary 0..{v}"));
        }
        Ok(())
    }

    /// Parse a graph from its JSON description.
    pub fn from_json(text: &str) -> Result<Graph, serde_json::Error> {
        serde_json::from_str(text)
    }
    /// The graph's JSON description.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("graph serialises")
    }
}

fn conv_geom(op: &Op, x: &[usize]) -> Option<ConvGeom> {
    let Op::Conv2d {
        filters,
        kernel,
        stride,
        padding,
        groups,
        ..
    } = op
    else {
        return None;
    };
    let [h, w, cin] = *x else { return None };
    let [kh, kw] = *kernel;
    let [sh, sw] = *stride;
    let (ho, pt, pb, wo, pl, pr) = match padding {
        Padding::Same => {
            let (ho, pt, pb) = same_padding(h, kh, sh);
            let (wo, pl, pr) = same_padding(w, kw, sw);
            (ho, pt, pb, wo, pl, pr)
        }
        Padding::Valid | Padding::Explicit { .. } => {
            let (pt, pb, pl, pr) = match padding {
                Padding::Explicit {
                    top,
                    bottom,
                    left,
                    right,
                } => (*top, *bottom, *left, *right),
                _ => (0, 0, 0, 0),
            };
            let hp = h + pt + pb;
            let wp = w + pl + pr;
            if hp < kh || wp < kw || sh == 0 || sw == 0 {
                return None;
            }
            ((hp - kh) / sh + 1, pt, pb, (wp - kw) / sw + 1, pl, pr)
        }
    };
    Some(ConvGeom {
        h,
        w,
        cin,
        ho,
        wo,
        cout: *filters,
        kh,
        kw,
        sh,
        sw,
        pad_top: pt,
        pad_bottom: pb,
        pad_left: pl,
        pad_right: pr,
        groups: *groups,
    })
}

/// Pooled length along one axis: floor or ceil mode (a ceil-mode window must start inside
/// the image or its leading padding).
fn pooled(
    input: usize,
    k: usize,
    s: usize,
    before: usize,
    after: usize,
    ceil: bool,
) -> Option<usize> {
    let span = (input + before + after).checked_sub(k)?;
    let mut o = if ceil {
        span.div_ceil(s) + 1
    } else {
        span / s + 1
    };
    if ceil && (o - 1) * s >= input + before {
        o -= 1;
    }
    Some(o)
}

/// The geometry of a pooling op over a per-example `[H, W, C]` input; `None` if the op is not
/// a pool or its window does not fit.
pub fn pool_geometry(op: &Op, x: &[usize]) -> Option<PoolGeom> {
    pool_geom(op, x)
}

fn pool_geom(op: &Op, x: &[usize]) -> Option<PoolGeom> {
    let (kernel, stride, padding, ceil, cip) = match op {
        Op::MaxPool {
            kernel,
            stride,
            padding,
            ceil_mode,
        } => (kernel, stride, padding, *ceil_mode, false),
        Op::AvgPool {
            kernel,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        } => (kernel, stride, padding, *ceil_mode, *count_include_pad),
        _ => return None,
    };
    let [h, w, c] = *x else { return None };
    let [kh, kw] = *kernel;
    let [sh, sw] = *stride;
    if sh == 0 || sw == 0 || kh == 0 || kw == 0 {
        return None;
    }
    let (pt, pb, pl, pr) = match padding {
        Padding::Valid => (0, 0, 0, 0),
        Padding::Same => {
            let (_, t, b) = same_padding(h, kh, sh);
            let (_, l, r) = same_padding(w, kw, sw);
            (t, b, l, r)
        }
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => (*top, *bottom, *left, *right),
    };
    // A pad as large as the window would make windows of padding only.
    if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
        return None;
    }
    Some(PoolGeom {
        h,
        w,
        c,
        ho: pooled(h, kh, sh, pt, pb, ceil)?,
        wo: pooled(w, kw, sw, pl, pr, ceil)?,
        kh,
        kw,
        sh,
        sw,
        pad_top: pt,
        pad_left: pl,
        pad_bottom: pb,
        pad_right: pr,
        count_include_pad: cip,
    })
}

/// Shape inference for one node.
fn infer(node: &Node, ins: &[&Shape], input: &InputSpec) -> Result<Shape, GraphError> {
    let op = &node.op;
    let x = ins[0];
    let shape_err = |what: &str, expected: String| GraphError::Shape {
        node: node.name.clone(),
        op: op.kind(),
        what: what.to_string(),
        got: fmt_shape(x),
        expected,
    };
    let invalid = |message: String| GraphError::Invalid {
        node: node.name.clone(),
        op: op.kind(),
        message,
    };
    match op {
        Op::Conv2d {
            filters,
            kernel,
            stride,
            groups,
            ..
        } => {
            if x.len() != 3 {
                return Err(shape_err("input must be an image", "[H, W, C]".into()));
            }
            if *filters == 0 || kernel.contains(&0) || stride.contains(&0) || *groups == 0 {
                return Err(invalid(
                    "filters, kernel, stride and groups must be positive".into(),
                ));
            }
            if !x[2].is_multiple_of(*groups) || !filters.is_multiple_of(*groups) {
                return Err(shape_err(
                    &format!("channels not divisible by groups = {groups}"),
                    format!("[H, W, C] with C and filters ({filters}) divisible by {groups}"),
                ));
            }
            let g = conv_geom(op, x).ok_or_else(|| {
                shape_err(
                    &format!("kernel {kernel:?} does not fit the (padded) input"),
                    format!("[H >= {}, W >= {}, C]", kernel[0], kernel[1]),
                )
            })?;
            Ok(vec![g.ho, g.wo, g.cout])
        }
        Op::Dense { units, .. } => {
            if *units == 0 {
                return Err(invalid("units must be positive".into()));
            }
            let mut out = x.clone();
            *out.last_mut().expect("non-empty") = *units;
            Ok(out)
        }
        Op::BatchNorm { .. } | Op::Relu | Op::Gelu | Op::Softmax | Op::LayerNorm { .. } => {
            Ok(x.clone())
        }
        Op::Sigmoid
        | Op::HardSigmoid { .. }
        | Op::HardSwish
        | Op::Clip { .. }
        | Op::Tanh
        | Op::LeakyRelu { .. }
        | Op::GeluErf => Ok(x.clone()),
        Op::Mul => {
            let b = ins[1];
            let n: usize = b.iter().product();
            let suffix = b.len() <= x.len() && x[x.len() - b.len()..] == b[..];
            if !(suffix || n == 1) {
                return Err(GraphError::Shape {
                    node: node.name.clone(),
                    op: op.kind(),
                    what: "the second input does not broadcast over the first".into(),
                    got: fmt_shape(b),
                    expected: format!("{} or a trailing part of it", fmt_shape(x)),
                });
            }
            Ok(x.clone())
        }
        Op::Concat { axis } => {
            if *axis >= x.len() {
                return Err(invalid(format!("axis {axis} is outside {}", fmt_shape(x))));
            }
            let mut out = x.clone();
            for s in &ins[1..] {
                let agree = s.len() == x.len() && (0..x.len()).all(|d| d == *axis || s[d] == x[d]);
                if !agree {
                    return Err(GraphError::Shape {
                        node: node.name.clone(),
                        op: op.kind(),
                        what: format!("inputs differ off axis {axis}"),
                        got: fmt_shape(s),
                        expected: fmt_shape(x),
                    });
                }
                out[*axis] += s[*axis];
            }
            Ok(out)
        }
        Op::Slice { axis, start, len } => {
            if *axis >= x.len() || *len == 0 || start + len > x[*axis] {
                return Err(invalid(format!(
                    "{len} entries from {start} of axis {axis} are not inside {}",
                    fmt_shape(x)
                )));
            }
            let mut out = x.clone();
            out[*axis] = *len;
            Ok(out)
        }
        Op::ChannelShuffle { groups } => {
            let c = *x.last().expect("non-empty");
            if *groups == 0 || !c.is_multiple_of(*groups) {
                return Err(invalid(format!(
                    "{c} channels do not split into {groups} groups"
                )));
            }
            Ok(x.clone())
        }
        Op::MaxPool { .. } | Op::AvgPool { .. } => {
            if x.len() != 3 {
                return Err(shape_err("input must be an image", "[H, W, C]".into()));
            }
            let g = pool_geom(op, x).ok_or_else(|| {
                shape_err(
                    "pool window does not fit the (padded) input, is zero, or a pad is as large as the window",
                    "[H >= kh, W >= kw, C] and every pad < the window".into(),
                )
            })?;
            Ok(vec![g.ho, g.wo, g.c])
        }
        Op::GlobalAvgPool => {
            if x.len() < 2 {
                return Err(shape_err(
                    "needs at least two axes",
                    "[H, W, C] or [S, D]".into(),
                ));
            }
            Ok(vec![*x.last().expect("non-empty")])
        }
        Op::Flatten => Ok(vec![x.iter().product()]),
        Op::Add => {
            if ins[0] != ins[1] {
                return Err(GraphError::Shape {
                    node: node.name.clone(),
                    op: op.kind(),
                    what: "the two inputs differ".into(),
                    got: fmt_shape(ins[1]),
                    expected: fmt_shape(ins[0]),
                });
            }
            Ok(x.clone())
        }
        Op::Embedding { vocab, dim, .. } => {
            if x.len() != 1 {
                return Err(shape_err("input must be a token sequence", "[S]".into()));
            }
            if *vocab == 0 || *dim == 0 {
                return Err(invalid("vocab and dim must be positive".into()));
            }
            match input.token_vocab {
                Some(v) if v <= *vocab => {}
                _ => {
                    return Err(invalid(format!(
                        "the graph input must declare token_vocab <= {vocab}"
                    )));
                }
            }
            Ok(vec![x[0], *dim])
        }
        Op::Attention { heads, head_dim } => {
            let qkv = 3 * heads * head_dim;
            if x.len() != 2 || x[1] != qkv {
                return Err(shape_err(
                    "input must be fused QKV",
                    format!("[S, {qkv}] (3 x {heads} heads x {head_dim})"),
                ));
            }
            Ok(vec![x[0], heads * head_dim])
        }
        Op::Binary { .. } => broadcast(x, ins[1]).ok_or_else(|| GraphError::Shape {
            node: node.name.clone(),
            op: op.kind(),
            what: "the inputs do not broadcast (numpy's rule)".into(),
            got: fmt_shape(ins[1]),
            expected: format!("a shape broadcastable with {}", fmt_shape(x)),
        }),
        Op::BinaryConst { shape, .. } => {
            if shape.is_empty() || shape.contains(&0) {
                return Err(invalid(format!(
                    "constant shape {} must be non-empty",
                    fmt_shape(shape)
                )));
            }
            broadcast(x, shape).ok_or_else(|| GraphError::Shape {
                node: node.name.clone(),
                op: op.kind(),
                what: format!("the constant {} does not broadcast", fmt_shape(shape)),
                got: fmt_shape(x),
                expected: format!("a shape broadcastable with {}", fmt_shape(shape)),
            })
        }
        Op::MatMul => MatMulGeom::of(x, ins[1])
            .map(|(_, out)| out)
            .map_err(invalid),
        Op::Transpose { perm } => {
            let mut seen = vec![false; x.len()];
            let ok = perm.len() == x.len()
                && perm
                    .iter()
                    .all(|&p| p < x.len() && !std::mem::replace(&mut seen[p], true));
            if !ok {
                return Err(invalid(format!(
                    "perm {perm:?} is not a permutation of the {} axes of {}",
                    x.len(),
                    fmt_shape(x)
                )));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Reshape { shape } => {
            if shape.is_empty()
                || shape.contains(&0)
                || shape.iter().product::<usize>() != x.iter().product::<usize>()
            {
                return Err(shape_err(
                    &format!("cannot be reshaped to {}", fmt_shape(shape)),
                    format!("{} elements", x.iter().product::<usize>()),
                ));
            }
            Ok(shape.clone())
        }
    }
}

fn pool_suffix(f: &mut fmt::Formatter<'_>, padding: &Padding, ceil: bool) -> fmt::Result {
    match padding {
        Padding::Valid => {}
        Padding::Same => f.write_str(" same")?,
        Padding::Explicit { .. } => f.write_str(" padded")?,
    }
    if ceil {
        f.write_str(" ceil")?;
    }
    Ok(())
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Conv2d {
                filters,
                kernel,
                stride,
                groups,
                ..
            } => {
                let dw = if *groups > 1 && *groups == *filters {
                    "depthwise "
                } else {
                    ""
                };
                write!(
                    f,
                    "{dw}conv {}x{}/{}, {filters}",
                    kernel[0], kernel[1], stride[0]
                )
            }
            Op::Dense { units, .. } => write!(f, "dense {units}"),
            Op::MaxPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            } => {
                write!(f, "max pool {}x{}/{}", kernel[0], kernel[1], stride[0])?;
                pool_suffix(f, padding, *ceil_mode)
            }
            Op::AvgPool {
                kernel,
                stride,
                padding,
                ceil_mode,
                ..
            } => {
                write!(f, "avg pool {}x{}/{}", kernel[0], kernel[1], stride[0])?;
                pool_suffix(f, padding, *ceil_mode)
            }
            Op::Attention { heads, head_dim } => write!(f, "attention {heads}x{head_dim}"),
            Op::Clip { min, max } if *min == 0.0 && *max == 6.0 => f.write_str("relu6"),
            Op::Clip { min, max } => write!(f, "clip [{min}, {max}]"),
            Op::Concat { axis } => write!(f, "concat axis {axis}"),
            Op::ChannelShuffle { groups } => write!(f, "channel shuffle {groups}"),
            Op::Slice { axis, start, len } => {
                write!(f, "slice {start}..{} of axis {axis}", start + len)
            }
            Op::Embedding { vocab, dim, .. } => write!(f, "embedding {vocab}x{dim}"),
            Op::Binary { op } => write!(f, "{} (broadcast)", op.onnx().to_lowercase()),
            Op::BinaryConst { op, shape, left } => {
                let o = op.onnx().to_lowercase();
                if *left {
                    write!(f, "constant {} {o} x", fmt_shape(shape))
                } else {
                    write!(f, "{o} constant {}", fmt_shape(shape))
                }
            }
            Op::Transpose { perm } => write!(f, "transpose {perm:?}"),
            Op::Reshape { shape } => write!(f, "reshape to {}", fmt_shape(shape)),
            other => f.write_str(other.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(h: usize, w: usize, c: usize) -> InputSpec {
        InputSpec {
            shape: vec![h, w, c],
            token_vocab: None,
        }
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        // 49 rows, k = 10, s = 2: out 25, total pad (24*2+10-49) = 9 -> 4 top, 5 bottom.
        assert_eq!(same_padding(49, 10, 2), (25, 4, 5));
        // 96, k 3, s 2: out 48, total 1 -> 0 before, 1 after (odd pixel bottom/right).
        assert_eq!(same_padding(96, 3, 2), (48, 0, 1));
        assert_eq!(same_padding(32, 3, 1), (32, 1, 1));
        assert_eq!(same_padding(10, 4, 2), (5, 1, 1));
    }

    #[test]
    fn add_mismatch_names_node_and_both_shapes() {
        let nodes = vec![
            Node::new("c1", Op::conv(8, [3, 3], [2, 2], Padding::Same)),
            Node::with_inputs("sum", Op::Add, &["c1", "input"]),
        ];
        let err = Graph::new("bad", img(8, 8, 3), nodes).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`sum`"), "{msg}");
        assert!(msg.contains("[8, 8, 3]"), "{msg}");
        assert!(msg.contains("[4, 4, 8]"), "{msg}");
    }

    #[test]
    fn dense_on_image_after_flatten_only() {
        let nodes = vec![Node::new(
            "att",
            Op::Attention {
                heads: 2,
                head_dim: 4,
            },
        )];
        let err = Graph::new(
            "bad",
            InputSpec {
                shape: vec![5, 20],
                token_vocab: None,
            },
            nodes,
        )
        .unwrap_err();
        assert!(err.to_string().contains("[5, 20]"));
        assert!(err.to_string().contains("[S, 24]"));
    }

    #[test]
    fn unknown_input_and_duplicates() {
        let e = Graph::new(
            "g",
            img(4, 4, 1),
            vec![Node::with_inputs("r", Op::Relu, &["nope"])],
        )
        .unwrap_err();
        assert_eq!(
            e,
            GraphError::UnknownInput {
                node: "r".into(),
                input: "nope".into()
            }
        );
        let e = Graph::new(
            "g",
            img(4, 4, 1),
            vec![Node::new("r", Op::Relu), Node::new("r", Op::Relu)],
        )
        .unwrap_err();
        assert_eq!(e, GraphError::DuplicateName("r".into()));
    }

    #[test]
    fn json_round_trip_and_field_errors() {
        let g = Graph::new(
            "tiny",
            img(6, 6, 2),
            vec![
                Node::new(
                    "c",
                    Op::Conv2d {
                        filters: 4,
                        kernel: [3, 3],
                        stride: [1, 1],
                        padding: Padding::explicit(0, 1, 1, 0),
                        groups: 2,
                        bias: true,
                    },
                ),
                Node::new("r", Op::Relu),
            ],
        )
        .unwrap();
        let back = Graph::from_json(&g.to_json()).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.output_shape(), &vec![5, 5, 4]);

        let bad = r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"d","op":{"type":"dense","unitz":3}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("unitz"), "{msg}");
        let bad =
            r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"d","op":{"type":"dense"}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("units"), "{msg}");
        let bad = r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"d","op":{"type":"densse","units":2}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("densse"), "{msg}");
        // Shape errors surface through serde too, naming the node.
        let bad = r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"p","op":{"type":"max_pool","kernel":[2,2],"stride":[2,2]}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("`p`") && msg.contains("[4]"), "{msg}");
    }
}
