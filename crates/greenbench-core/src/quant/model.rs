//! The quantized model: how it was asked for (`QuantConfig`, `Calibration`), each node's
//! int8 form (`QLinear`, `QNode`) and the whole (`QModel`), with its epilogue and counts.

use super::scheme::{Precision, QParams, Requant, Requantizer};
use crate::graph::Graph;
use crate::weights::Weights;
use serde::{Deserialize, Serialize};

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

    /// For each of the graph's outputs (a [`Op::Pack`]'s inputs, else the last node), the step
    /// of the last value held as uint8 that it depends on (0 when none): what "within one
    /// quantization step" means for that output. (One step for all of a packed model's
    /// outputs would hold a last hidden state to the pooler's finer step.)
    pub fn output_steps(&self) -> Vec<f32> {
        let g = &self.graph;
        let last = g.nodes.len() - 1;
        let outs: Vec<usize> = match g.nodes[last].op {
            crate::graph::Op::Pack { .. } => g.node_inputs(last).to_vec(),
            _ => vec![last + 1],
        };
        outs.iter()
            .map(|&v| {
                let mut seen = vec![false; g.nodes.len() + 1];
                let (mut stack, mut latest) = (vec![v], None);
                while let Some(u) = stack.pop() {
                    if std::mem::replace(&mut seen[u], true) {
                        continue;
                    }
                    if self.values[u].is_some() {
                        latest = latest.max(Some(u));
                    }
                    if u > 0 {
                        stack.extend(g.node_inputs(u - 1));
                    }
                }
                latest.and_then(|u| self.values[u]).map_or(0.0, |p| p.scale)
            })
            .collect()
    }

    /// Int8 multiply-accumulates per example (conv / dense in int8).
    pub fn int8_macs(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i], QNode::Linear(_)))
            .map(|i| crate::cost::node_cost(&self.graph, i).macs)
            .sum()
    }
}
