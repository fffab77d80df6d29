//! Post-training static int8 quantization: a graph pass next to batch-norm folding, so every
//! backend, the exporter and the reference interpreter see one quantized model.
//!
//! The scheme (TFLite's / ONNX Runtime's QDQ scheme; every rounding stated):
//!
//! * **Weights**: symmetric int8 per output channel, `q = round(w / s_w)` in `[-127, 127]`,
//!   `s_w = max|w| / 127` over the channel (1 for an all-zero channel).
//! * **Activations**: asymmetric uint8 per tensor, `q = clamp(round(x / s) + z, 0, 255)`
//!   rounding half to even (as ONNX `QuantizeLinear` does), with
//!   `[min, max]` from calibration widened to contain 0 (so zero padding is exact) and
//!   `s = (max - min) / 255`, `z = round(-min / s)`. A zero range (a constant-zero tensor)
//!   gets `s = 1, z = 0` rather than a division by zero.
//! * **Products**: int32 accumulation of `(q_x - z_x) * q_w`; the bias in int32 at scale
//!   `s_x * s_w` (`round(b / (s_x s_w))`, saturated).
//! * **Requantization**, two ways ([`Requantizer`]), each exactly reproducible so every
//!   kernel is checked bit for bit:
//!   - `fixed` (TFLite's single-rounding `MultiplyByQuantizedMultiplier`, XNNPACK's
//!     `rndnu`): the real multiplier `s_x s_w / s_y` as a fixed-point `m * 2^-shift` with `m`
//!     in `[2^30, 2^31)`, applied exactly in 64 bits with one rounding, **half up** (ties
//!     toward +inf): `(acc * m + 2^(shift-1)) >> shift`;
//!   - `fp32` (XNNPACK's and ONNX Runtime's): `acc` converted to fp32 (round to nearest
//!     even), multiplied by the fp32 multiplier, clamped, rounded **half to even** (what
//!     `cvtps2dq` does, `f32::round_ties_even` in the reference).
//!
//!   then `+ z_y` and a clamp that is also the fused ReLU / ReLU6.
//! * Elsewhere (weights, biases, zero points, pools, adds) `round` is half away from zero.
//!
//! Which nodes run in int8: convolutions (incl. depthwise and grouped) and dense layers, with a
//! following ReLU or `Clip(0, c)` fused; max pooling, average pooling, global average pooling,
//! flatten and residual adds on uint8 values. Everything else (softmax, layer norm, GELU,
//! attention, embeddings, ...) stays fp32; a uint8 value read by an fp32 node is dequantized
//! at that border, and an fp32 value read by an int8 node is quantized at it.

use crate::graph::{Graph, Op};
use crate::reference::{eval_node, run_values};
use crate::weights::Weights;
use serde::{Deserialize, Serialize};

/// The numeric precision a model runs in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Fp32,
    Int8,
}

impl Precision {
    /// Every precision, in the order tables list them.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Int8];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown precision `{s}`: valid precisions are {}",
                    Precision::ALL.map(|p| p.name()).join(", ")
                )
            })
    }
}

/// Scale and zero point of a uint8 tensor: `x = (q - zero) * scale`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    pub scale: f32,
    pub zero: i32,
}

impl QParams {
    /// The parameters for values in `[min, max]` (widened to contain 0).
    pub fn from_range(min: f32, max: f32) -> QParams {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let range = hi - lo;
        if !(range.is_finite() && range > f32::MIN_POSITIVE * 255.0) {
            return QParams {
                scale: 1.0,
                zero: 0,
            };
        }
        let scale = range / 255.0;
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as i32;
        QParams { scale, zero }
    }

    /// `clamp(round(x / scale) + zero, 0, 255)`, half to even (ONNX `QuantizeLinear`'s rule;
    /// it also vectorises). NaN maps to the zero point.
    #[inline]
    pub fn quantize(&self, x: f32) -> u8 {
        let q = (x / self.scale).round_ties_even();
        let q = if q.is_nan() { 0.0 } else { q };
        (q + self.zero as f32).clamp(0.0, 255.0) as u8
    }

    #[inline]
    pub fn dequantize(&self, q: u8) -> f32 {
        (q as i32 - self.zero) as f32 * self.scale
    }
}

/// A positive real multiplier as `multiplier * 2^-shift`, `multiplier` in `[2^30, 2^31)`
/// (or 0 for a multiplier below `2^-31`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: u32,
}

impl Requant {
    /// The fixed-point form of `real` (> 0; `real` up to `2^30` is representable). Relative
    /// error below `2^-31`.
    pub fn new(real: f64) -> Requant {
        if !(real.is_finite() && real > 0.0) {
            return Requant {
                multiplier: 0,
                shift: 1,
            };
        }
        // real = f * 2^e, f in [0.5, 1).
        let e = real.log2().floor() as i32 + 1;
        let mut f = real / 2f64.powi(e);
        let mut e = e;
        // Guard log2's rounding at exact powers of two.
        if f >= 1.0 {
            f /= 2.0;
            e += 1;
        } else if f < 0.5 {
            f *= 2.0;
            e -= 1;
        }
        let mut m = (f * 2f64.powi(31)).round() as i64;
        if m == 1 << 31 {
            m = 1 << 30;
            e += 1;
        }
        let shift = 31 - e;
        if shift > 62 {
            return Requant {
                multiplier: 0,
                shift: 1,
            };
        }
        Requant {
            multiplier: m as i32,
            shift: shift.max(1) as u32,
        }
    }

