//! The ops of the IR: what each computes and its parameters (with their serialised names and
//! defaults), the elementwise functions and binary operators, and how an op prints.

use super::shape::fmt_shape;
use serde::{Deserialize, Serialize};
use std::fmt;

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
            | $crate::graph::Op::Math { .. }
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
    Math(MathFn),
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
            Unary::Math(f) => f.eval(x),
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
            Unary::Math(f) => f.code(),
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
            Unary::Math(f) => f.cost(),
        }
    }
}

/// The elementwise functions of ONNX's math operators (`Sqrt`, `Reciprocal`, `Neg`, `Exp`,
/// `Log`, `Abs`, `Sign`, `Erf`, `Pow` by a constant): the IR's [`Op::Math`], with ONNX's
/// semantics (the square root and logarithm of a negative number are NaN, 1/0 is infinite).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fn", deny_unknown_fields)]
pub enum MathFn {
    Sqrt,
    Reciprocal,
    Neg,
    Exp,
    Log,
    Abs,
    /// -1, 0 or 1.
    Sign,
    Erf,
    /// x to a constant power.
    Pow {
        exponent: f32,
    },
    /// Round to the nearest bfloat16 (ties to even), kept as fp32: the bf16 precision's
    /// operand rounding ([`crate::bf16`]); ONNX's `Cast` to `BFLOAT16` and back.
    RoundBf16,
}

impl MathFn {
    /// The function in f64 (the reference interpreter's precision).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            MathFn::Sqrt => x.sqrt(),
            MathFn::Reciprocal => 1.0 / x,
            MathFn::Neg => -x,
            MathFn::Exp => x.exp(),
            MathFn::Log => x.ln(),
            MathFn::Abs => x.abs(),
            MathFn::Sign => sign(x),
            MathFn::Erf => libm::erf(x),
            MathFn::Pow { exponent } => x.powf(exponent as f64),
            MathFn::RoundBf16 => crate::bf16::round(x as f32) as f64,
        }
    }
    /// The function in f32 (the CPU's arithmetic).
    #[inline(always)]
    pub fn eval32(self, x: f32) -> f32 {
        match self {
            MathFn::Sqrt => x.sqrt(),
            MathFn::Reciprocal => 1.0 / x,
            MathFn::Neg => -x,
            MathFn::Exp => x.exp(),
            MathFn::Log => x.ln(),
            MathFn::Abs => x.abs(),
            MathFn::Sign => sign(x as f64) as f32,
            MathFn::Erf => libm::erff(x),
            MathFn::Pow { exponent } => x.powf(exponent),
            MathFn::RoundBf16 => crate::bf16::round(x),
        }
    }
    /// The GPU kernel's function code (after [`Unary`]'s own) and its parameters.
    pub fn code(self) -> (u32, [f32; 2]) {
        match self {
            MathFn::Sqrt => (7, [0.0; 2]),
            MathFn::Reciprocal => (8, [0.0; 2]),
            MathFn::Neg => (9, [0.0; 2]),
            MathFn::Exp => (10, [0.0; 2]),
            MathFn::Log => (11, [0.0; 2]),
            MathFn::Abs => (12, [0.0; 2]),
            MathFn::Sign => (13, [0.0; 2]),
            MathFn::Erf => (14, [0.0; 2]),
            MathFn::Pow { exponent } => (15, [exponent, 0.0]),
            MathFn::RoundBf16 => (16, [0.0; 2]),
        }
    }
    /// (other FPO, transcendentals) per element: a square root, exp, log, erf or power is
    /// one transcendental (as FPO.md counts layer norm's rsqrt and softmax's exp); a
    /// reciprocal is a division, a negation or absolute value one operation, a sign two
    /// comparisons.
    pub fn cost(self) -> (u64, u64) {
        match self {
            MathFn::Sqrt | MathFn::Exp | MathFn::Log | MathFn::Erf | MathFn::Pow { .. } => (0, 1),
            MathFn::Reciprocal | MathFn::Neg | MathFn::Abs => (1, 0),
            MathFn::Sign => (2, 0),
            // A conversion, as FPO.md counts a cast: no arithmetic.
            MathFn::RoundBf16 => (0, 0),
        }
    }
    /// The name tables show (ONNX's operator, lower case).
    pub fn name(self) -> &'static str {
        match self {
            MathFn::Sqrt => "sqrt",
            MathFn::Reciprocal => "reciprocal",
            MathFn::Neg => "neg",
            MathFn::Exp => "exp",
            MathFn::Log => "log",
            MathFn::Abs => "abs",
            MathFn::Sign => "sign",
            MathFn::Erf => "erf",
            MathFn::Pow { .. } => "pow",
            MathFn::RoundBf16 => "round_bf16",
        }
    }
}

/// ONNX's Sign: -1, 0 or 1 (NaN stays NaN).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
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
    /// An elementwise math function of ONNX's (sqrt, reciprocal, neg, exp, log, abs, sign,
    /// erf, pow by a constant): `{"type": "math", "f": {"fn": "sqrt"}}`.
    Math { f: MathFn },
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
    /// `[S, heads*head_dim]`. Projections are separate dense nodes. `causal`: each query row
    /// attends to itself and the rows before it only (a decoder's mask; GPT-2's).
    /// `key_bias`: a second input of per-example shape `[S]` is added to every head's and
    /// every query row's scores at each key (an additive padding mask: 0 for a token, a large
    /// negative number for padding, as BERT's `(1 - attention_mask) * min` is).
    Attention {
        heads: usize,
        head_dim: usize,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        causal: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        key_bias: bool,
    },
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
    /// Named input `index` of a model with several ([`super::InputSpec::parts`]), read from
    /// the packed graph input under its own shape. Its one input is `input`.
    Input { index: usize },
    /// The outputs of a model with several, named `names`, each example's values one after
    /// the other (flattened): the graph's last node.
    Pack { names: Vec<String> },
    /// A constant of per-example shape `shape` (the node's one weight), the same for every
    /// example: ViT's class token, concatenated before the patches. Its one input is `input`.
    Constant { shape: Vec<usize> },
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
            Op::Math { f } => Unary::Math(f),
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
            Op::Math { f } => f.name(),
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
            Op::Input { .. } => "input",
            Op::Pack { .. } => "outputs",
            Op::Constant { .. } => "constant",
        }
    }

    /// Number of inputs the op takes (`usize::MAX`: one or more, as concat).
    pub fn arity(&self) -> usize {
        match self {
            Op::Add | Op::Mul | Op::Binary { .. } | Op::MatMul => 2,
            Op::Attention { key_bias, .. } => 1 + usize::from(*key_bias),
            Op::Concat { .. } | Op::Pack { .. } => usize::MAX,
            _ => 1,
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
                let s = if stride[0] == stride[1] {
                    stride[0].to_string()
                } else {
                    format!("{}x{}", stride[0], stride[1])
                };
                write!(f, "{dw}conv {}x{}/{s}, {filters}", kernel[0], kernel[1])
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
            Op::Attention {
                heads,
                head_dim,
                causal,
                key_bias,
            } => write!(
                f,
                "attention {heads}x{head_dim}{}{}",
                if *causal { " causal" } else { "" },
                if *key_bias { " masked" } else { "" }
            ),
            Op::Input { index } => write!(f, "input {index}"),
            Op::Pack { names } => write!(f, "outputs {}", names.join(", ")),
            Op::Constant { shape } => write!(f, "constant {}", fmt_shape(shape)),
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