    /// Fixed-point forms of `reals` (> 0) sharing one shift: the largest gets a multiplier in
    /// `[2^30, 2^31)`, the others the same scale (`round(real * 2^shift)`), so kernels shift a
    /// whole vector by one count. A real far below the largest keeps fewer bits (one
    /// `2^-20` of it still has 10); the relative error stays below `2^-31` of the largest.
    pub fn uniform(reals: &[f64]) -> Vec<Requant> {
        let top = reals
            .iter()
            .copied()
            .filter(|r| r.is_finite() && *r > 0.0)
            .fold(0.0, f64::max);
        if top == 0.0 {
            return reals.iter().map(|&r| Requant::new(r)).collect();
        }
        let shift = Requant::new(top).shift;
        let f = 2f64.powi(shift as i32);
        reals
            .iter()
            .map(|&r| {
                let m = if r.is_finite() && r > 0.0 {
                    (r * f).round().min(i32::MAX as f64) as i32
                } else {
                    0
                };
                Requant {
                    multiplier: m,
                    shift,
                }
            })
            .collect()
    }

    /// `round(acc * multiplier / 2^shift)`, ties up (toward +inf), exact for `|acc| < 2^32`:
    /// `(acc * multiplier + 2^(shift-1)) >> shift`, TFLite's single rounding. (Half up rather
    /// than half away from zero: it needs no sign correction, two vector instructions fewer
    /// per 8 products in the kernels' epilogues.)
    #[inline]
    pub fn apply(&self, acc: i64) -> i64 {
        round_shift_up(acc * self.multiplier as i64, self.shift)
    }

    /// The real multiplier this stands for.
    pub fn real(&self) -> f64 {
        self.multiplier as f64 / 2f64.powi(self.shift as i32)
    }
}

/// `round(p / 2^s)`, half away from zero (`s` in 1..=62).
#[inline]
pub fn round_shift(p: i64, s: u32) -> i64 {
    let half = 1i64 << (s - 1);
    if p >= 0 {
        (p + half) >> s
    } else {
        -((half - p) >> s)
    }
}

/// `round(p / 2^s)`, ties up (toward +inf): `(p + 2^(s-1)) >> s` (`s` in 1..=62, `|p| <
/// 2^62`). The fixed-point requantizer's rounding.
#[inline]
pub fn round_shift_up(p: i64, s: u32) -> i64 {
    (p + (1i64 << (s - 1))) >> s
}

/// How an int32 accumulator becomes a uint8 output (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requantizer {
    /// Fixed-point multiplier and shift, 64-bit exact, one rounding half up.
    #[default]
    Fixed,
    /// fp32 multiplier, half to even.
    Fp32,
}

impl std::str::FromStr for Requantizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "fixed" => Ok(Requantizer::Fixed),
            "fp32" => Ok(Requantizer::Fp32),
            _ => Err(format!(
                "unknown requantizer `{s}`: use `fixed` (fixed-point multiplier and shift) or `fp32`"
            )),
        }
    }
}

impl Requantizer {
    pub fn name(self) -> &'static str {
        match self {
            Requantizer::Fixed => "fixed",
            Requantizer::Fp32 => "fp32",
        }
    }
}

/// How a model is quantized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    pub calibration: Calibration,
    pub requantizer: Requantizer,
}

/// How activation ranges are read from the calibration run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Calibration {
    /// The smallest and largest value seen.
    #[default]
    MinMax,
    /// The `p`-th and `(100 - p)`-th percentile of every value seen (e.g. 99.99): outliers
    /// clipped for a finer step.
    Percentile { p: f64 },
}

impl std::str::FromStr for Calibration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("unknown calibration `{s}`: use `minmax` or `percentile:P` (50 < P <= 100)");
        match s.trim() {
            "minmax" => Ok(Calibration::MinMax),
            t => {
                let p: f64 = t
                    .strip_prefix("percentile:")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if p > 50.0 && p <= 100.0 {
                    Ok(Calibration::Percentile { p })
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// A convolution or dense layer in int8: `y = clamp(z_y + R_c(sum (x - z_x) w + bias_c),
/// lo, hi)` per output channel `c`.
#[derive(Clone, Debug, PartialEq)]
pub struct QLinear {
    /// Weights in the fp32 layout (conv HWIO `[kh, kw, Cin/groups, Cout]`, dense `[K, N]`).
    pub w: Vec<i8>,
    /// Per output channel.
    pub w_scale: Vec<f32>,
    /// Per output channel, at scale `s_x * w_scale[c]` (zeros without a bias).
    pub bias: Vec<i32>,
    /// Per output channel: `s_x * w_scale[c] / s_y` in fixed point, one shift for the layer
    /// ([`Requant::uniform`]) ...
    pub requant: Vec<Requant>,
    /// ... and in fp32.
    pub scale: Vec<f32>,
    /// Which of the two `finish` applies.
    pub requantizer: Requantizer,
    pub x: QParams,
    pub y: QParams,
    /// The clamp: `[0, 255]`, or a fused ReLU / ReLU6 range.
    pub lo: u8,
    pub hi: u8,
    /// The activation fused into it (`relu`, `clip`), for tables.
    pub fused: Option<&'static str>,
}

/// How one node runs in a quantized model.
#[derive(Clone, Debug, PartialEq)]
pub enum QNode {
    /// In fp32 (uint8 inputs dequantized at the border).
    Fp32,
    /// Nothing to do: the output is its (uint8) input, already clamped by the producer (a
    /// fused ReLU / Clip) or reshaped (flatten).
    Alias,
    /// Conv / dense in int8.
    Linear(QLinear),
    /// Max pooling on uint8 (exact: the scale is monotone); output parameters = input's.
    MaxPool,
    /// Average pooling (global or windowed) on uint8, output parameters = input's:
    /// `z + round(sum (q - z) / n)`.
    AvgPool,
    /// Residual add of two uint8 values: `clamp(z_y + round((a - z_a) m_a + (b - z_b) m_b) /
    /// 2^shift), lo, hi)` with one shift, so one rounding.
    Add {
        ma: i64,
        mb: i64,
        shift: u32,
        lo: u8,
        hi: u8,
        fused: Option<&'static str>,
    },
}

impl QNode {
    /// Whether the node's work is integer (for tables: the per-layer precision column).
    pub fn precision(&self) -> Precision {
        match self {
            QNode::Fp32 => Precision::Fp32,
            _ => Precision::Int8,
        }
    }
}

/// A model quantized for int8 inference: the (batch-norm folded) graph and its fp32 weights,
/// which values are held as uint8 (and their parameters), and how each node runs.
#[derive(Clone, Debug)]
pub struct QModel {
    pub graph: Graph,
    pub weights: Weights,
    /// Per value (0 = the input, `i + 1` = node `i`'s output): `Some` when held as uint8.
    pub values: Vec<Option<QParams>>,
    pub nodes: Vec<QNode>,
    pub calibration: Calibration,
    pub requantizer: Requantizer,
    /// Examples the ranges were read from.
    pub calibration_examples: usize,
}

/// Why a model cannot be quantized.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantError {
    #[error("calibration needs at least one example ({0} values given for inputs of {1})")]
    NoCalibration(usize, usize),
    #[error(
        "calibration input {0} is not finite: quantization needs real ranges (check the dataset)"
    )]
    NotFinite(usize),
}

/// Observed range of every value over the calibration examples.
fn calibrate(
    g: &Graph,
    w: &Weights,
    inputs: &[f32],
    how: Calibration,
) -> Result<Vec<(f32, f32)>, QuantError> {
    let n = g.input_len();
    if inputs.is_empty() || !inputs.len().is_multiple_of(n) {
        return Err(QuantError::NoCalibration(inputs.len(), n));
    }
    let nv = g.nodes.len() + 1;
    let mut seen: Vec<Vec<f32>> = vec![vec![]; nv];
    let mut range = vec![(f32::INFINITY, f32::NEG_INFINITY); nv];
    for (e, x) in inputs.chunks(n).enumerate() {
        if x.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NotFinite(e));
        }
        for (v, vals) in run_values(g, w, x).into_iter().enumerate() {
            let r = &mut range[v];
            for &q in &vals {
                if q.is_finite() {
                    r.0 = r.0.min(q);
                    r.1 = r.1.max(q);
                }
            }
            if matches!(how, Calibration::Percentile { .. }) {
                seen[v].extend(vals.into_iter().filter(|q| q.is_finite()));
            }
        }
    }
    if let Calibration::Percentile { p } = how {
        for (v, vals) in seen.iter_mut().enumerate() {
            if vals.is_empty() {
                continue;
            }
            vals.sort_by(f32::total_cmp);
            let at = |q: f64| vals[((q / 100.0) * (vals.len() - 1) as f64).round() as usize];
            range[v] = (at(100.0 - p), at(p));
        }
    }
    Ok(range
        .into_iter()
        .map(|(a, b)| if a <= b { (a, b) } else { (0.0, 0.0) })
        .collect())
}

/// Quantize `g` (batch norm already folded) with weights `w`, reading activation ranges from
/// `inputs` (whole examples, batch-major) as `cfg` says.
pub fn quantize(
    g: &Graph,
    w: &Weights,
    inputs: &[f32],
    cfg: &QuantConfig,
) -> Result<QModel, QuantError> {
    let how = cfg.calibration;
    let requantizer = cfg.requantizer;
    let range = calibrate(g, w, inputs, how)?;
    let params = |v: usize| QParams::from_range(range[v].0, range[v].1);
    let n = g.nodes.len();
    let mut values: Vec<Option<QParams>> = vec![None; n + 1];
    let mut nodes = vec![QNode::Fp32; n];
    // A ReLU / Clip(0, c) that is the only reader of node i's output, and what it clamps to.
    let fusable_act = |i: usize| -> Option<(usize, f32)> {
        let j = i + 1;
        let next = g.nodes.get(j)?;
        if g.node_inputs(j) != [i + 1] || g.consumers(i + 1) != 1 {
            return None;
        }
        match next.op {
            Op::Relu => Some((j, f32::INFINITY)),
            Op::Clip { min, max } if min == 0.0 && max > 0.0 => Some((j, max)),
            _ => None,
        }
    };
    let mut i = 0;
    while i < n {
        let ins = g.node_inputs(i);
        let quantized_input = values[ins[0]].is_some();
        match &g.nodes[i].op {
            Op::Conv2d { .. } | Op::Dense { .. } => {
                let x = *values[ins[0]].get_or_insert_with(|| params(ins[0]));
                let act = fusable_act(i);
                let out_v = act.map_or(i + 1, |(j, _)| j + 1);
                let y = params(out_v);
                let (lo, hi, fused) = clamp_of(act.map(|(_, c)| c), y);
                nodes[i] = QNode::Linear(quantize_linear(w, i, x, y, lo, hi, fused, requantizer));
                values[i + 1] = Some(y);
                if let Some((j, _)) = act {
                    nodes[j] = QNode::Alias;
                    values[j + 1] = Some(y);
                    i = j;
                }
            }
            Op::MaxPool { .. } if quantized_input => {
                nodes[i] = QNode::MaxPool;
                values[i + 1] = values[ins[0]];
            }
            Op::AvgPool { .. } | Op::GlobalAvgPool if quantized_input => {
                nodes[i] = QNode::AvgPool;
                values[i + 1] = values[ins[0]];
            }
            Op::Flatten | Op::Reshape { .. } if quantized_input => {
                nodes[i] = QNode::Alias;
                values[i + 1] = values[ins[0]];
            }
            Op::Add if quantized_input && values[ins[1]].is_some() => {
                let (a, b) = (values[ins[0]].unwrap(), values[ins[1]].unwrap());
                let act = fusable_act(i);
                let out_v = act.map_or(i + 1, |(j, _)| j + 1);
                let y = params(out_v);
                let (lo, hi, fused) = clamp_of(act.map(|(_, c)| c), y);
                let (ma, mb, shift) = add_multipliers(a.scale / y.scale, b.scale / y.scale);
                nodes[i] = QNode::Add {
                    ma,
                    mb,
                    shift,
                    lo,
                    hi,
                    fused,
                };
                values[i + 1] = Some(y);
                if let Some((j, _)) = act {
                    nodes[j] = QNode::Alias;
                    values[j + 1] = Some(y);
                    i = j;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(QModel {
        graph: g.clone(),
        weights: w.clone(),
        values,
        nodes,
        calibration: how,
        requantizer,
        calibration_examples: inputs.len() / g.input_len(),
    })
}

/// The uint8 clamp of an output with parameters `y` and a fused activation clamping at
/// `cap` (ReLU: infinite, `Clip(0, c)`: `c`), and the activation's name; `[0, 255]` without.
fn clamp_of(cap: Option<f32>, y: QParams) -> (u8, u8, Option<&'static str>) {
    match cap {
        None => (0, 255, None),
        Some(c) if c.is_finite() => (y.quantize(0.0), y.quantize(c), Some("clip")),
        Some(_) => (y.quantize(0.0), 255, Some("relu")),
    }
}

/// Two multipliers over one shift, each below `2^31`, for an add's two inputs.
fn add_multipliers(ra: f32, rb: f32) -> (i64, i64, u32) {
    let big = (ra as f64).max(rb as f64);
    // The largest multiplier gets 30 significant bits.
    let e = big.log2().floor() as i32 + 1;
    let shift = (30 - e).clamp(1, 62) as u32;
    let f = 2f64.powi(shift as i32);
    (
        (ra as f64 * f).round() as i64,
        (rb as f64 * f).round() as i64,
        shift,
    )
}

#[allow(clippy::too_many_arguments)]
fn quantize_linear(
    w: &Weights,
    i: usize,
    x: QParams,
    y: QParams,
    lo: u8,
    hi: u8,
    fused: Option<&'static str>,
    requantizer: Requantizer,
) -> QLinear {
    let t = w.node(i);
    let k = t[0].as_slice().expect("standard layout");
    let cout = *t[0].shape().last().expect("rank >= 2");
    let mut w_scale = vec![0f32; cout];
    for (j, v) in k.iter().enumerate() {
        let c = j % cout;
        w_scale[c] = w_scale[c].max(v.abs());
    }
    for s in &mut w_scale {
        *s = if *s > 0.0 && s.is_finite() {
            *s / 127.0
        } else {
            1.0
        };
    }
    let wq = k
        .iter()
        .enumerate()
        .map(|(j, v)| (v / w_scale[j % cout]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let bias = (0..cout)
        .map(|c| {
            t.get(1).map_or(0, |b| {
                (b[c] as f64 / (x.scale as f64 * w_scale[c] as f64))
                    .round()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
        })
        .collect();
    let reals: Vec<f64> = (0..cout)
        .map(|c| x.scale as f64 * w_scale[c] as f64 / y.scale as f64)
        .collect();
    let requant = Requant::uniform(&reals);
    let scale = (0..cout)
        .map(|c| (x.scale as f64 * w_scale[c] as f64 / y.scale as f64) as f32)
        .collect();
    QLinear {
        w: wq,
        w_scale,
        bias,
        requant,
        scale,
        requantizer,
        x,
        y,
        lo,
        hi,
        fused,
    }
}

impl QLinear {
    /// The epilogue: int32 accumulator of channel `c` (bias included) to uint8.
    #[inline]
    pub fn finish(&self, acc: i32, c: usize) -> u8 {
        match self.requantizer {
            Requantizer::Fixed => {
                let v = self.requant[c].apply(acc as i64) + self.y.zero as i64;
                v.clamp(self.lo as i64, self.hi as i64) as u8
            }
            Requantizer::Fp32 => {
                let z = self.y.zero;
                let v = (acc as f32 * self.scale[c])
                    .clamp((self.lo as i32 - z) as f32, (self.hi as i32 - z) as f32);
                (v.round_ties_even() as i32 + z) as u8
            }
        }
    }
}

/// The average-pool requantization: `z + round(sum / n)`, half away from zero.
#[inline]
pub fn avg_round(sum: i64, n: usize, zero: i32) -> u8 {
    let n = n as i64;
    let q = if sum >= 0 {
        (2 * sum + n) / (2 * n)
    } else {
        -((n - 2 * sum) / (2 * n))
    };
    (q + zero as i64).clamp(0, 255) as u8
}

/// The residual add's integer arithmetic on one element.
#[inline]
pub fn add_q(a: u8, b: u8, za: i32, zb: i32, zy: i32, node: (i64, i64, u32, u8, u8)) -> u8 {
    let (ma, mb, shift, lo, hi) = node;
    let p = (a as i64 - za as i64) * ma + (b as i64 - zb as i64) * mb;
    (round_shift(p, shift) + zy as i64).clamp(lo as i64, hi as i64) as u8
}

impl QModel {
    /// Nodes that run in int8 and in fp32.
    pub fn counts(&self) -> (usize, usize) {
        let f = self
            .nodes
            .iter()
            .filter(|n| matches!(n, QNode::Fp32))
            .count();
        (self.nodes.len() - f, f)
    }

    /// The step (scale) of the last value held as uint8: what "within one quantization step"
    /// of the output means for this model (0 when nothing is uint8).
    pub fn output_step(&self) -> f32 {
        self.values
            .iter()
            .rev()
            .flatten()
            .next()
            .map_or(0.0, |p| p.scale)
    }

    /// Int8 multiply-accumulates per example (conv / dense in int8).
    pub fn int8_macs(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i], QNode::Linear(_)))
            .map(|i| crate::cost::node_cost(&self.graph, i).macs)
            .sum()
    }
}

/// Per-example work of a quantized model, by the rules of docs/INT8.md: MACs as in fp32
/// (all of them); FPO of the floating-point part only (fp32 nodes, and the float half of each
/// quantize / dequantize border); integer operations separately, never called FPO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QCost {
    pub macs: u64,
    /// The MACs done in int8.
    pub int8_macs: u64,
    pub fpo: u64,
    pub int_ops: u64,
    pub transcendentals: u64,
    pub params: u64,
}

impl std::ops::AddAssign for QCost {
    fn add_assign(&mut self, o: QCost) {
        self.macs += o.macs;
        self.int8_macs += o.int8_macs;
        self.fpo += o.fpo;
        self.int_ops += o.int_ops;
        self.transcendentals += o.transcendentals;
        self.params += o.params;
    }
}

/// Integer operations of a conv / dense epilogue per output: bias add, multiply, rounding
/// shift (add + shift), zero-point add, clamp (min + max).
pub const EPILOGUE_INT_OPS: u64 = 7;
/// A residual add on uint8 per element: two zero-point subtractions, two multiplies, the
/// sum, the rounding shift (2), the zero-point add, the clamp (2).
pub const ADD_INT_OPS: u64 = 10;
/// Quantizing one value: divide by the scale and round (2 FPO); add the zero point and
/// clamp (3 integer ops).
pub const QUANTIZE_COST: (u64, u64) = (2, 3);
/// Dequantizing one value: subtract the zero point (1 integer op), multiply by the scale
/// (1 FPO).
pub const DEQUANTIZE_COST: (u64, u64) = (1, 1);

impl QModel {
    /// Per node (its own work plus the borders it causes: the quantize after an fp32 node
    /// whose output is held as uint8, the dequantize before the first fp32 reader of a uint8
    /// value), and the total. The input's quantize counts in the total only.
    pub fn cost(&self) -> (QCost, Vec<QCost>) {
        let g = &self.graph;
        let len = |v: usize| g.value_shape(v).iter().product::<usize>() as u64;
        let mut per = vec![QCost::default(); g.nodes.len()];
        let mut total = QCost::default();
        if self.values[0].is_some() {
            total.fpo += QUANTIZE_COST.0 * len(0);
            total.int_ops += QUANTIZE_COST.1 * len(0);
        }
        let mut dequantized = vec![false; g.nodes.len() + 1];
        for (i, q) in per.iter_mut().enumerate() {
            let c = crate::cost::node_cost(g, i);
            let out = len(i + 1);
            q.macs = c.macs;
            q.params = c.params;
            match &self.nodes[i] {
                QNode::Fp32 => {
                    q.fpo = c.fpo();
                    q.transcendentals = c.transcendentals;
                    for &u in g.node_inputs(i) {
                        if self.values[u].is_some() && !dequantized[u] {
                            dequantized[u] = true;
                            q.fpo += DEQUANTIZE_COST.0 * len(u);
                            q.int_ops += DEQUANTIZE_COST.1 * len(u);
                        }
                    }
                    if self.values[i + 1].is_some() {
                        q.fpo += QUANTIZE_COST.0 * out;
                        q.int_ops += QUANTIZE_COST.1 * out;
                    }
                }
                QNode::Alias => {}
                QNode::Linear(_) => {
                    q.int8_macs = c.macs;
                    q.int_ops = 2 * c.macs + EPILOGUE_INT_OPS * out;
                }
                QNode::MaxPool => q.int_ops = c.other_fpo,
                // The fp32 rule's sums and divide, plus the rounding add and zero-point add.
                QNode::AvgPool => q.int_ops = c.other_fpo + 2 * out,
                QNode::Add { .. } => q.int_ops = ADD_INT_OPS * out,
            }
            total += *q;
        }
        let last = g.nodes.len();
        if self.values[last].is_some() && !dequantized[last] {
            total.fpo += DEQUANTIZE_COST.0 * len(last);
            total.int_ops += DEQUANTIZE_COST.1 * len(last);
        }
        (total, per)
    }
}

/// Run the quantized model with the reference arithmetic on `batch` examples: the integer
/// nodes exactly as specified above, the fp32 nodes by the fp32 reference on dequantized
/// inputs. Backends are checked against this.
pub fn run_reference_q(qm: &QModel, input: &[f32], batch: usize) -> Vec<f32> {
    let g = &qm.graph;
    assert_eq!(input.len(), batch * g.input_len(), "input length");
    let mut out = Vec::with_capacity(batch * g.output_len());
    for x in input.chunks(g.input_len()) {
        out.extend(run_one_q(qm, x));
    }
    out
}

fn run_one_q(qm: &QModel, x: &[f32]) -> Vec<f32> {
    let g = &qm.graph;
    let nv = g.nodes.len() + 1;
    // uint8 values, and every value's fp32 view (dequantized for uint8 ones).
    let mut q: Vec<Vec<u8>> = vec![vec![]; nv];
    let mut f: Vec<Vec<f32>> = vec![vec![]; nv];
    let settle = |v: usize, y: Vec<f32>, q: &mut Vec<Vec<u8>>, f: &mut Vec<Vec<f32>>| {
        if let Some(p) = qm.values[v] {
            q[v] = y.iter().map(|&a| p.quantize(a)).collect();
            f[v] = q[v].iter().map(|&a| p.dequantize(a)).collect();
        } else {
            f[v] = y;
        }
    };
    settle(0, x.to_vec(), &mut q, &mut f);
    for i in 0..g.nodes.len() {
        let ins = g.node_inputs(i);
        let v = i + 1;
        let a = &q[ins[0]];
        let yq: Vec<u8> = match &qm.nodes[i] {
            QNode::Fp32 => {
                let y = eval_node(g, &qm.weights, i, &f);
                settle(v, y, &mut q, &mut f);
                continue;
            }
            QNode::Alias => a.clone(),
            QNode::Linear(l) => linear_ref(g, i, l, a),
            QNode::MaxPool | QNode::AvgPool => {
                let z = qm.values[ins[0]].expect("uint8 input").zero;
                pool_ref(g, i, &qm.nodes[i], a, z)
            }
            QNode::Add {
                ma,
                mb,
                shift,
                lo,
                hi,
                ..
            } => {
                let (pa, pb) = (qm.values[ins[0]].unwrap(), qm.values[ins[1]].unwrap());
                let zy = qm.values[v].unwrap().zero;
                a.iter()
                    .zip(&q[ins[1]])
                    .map(|(&p, &r)| add_q(p, r, pa.zero, pb.zero, zy, (*ma, *mb, *shift, *lo, *hi)))
                    .collect()
            }
        };
        let p = qm.values[v].expect("an int8 node's output is uint8");
        f[v] = yq.iter().map(|&a| p.dequantize(a)).collect();
        q[v] = yq;
    }
    f.pop().expect("graph has nodes")
}

fn linear_ref(g: &Graph, i: usize, l: &QLinear, a: &[u8]) -> Vec<u8> {
    let zx = l.x.zero;
    match g.nodes[i].op {
        Op::Dense { units, .. } => {
            let k = *g
                .value_shape(g.node_inputs(i)[0])
                .last()
                .expect("non-empty");
            let rows = a.len() / k;
            let mut y = vec![0u8; rows * units];
            for r in 0..rows {
                for u in 0..units {
                    let mut acc = l.bias[u];
                    for j in 0..k {
                        acc += (a[r * k + j] as i32 - zx) * l.w[j * units + u] as i32;
                    }
                    y[r * units + u] = l.finish(acc, u);
                }
            }
            y
        }
        _ => {
            let c = g.conv_geom(i);
            let cin_g = c.cin / c.groups;
            let cout_g = c.cout / c.groups;
            let mut y = vec![0u8; c.ho * c.wo * c.cout];
            for oy in 0..c.ho {
                for ox in 0..c.wo {
                    for co in 0..c.cout {
                        let grp = co / cout_g;
                        let mut acc = l.bias[co];
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let iy = (oy * c.sh + ky) as isize - c.pad_top as isize;
                                let ix = (ox * c.sw + kx) as isize - c.pad_left as isize;
                                // Padding holds the zero point: (z - z) w adds nothing.
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                for ci in 0..cin_g {
                                    let xv = a[(iy as usize * c.w + ix as usize) * c.cin
                                        + grp * cin_g
                                        + ci] as i32;
                                    let wv = l.w[((ky * c.kw + kx) * cin_g + ci) * c.cout + co];
                                    acc += (xv - zx) * wv as i32;
                                }
                            }
                        }
                        y[(oy * c.wo + ox) * c.cout + co] = l.finish(acc, co);
                    }
                }
            }
            y
        }
    }
}

fn pool_ref(g: &Graph, i: usize, node: &QNode, a: &[u8], z: i32) -> Vec<u8> {
    if let Op::GlobalAvgPool = g.nodes[i].op {
        let last = *g.value_shape(g.node_inputs(i)[0]).last().unwrap();
        let rows = a.len() / last;
        return (0..last)
            .map(|c| {
                let s: i64 = (0..rows).map(|r| a[r * last + c] as i64 - z as i64).sum();
                avg_round(s, rows, z)
            })
            .collect();
    }
    let p = g.pool_geom(i);
    let mut y = vec![0u8; p.ho * p.wo * p.c];
    for oy in 0..p.ho {
        for ox in 0..p.wo {
            for c in 0..p.c {
                let mut m = 0u8;
                let mut s = 0i64;
                for iy in p.rows(oy) {
                    for ix in p.cols(ox) {
                        let v = a[(iy * p.w + ix) * p.c + c];
                        m = m.max(v);
                        s += v as i64 - z as i64;
                    }
                }
                y[(oy * p.wo + ox) * p.c + c] = match node {
                    QNode::MaxPool => m,
                    // Padding inside a count_include_pad window is a zero: (z - z) = 0.
                    _ => avg_round(s, p.divisor(oy, ox), z),
                };
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::fold_batch_norm;
    use crate::reference::run_reference;
    use crate::weights::{generate_inputs, generate_weights};
    use crate::zoo::{MODEL_NAMES, zoo_model};
    use proptest::prelude::*;

    #[test]
    fn precision_names_parse_and_bad_ones_list_the_valid() {
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert_eq!(" fp32".parse::<Precision>(), Ok(Precision::Fp32));
        let e = "int4".parse::<Precision>().unwrap_err();
        assert!(e.contains("int4") && e.contains("fp32, int8"), "{e}");
        assert_eq!(
            "percentile:99.9".parse::<Calibration>(),
            Ok(Calibration::Percentile { p: 99.9 })
        );
        assert!("percentile:20".parse::<Calibration>().is_err());
        assert!("max".parse::<Calibration>().is_err());
    }

    #[test]
    fn zero_and_degenerate_ranges_do_not_divide_by_zero() {
        for (lo, hi) in [
            (0.0, 0.0),
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
            (3.0, 3.0),
        ] {
            let p = QParams::from_range(lo, hi);
            assert!(p.scale.is_finite() && p.scale > 0.0, "{lo} {hi}: {p:?}");
            assert!((0..=255).contains(&p.zero));
            assert_eq!(p.dequantize(p.quantize(0.0)), 0.0, "0 is exact");
        }
        // A constant positive tensor still gets a usable step (the range is widened to 0).
        let p = QParams::from_range(3.0, 3.0);
        assert!((p.dequantize(p.quantize(3.0)) - 3.0).abs() <= p.scale / 2.0);
    }

    proptest! {
        #[test]
        fn quantize_dequantize_round_trips(lo in -100f32..0.0, span in 1e-3f32..200.0, t in 0f32..1.0) {
            let p = QParams::from_range(lo, lo + span);
            for q in 0..=255u8 {
                prop_assert_eq!(p.quantize(p.dequantize(q)), q);
            }
            // Inside the range, the error is at most half a step (plus float rounding).
            let x = lo.min(0.0) + t * (lo + span).max(0.0) - t * lo.min(0.0);
            let x = x.clamp(lo.min(0.0), (lo + span).max(0.0));
            let back = p.dequantize(p.quantize(x));
            prop_assert!((back - x).abs() <= p.scale * 0.5001 + 1e-6, "{} -> {}", x, back);
            prop_assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        }

        #[test]
        fn requantizer_matches_a_wide_integer_reference(
            log2 in -40f64..8.0, frac in 0f64..1.0, acc in any::<i32>(),
        ) {
            let real = 2f64.powf(log2) * (1.0 + frac);
            let r = Requant::new(real);
            if r.multiplier != 0 {
                prop_assert!((1 << 30..1i64 << 31).contains(&(r.multiplier as i64)));
                prop_assert!(((r.real() - real) / real).abs() < 2f64.powi(-30));
            }
            // The exact rounding, ties up (toward +inf), in 128 bits: the quotient rounded
            // down, plus one where the remainder is half the divisor or more.
            let p = acc as i128 * r.multiplier as i128;
            let d = 1i128 << r.shift;
            let (n, rem) = (p.div_euclid(d), p.rem_euclid(d));
            let want = if 2 * rem >= d { n + 1 } else { n };
            prop_assert_eq!(r.apply(acc as i64) as i128, want);
        }

        #[test]
        fn uniform_multipliers_share_a_shift(reals in proptest::collection::vec(1e-6f64..0.9, 1..20)) {
            let rq = Requant::uniform(&reals);
            let top = reals.iter().copied().fold(0.0, f64::max);
            let shift = rq[0].shift;
            for (r, q) in reals.iter().zip(&rq) {
                prop_assert_eq!(q.shift, shift);
                prop_assert!(q.multiplier >= 0 && (q.multiplier as i64) < 1i64 << 31);
                prop_assert!((q.real() - r).abs() <= top * 2f64.powi(-30));
            }
        }

        #[test]
        fn avg_round_is_half_away_from_zero(sum in -100_000i64..100_000, n in 1usize..500) {
            let exact = sum as f64 / n as f64;
            let want = (exact.round() as i64).clamp(-1000, 1000);
            let got = avg_round(sum, n, 0) as i64;
            prop_assert_eq!(got, want.clamp(0, 255));
        }
    }

    #[test]
    fn zoo_models_quantize_and_stay_close_to_fp32() {
        for name in MODEL_NAMES {
            for requantizer in [Requantizer::Fixed, Requantizer::Fp32] {
                let g = zoo_model(name).unwrap();
                let w = generate_weights(&g, 3);
                let (g, w) = fold_batch_norm(&g, &w).unwrap();
                // Calibrated on the examples it runs, so the check is of the arithmetic, not
                // of how well 8 random inputs cover another's ranges.
                let x = generate_inputs(&g, 2, 3, 0);
                let cfg = QuantConfig {
                    requantizer,
                    ..Default::default()
                };
                let qm = quantize(&g, &w, &x, &cfg).unwrap();
                let (int8, fp32) = qm.counts();
                assert!(int8 > 0, "{name}: nothing quantized");
                assert!(qm.int8_macs() > 0, "{name}");
                let want = run_reference(&g, &w, &x, 2);
                let got = run_reference_q(&qm, &x, 2);
                let d = crate::reference::diff(&got, &want);
                // Random weights and 8-bit steps: a few percent of the output's scale.
                assert!(
                    d.max_rel < 0.1,
                    "{name} {requantizer:?} ({int8} int8, {fp32} fp32 nodes): {d:?}"
                );
                assert!(got.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn the_two_requantizers_agree_within_one_step() {
        // Same scales, two roundings: outputs differ by at most one step, and rarely.
        let l = |requantizer| QLinear {
            w: vec![],
            w_scale: vec![],
            bias: vec![],
            requant: vec![Requant::new(0.0123)],
            scale: vec![0.0123],
            requantizer,
            x: QParams {
                scale: 1.0,
                zero: 0,
            },
            y: QParams {
                scale: 1.0,
                zero: 128,
            },
            lo: 0,
            hi: 255,
            fused: None,
        };
        let (a, b) = (l(Requantizer::Fixed), l(Requantizer::Fp32));
        let mut differ = 0;
        for acc in -20_000..20_000 {
            let (p, q) = (a.finish(acc, 0), b.finish(acc, 0));
            assert!((p as i32 - q as i32).abs() <= 1, "{acc}: {p} vs {q}");
            differ += (p != q) as usize;
        }
        assert!(differ < 400, "{differ} of 40000 differ");
    }

    #[test]
    fn int8_work_is_counted_apart_from_fpo() {
        let g = zoo_model("mlp").unwrap();
        let w = generate_weights(&g, 1);
        let qm = quantize(
            &g,
            &w,
            &generate_inputs(&g, 2, 1, 0),
            &QuantConfig::default(),
        )
        .unwrap();
        let (q, per) = qm.cost();
        let fp = crate::cost::graph_cost(&g).total;
        assert_eq!(q.macs, fp.macs, "MACs are the same work");
        assert_eq!(q.int8_macs, fp.macs, "every MAC of the mlp is int8");
        assert_eq!(q.params, fp.params);
        // What is left as FPO: the softmax, the input's quantize, the dequantize before the
        // softmax; far below the fp32 model's 2 x MACs.
        let inl = g.input_len() as u64;
        let logits = g.value_shape(g.nodes.len() - 1).iter().product::<usize>() as u64;
        let softmax = crate::cost::node_cost(&g, g.nodes.len() - 1).fpo();
        assert_eq!(q.fpo, softmax + 2 * inl + logits);
        assert!(q.int_ops > 2 * q.int8_macs);
        assert_eq!(per.len(), g.nodes.len());
    }

    #[test]
    fn relu_and_clip_fuse_into_the_producer() {
        let g = zoo_model("ds-cnn").unwrap();
        let w = generate_weights(&g, 1);
        let (g, w) = fold_batch_norm(&g, &w).unwrap();
        let qm = quantize(
            &g,
            &w,
            &generate_inputs(&g, 2, 1, 0),
            &QuantConfig::default(),
        )
        .unwrap();
        for (i, n) in qm.nodes.iter().enumerate() {
            if matches!(g.nodes[i].op, Op::Relu) {
                assert_eq!(*n, QNode::Alias, "{}", g.nodes[i].name);
                let QNode::Linear(l) = &qm.nodes[i - 1] else {
                    panic!("relu after a non-linear node")
                };
                assert_eq!(l.fused, Some("relu"));
                assert_eq!(l.lo as i32, l.y.zero);
            }
        }
    }

    #[test]
    fn percentile_calibration_narrows_ranges() {
        let g = zoo_model("mlp").unwrap();
        let w = generate_weights(&g, 1);
        let x = generate_inputs(&g, 16, 1, 0);
        let a = quantize(&g, &w, &x, &QuantConfig::default()).unwrap();
        let b = quantize(
            &g,
            &w,
            &x,
            &QuantConfig {
                calibration: Calibration::Percentile { p: 99.0 },
                ..Default::default()
            },
        )
        .unwrap();
        let mut narrower = 0;
        for (p, q) in a.values.iter().zip(&b.values) {
            if let (Some(p), Some(q)) = (p, q) {
                assert!(q.scale <= p.scale * 1.0001);
                narrower += (q.scale < p.scale) as usize;
            }
        }
        assert!(narrower > 0);
    }
}
